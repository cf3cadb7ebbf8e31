"""A strict, bounded JSON reader (RFC 8259 with I-JSON, RFC 7493, restrictions) for untrusted bytes.

Python's ``json.loads`` accepts ``NaN``/``Infinity``, keeps the last of duplicate keys, accepts lone
surrogates (``"\\ud800"``), integers of any length (Python 3.11 raises ``ValueError`` beyond 4,300
digits) and nesting until its C stack or recursion limit breaks (a thread can segfault). This reader
refuses all of these before building anything large:

* nesting deeper than ``max_depth`` (counted on the raw bytes, strings stripped, before parsing);
* duplicate object member names (I-JSON §2.3), ``NaN``/``Infinity``/``-Infinity`` (RFC 8259 §6);
* lone surrogates in strings or member names (I-JSON §2.1: text must be valid Unicode);
* integer literals longer than ``max_int_digits`` digits; floats that overflow to infinity;
* strings longer than ``max_string_chars`` characters, arrays longer than ``max_array_items``.

Pure functions, no I/O. Errors are :class:`StrictJsonError` with ``limit`` (a short name such as
``max_depth``) and a message naming the value and where (a JSON path like ``$.epcisBody.eventList[3]``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_DEPTH_STEP = [0] * 256
for _open in b"[{":
    _DEPTH_STEP[_open] = 1
for _close in b"]}":
    _DEPTH_STEP[_close] = -1
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_NOT_BRACKETS_OR_QUOTES = bytes(b for b in range(256) if b not in b'[]{}"')


@dataclass(frozen=True)
class JsonLimits:
    """Bounds for one document (defaults: the API's write limits, see the README "Input limits")."""

    max_depth: int = 32
    max_string_chars: int = 65_536
    max_array_items: int = 100_000
    max_int_digits: int = 80


class StrictJsonError(ValueError):
    """The bytes are not acceptable JSON: ``limit`` names the rule, ``message`` says what and where."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.message = message


def nesting_depth(raw: bytes) -> int:
    """Deepest array/object nesting of ``raw`` (strings skipped); linear time, no recursion."""
    openers = raw.count(b"[") + raw.count(b"{")
    if openers <= 1:
        return openers
    marks = raw.translate(None, _NOT_BRACKETS_OR_QUOTES)
    if marks.count(b'"') % 2 == 0 and b'\\"' not in raw and b"\\\\" not in raw:
        # no quote and no backslash is escaped, and the quotes pair up: each quote opens or closes a string (an
        # escape such as \u00fc never holds one), so the even pieces between quotes are exactly the brackets
        # the _STRING scan leaves outside strings, found without the regex
        brackets = b"".join(marks.split(b'"')[::2])
    else:
        brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(_DEPTH_STEP[b] for b in brackets), default=0)


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def tree_check_needed(raw: bytes, limits: JsonLimits) -> bool:
    """False when no value parsed from the UTF-8 bytes ``raw`` can break a limit :func:`_check_tree` checks, so
    the walk is proven redundant: a string of n characters takes at least n bytes of ``raw`` (its quotes
    besides), an array of n items at least 2n + 1 bytes, and a lone surrogate can only come from a
    ``\\uD800``–``\\uDFFF`` escape (valid UTF-8 holds none). Conservative: an escaped backslash before
    ``uD8…`` also answers True."""
    size = len(raw)
    return (size - 2 > limits.max_string_chars or size > 2 * limits.max_array_items + 1
            or _SURROGATE_ESCAPE.search(raw) is not None)


def _no_constant(name: str) -> Any:
    raise StrictJsonError("finite_numbers", f"{name} is not a JSON number (RFC 8259 §6)")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise StrictJsonError("duplicate_keys", f"duplicate member name {key[:80]!r} (I-JSON, RFC 7493 §2.3)")
        out[key] = value
    return out


def _check_tree(value: Any, limits: JsonLimits, path: str) -> None:
    """Walk the parsed value (depth already bounded) checking strings and arrays."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            _check_string(item, limits, where)
        elif isinstance(item, list):
            if len(item) > limits.max_array_items:
                raise StrictJsonError("max_array_items", f"{where} has {len(item)} items; at most "
                                                         f"{limits.max_array_items} (max_array_items)")
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
        elif isinstance(item, dict):
            for key, v in item.items():
                _check_string(key, limits, f"{where} (member name)")
                stack.append((v, f"{where}.{key[:40]}"))


def _check_string(text: str, limits: JsonLimits, where: str) -> None:
    if len(text) > limits.max_string_chars:
        raise StrictJsonError("max_string_chars", f"{where} is a string of {len(text)} characters; at most "
                                                  f"{limits.max_string_chars} (max_string_chars)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StrictJsonError("unicode", f"{where} contains a lone surrogate at character {exc.start} "
                                         "(I-JSON, RFC 7493 §2.1)") from None


def loads(raw: bytes | str, limits: JsonLimits | None = None) -> Any:
    """Parse ``raw`` (UTF-8 bytes or text) under ``limits``; raises :class:`StrictJsonError`."""
    limits = limits or JsonLimits()
    if isinstance(raw, str):
        try:
            raw = raw.encode("utf-8")
        except UnicodeEncodeError:
            raise StrictJsonError("unicode", "the body contains a lone surrogate") from None
    depth = nesting_depth(raw)
    if depth > limits.max_depth:
        raise StrictJsonError("max_depth", f"nesting depth {depth}; at most {limits.max_depth} (max_depth)")

    def bounded_int(text: str) -> int:
        if len(text.lstrip("-")) > limits.max_int_digits:
            raise StrictJsonError("max_int_digits", f"an integer literal of {len(text)} digits; at most "
                                                    f"{limits.max_int_digits} (max_int_digits)")
        return int(text)

    def finite_float(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise StrictJsonError("finite_numbers", f"the number {text[:40]} overflows a double")
        return value

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StrictJsonError("unicode", f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant,
                           parse_int=bounded_int, parse_float=finite_float)
    except StrictJsonError:
        raise
    except (ValueError, RecursionError) as exc:
        raise StrictJsonError("syntax", f"not JSON: {str(exc)[:200]}") from None
    if tree_check_needed(raw, limits):
        _check_tree(value, limits, "$")
    return value
