"""Helpers for the dataset-source tests: copy a hand-made fixture folder and add tiny images."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from source_helpers import write_image

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def dataset_root(tmp_path: Path):
    """``make(name, images={relative path: (w, h)})`` -> a copy of fixtures/<name> with images added."""

    def make(name: str, images: dict[str, tuple[int, int]] | None = None) -> Path:
        root = tmp_path / name
        shutil.copytree(FIXTURES / name, root)
        for rel, size in (images or {}).items():
            write_image(root / rel, size)
        return root

    return make
