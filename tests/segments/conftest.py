"""The labelled export under tests/fixtures/segments, and a copy of the shared catalog file to edit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from tests.support.catalog import CATALOG_FILE

EXPORT = FIXTURES / "segments"


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    """tests/fixtures/catalog.yaml copied byte for byte, comments and all, for a test to rewrite."""
    path = tmp_path / "catalog.yaml"
    shutil.copyfile(CATALOG_FILE, path)
    return path


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path
