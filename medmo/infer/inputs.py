"""Images and chat messages as callers send them -> what an engine takes.

Images arrive as paths, PIL images, numpy arrays, raw bytes, ``data:`` URLs (PNG, JPEG, DICOM via
``application/dicom``) or remote URLs; messages arrive in OpenAI's chat format (``image_url`` parts) or in
transformers' (``{"type": "image", "image": ...}`` parts). Both become transformers' format with
``{"type": "image"}`` placeholders plus a list of RGB images loaded by :func:`medmo.data.images.load_image`.

What a caller may reach is an :class:`ImagePolicy`: the Python API reads local files by default, the HTTP
server reads neither local files nor remote URLs unless its operator enables them. Errors are
:class:`InputError` with an HTTP status (400 malformed, 403 refused by policy, 413 too large).
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medmo.data.images import image_size, load_image

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

ROLES = {"system", "user", "assistant", "developer"}
_DATA_URL = re.compile(r"^data:([\w.+/-]*)((?:;[\w-]+=[^;,]*)*)(;base64)?,", re.I)


class InputError(ValueError):
    """A request input that cannot be used; ``status`` is the HTTP status the server answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ImagePolicy:
    """Which image sources are accepted and how large they may be.

    Attributes:
        allow_local: read local file paths (and ``file://`` URLs).
        local_root: when set, local paths must resolve inside this folder.
        allow_remote: fetch ``http(s)://`` URLs.
        max_pixels: largest ``width * height`` accepted (413 above); ``None`` for no limit.
        max_bytes: largest encoded image accepted (413 above); ``None`` for no limit.
        max_images: most images in one request.
        remote_timeout_s: time limit for fetching one remote image.
    """

    allow_local: bool = True
    local_root: Path | None = None
    allow_remote: bool = False
    max_pixels: int | None = None
    max_bytes: int | None = None
    max_images: int = 16
    remote_timeout_s: float = 10.0


API_POLICY = ImagePolicy()


def load_any(src: Any, policy: ImagePolicy = API_POLICY, where: str = "image") -> Image.Image:
    """One image from any supported source as RGB, checked against ``policy``."""
    from PIL import Image

    if isinstance(src, Image.Image) or type(src).__module__ == "numpy":
        return _checked(_load(load_image, src, where), policy, where)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return decode_bytes(bytes(src), policy, where)
    if isinstance(src, Path):
        return _local(str(src), policy, where)
    if not isinstance(src, str):
        raise InputError(
            f"{where}: expected a path, URL, data URL, bytes, PIL image or numpy array, got {type(src).__name__}"
        )
    if src.startswith("data:"):
        return decode_data_url(src, policy, where)
    if src.startswith(("http://", "https://")):
        return _remote(src, policy, where)
    if src.startswith("file://"):
        return _local(src[len("file://"):], policy, where)
    return _local(src, policy, where)


def decode_data_url(url: str, policy: ImagePolicy = API_POLICY, where: str = "image") -> Image.Image:
    """A ``data:<mime>;base64,<payload>`` URL -> RGB image (``application/dicom`` payloads are DICOM files)."""
    m = _DATA_URL.match(url)
    if not m or not m.group(3):
        raise InputError(f"{where}: malformed data URL; expected 'data:image/png;base64,<base64 payload>'")
    payload = url[m.end():]
    if policy.max_bytes is not None and len(payload) * 3 // 4 > policy.max_bytes:
        raise InputError(f"{where}: image is larger than the server's limit of {policy.max_bytes} bytes", 413)
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{where}: the data URL's payload is not valid base64") from None
    return decode_bytes(raw, policy, where, mime=m.group(1).lower())


def decode_bytes(raw: bytes, policy: ImagePolicy = API_POLICY, where: str = "image", mime: str = "") -> Image.Image:
    """Encoded image bytes (PNG/JPEG/TIFF/... or a DICOM file) -> RGB image, size-checked before decoding."""
    if policy.max_bytes is not None and len(raw) > policy.max_bytes:
        raise InputError(f"{where}: image is larger than the server's limit of {policy.max_bytes} bytes", 413)
    if mime in ("application/dicom", "image/dicom") or raw[128:132] == b"DICM":
        return _dicom_bytes(raw, policy, where)
    from PIL import Image

    try:
        im = Image.open(io.BytesIO(raw))  # lazy: reads the header, not the pixels
    except Image.DecompressionBombError:
        raise InputError(f"{where}: image has too many pixels", 413) from None
    except Exception:  # noqa: BLE001 - PIL raises many types for unreadable data
        raise InputError(f"{where}: not a readable image (send PNG, JPEG, TIFF or DICOM)") from None
    _check_pixels(im.size, policy, where)

    return _load(load_image, im, where)


def _dicom_bytes(raw: bytes, policy: ImagePolicy, where: str) -> Image.Image:
    fd, name = tempfile.mkstemp(suffix=".dcm", prefix="medmo-upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        _check_pixels(_load(image_size, name, where), policy, where)
        return _load(load_image, name, where)
    finally:
        os.unlink(name)


def _load(fn: Any, src: Any, where: str) -> Any:
    try:
        return fn(src)
    except InputError:
        raise
    except ValueError as e:  # ImageLoadError names the file and never DICOM header values
        raise InputError(f"{where}: {e}") from None
    except Exception as e:  # noqa: BLE001 - decoder errors of every kind become one clear message
        raise InputError(f"{where}: could not decode the image ({type(e).__name__})") from None


def _check_pixels(size: tuple[int, int], policy: ImagePolicy, where: str) -> None:
    w, h = size
    if policy.max_pixels is not None and w * h > policy.max_pixels:
        raise InputError(
            f"{where}: image is {w}x{h} = {w * h} pixels, above the server's limit of {policy.max_pixels}; "
            "downscale it before sending",
            413,
        )


def _checked(im: Image.Image, policy: ImagePolicy, where: str) -> Image.Image:
    _check_pixels(im.size, policy, where)
    return im


def _local(path: str, policy: ImagePolicy, where: str) -> Image.Image:
    if not policy.allow_local:
        raise InputError(
            f"{where}: local file paths are disabled on this server (start it with --allow-local-files DIR)", 403
        )
    p = Path(path).expanduser().resolve()
    if policy.local_root is not None and not p.is_relative_to(Path(policy.local_root).resolve()):
        raise InputError(f"{where}: local files must be inside the folder the server allows ({policy.local_root})", 403)
    if not p.is_file():
        raise InputError(f"{where}: no such image file: {path}")
    if policy.max_bytes is not None and p.stat().st_size > policy.max_bytes:
        raise InputError(f"{where}: image file is larger than the limit of {policy.max_bytes} bytes", 413)

    _check_pixels(_load(image_size, p, where), policy, where)
    return _load(load_image, p, where)


def _remote(url: str, policy: ImagePolicy, where: str) -> Image.Image:
    if not policy.allow_remote:
        raise InputError(
            f"{where}: remote image URLs are disabled (start the server with --allow-remote-images, "
            "or send a data URL)",
            403,
        )
    import httpx

    limit = policy.max_bytes or 64 * 2**20
    try:
        with httpx.stream("GET", url, timeout=policy.remote_timeout_s, follow_redirects=True) as r:
            r.raise_for_status()
            buf = bytearray()
            for chunk in r.iter_bytes():
                buf += chunk
                if len(buf) > limit:
                    raise InputError(f"{where}: remote image is larger than the limit of {limit} bytes", 413)
    except httpx.HTTPError as e:
        raise InputError(f"{where}: could not fetch {url} ({type(e).__name__})") from None
    return decode_bytes(bytes(buf), policy, where, mime=r.headers.get("content-type", "").split(";")[0])


# ------------------------------------------------------------------------------------------- messages


def to_conversation(messages: Any, policy: ImagePolicy = API_POLICY) -> tuple[list[dict], list[Image.Image]]:
    """OpenAI- or transformers-style chat messages -> (transformers conversation, its images in order).

    Raises:
        InputError: the first problem found, naming its place (``messages[1].content[0]``).
    """
    if not isinstance(messages, list) or not messages:
        raise InputError("messages: expected a non-empty list of {'role': ..., 'content': ...} objects")
    conversation: list[dict] = []
    images: list[Image.Image] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise InputError(f"{where}: expected an object with 'role' and 'content', got {type(msg).__name__}")
        role = msg.get("role")
        if role not in ROLES:
            raise InputError(f"{where}.role: expected one of {sorted(ROLES)}, got {role!r}")
        parts = _parts(msg.get("content"), where, policy, images)
        conversation.append({"role": "system" if role == "developer" else role, "content": parts})
    if conversation[-1]["role"] == "assistant":
        raise InputError(f"messages[{len(messages) - 1}]: the last message must be from the user, not the assistant")
    return conversation, images


def _parts(content: Any, where: str, policy: ImagePolicy, images: list) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise InputError(f"{where}.content: expected a string or a list of content parts")
    out: list[dict] = []
    for j, part in enumerate(content):
        w = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            out.append({"type": "text", "text": part["text"]})
            continue
        src = _image_source(part, kind, w)
        if len(images) >= policy.max_images:
            raise InputError(f"{w}: too many images (at most {policy.max_images} per request)", 413)
        images.append(load_any(src, policy, w))
        out.append({"type": "image"})
    return out


def _image_source(part: Any, kind: Any, where: str) -> Any:
    if kind == "image_url":
        ref = part.get("image_url")
        url = ref.get("url") if isinstance(ref, dict) else ref
        if isinstance(url, str):
            return url
        raise InputError(f"{where}.image_url: expected {{'url': 'data:image/png;base64,...'}}")
    if kind == "image":
        for key in ("image", "url", "path"):
            if part.get(key) is not None:
                return part[key]
        raise InputError(f"{where}: an image part needs 'image', 'url' or 'path'")
    if kind == "text":
        raise InputError(f"{where}.text: expected a string")
    raise InputError(f"{where}.type: expected 'text', 'image_url' or 'image', got {kind!r}")
