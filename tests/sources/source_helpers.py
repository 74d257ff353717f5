"""Shared helpers of the dataset-source tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

from pathlib import Path


def write_image(path: Path, size: tuple[int, int] = (32, 24), mode: str = "RGB") -> Path:
    """A tiny solid image (format from the suffix) at ``path``."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), "PNG")
    Image.new(mode, size, 0 if mode != "RGB" else (40, 80, 120)).save(path, format=fmt)
    return path
