"""DICOM for the image loader: reading, Modality LUT and VOI window, MONOCHROME1, frames, metadata.

:func:`medmo.data.images.load_image` dispatches DICOM files here; this module holds everything that
touches a DICOM header, so the privacy rules below live in one place.

Intensity (DICOM PS3.3 C.11): grayscale pixels go through the Modality LUT (RescaleSlope /
RescaleIntercept) first, then a VOI window: the caller's ``window``, else the header's first
WindowCenter / WindowWidth, else a robust percentile window over the 0.5-99.5 percentiles, mapped by the
linear function of C.11.2.1.2.1 (:func:`medmo.data.images.to_uint8`). MONOCHROME1 images are inverted
afterwards so that bright means dense, as in MONOCHROME2. Colour and PALETTE COLOR images become RGB.
Decoding is pydicom's (``pydicom.pixels``); compressed transfer syntaxes it cannot decode with numpy +
Pillow alone raise an error naming the package to install.

Privacy: patient identifiers in DICOM headers (the PS3.15 Annex E basic-profile attributes in
:data:`DICOM_PHI_KEYWORDS`) never reach an error message or a log line. Errors name the file, never
header values; pydicom's reading warnings and log records (which can quote values) are withheld by
:func:`quiet_pydicom`; records take their DICOM metadata only from :func:`safe_dicom_meta`, an
allow-list of technical fields.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medmo.data.pixels import DICOM_SUFFIXES, ImageLoadError, Window, to_uint8

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

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


# ----------------------------------------------------------------------------------------------------
# reading and rendering


def read_dicom(path: Path, *, stop_before_pixels: bool = False) -> Any:
    """Read a DICOM file with pydicom inside :func:`quiet_pydicom`.

    Raises:
        ImageLoadError: the file is corrupt or not DICOM (the message names the file, never header values).
    """
    import pydicom

    try:
        with quiet_pydicom():
            return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=path.suffix.lower() in DICOM_SUFFIXES)
    except Exception as e:
        # pydicom's read errors describe structure (preamble, lengths); still, quote only the type.
        raise ImageLoadError(
            f"cannot read DICOM {path} ({type(e).__name__}); the file is corrupt or not DICOM: "
            "re-export it from the PACS/archive"
        ) from None


def load_dicom(path: Path, *, frame: int | None = None, window: Window | None = None) -> Image.Image:
    """One frame of a DICOM file as 8-bit RGB (intensity rules in the module docstring).

    Raises:
        ImageLoadError: no pixel data, frame out of range, a missing decoder or corrupt pixel data.
    """
    ds = read_dicom(path)
    # pydicom converts element values lazily and its validation warnings/logs quote them: keep the
    # whole rendering inside the quiet zone.
    with quiet_pydicom():
        return _dicom_to_image(ds, path, frame, window)


def check_dicom(path: Path, *, frame: int | None = None) -> tuple[int, int]:
    """Decode one frame's pixel data, keep none of it, and return its ``(width, height)``.

    The check behind ``medmo data validate --check-images``: the header alone does not show truncated or
    corrupt pixel data. The frame is decoded as :func:`load_dicom` decodes it, but not rendered.

    Raises:
        ImageLoadError: what :func:`load_dicom` would raise for this frame.
    """
    ds = read_dicom(path)
    with quiet_pydicom():
        arr = _dicom_pixels(ds, path, _frame_index(ds, path, frame))
        return int(arr.shape[1]), int(arr.shape[0])


def dicom_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of a DICOM image from its header alone (pixel data is not read)."""
    ds = read_dicom(path, stop_before_pixels=True)
    try:
        with quiet_pydicom():
            return int(ds.Columns), int(ds.Rows)
    except (AttributeError, TypeError, ValueError):
        raise _no_image_error(ds, path) from None


def _no_image_error(ds: Any, path: Path) -> ImageLoadError:
    """Why a DICOM file gave no image: a non-image object (a report...) or a corrupt, truncated file.

    Only the SOP class's standard name (pydicom's UID dictionary) is quoted, never a header value: an
    unknown SOP Class UID is not repeated.
    """
    from pydicom.uid import UID

    with quiet_pydicom():
        try:
            sop = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
            uid = UID(str(sop)) if sop else None
            name = uid.name if uid is not None and uid.keyword else None
        except Exception:  # a garbled header value
            name = None
    if name is None:
        return ImageLoadError(
            f"DICOM {path} is corrupt or not a DICOM image: no valid header or pixel data could be read; "
            "re-export it from the PACS/archive, or remove it from the records"
        )
    if "Image" in name:
        return ImageLoadError(
            f"DICOM {path} is truncated or corrupt: it is a {name} object but holds no pixel data; "
            "re-export it from the PACS/archive"
        )
    return ImageLoadError(
        f"DICOM {path} holds no image: it is a {name} object (a report, structure set or other non-image "
        "object); remove it from the records or point them at the image series"
    )


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
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


def _dicom_to_image(ds: Any, path: Path, frame: int | None, window: Window | None) -> Image.Image:
    arr = _dicom_pixels(ds, path, _frame_index(ds, path, frame))
    return _render_dicom(ds, arr, window, path)


def _frame_index(ds: Any, path: Path, frame: int | None) -> int | None:
    """The ``index`` for ``pixel_array`` (None for a single-frame image); raises if there is no such frame."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise _no_image_error(ds, path)
    n = _n_frames(ds)
    index = frame or 0
    if not 0 <= index < n:
        raise ImageLoadError(f"DICOM {path} has {n} frame(s); frame {index} is out of range")
    return index if n > 1 else None


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
# metadata


def safe_dicom_meta(ds: Any) -> dict[str, Any]:
    """Technical, non-identifying fields of a DICOM dataset, JSON-serializable, for ``Sample.meta``.

    Only the allow-list in ``_SAFE_DICOM_FIELDS`` (modality, rows, cols, photometric, bits, frames,
    pixel spacing, slice thickness, rescale, body part, view position) plus the transfer syntax name is
    returned, each checked against its type (numbers must be numbers; code strings must be short
    upper-case codes that contain no identifier of the same header). Identifiers
    (:data:`DICOM_PHI_KEYWORDS`), dates and UIDs never are.
    """
    out: dict[str, Any] = {}
    with quiet_pydicom():
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
