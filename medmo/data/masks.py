"""Instance masks -> instances -> one pixel box per instance: shared by the Cell set and the microscopy loaders.

Instance-label masks (the Cell Tracking Challenge's ``man_seg*.tif``, TissueNet's ``y`` arrays) are used
as they are; a binary mask is split into connected components (:func:`scipy.ndimage.label`), optionally by a
distance-transform watershed (:func:`skimage.segmentation.watershed`) so touching cells get their own boxes.
Boxes are ``[x1, y1, x2, y2]`` with exclusive ends (as in :mod:`medmo.boxes`), from
:func:`scipy.ndimage.find_objects`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class CellBox:
    """One cell: its instance id, pixel box ``[x1, y1, x2, y2]`` (exclusive ends) and mask area."""

    label: int
    box: list[int]
    area: int


def instances_from_mask(mask: np.ndarray, *, watershed: bool = False, min_distance: int = 5) -> np.ndarray:
    """Instance labels (0 = background) from an instance-label, binary or colour-coded mask.

    A mask with more than one non-zero value is taken as instance labels; a binary mask is split into
    connected components, or by watershed when ``watershed`` is set.
    """
    from scipy import ndimage as ndi

    m = np.asarray(mask)
    if m.ndim == 3:  # colour-coded instances: one id per distinct colour, black = background
        flat = m[..., :3].reshape(-1, 3) if m.shape[-1] >= 3 else m[..., 0].reshape(-1, 1)
        _, ids = np.unique(flat, axis=0, return_inverse=True)
        zero = np.flatnonzero((flat == 0).all(axis=1))
        ids = ids.reshape(m.shape[:2]) + 1
        if zero.size:
            ids[ids == ids.flat[zero[0]]] = 0
        m = ids
    if m.ndim != 2:
        raise ValueError(f"mask of shape {m.shape} is not a 2-D label image")
    fg = m != 0
    values = m[fg]
    if values.size and values.min() != values.max():  # more than one non-zero value: instance labels
        return m.astype(np.int32)
    if watershed:
        return watershed_split(fg, min_distance=min_distance)
    labels, _ = ndi.label(fg)
    return labels.astype(np.int32)


def watershed_split(foreground: np.ndarray, *, min_distance: int = 5) -> np.ndarray:
    """Split touching objects of a binary mask: distance-transform peaks as seeds, watershed on -distance."""
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    fg = np.asarray(foreground, bool)
    dist = ndi.distance_transform_edt(fg)
    components, _ = ndi.label(fg)
    peaks = peak_local_max(dist, min_distance=max(int(min_distance), 1), labels=components, exclude_border=False)
    markers = np.zeros(fg.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-dist, markers, mask=fg)
    # Components without a peak (tiny or flat) keep their own label rather than vanishing.
    missing = (labels == 0) & fg
    if missing.any():
        extra, _ = ndi.label(missing)
        labels = np.where(missing, extra + labels.max(), labels)
    return labels.astype(np.int32)


def boxes_from_labels(labels: np.ndarray) -> list[CellBox]:
    """One box per instance id, in id order (fast: one pass with :func:`scipy.ndimage.find_objects`)."""
    from scipy import ndimage as ndi

    lab = np.asarray(labels)
    if lab.min(initial=0) < 0:
        raise ValueError("instance labels must be >= 0")
    areas = np.bincount(lab.ravel().astype(np.int64))
    out = []
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is not None:
            ys, xs = sl
            out.append(CellBox(i, [xs.start, ys.start, xs.stop, ys.stop], int(areas[i])))
    return out


def read_mask(path: Path) -> np.ndarray:
    """A mask file as an integer array (PNG/TIFF via Pillow or tifffile, ``.npy`` via numpy)."""
    from PIL import Image

    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    try:
        with Image.open(path) as im:
            return np.asarray(im)
    except Exception:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return tifffile.imread(path)
        raise ValueError(f"cannot read mask {path}; export masks as PNG, TIFF or .npy label images") from None
