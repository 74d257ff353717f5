"""Images and chat messages as callers send them -> what an engine takes.

Images arrive as paths, PIL images, numpy arrays, raw bytes, ``data:`` URLs (PNG, JPEG, DICOM via
``application/dicom``) or remote URLs; messages arrive in OpenAI's chat format (``image_url`` parts) or in
transformers' (``{"type": "image", "image": ...}`` parts). Both become transformers' format with
``{"type": "image"}`` placeholders plus a list of RGB images loaded by :func:`medmo.data.images.load_image`.

What a caller may reach is an :class:`ImagePolicy`: the Python API reads local files by default, the HTTP
server reads neither local files nor remote URLs unless its operator enables them. Every image of a request
is measured from its header (:mod:`medmo.infer.probe`) and charged to the request's :class:`Budget` before
any of them is decoded. Errors are :class:`InputError` with an HTTP status (400 malformed, 403 refused by
policy, 413 too large) and never show server paths.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medmo.data.images import load_image
from medmo.infer.errors import InputError, short_repr
from medmo.infer.probe import Probe, is_dicom, pil_probe, probe_bytes, probe_file
from medmo.infer.remote import Fetched, fetch, is_public
from medmo.model.tokenizer import SPECIAL_TOKENS

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = ["API_POLICY", "Budget", "Fetched", "ImagePolicy", "InputError", "load_any", "load_images",
           "parse_messages", "to_conversation"]

ROLES = {"system", "user", "assistant", "developer"}
_DATA_URL = re.compile(r"^data:([\w.+/-]*)((?:;[\w-]+=[^;,]*)*)(;base64)?,", re.I)
UPLOAD = "the uploaded image"  # how error messages name an upload (never the server's temporary file)
# Qwen3-VL's vision tokens: in a caller's text they would be taken for image slots the request has no image for.
VISION_TOKENS = tuple(t for t in SPECIAL_TOKENS if t.startswith("<|vision") or t in ("<|image_pad|>", "<|video_pad|>"))


@dataclass(frozen=True)
class ImagePolicy:
    """Which image sources are accepted and how large they may be.

    Attributes:
        allow_local: read local file paths (and ``file://`` URLs).
        local_root: when set, local paths must resolve inside this folder.
        allow_remote: fetch ``http(s)://`` URLs (see :mod:`medmo.infer.remote` for the rules).
        max_pixels: largest ``width * height`` of one image (413 above); ``None`` for no limit.
        max_bytes: largest encoded image (413 above); ``None`` for no limit.
        max_images: most images in one request.
        max_request_pixels: most pixels of all a request's images together (413 above).
        max_decoded_bytes: most estimated decoding memory of all a request's images together (413 above).
        remote_timeout_s: the one deadline of fetching a remote image, redirects and body included.
        remote_max_redirects: most redirects followed when fetching.
        remote_allow: which resolved addresses may be fetched from (default: public ones only).
    """

    allow_local: bool = True
    local_root: Path | None = None
    allow_remote: bool = False
    max_pixels: int | None = None
    max_bytes: int | None = None
    max_images: int = 16
    max_request_pixels: int | None = None
    max_decoded_bytes: int | None = None
    remote_timeout_s: float = 10.0
    remote_max_redirects: int = 3
    remote_allow: Callable[[Any], bool] = field(default=is_public, repr=False)


API_POLICY = ImagePolicy()


class Budget:
    """One request's pixel and decoding-memory allowance under an :class:`ImagePolicy`, charged per image."""

    def __init__(self, policy: ImagePolicy) -> None:
        self.policy, self.pixels, self.work_bytes = policy, 0, 0

    @property
    def pixels_left(self) -> int | None:
        """Most pixels the next image may have (the per-image and per-request limits), ``None`` for any."""
        caps = [c for c in (self.policy.max_pixels, self.policy.max_request_pixels and
                            self.policy.max_request_pixels - self.pixels) if c is not None]
        return min(caps) if caps else None

    @property
    def bytes_left(self) -> int | None:
        cap = self.policy.max_decoded_bytes
        return None if cap is None else max(0, cap - self.work_bytes)

    def charge(self, probe: Probe, where: str) -> None:
        """Count an image against the limits, refusing it (413, naming the limit) before it is decoded."""
        p, w, h = self.policy, probe.width, probe.height
        if p.max_pixels is not None and probe.pixels > p.max_pixels:
            raise InputError(f"{where}: image is {w}x{h} = {probe.pixels} pixels, above the server's limit of "
                             f"{p.max_pixels}; downscale it before sending", 413)
        if p.max_request_pixels is not None and self.pixels + probe.pixels > p.max_request_pixels:
            raise InputError(f"{where}: the request's images add up to {self.pixels + probe.pixels} pixels, above "
                             f"the server's limit of {p.max_request_pixels} per request; send fewer or smaller "
                             "images", 413)
        left = self.bytes_left
        if left is not None and probe.work_bytes > left:
            raise InputError(f"{where}: decoding the request's images needs about "
                             f"{_mib(self.work_bytes + probe.work_bytes)} MiB, above the server's limit of "
                             f"{_mib(p.max_decoded_bytes)} MiB per request; send fewer or smaller images", 413)
        self.pixels += probe.pixels
        self.work_bytes += probe.work_bytes


def _mib(n: int | None) -> str:
    return f"{(n or 0) / 2**20:.0f}"


# --------------------------------------------------------------------------------------------- images


def load_any(src: Any, policy: ImagePolicy = API_POLICY, where: str = "image") -> Image.Image:
    """One image from any supported source as RGB, checked against ``policy``."""
    return load_images([(where, src)], policy)[0]


def load_images(sources: list[tuple[str, Any]], policy: ImagePolicy = API_POLICY) -> list[Image.Image]:
    """``(where, source)`` pairs -> RGB images: every header is measured and charged before anything decodes."""
    budget = Budget(policy)
    staged = [_stage(src, policy, where, budget) for where, src in sources]
    return [decode() for decode in staged]


def _stage(src: Any, policy: ImagePolicy, where: str, budget: Budget) -> Callable[[], Image.Image]:
    """Check one source against the policy and charge its header to ``budget``; return what decodes it."""
    from PIL import Image

    if isinstance(src, Image.Image):
        budget.charge(pil_probe(src.size, src.mode), where)
        return lambda: _load(load_image, src, where)
    if type(src).__module__ == "numpy":
        im = _load(load_image, src, where)
        budget.charge(pil_probe(im.size, "RGB"), where)
        return lambda: im
    if isinstance(src, Fetched):
        return _stage_bytes(src.raw, policy, where, budget, src.mime)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return _stage_bytes(bytes(src), policy, where, budget)
    if isinstance(src, Path):
        return _stage_local(str(src), policy, where, budget)
    if not isinstance(src, str):
        raise InputError(
            f"{where}: expected a path, URL, data URL, bytes, PIL image or numpy array, got {type(src).__name__}"
        )
    if src.startswith("data:"):
        raw, mime = data_url_bytes(src, policy, where)
        return _stage_bytes(raw, policy, where, budget, mime)
    if src.startswith(("http://", "https://")):
        check_remote_allowed(policy, where)
        got = fetch(src, where, max_bytes=policy.max_bytes, timeout_s=policy.remote_timeout_s,
                    max_redirects=policy.remote_max_redirects, allow=policy.remote_allow)
        return _stage_bytes(got.raw, policy, where, budget, got.mime)
    if src.startswith("file://"):
        return _stage_local(src[len("file://"):], policy, where, budget)
    return _stage_local(src, policy, where, budget)


def decode_data_url(url: str, policy: ImagePolicy = API_POLICY, where: str = "image") -> Image.Image:
    """A ``data:<mime>;base64,<payload>`` URL -> RGB image (``application/dicom`` payloads are DICOM files)."""
    return load_any(url, policy, where)


def decode_bytes(raw: bytes, policy: ImagePolicy = API_POLICY, where: str = "image", mime: str = "") -> Image.Image:
    """Encoded image bytes (PNG/JPEG/TIFF/... or a DICOM file) -> RGB image, size-checked before decoding."""
    return load_any(Fetched(raw, mime), policy, where)


def data_url_bytes(url: str, policy: ImagePolicy, where: str) -> tuple[bytes, str]:
    """The payload and media type of a base64 ``data:`` URL, its size checked before decoding the base64."""
    m = _DATA_URL.match(url)
    if not m or not m.group(3):
        raise InputError(f"{where}: malformed data URL; expected 'data:image/png;base64,<base64 payload>'")
    payload = url[m.end():]
    if policy.max_bytes is not None and len(payload) * 3 // 4 > policy.max_bytes:
        raise InputError(f"{where}: image is larger than the server's limit of {policy.max_bytes} bytes", 413)
    try:
        return base64.b64decode(payload, validate=True), m.group(1).lower()
    except (binascii.Error, ValueError):
        raise InputError(f"{where}: the data URL's payload is not valid base64") from None


def check_remote_allowed(policy: ImagePolicy, where: str) -> None:
    if not policy.allow_remote:
        raise InputError(
            f"{where}: remote image URLs are disabled (start the server with --allow-remote-images, "
            "or send a data URL)",
            403,
        )


def _stage_bytes(raw: bytes, policy: ImagePolicy, where: str, budget: Budget, mime: str = "") -> Callable:
    if policy.max_bytes is not None and len(raw) > policy.max_bytes:
        raise InputError(f"{where}: image is larger than the server's limit of {policy.max_bytes} bytes", 413)
    budget.charge(probe_bytes(raw, where, mime=mime, max_pixels=budget.pixels_left, max_inflated=budget.bytes_left),
                  where)
    if is_dicom(raw, mime):
        return lambda: _dicom_bytes(raw, where)

    def decode() -> Image.Image:
        from PIL import Image

        return _load(load_image, Image.open(io.BytesIO(raw)), where)

    return decode


def _dicom_bytes(raw: bytes, where: str) -> Image.Image:
    """Decode an uploaded DICOM through the one loader (which reads files), naming the upload, not the file."""
    fd, name = tempfile.mkstemp(suffix=".dcm", prefix="medmo-upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        return _load(load_image, name, where, hide=name)
    finally:
        os.unlink(name)


def _load(fn: Any, src: Any, where: str, hide: str | None = None) -> Any:
    try:
        return fn(src)
    except InputError:
        raise
    except ValueError as e:  # ImageLoadError names the file and never DICOM header values
        text = str(e).replace(hide, UPLOAD) if hide else str(e)
        raise InputError(f"{where}: {text}") from None
    except Exception as e:  # noqa: BLE001 - decoder errors of every kind become one clear message
        raise InputError(f"{where}: could not decode the image ({type(e).__name__})") from None


def _stage_local(path: str, policy: ImagePolicy, where: str, budget: Budget) -> Callable[[], Image.Image]:
    if not policy.allow_local:
        raise InputError(
            f"{where}: local file paths are disabled on this server (start it with --allow-local-files DIR)", 403
        )
    p = Path(path).expanduser().resolve()
    if policy.local_root is not None and not p.is_relative_to(Path(policy.local_root).resolve()):
        raise InputError(f"{where}: local files must be inside the folder the server allows (--allow-local-files)",
                         403)
    if not p.is_file():
        raise InputError(f"{where}: no such image file: {path}")
    if policy.max_bytes is not None and p.stat().st_size > policy.max_bytes:
        raise InputError(f"{where}: image file is larger than the limit of {policy.max_bytes} bytes", 413)
    budget.charge(probe_file(p, where), where)
    return lambda: _load(load_image, p, where)


# ------------------------------------------------------------------------------------------- messages


def to_conversation(messages: Any, policy: ImagePolicy = API_POLICY) -> tuple[list[dict], list[Image.Image]]:
    """OpenAI- or transformers-style chat messages -> (transformers conversation, its images in order).

    Raises:
        InputError: the first problem found, naming its place (``messages[1].content[0]``).
    """
    conversation, sources = parse_messages(messages, policy)
    return conversation, load_images(sources, policy)


def parse_messages(messages: Any, policy: ImagePolicy = API_POLICY) -> tuple[list[dict], list[tuple[str, Any]]]:
    """Check chat messages without reading any image: (conversation, ``(where, source)`` of each image in order)."""
    if not isinstance(messages, list) or not messages:
        raise InputError("messages: expected a non-empty list of {'role': ..., 'content': ...} objects")
    conversation: list[dict] = []
    sources: list[tuple[str, Any]] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise InputError(f"{where}: expected an object with 'role' and 'content', got {type(msg).__name__}")
        role = msg.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise InputError(f"{where}.role: expected one of {sorted(ROLES)}, got {short_repr(role)}")
        parts = _parts(msg.get("content"), where, policy, sources)
        conversation.append({"role": "system" if role == "developer" else role, "content": parts})
    if conversation[-1]["role"] == "assistant":
        raise InputError(f"messages[{len(messages) - 1}]: the last message must be from the user, not the assistant")
    return conversation, sources


def checked_text(text: str, where: str) -> str:
    """``text`` if a tokenizer can take it: valid Unicode (JSON can carry lone surrogates) without vision tokens."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{where}: the text is not valid Unicode (it holds a lone surrogate such as \\ud800)") from None
    for token in VISION_TOKENS:
        if token in text:
            raise InputError(f"{where}: the text holds the model's vision token {token}; send images as image parts")
    return text


def _parts(content: Any, where: str, policy: ImagePolicy, sources: list) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": checked_text(content, f"{where}.content")}]
    if not isinstance(content, list):
        raise InputError(f"{where}.content: expected a string or a list of content parts")
    out: list[dict] = []
    for j, part in enumerate(content):
        w = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            out.append({"type": "text", "text": checked_text(part["text"], f"{w}.text")})
            continue
        src = _image_source(part, kind, w)
        if len(sources) >= policy.max_images:
            raise InputError(f"{w}: too many images (at most {policy.max_images} per request)", 413)
        sources.append((w, src))
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
    if not isinstance(part, dict):
        raise InputError(f"{where}: expected a content part object like {{'type': 'text', 'text': ...}}")
    raise InputError(f"{where}.type: expected 'text', 'image_url' or 'image', got {short_repr(kind)}")
