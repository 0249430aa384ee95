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


def with_shops(count: int, webhook: str) -> dict[str, Any]:
    """The shared catalog with `count` customers of checkout instead of its tenants, alternately
    technical and business, each with its own webhook: `webhook` + /shop-NNNN."""
    catalog = catalog_data()
    catalog["tenants"] = [
        {
            "id": f"shop-{n:04d}",
            "name": f"Shop {n:04d}",
            "segment": "business" if n % 2 else "technical",
            "services": ["checkout"],
            "contacts": {"webhook": f"{webhook}/shop-{n:04d}"},
        }
        for n in range(count)
    ]
    return catalog
