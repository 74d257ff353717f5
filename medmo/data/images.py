"""One image loader for every format MedMO's datasets ship: PNG/JPEG/TIFF, DICOM, NIfTI, numpy, PIL.

Everything becomes an 8-bit RGB :class:`PIL.Image.Image`, the input Qwen3-VL's processor expects.

Intensity rules (documented once, used everywhere):

- 8-bit images pass through unchanged (grayscale is replicated to three channels, alpha is dropped).
- 16-bit / 32-bit / float images that are not DICOM or NIfTI (16-bit PNG and TIFF, numpy arrays) are
  stretched linearly from their own minimum to maximum onto 0-255 (a constant image becomes 0), unless
  ``window=(center, width)`` is given. Min-max keeps every stored value distinguishable and needs no
  tuning; 12-bit data stored in 16-bit containers is therefore not left nearly black.
- DICOM grayscale: the Modality LUT (RescaleSlope / RescaleIntercept) is applied first, then a VOI
  window: the caller's ``window``, else the header's first WindowCenter / WindowWidth, else a robust
  percentile window over the 0.5-99.5 percentiles. The window uses the linear function of DICOM PS3.3
  C.11.2.1.2.1. MONOCHROME1 images are inverted afterwards so that bright means dense, as in MONOCHROME2.
- NIfTI: the header's scaling (scl_slope / scl_inter) is applied by nibabel; the volume is reoriented to
  the closest canonical (RAS+) orientation, one slice is taken (``axis``, default 2 = axial; ``slice_index``,
  default the middle) and windowed like DICOM without a header window (percentiles or ``window``).

Privacy: patient identifiers in DICOM headers (the PS3.15 Annex E basic-profile attributes in
:data:`DICOM_PHI_KEYWORDS`) never reach an error message or a log line. Errors name the file, never
header values; pydicom's reading warnings (which can quote values) are withheld; records take their
DICOM metadata only from :func:`safe_dicom_meta`, an allow-list of technical fields.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

log = logging.getLogger(__name__)

ImageSource = Union[str, Path, "np.ndarray", "Image.Image"]
Window = tuple[float, float]

PERCENTILE_WINDOW = (0.5, 99.5)
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
NIFTI_SUFFIXES = (".nii", ".nii.gz")

# Attributes of DICOM PS3.15 Annex E, Table E.1-1 (Basic Application Level Confidentiality Profile) that
# identify a patient, a person or an institution, or link a study to them. Used to redact messages and
# to check that nothing identifying slips into record metadata.
DICOM_PHI_KEYWORDS = frozenset(
    """
    PatientName PatientID PatientBirthDate PatientBirthTime PatientBirthName PatientSex PatientAge
    PatientSize PatientWeight PatientAddress PatientTelephoneNumbers PatientMotherBirthName
    OtherPatientIDs OtherPatientNames OtherPatientIDsSequence IssuerOfPatientID PatientComments
    PatientReligiousPreference EthnicGroup Occupation MilitaryRank BranchOfService MedicalRecordLocator
    AdditionalPatientHistory PregnancyStatus PatientInsurancePlanCodeSequence ResponsiblePerson
    ResponsibleOrganization InstitutionName InstitutionAddress InstitutionalDepartmentName
    InstitutionCodeSequence ReferringPhysicianName ReferringPhysicianAddress
    ReferringPhysicianTelephoneNumbers ReferringPhysicianIdentificationSequence PerformingPhysicianName
    PerformingPhysicianIdentificationSequence NameOfPhysiciansReadingStudy PhysiciansOfRecord
    PhysiciansReadingStudyIdentificationSequence OperatorsName OperatorIdentificationSequence
    RequestingPhysician RequestingService ScheduledPerformingPhysicianName AccessionNumber StudyID
    StudyDate StudyTime SeriesDate SeriesTime AcquisitionDate AcquisitionTime AcquisitionDateTime
    ContentDate ContentTime OverlayDate OverlayTime CurveDate CurveTime StudyInstanceUID
    SeriesInstanceUID SOPInstanceUID FrameOfReferenceUID SynchronizationFrameOfReferenceUID
    InstanceCreatorUID ReferencedSOPInstanceUID StorageMediaFileSetUID StationName DeviceSerialNumber
    StudyDescription SeriesDescription ImageComments RequestAttributesSequence
    PerformedProcedureStepID PerformedProcedureStepStartDate PerformedProcedureStepDescription
    ScheduledProcedureStepID RequestedProcedureID AdmissionID AdmittingDiagnosesDescription
    CurrentPatientLocation PatientState InterpretationAuthor TextValue PersonName
    """.split()
)

# The allow-list of technical, non-identifying fields records may carry (see :func:`safe_dicom_meta`),
# with the type each must have: "int", "float" (one or more numbers) or "code" (a short code string).
_SAFE_DICOM_FIELDS = (
    ("Modality", "modality", "code"),
    ("Rows", "rows", "int"),
    ("Columns", "cols", "int"),
    ("PhotometricInterpretation", "photometric", "code"),
    ("SamplesPerPixel", "samples_per_pixel", "int"),
    ("BitsAllocated", "bits_allocated", "int"),
    ("BitsStored", "bits_stored", "int"),
    ("NumberOfFrames", "frames", "int"),
    ("PixelSpacing", "pixel_spacing", "float"),
    ("ImagerPixelSpacing", "imager_pixel_spacing", "float"),
    ("SliceThickness", "slice_thickness", "float"),
    ("SpacingBetweenSlices", "spacing_between_slices", "float"),
    ("RescaleSlope", "rescale_slope", "float"),
    ("RescaleIntercept", "rescale_intercept", "float"),
    ("BodyPartExamined", "body_part", "code"),
    ("ViewPosition", "view_position", "code"),
)

# Compressed transfer syntaxes pydicom cannot decode with numpy + Pillow alone -> what to install.
_DECODER_HINTS = {
    "1.2.840.10008.1.2.4.57": "pylibjpeg pylibjpeg-libjpeg",  # JPEG lossless, process 14
    "1.2.840.10008.1.2.4.70": "pylibjpeg pylibjpeg-libjpeg",  # JPEG lossless, SV1
    "1.2.840.10008.1.2.4.51": "pylibjpeg pylibjpeg-libjpeg",  # JPEG extended (12-bit)
    "1.2.840.10008.1.2.4.80": "pylibjpeg pylibjpeg-libjpeg",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81": "pylibjpeg pylibjpeg-libjpeg",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg pylibjpeg-openjpeg",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91": "pylibjpeg pylibjpeg-openjpeg",  # JPEG 2000
    "1.2.840.10008.1.2.4.201": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K lossless
    "1.2.840.10008.1.2.4.202": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K lossless RPCL
    "1.2.840.10008.1.2.4.203": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K
}


class ImageLoadError(ValueError):
    """An image that cannot be loaded; the message names the file and what to do (never header values)."""


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
        return _load_dicom(path, frame=frame, window=window)
    if kind == "nifti":
        return _load_nifti(path, slice_index=slice_index, axis=axis, frame=frame, window=window)
    return _load_pil_file(path, frame=frame, window=window)


def load_image_ref(ref: Any, *, window: Window | None = None) -> Image.Image:
    """Load a record's :class:`medmo.records.ImageRef` (``ref.frame``: DICOM frame, TIFF page, NIfTI slice)."""
    return load_image(ref.path, frame=ref.frame, window=window)


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
        ds = _read_dicom(path, stop_before_pixels=True)
        try:
            with _quiet_pydicom():
                return int(ds.Columns), int(ds.Rows)
        except (AttributeError, TypeError, ValueError):
            raise ImageLoadError(f"DICOM {path} has no valid Rows/Columns; it holds no image") from None
    if kind == "nifti":
        shape = _nifti_canonical_shape(path)
        plane = [shape[i] for i in range(3) if i != axis]
        return plane[0], plane[1]
    try:
        with Image.open(path) as im:
            return im.size
    except Exception as e:  # PIL raises many types for corrupt files
        raise ImageLoadError(f"cannot read image {path}: {type(e).__name__}; re-download or re-export the file") from None


def safe_dicom_meta(ds: Any) -> dict[str, Any]:
    """Technical, non-identifying fields of a DICOM dataset, JSON-serializable, for ``Sample.meta``.

    Only the allow-list in ``_SAFE_DICOM_FIELDS`` (modality, rows, cols, photometric, bits, frames,
    pixel spacing, slice thickness, rescale, body part, view position) plus the transfer syntax name is
    returned, each checked against its type (numbers must be numbers; code strings must be short
    upper-case codes that contain no identifier of the same header). Identifiers
    (:data:`DICOM_PHI_KEYWORDS`), dates and UIDs never are.
    """
    out: dict[str, Any] = {}
    with _quiet_pydicom():
        phi = _phi_strings(ds)
        for keyword, name, kind in _SAFE_DICOM_FIELDS:
            try:
                value = _typed_value(ds.get(keyword), kind)
            except (TypeError, ValueError, OverflowError):  # invalid header value: leave the field out
                continue
            if value is None or (isinstance(value, str) and any(p in value for p in phi)):
                continue
            out[name] = value
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is not None and ts.is_transfer_syntax:
        out["transfer_syntax"] = ts.name
    return out


def _typed_value(value: Any, kind: str) -> Any:
    if value is None or value == "":
        return None
    if kind == "int":
        if isinstance(value, str) and not value.strip().lstrip("+-").isdigit():
            raise ValueError("not an integer")
        return int(value)
    if kind == "float":
        values = [float(v) for v in (value if _is_multi(value) else [value])]
        return values if _is_multi(value) else values[0]
    code = str(value).strip().upper()
    return code if re.fullmatch(r"[A-Z][A-Z0-9 _]{0,31}", code) else None


def _phi_strings(ds: Any) -> set[str]:
    """String forms (3+ characters) of the identifying elements present in ``ds``, upper-cased."""
    found = set()
    for keyword in DICOM_PHI_KEYWORDS:
        try:
            value = ds.get(keyword)
        except Exception:
            continue
        if value is None or _is_multi(value) and not isinstance(value, str) and len(value) == 0:
            continue
        for part in re.split(r"[\\^=]", str(value)):
            if len(part.strip()) >= 3:
                found.add(part.strip().upper())
    return found


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
    except Image.DecompressionBombError:
        raise ImageLoadError(
            f"image {path} is larger than Pillow's safety limit of {Image.MAX_IMAGE_PIXELS} pixels; tile it first "
            "(e.g. medmo data cells --tile-size) or raise PIL.Image.MAX_IMAGE_PIXELS if the file is trusted"
        ) from None
    except Exception as e:
        if path.suffix.lower() in (".tif", ".tiff"):
            return _load_tiff_fallback(path, frame=frame, window=window, error=e)
        raise ImageLoadError(
            f"cannot read image {path} ({type(e).__name__}: {e}); the file is corrupt or not an image: "
            "re-download or re-export it"
        ) from None


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
# DICOM (pydicom)


def _read_dicom(path: Path, *, stop_before_pixels: bool = False) -> Any:
    import pydicom

    try:
        with _quiet_pydicom():
            return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=path.suffix.lower() in DICOM_SUFFIXES)
    except Exception as e:
        # pydicom's read errors describe structure (preamble, lengths); still, quote only the type.
        raise ImageLoadError(
            f"cannot read DICOM {path} ({type(e).__name__}); the file is corrupt or not DICOM: "
            "re-export it from the PACS/archive"
        ) from None


def _load_dicom(path: Path, *, frame: int | None, window: Window | None) -> Image.Image:
    ds = _read_dicom(path)
    # pydicom converts element values lazily and its validation warnings/logs quote them: keep the
    # whole rendering inside the quiet zone.
    with _quiet_pydicom():
        return _dicom_to_image(ds, path, frame, window)


def _dicom_to_image(ds: Any, path: Path, frame: int | None, window: Window | None) -> Image.Image:
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise ImageLoadError(f"DICOM {path} has no pixel data (a report, structure set or other non-image object)")
    n = _n_frames(ds)
    index = frame or 0
    if not 0 <= index < n:
        raise ImageLoadError(f"DICOM {path} has {n} frame(s); frame {index} is out of range")
    arr = _dicom_pixels(ds, path, index if n > 1 else None)
    return _render_dicom(ds, arr, window, path)


def _n_frames(ds: Any) -> int:
    try:
        return max(int(ds.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        return 1


def _dicom_pixels(ds: Any, path: Path, index: int | None) -> np.ndarray:
    """Decode one frame, with a clear message when a decoder package is missing."""
    from pydicom.pixels import pixel_array

    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        return pixel_array(ds, index=index)
    except Exception as e:
        ts_name = ts.name if ts is not None else "an unknown transfer syntax"
        hint = _DECODER_HINTS.get(str(ts)) if ts is not None else None
        if hint and ("missing dependencies" in str(e) or "Unable to decode" in str(e) or "not support" in str(e)):
            raise ImageLoadError(
                f"DICOM {path}: pixel data is compressed with {ts_name}, which needs an extra decoder; "
                f"install it with `pip install {hint}` (or `pip install python-gdcm`)"
            ) from None
        raise ImageLoadError(
            f"DICOM {path}: cannot decode pixel data ({type(e).__name__}, transfer syntax {ts_name}); "
            "the pixel data is truncated or corrupt: re-export the file"
        ) from None


@contextlib.contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's decoder warnings and tracebacks; our own error says what failed and what to do."""
    logger = logging.getLogger("pydicom")
    old = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(old)


def _render_dicom(ds: Any, arr: np.ndarray, window: Window | None, path: Path) -> Image.Image:
    import numpy as np
    from PIL import Image
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    if arr.ndim == 3:  # colour (pydicom already converted YBR to RGB)
        bits = int(ds.get("BitsStored") or 8)
        if arr.dtype != np.uint8:
            arr = (arr.astype(np.float64) / max(2**bits - 1, 1) * 255).clip(0, 255).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(arr[..., :3]), mode="RGB")
    values = apply_modality_lut(arr, ds).astype(np.float64)
    win = window if window is not None else _header_window(ds)
    out = to_uint8(values, win, percentile=win is None)
    if photometric == "MONOCHROME1":
        out = 255 - out
    return Image.fromarray(np.stack([out] * 3, axis=-1), mode="RGB")


def _header_window(ds: Any) -> Window | None:
    c, w = ds.get("WindowCenter"), ds.get("WindowWidth")
    if c is None or w is None:
        return None
    try:
        c = float(c[0] if _is_multi(c) else c)
        w = float(w[0] if _is_multi(w) else w)
    except (TypeError, ValueError, IndexError):
        return None
    return (c, w) if w > 0 else None


def _is_multi(v: Any) -> bool:
    return isinstance(v, Sequence) and not isinstance(v, str)


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
    from nibabel.orientations import io_orientation

    img = _open_nifti(path)
    shape = tuple(img.shape[:3]) + (1,) * (3 - len(img.shape[:3]))
    ornt = io_orientation(img.affine)
    out = [0, 0, 0]
    for i in range(3):
        out[int(ornt[i, 0])] = shape[i]
    return out[0], out[1], out[2]


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
