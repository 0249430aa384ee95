"""The suite's one catalog, tests/fixtures/catalog.yaml, read through the product's loader."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from adapter.catalog import Catalog, load_catalog

CATALOG_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "catalog.yaml"


@cache
def shared_catalog() -> Catalog:
    """The shared catalog, checked as dualtrack checks a catalog file (once: it is frozen)."""
    problems: list[str] = []
    catalog = load_catalog(CATALOG_FILE, problems)
    assert catalog is not None and not problems, problems
    return catalog


def catalog_data() -> dict[str, Any]:
    """The shared catalog as plain data, a fresh copy for a test to vary and write out."""
    return shared_catalog().model_dump(mode="json", exclude_unset=True)
