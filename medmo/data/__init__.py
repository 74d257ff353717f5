"""Data: one image loader, record files (JSONL / Parquet), dataset sources, the Cell set, mixtures.

Submodules import their heavy dependencies (pyarrow, pydicom, nibabel, scikit-image) inside functions,
so ``import medmo.data`` stays light. Typical entry points:

- :func:`medmo.data.images.load_image` -- PNG/JPEG/TIFF, numpy, PIL, DICOM and NIfTI to an RGB image.
- :func:`medmo.data.io.read_records` / :func:`~medmo.data.io.write_jsonl` / :func:`~medmo.data.io.write_parquet`.
- :func:`medmo.data.cells.build_cells` -- the microscopy "Cell" grounding set from instance masks.
- :func:`medmo.data.mixture.build_mixture` -- weighted, deduplicated, decontaminated Parquet shards.
- :mod:`medmo.data.export` -- LLaMA-Factory, ms-swift and verl layouts.
"""

from __future__ import annotations

__all__ = ["images", "io", "cells", "mixture", "export", "outbound"]
