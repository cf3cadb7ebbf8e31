"""Sample EN 10168 certificates (package data) of the fictitious mill "Nordstahl Walzwerk GmbH".

Three hot-rolled coil inspection documents written for this project (EN 10204 3.1 and 3.2):
S355MC (EN 10149-2, 4.0 × 1500 mm), DD13 (EN 10111, 2.5 × 1250 mm) and S235JR (EN 10025-2,
8.0 × 1800 mm, with Charpy V-notch test). Each has its own coil number (B07) and heat number
(C00). They are read through :mod:`importlib.resources`, so they also work from a wheel or zip.
"""

from __future__ import annotations

import json
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

__all__ = ["samples_root", "sample_names", "load_sample", "load_samples"]


def samples_root() -> Traversable:
    """The package-data directory holding the sample ``*.json`` files."""
    return files(__name__)


def sample_names() -> list[str]:
    """File names of the samples (``*.json``), sorted."""
    return sorted(p.name for p in samples_root().iterdir() if p.name.endswith(".json"))


def load_sample(name: str) -> dict[str, Any]:
    """Parse one sample by file name.

    Raises:
        FileNotFoundError: no sample of that name.
    """
    if name not in sample_names():
        raise FileNotFoundError(f"no sample certificate named {name!r}")
    data: dict[str, Any] = json.loads(samples_root().joinpath(name).read_text(encoding="utf-8"))
    return data


def load_samples() -> list[tuple[str, dict[str, Any]]]:
    """All samples as ``(file name, parsed JSON document)`` pairs, sorted by name."""
    return [(name, load_sample(name)) for name in sample_names()]
