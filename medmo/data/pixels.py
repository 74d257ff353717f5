"""Pixel values shared by the image loader and the DICOM reader: the 8-bit mapping and its window.

One rule turns any stored intensity into the 8-bit range Qwen3-VL's processor expects (documented in
:mod:`medmo.data.images`); :mod:`medmo.data.dicom` and :mod:`medmo.data.images` both apply it, so it lives
below them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

Window = tuple[float, float]

PERCENTILE_WINDOW = (0.5, 99.5)
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")


class ImageLoadError(ValueError):
    """An image that cannot be loaded; the message names the file and what to do (never header values)."""


def to_uint8(arr: np.ndarray, window: Window | None = None, *, percentile: bool = False) -> np.ndarray:
    """Map any numeric array to uint8 by ``window``, a robust percentile window, or min-max.

    Args:
        arr: the values (any shape).
        window: ``(center, width)``; the DICOM PS3.3 C.11.2.1.2.1 linear VOI function is used.
        percentile: without a window, use the 0.5-99.5 percentile window instead of min-max.
    """
    import numpy as np

    a = np.asarray(arr, dtype=np.float64)
    if window is not None:
        c, w = float(window[0]), max(float(window[1]), 1.0)
        y = ((a - (c - 0.5)) / (w - 1.0 if w > 1.0 else 1.0) + 0.5) * 255.0
        return np.clip(np.rint(y), 0, 255).astype(np.uint8)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return np.zeros(a.shape, dtype=np.uint8)
    lo, hi = np.percentile(finite, PERCENTILE_WINDOW) if percentile else (finite.min(), finite.max())
    if hi <= lo:  # constant (or nearly) image
        lo, hi = finite.min(), finite.max()
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    y = (np.nan_to_num(a, nan=lo) - lo) / (hi - lo) * 255.0
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)
