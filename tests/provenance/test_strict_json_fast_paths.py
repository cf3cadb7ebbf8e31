"""The strict JSON reader's fast paths against its reference checks (differential, generated inputs).

``nesting_depth`` skips the string regex when no quote or backslash is escaped; ``loads`` skips the tree walk
when :func:`provenance.strict_json.tree_check_needed` proves no string, array or lone surrogate can break a
limit. Both must give exactly the reference verdict: the depth the regex scan gives, and the same value or the
same refusal (rule) as a walk over every parsed value.
"""

from __future__ import annotations

import json
import random
from itertools import accumulate
from pathlib import Path
from typing import Any

import pytest

from provenance import strict_json
from provenance.strict_json import JsonLimits, StrictJsonError, loads, nesting_depth, tree_check_needed

SAMPLES = Path(__file__).resolve().parents[2] / "provenance" / "samples"


def reference_depth(raw: bytes) -> int:
    """The regex scan alone (the reader before its fast path)."""
    openers = raw.count(b"[") + raw.count(b"{")
    if openers <= 1:
        return openers
    brackets = strict_json._STRING.sub(b"", raw).translate(None, strict_json._NOT_BRACKETS)
    return max(accumulate(strict_json._DEPTH_STEP[b] for b in brackets), default=0)


def reference_loads(raw: bytes, limits: JsonLimits) -> Any:
    """``loads`` with the tree walk always run."""
    original = strict_json.tree_check_needed
    strict_json.tree_check_needed = lambda _raw, _limits: True  # type: ignore[assignment]
    try:
        return loads(raw, limits)
    finally:
        strict_json.tree_check_needed = original


def verdict(fn: Any, raw: bytes, limits: JsonLimits) -> tuple[str, Any]:
    try:
        return "ok", fn(raw, limits)
    except StrictJsonError as exc:
        return "refused", exc.limit


ALPHABET = [b"{", b"}", b"[", b"]", b'"', b"\\", b"\\\\", b'\\"', b"\\u00fc", b"\\ud800", b"\\uDC00", b"\\ud83d\\ude00",
            b"a", b"1", b",", b":", b" ", b"\xc3\xbc", b"\\n", b"null", b'"k":', b'"x"']


def random_bytes(rng: random.Random) -> bytes:
    return b"".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 60)))


KEY_TAILS = ["", "ü", "[", "\ud800"]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.random()
    if depth > 6 or kind < 0.3:
        return rng.choice(["plain", "ü", "\ud800", "\udfff", "😀", 'quote " and \\ backslash', "x" * rng.randint(0, 12),
                           "[{", 1, -2, 3.5, True, None])
    if kind < 0.65:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 6))]
    return {f"k{i}" + rng.choice(KEY_TAILS): random_value(rng, depth + 1) for i in range(rng.randint(0, 5))}


def test_depth_fast_path_equals_the_regex_scan() -> None:
    rng = random.Random(14)
    for _ in range(20_000):
        raw = random_bytes(rng)
        assert nesting_depth(raw) == reference_depth(raw), raw
    for path in SAMPLES.glob("*.json"):
        raw = json.dumps(json.loads(path.read_text(encoding="utf-8"))).encode()
        assert nesting_depth(raw) == reference_depth(raw)


@pytest.mark.parametrize("limits", [JsonLimits(), JsonLimits(max_depth=4, max_string_chars=5, max_array_items=3),
                                    JsonLimits(max_string_chars=20, max_array_items=10)])
def test_skipped_walk_gives_the_walks_verdict(limits: JsonLimits) -> None:
    rng = random.Random(1014)
    for _ in range(5_000):
        raw = random_bytes(rng)
        assert verdict(loads, raw, limits) == verdict(reference_loads, raw, limits), raw
    for _ in range(5_000):
        raw = json.dumps(random_value(rng), ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
        assert verdict(loads, raw, limits) == verdict(reference_loads, raw, limits), raw


def test_walk_is_skipped_only_when_proven_redundant() -> None:
    cert = json.dumps(json.loads((SAMPLES / "s355mc_coil_nw24-118734.json").read_text(encoding="utf-8"))).encode()
    assert not tree_check_needed(cert, JsonLimits())  # a certificate body: the walk is proven redundant
    assert tree_check_needed(b'["\\ud800"]', JsonLimits())  # a surrogate escape
    assert tree_check_needed(b'"' + b"a" * 11 + b'"', JsonLimits(max_string_chars=10))  # might hold 11 characters
    assert not tree_check_needed(b'"' + b"a" * 10 + b'"', JsonLimits(max_string_chars=10))
    assert tree_check_needed(b"[1,2,3,4]", JsonLimits(max_array_items=3))
    assert not tree_check_needed(b"[1,2,3]", JsonLimits(max_array_items=3))
    with pytest.raises(StrictJsonError) as exc:
        loads(b"[1,2,3,4]", JsonLimits(max_array_items=3))
    assert exc.value.limit == "max_array_items"
    with pytest.raises(StrictJsonError) as exc:
        loads(b'{"a": "\\udc00"}')
    assert exc.value.limit == "unicode"
