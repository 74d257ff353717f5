"""Header-only measurements of images callers send, so memory limits are checked before anything is decoded.

A few hundred KiB on the wire can decode to gigabytes: a blank 6000x6000 PNG is 38 KiB, and a DICOM with the
Deflated transfer syntax (1.2.840.10008.1.2.1.99) is one zlib stream that pydicom inflates whole, pixel data
included, before it can answer even ``Rows``. :func:`probe_bytes` reads only headers: PIL's lazy ``open`` for
PNG/JPEG/TIFF/..., the DICOM file meta and dataset up to ``PixelData`` for DICOM, inflating at most
:data:`DICOM_HEADER_BYTES` of a Deflated one, then checking that the rest inflates to no more than its header
promises (a zlib bomb is refused after at most that many bytes of inflating, and nothing is kept). Each
:class:`Probe` carries an estimate of the loader's working memory (:mod:`medmo.data.images` renders DICOM
through float64 arrays), which :class:`~medmo.infer.inputs.Budget` charges against a request's limits.

No DICOM header value reaches an error message (only sizes and the transfer syntax's standard name).
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medmo.data.dicom import quiet_pydicom
from medmo.infer.errors import InputError

DEFLATED = "1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian (DICOM PS3.5 A.5)
DICOM_HEADER_BYTES = 1 << 20  # the most of a Deflated DICOM inflated to find its image size
TRAILING_BYTES = 1 << 16  # elements a DICOM may carry after PixelData (padding, signatures)
PIXEL_DATA = 0x7FE00010
# Working memory per pixel of turning a decoded image into 8-bit RGB (medmo.data.images / .dicom):
# DICOM grayscale goes through a float64 Modality LUT and float64 windowing, then an 8-bit RGB stack;
# 16-bit and float PIL images are min-max stretched through float64; everything ends as 3 bytes RGB.
RGB_BYTES = 3
FLOAT_PATH_BYTES = 16
PIL_SAMPLE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "I;16": 2, "I;16B": 2, "I;16L": 2,
                    "I;16N": 2, "I": 4, "F": 4, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3, "RGBA": 4,
                    "RGBa": 4, "RGBX": 4, "CMYK": 4}
PIL_FLOAT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}


@dataclass(frozen=True)
class Probe:
    """What an image header says: its size and the estimated memory of decoding it.

    Attributes:
        width, height: the size of the image (the first frame for DICOM).
        work_bytes: estimated peak memory of decoding it to 8-bit RGB, in bytes.
    """

    width: int
    height: int
    work_bytes: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def probe_bytes(
    raw: bytes, where: str, *, mime: str = "", max_pixels: int | None = None, max_inflated: int | None = None
) -> Probe:
    """Measure encoded image bytes (PNG/JPEG/TIFF/... or a DICOM file) from their headers alone.

    Args:
        raw: the encoded file.
        where: the input's place in the request, for error messages.
        mime: the sender's media type (``application/dicom`` marks DICOM without a preamble).
        max_pixels: an image above this many pixels is returned at once, unverified (its caller refuses it).
        max_inflated: most bytes a Deflated DICOM may inflate to (413 above); ``None``: its header's promise.

    Raises:
        InputError: unreadable (400), or a Deflated DICOM inflating beyond its header or ``max_inflated`` (413).
    """
    if is_dicom(raw, mime):
        return _probe_dicom(raw, where, max_pixels, max_inflated)
    from PIL import Image

    try:
        with Image.open(io.BytesIO(raw)) as im:  # lazy: reads the header, not the pixels
            return pil_probe(im.size, im.mode)
    except Image.DecompressionBombError:
        raise InputError(f"{where}: image has too many pixels to decode safely", 413) from None
    except Exception:  # noqa: BLE001 - PIL raises many types for unreadable data
        raise InputError(f"{where}: not a readable image (send PNG, JPEG, TIFF or DICOM)") from None


def probe_file(path: Path, where: str) -> Probe:
    """Measure a local image file from its header (DICOM files are read whole: see :func:`probe_bytes`)."""
    with open(path, "rb") as f:
        head = f.read(352)
    if is_dicom(head, ""):
        return probe_bytes(path.read_bytes(), where)
    if head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return _probe_nifti(path, where)
    from PIL import Image

    try:
        with Image.open(path) as im:
            return pil_probe(im.size, im.mode)
    except Image.DecompressionBombError:
        raise InputError(f"{where}: image has too many pixels to decode safely", 413) from None
    except Exception:  # noqa: BLE001 - the loader gives the detailed message when it is decoded
        raise InputError(f"{where}: not a readable image file (PNG, JPEG, TIFF, DICOM or NIfTI)") from None


def pil_probe(size: tuple[int, int], mode: str) -> Probe:
    """The :class:`Probe` of a PIL image of ``size`` and ``mode`` (decoded samples, float path, RGB out)."""
    w, h = size
    per_pixel = PIL_SAMPLE_BYTES.get(mode, 4) + RGB_BYTES + (FLOAT_PATH_BYTES if mode in PIL_FLOAT_MODES else 0)
    return Probe(w, h, w * h * per_pixel)


def is_dicom(raw: bytes, mime: str) -> bool:
    return mime in ("application/dicom", "image/dicom") or raw[128:132] == b"DICM"


# ------------------------------------------------------------------------------------------------ DICOM


@dataclass
class _DicomHead:
    """What the start of a DICOM file says: its transfer syntax, image header and where its pixel data lies."""

    syntax: str
    image: tuple[int, int, int, int] | None  # rows, columns, frames, bytes per pixel (see _image_header)
    pixel_at: int  # offset of PixelData's value in the (inflated) dataset
    pixel_length: int | None  # PixelData's length from its element header; None when not reached
    head: bytes  # the (inflated) dataset bytes read
    inflater: Any = None  # the zlib stream of a Deflated file, positioned after ``head``


def _read_head(raw: bytes) -> _DicomHead:
    """File meta, then the dataset up to PixelData (at most :data:`DICOM_HEADER_BYTES` inflated). Raises on junk."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_dataset

    start = 132 if raw[128:132] == b"DICM" else 0
    found: list[int] = []

    def at_pixels(tag: Any, vr: Any, length: int) -> bool:
        if tag == PIXEL_DATA:
            found.append(length)
        return tag == PIXEL_DATA

    fp = DicomBytesIO(raw[start:])
    meta = read_dataset(fp, False, True, stop_when=lambda tag, vr, length: tag >> 16 != 2)  # group 2: explicit LE
    syntax = str(meta.get("TransferSyntaxUID", "")) if len(meta) else ""
    head, inflater = (raw[start + fp.tell():] if len(meta) else raw[start:]), None
    if syntax == DEFLATED:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        head = inflater.decompress(head, DICOM_HEADER_BYTES)
    fp = DicomBytesIO(head)
    ds = read_dataset(fp, syntax in ("1.2.840.10008.1.2", ""), syntax != "1.2.840.10008.1.2.2", stop_when=at_pixels)
    # Stopped at (7FE0,0010): its value follows the tag, VR, 2 reserved bytes and a 4-byte length.
    return _DicomHead(syntax, _image_header(ds), fp.tell() + 12, found[0] if found else None, head, inflater)


def _probe_dicom(raw: bytes, where: str, max_pixels: int | None, max_inflated: int | None) -> Probe:
    try:
        with quiet_pydicom():
            dh = _read_head(raw)
    except Exception:  # noqa: BLE001 - pydicom's errors may quote header bytes: say only that it is unreadable
        raise InputError(f"{where}: not a readable DICOM file (its header is missing or corrupt)") from None
    if dh.image is None:
        raise InputError(f"{where}: the DICOM file holds no image (no Rows/Columns before its pixel data)")
    rows, cols, frames, sample_bytes = dh.image
    inflated = 0
    if dh.syntax == DEFLATED and not (max_pixels is not None and rows * cols > max_pixels):
        if dh.pixel_length is None or dh.pixel_length == 0xFFFFFFFF:
            raise InputError(f"{where}: no pixel data within the first {DICOM_HEADER_BYTES} bytes of the "
                             "Deflated DICOM; send it uncompressed or as PNG", 413)
        promised = dh.pixel_at + dh.pixel_length + TRAILING_BYTES
        limit = promised if max_inflated is None else min(promised, max_inflated)
        inflated = _inflated_size(dh.inflater, dh.head, limit, where, frames * rows * cols * sample_bytes)
    return Probe(cols, rows, rows * cols * (sample_bytes + FLOAT_PATH_BYTES + RGB_BYTES) + inflated)


def _image_header(ds: Any) -> tuple[int, int, int, int] | None:
    """``(rows, columns, frames, bytes per pixel of one decoded frame)``, or ``None`` without a size."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        return None
    if rows <= 0 or cols <= 0:
        return None
    try:
        frames = max(1, int(ds.get("NumberOfFrames") or 1))
        bits = int(ds.get("BitsAllocated") or 8)
        samples = max(1, int(ds.get("SamplesPerPixel") or 1))
    except (TypeError, ValueError):
        frames, bits, samples = 1, 16, 3
    return rows, cols, frames, samples * max(1, (bits + 7) // 8)


def _inflated_size(inflater: Any, head: bytes, limit: int, where: str, pixel_bytes: int) -> int:
    """Inflate the rest of a Deflated DICOM, keeping nothing, refusing it once it passes ``limit`` bytes."""
    total = len(head)
    while not inflater.eof and total <= limit:
        chunk = inflater.decompress(inflater.unconsumed_tail, 1 << 20)
        if not chunk:  # input used up (bytes after the stream's end are not part of it)
            break
        total += len(chunk)
    if total > limit:
        raise InputError(
            f"{where}: the Deflated DICOM inflates to more than {limit} bytes (its {pixel_bytes} bytes of pixels and "
            "header, or the server's decoding limit); send it uncompressed or as PNG", 413)
    return total


def _probe_nifti(path: Path, where: str) -> Probe:
    """A NIfTI volume is loaded whole (as float64 by nibabel) before one slice is taken."""
    import nibabel as nib

    try:
        shape = tuple(int(n) for n in nib.load(str(path)).shape[:3]) + (1, 1, 1)
    except Exception:  # noqa: BLE001
        raise InputError(f"{where}: not a readable NIfTI file") from None
    x, y, z = shape[:3]
    return Probe(x, y, x * y * z * 8 + x * y * (FLOAT_PATH_BYTES + RGB_BYTES))
