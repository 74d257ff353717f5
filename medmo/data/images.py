"""One image loader for every format MedMO's datasets ship: PNG/JPEG/TIFF, DICOM, NIfTI, numpy, PIL.

Everything becomes an 8-bit RGB :class:`PIL.Image.Image`, the input Qwen3-VL's processor expects.

Intensity rules (documented once, used everywhere):

- 8-bit images pass through unchanged (grayscale is replicated to three channels, alpha is dropped).
- 16-bit / 32-bit / float images that are not DICOM or NIfTI (16-bit PNG and TIFF, numpy arrays) are
  stretched linearly from their own minimum to maximum onto 0-255 (a constant image becomes 0), unless
  ``window=(center, width)`` is given. Min-max keeps every stored value distinguishable and needs no
  tuning; 12-bit data stored in 16-bit containers is therefore not left nearly black.
- DICOM grayscale: Modality LUT, then the caller's ``window``, else the header's window, else a robust
  percentile window; MONOCHROME1 is inverted (details in :mod:`medmo.data.dicom`).
- NIfTI: the header's scaling (scl_slope / scl_inter) is applied by nibabel; the volume is reoriented to
  the closest canonical (RAS+) orientation, one slice is taken (``axis``, default 2 = axial; ``slice_index``,
  default the middle) and windowed like DICOM without a header window (percentiles or ``window``).

Privacy: DICOM headers are read only by :mod:`medmo.data.dicom`, which keeps patient identifiers out of
every error, log line and record (its :func:`~medmo.data.dicom.safe_dicom_meta` and
:data:`~medmo.data.dicom.DICOM_PHI_KEYWORDS` are re-exported here).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from medmo.boxes import convention_of
from medmo.data.dicom import DICOM_PHI_KEYWORDS, check_dicom, dicom_size, load_dicom, safe_dicom_meta
from medmo.data.pixels import DICOM_SUFFIXES, ImageLoadError, Window, to_uint8

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

# The loader's API; the DICOM privacy helpers and the pixel rule are re-exported from the modules below.
__all__ = [
    "DICOM_PHI_KEYWORDS", "ImageLoadError", "ImageSource", "Window", "check_image", "image_size", "load_image",
    "load_image_ref", "safe_dicom_meta", "to_uint8",
]

ImageSource = Union[str, Path, "np.ndarray", "Image.Image"]
NIFTI_SUFFIXES = (".nii", ".nii.gz")


# ----------------------------------------------------------------------------------------------------
# public API


def load_image(
    src: ImageSource,
    *,
    frame: int | None = None,
    slice_index: int | None = None,
    axis: int = 2,
    window: Window | None = None,
) -> Image.Image:
    """Load any supported image as 8-bit RGB.

    Args:
        src: a file path (PNG/JPEG/TIFF/BMP/..., DICOM, NIfTI ``.nii``/``.nii.gz``), a numpy array
            (``HxW``, ``HxWxC`` with C in 1/3/4, or a 3-D volume sliced like NIfTI) or a PIL image.
        frame: frame of a multi-frame DICOM, page of a multi-page TIFF, volume of a 4-D NIfTI
            (default: the first); for a 3-D NIfTI without ``slice_index``, the slice along ``axis``
            (so ``load_image(ref.path, frame=ref.frame)`` honours :class:`~medmo.records.ImageRef`).
        slice_index: slice of a 3-D volume along ``axis`` (default: the middle slice).
        axis: axis of a 3-D volume to slice across (0 sagittal, 1 coronal, 2 axial for RAS volumes).
        window: ``(center, width)`` intensity window applied to non-8-bit data (see the module docstring).

    Raises:
        ImageLoadError: missing, corrupt or unsupported input; the message names the file and the fix.
    """
    from PIL import Image

    if isinstance(src, Image.Image):
        return _from_pil(src, window, "<PIL image>")
    if _is_array(src):
        return _from_array(src, window, "<array>", slice_index=slice_index, axis=axis)
    path = Path(src)
    if not path.is_file():
        what = "is a directory, not an image file" if path.is_dir() else "does not exist"
        raise ImageLoadError(f"image {path} {what}; check the path (relative paths resolve against the record file's folder)")
    kind = _kind(path)
    if kind == "dicom":
        return load_dicom(path, frame=frame, window=window)
    if kind == "nifti":
        return _load_nifti(path, slice_index=slice_index, axis=axis, frame=frame, window=window)
    return _load_pil_file(path, frame=frame, window=window)


def load_image_ref(ref: Any, *, window: Window | None = None) -> Image.Image:
    """Load a record's :class:`medmo.records.ImageRef` (``ref.frame``: DICOM frame, TIFF page, NIfTI slice)."""
    return load_image(ref.path, frame=ref.frame, window=window)


def shown_size(meta: dict[str, Any] | None) -> tuple[int, int] | None:
    """The size a record's images are shown to the model at, when its box convention fixes one.

    MedMO's SFT loaders resize Cell, wrist, NIH and DeepLesion images to 768 x 768 and state boxes in those
    pixels (``pixel@768x768``, :class:`medmo.boxes.BoxConvention`); the image must be shown at that size for
    the target numbers to mean what they meant in training. Other records: ``None`` (as stored).
    """
    return convention_of(meta).size


def load_shown(ref: Any, meta: dict[str, Any] | None = None) -> Image.Image:
    """:func:`load_image_ref`, resized to :func:`shown_size` of the record's ``meta`` when it names one."""
    image = load_image_ref(ref)
    size = shown_size(meta)
    return image.resize(size, resample=3) if size and image.size != size else image  # 3 = bicubic


def image_size(src: ImageSource, *, axis: int = 2) -> tuple[int, int]:
    """``(width, height)`` of the image :func:`load_image` would return, reading only headers.

    Raises:
        ImageLoadError: the file is missing or unreadable.
    """
    from PIL import Image

    if isinstance(src, Image.Image):
        return src.size
    if _is_array(src):
        return load_image(src, axis=axis).size
    path = Path(src)
    if not path.is_file():
        raise ImageLoadError(f"image {path} does not exist; check the path")
    kind = _kind(path)
    if kind == "dicom":
        return dicom_size(path)
    if kind == "nifti":
        shape = _nifti_canonical_shape(path)
        plane = [shape[i] for i in range(3) if i != axis]
        return plane[0], plane[1]
    try:
        with Image.open(path) as im:
            return im.size
    except Exception as e:  # PIL raises many types for corrupt files
        raise ImageLoadError(f"cannot read image {path}: {type(e).__name__}; re-download or re-export the file") from None


def check_image(src: str | Path, *, frame: int | None = None) -> tuple[int, int]:
    """Decode the image a record refers to, keep none of it, and return the ``(width, height)`` of :func:`load_image`.

    What ``medmo data validate --check-images`` runs: headers alone let truncated and corrupt files
    through. Decoding stays cheap: a JPEG is decoded at 1/8 scale (libjpeg's DCT scaling still reads
    every entropy-coded byte), other Pillow formats are decoded once and dropped, one DICOM frame is
    decoded but not rendered (:func:`medmo.data.dicom.check_dicom`), and NIfTI voxel data is streamed
    through the decompressor (compressed files) or its length checked against the header (uncompressed).

    Args:
        src: the image file.
        frame: the record's :attr:`medmo.records.ImageRef.frame` (DICOM frame, TIFF page, NIfTI volume or
            slice); it must exist.

    Raises:
        ImageLoadError: missing, truncated or corrupt file, or no such frame.
    """
    path = Path(src)
    if not path.is_file():
        raise ImageLoadError(f"image {path} does not exist; check the path")
    kind = _kind(path)
    if kind == "dicom":
        return check_dicom(path, frame=frame)
    if kind == "nifti":
        return _check_nifti(path, frame)
    return _check_pil_file(path, frame)


# ----------------------------------------------------------------------------------------------------
# plain images (PIL) and arrays


def _is_array(src: object) -> bool:
    return type(src).__module__ == "numpy" and hasattr(src, "shape")


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(DICOM_SUFFIXES):
        return "dicom"
    try:
        with open(path, "rb") as f:
            head = f.read(352)
    except OSError as e:
        raise ImageLoadError(f"cannot read {path}: {e.strerror}; check file permissions") from None
    if head[128:132] == b"DICM":
        return "dicom"
    if head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return "nifti"
    return "pil"


def _load_pil_file(path: Path, *, frame: int | None, window: Window | None) -> Image.Image:
    from PIL import Image

    try:
        with Image.open(path) as im:
            if frame:
                _seek(im, frame, path)
            im.load()
            return _from_pil(im, window, str(path))
    except ImageLoadError:
        raise
    except Exception as e:
        if path.suffix.lower() in (".tif", ".tiff") and not isinstance(e, Image.DecompressionBombError):
            return _load_tiff_fallback(path, frame=frame, window=window, error=e)
        raise _pil_error(path, e) from None


def _check_pil_file(path: Path, frame: int | None) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            if frame:
                _seek(im, frame, path)
            size = im.size
            if im.format == "JPEG":
                im.draft(im.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
            im.load()
            return size
    except ImageLoadError:
        raise
    except Exception as e:
        if path.suffix.lower() in (".tif", ".tiff") and not isinstance(e, Image.DecompressionBombError):
            return _load_tiff_fallback(path, frame=frame, window=None, error=e).size
        raise _pil_error(path, e) from None


def _pil_error(path: Path, e: Exception) -> ImageLoadError:
    from PIL import Image

    if isinstance(e, Image.DecompressionBombError):
        return ImageLoadError(
            f"image {path} is larger than Pillow's safety limit of {Image.MAX_IMAGE_PIXELS} pixels; tile it first "
            "(e.g. medmo data cells --tile-size) or raise PIL.Image.MAX_IMAGE_PIXELS if the file is trusted"
        )
    return ImageLoadError(
        f"cannot read image {path} ({type(e).__name__}: {e}); the file is corrupt or not an image: "
        "re-download or re-export it"
    )


def _seek(im: Image.Image, frame: int, path: Path) -> None:
    n = getattr(im, "n_frames", 1)
    if not 0 <= frame < n:
        raise ImageLoadError(f"image {path} has {n} frame(s); frame {frame} is out of range")
    im.seek(frame)


def _load_tiff_fallback(path: Path, *, frame: int | None, window: Window | None, error: Exception) -> Image.Image:
    """TIFF layouts Pillow cannot decode (16-bit RGB, some compressions) through ``tifffile``."""
    try:
        import tifffile

        arr = tifffile.imread(path, key=frame or 0)
    except Exception:
        raise ImageLoadError(
            f"cannot read TIFF {path} ({type(error).__name__}: {error}); the file is corrupt or uses an "
            "unsupported layout: re-export it as PNG or 8/16-bit TIFF"
        ) from None
    return _from_array(arr, window, str(path))


def _from_pil(im: Image.Image, window: Window | None, name: str) -> Image.Image:
    import numpy as np

    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F") or (window is not None and im.mode == "L"):
        return _from_array(np.asarray(im), window, name)
    if im.mode == "RGB":
        return im.copy()
    if im.mode in ("P", "PA") and "transparency" in im.info:
        im = im.convert("RGBA")
    return im.convert("RGB")


def _from_array(
    arr: np.ndarray, window: Window | None, name: str, *, slice_index: int | None = None, axis: int = 2
) -> Image.Image:
    import numpy as np
    from PIL import Image

    a = np.asarray(arr)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.ndim == 3 and a.shape[-1] not in (1, 3, 4):
        a = _take_slice(a, slice_index, axis, name)
    if a.ndim == 3 and a.shape[-1] in (1, 4):
        a = a[..., :1] if a.shape[-1] == 1 else a[..., :3]
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or 0 in a.shape:
        raise ImageLoadError(f"{name}: array of shape {a.shape} is not an image (expected HxW or HxWx3)")
    if a.dtype != np.uint8 or window is not None:
        a = to_uint8(a, window)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(a), mode="RGB")


def _take_slice(vol: np.ndarray, index: int | None, axis: int, name: str) -> np.ndarray:
    """One 2-D slice of a 3-D volume, rotated so the first remaining axis runs left-right."""
    import numpy as np

    if axis not in (0, 1, 2):
        raise ImageLoadError(f"{name}: axis must be 0, 1 or 2, got {axis}")
    n = vol.shape[axis]
    i = n // 2 if index is None else int(index)
    if not 0 <= i < n:
        raise ImageLoadError(f"{name}: slice {i} is out of range for {n} slices along axis {axis}")
    plane = np.take(vol, i, axis=axis)
    # Voxel axes (x, y) -> display (rows = y from top = anterior/superior first, cols = x).
    return np.flipud(plane.T)


# ----------------------------------------------------------------------------------------------------
# NIfTI (nibabel)


def _open_nifti(path: Path) -> Any:
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as e:
        raise ImageLoadError(
            f"cannot read NIfTI {path} ({type(e).__name__}: {e}); the file is corrupt or truncated: re-download it"
        ) from None


def _nifti_canonical_shape(path: Path) -> tuple[int, int, int]:
    return _canonical_shape(_open_nifti(path))


def _canonical_shape(img: Any) -> tuple[int, int, int]:
    """The first three axes of a NIfTI image in the closest canonical (RAS+) orientation."""
    from nibabel.orientations import io_orientation

    shape = tuple(img.shape[:3]) + (1,) * (3 - len(img.shape[:3]))
    ornt = io_orientation(img.affine)
    out = [0, 0, 0]
    for i in range(3):
        out[int(ornt[i, 0])] = shape[i]
    return out[0], out[1], out[2]


def _check_nifti(path: Path, frame: int | None) -> tuple[int, int]:
    """The checks of :func:`_load_nifti` without loading the volume (see :func:`check_image`)."""
    img = _open_nifti(path)
    shape, ndim = _canonical_shape(img), len(img.shape)
    if ndim > 4:
        raise ImageLoadError(f"NIfTI {path} has {ndim} dimensions; expected a 2-D, 3-D or 4-D image")
    if frame is not None:
        n, what = (img.shape[3], "volumes") if ndim == 4 else (shape[2], "slices along axis 2")
        if not 0 <= frame < n:
            raise ImageLoadError(f"NIfTI {path} has {n} {what}; frame {frame} is out of range")
    stored = _nifti_data_bytes(img, path)
    proxy = img.dataobj
    needed = int(proxy.offset) + math.prod(proxy.shape) * proxy.dtype.itemsize
    if stored < needed:
        raise ImageLoadError(
            f"NIfTI {path} is truncated: its header describes {needed} bytes, the file holds {stored}; re-download it"
        )
    return shape[0], shape[1]


def _nifti_data_bytes(img: Any, path: Path) -> int:
    """Bytes of the file holding the voxels: its size, or (compressed) streamed through the decompressor."""
    from nibabel.openers import ImageOpener

    name = str(img.file_map["image"].filename)
    if not name.lower().endswith((".gz", ".bz2", ".zst")):
        return os.path.getsize(name)
    total = 0
    try:
        with ImageOpener(name) as f:
            while chunk := f.read(1 << 20):
                total += len(chunk)
    except Exception as e:  # EOFError, BadGzipFile, zlib.error, indexed_gzip's own errors
        raise ImageLoadError(
            f"cannot read NIfTI {path} voxel data ({type(e).__name__}); the file is truncated or corrupt: re-download it"
        ) from None
    return total


def _load_nifti(
    path: Path, *, slice_index: int | None, axis: int, frame: int | None, window: Window | None
) -> Image.Image:
    import nibabel as nib
    import numpy as np

    img = _open_nifti(path)
    try:
        img = nib.as_closest_canonical(img)
        data = np.asanyarray(img.dataobj)
    except Exception as e:
        raise ImageLoadError(f"cannot read NIfTI {path} voxel data ({type(e).__name__}); the file is truncated: re-download it") from None
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim == 3 and frame is not None and slice_index is None:
        # A 3-D volume has no frames: ``frame`` is the slice, as ImageRef.frame documents.
        slice_index, frame = frame, None
    if data.ndim == 4:
        t = frame or 0
        if not 0 <= t < data.shape[3]:
            raise ImageLoadError(f"NIfTI {path} has {data.shape[3]} volumes; frame {t} is out of range")
        data = data[..., t]
    if data.ndim != 3:
        raise ImageLoadError(f"NIfTI {path} has {data.ndim} dimensions; expected a 2-D, 3-D or 4-D image")
    plane = _take_slice(data, slice_index, axis, f"NIfTI {path}")
    out = to_uint8(plane, window, percentile=True)
    return _from_array(out, None, str(path))
