"""Images that leave the machine: encoded pixels only, never a header or metadata.

The OpenAI-compatible evaluation backend sends images to a server and the exporters hand image files to
other frameworks. Neither may pass on what a file carries besides its pixels: a DICOM header (patient name,
ids, dates; whatever its file is called), PNG text chunks, JPEG EXIF/XMP/comments, TIFF tags. The format
is detected by content, never by the file name. A PNG or JPEG whose structure holds nothing but pixel
data and rendering parameters is passed on byte for byte (:func:`shareable_as_stored`); every other file
is rendered by :func:`medmo.data.images.load_image` and re-encoded as a metadata-free PNG
(:func:`safe_image_bytes`).

Allowed PNG chunks (PNG specification, 3rd edition, section 4.3): IHDR, PLTE, IDAT, IEND and the
rendering chunks tRNS, gAMA, cHRM, sRGB, sBIT, pHYs, bKGD; text (tEXt, zTXt, iTXt), eXIf, tIME, iCCP
(a profile carries free text) or any other chunk, or bytes after IEND, mean a re-encode. Allowed JPEG
segments (ITU-T T.81 Annex B): SOI, frame and scan headers, tables (DQT, DHT, DAC, DRI), restart markers,
EOI at the very end, APP0 "JFIF" and APP14 "Adobe" (fixed-size colour-transform flags); APP1 (EXIF, XMP),
APP2 (ICC), the other APPn and COM mean a re-encode.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

from medmo.data.images import ImageLoadError, load_image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_CHUNKS = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT", b"pHYs", b"bKGD"})
# JPEG markers whose segment may pass: C0-CF (frame headers SOF0-15 with DHT C4 and DAC CC among them; not
# the reserved JPG C8), DQT DB, DRI DD. SOS DA is allowed where it is parsed.
_JPEG_TABLES = frozenset({*range(0xC0, 0xD0), 0xDB, 0xDD}) - {0xC8}


def safe_image_bytes(path: str | Path, *, frame: int | None = None) -> tuple[bytes, str]:
    """The image at ``path`` as bytes that carry pixels only, and their MIME type.

    Args:
        path: any image :func:`medmo.data.images.load_image` reads (PNG/JPEG/TIFF/..., DICOM, NIfTI),
            whatever its file name says.
        frame: frame / page / slice, as :class:`medmo.records.ImageRef` has it (forces a render).

    Returns:
        ``(data, mime)``: the stored bytes of a plain PNG/JPEG, else a re-encoded, metadata-free PNG.

    Raises:
        ImageLoadError: the file is missing, unreadable or not an image.
    """
    p = Path(path)
    if frame is None:
        mime = shareable_as_stored(p)
        if mime is not None:
            return p.read_bytes(), mime
    # Pillow writes no text, time or EXIF chunk unless asked to; load_image returns bare RGB pixels.
    buf = io.BytesIO()
    load_image(p, frame=frame).save(buf, format="PNG")
    return buf.getvalue(), "image/png"


def shareable_as_stored(path: str | Path) -> str | None:
    """``"image/png"`` / ``"image/jpeg"`` when the file may leave byte for byte (see the module docstring), else None.

    Raises:
        ImageLoadError: the file is missing or cannot be read.
    """
    p = Path(path)
    if not p.is_file():
        raise ImageLoadError(f"image {p} does not exist; check the path")
    try:
        with open(p, "rb") as f:
            data = f.read(len(PNG_SIGNATURE))
            if not data.startswith((PNG_SIGNATURE, b"\xff\xd8\xff")):
                return None  # not PNG/JPEG: rendered, whatever the rest holds
            data += f.read()
    except OSError as e:
        raise ImageLoadError(f"cannot read image {p}: {e.strerror}; check file permissions") from None
    if data.startswith(PNG_SIGNATURE):
        return "image/png" if _plain_png(data) else None
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg" if _plain_jpeg(data) else None
    return None


def _plain_png(data: bytes) -> bool:
    pos, n = len(PNG_SIGNATURE), len(data)
    while pos + 12 <= n:
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        pos += 12 + length
        if kind not in PNG_CHUNKS or pos > n:
            return False
        if kind == b"IEND":
            return pos == n
    return False


def _plain_jpeg(data: bytes) -> bool:
    pos, n = 2, len(data)
    while pos + 2 <= n:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # EOI
            return pos + 2 == n
        if pos + 4 > n:
            return False
        (length,) = struct.unpack_from(">H", data, pos + 2)
        body = data[pos + 4 : pos + 2 + length]
        if not _allowed_segment(marker, body):
            return False
        pos += 2 + length
        if marker == 0xDA:  # SOS: entropy-coded data follows, up to the next marker that is not RSTn
            pos = _skip_entropy(data, pos)
    return False


def _allowed_segment(marker: int, body: bytes) -> bool:
    if marker in _JPEG_TABLES or marker == 0xDA:
        return True
    if marker == 0xE0:
        return body.startswith(b"JFIF\x00")
    if marker == 0xEE:
        return body.startswith(b"Adobe") and len(body) == 12
    return False


def _skip_entropy(data: bytes, pos: int) -> int:
    n = len(data)
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= n:
            return n
        nxt = data[pos + 1]
        if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:  # stuffed byte or restart marker
            pos += 2
        elif nxt == 0xFF:
            pos += 1
        else:
            return pos
