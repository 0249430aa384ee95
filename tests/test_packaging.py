"""Every shipped template is installed with the package, not only present in a checkout."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_template_folder_is_in_data_files():
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    patterns = [pattern for patterns in data_files.values() for pattern in patterns]
    installed = {path for pattern in patterns for path in ROOT.glob(pattern)}
    shipped = set((ROOT / "templates").rglob("*.j2"))
    assert shipped and shipped <= installed, sorted(str(p.relative_to(ROOT)) for p in shipped - installed)
