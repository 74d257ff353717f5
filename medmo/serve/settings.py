"""The server's settings, declared once: :func:`medmo.serve.app.create_app` takes them, ``medmo serve`` shows
them as flags with these defaults. Light on purpose (no web framework import), so ``medmo --help`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass
class Settings:
    """Server limits and switches (``medmo serve --help`` lists the same as flags).

    Attributes:
        api_key: when set, ``/v1/*`` requires ``Authorization: Bearer <api_key>`` (401 otherwise).
        allowed_hosts: Host header names answered (400 otherwise; ``"*"``: any); default the localhost names.
        allowed_origins: web origins besides the server's own whose pages may POST to it (e.g. ``https://app.example``).
        max_batch: most requests generated together (bound on concurrent generations).
        max_queue: most requests waiting for the model; more get 503.
        timeout_s: longest a request waits for its answer, queueing included (504 after; generation stops).
        max_request_bytes: largest request body (413 above).
        max_image_pixels: largest image, width x height (413 above).
        max_request_pixels: most pixels of all a request's images together (413 above).
        max_decoded_bytes: most estimated memory decoding a request's images may take (413 above).
        max_images: most images in one request.
        decode_workers: images decoded at once, over all requests (bounds decoding memory).
        max_new_tokens: default answer length when a request gives none.
        max_tokens_limit: largest ``max_tokens`` a request may ask for.
        allow_remote_images: fetch public ``http(s)://`` image URLs (off: only data URLs).
        remote_timeout_s: the one deadline of fetching a remote image, redirects and body included.
        allow_local_files: a folder whose files requests may name by path (off when ``None``).
        model_name: the id reported by ``/v1/models`` (default: the engine's name).
    """

    api_key: str | None = None
    allowed_hosts: tuple[str, ...] = LOCAL_HOSTS
    allowed_origins: tuple[str, ...] = ()
    max_batch: int = 8
    max_queue: int = 64
    timeout_s: float = 120.0
    max_request_bytes: int = 20 * 2**20
    max_image_pixels: int = 40_000_000
    max_request_pixels: int = 40_000_000
    max_decoded_bytes: int = 512 * 2**20
    max_images: int = 8
    decode_workers: int = 2
    max_new_tokens: int = 256
    max_tokens_limit: int = 4096
    allow_remote_images: bool = False
    remote_timeout_s: float = 10.0
    allow_local_files: str | Path | None = None
    model_name: str | None = None
