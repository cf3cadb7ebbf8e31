"""The package's own sample certificates (Nordstahl Walzwerk GmbH)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from provenance.certificate import coil_suffix, heat_number, summarize_certificate, validate_certificate
from provenance.samples import load_sample, load_samples, sample_names

SCHEMA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "en10168" / "schema.json"


def test_three_samples_with_distinct_coils_and_heats() -> None:
    samples = load_samples()
    assert len(samples) == 3
    assert [name for name, _ in samples] == sample_names()
    coils = {summarize_certificate(doc)["coil"] for _, doc in samples}
    heats = {heat_number(doc) for _, doc in samples}
    suffixes = {coil_suffix(doc) for _, doc in samples}
    assert len(coils) == len(heats) == len(suffixes) == 3
    assert None not in heats
    grades = {summarize_certificate(doc)["grade"] for _, doc in samples}
    assert grades == {"S355MC", "DD13", "S235JR"}
    for _, doc in samples:
        assert summarize_certificate(doc)["manufacturer"] == "Nordstahl Walzwerk GmbH"


@pytest.mark.parametrize("name", sample_names())
def test_sample_passes_our_validation(name: str) -> None:
    assert validate_certificate(load_sample(name), require_inspection_certificate=True) == []


@pytest.mark.parametrize("name", sample_names())
def test_sample_passes_shared_schema(name: str) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"shared EN 10168 schema {SCHEMA} not present (expected ../shared/data/en10168)")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [e.message for e in validator.iter_errors(load_sample(name))] == []


def test_unknown_sample_name() -> None:
    with pytest.raises(FileNotFoundError):
        load_sample("no_such_certificate.json")
