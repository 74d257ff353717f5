"""OpenAI-compatible backend: any ``/v1/chat/completions`` endpoint (vLLM, ``medmo serve``, ...).

Requests run on a bounded thread pool (``concurrency`` at a time, so a large benchmark never floods a
server); ``base_url`` may list several endpoints (comma-separated, e.g. one vLLM server per GPU): requests
are spread over them round-robin, each endpoint getting ``concurrency`` requests in flight; a failed
call (connection error, timeout, HTTP 408/409/429/5xx) is retried with exponential
backoff and jitter, the usual client policy of the OpenAI API. Images travel as base64 ``data:`` URLs
inside ``image_url`` content parts, the OpenAI vision message format that vLLM also accepts.

Written on the standard library (``urllib``) so evaluation against a server needs no extra package.
"""

from __future__ import annotations

import base64
import json
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from medmo.data.outbound import safe_image_bytes
from medmo.eval.backends.base import BackendError, Request
from medmo.records import ImageRef

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def image_data_url(ref: ImageRef) -> str:
    """``data:image/...;base64,...`` carrying the image's pixels only (:func:`medmo.data.outbound.safe_image_bytes`)."""
    data, mime = safe_image_bytes(ref.path, frame=ref.frame)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def to_openai_messages(messages: list[dict[str, Any]], images: list[ImageRef]) -> list[dict[str, Any]]:
    """Replace ``{"type": "image"}`` placeholders, in order, by ``image_url`` parts carrying the images."""
    urls = iter(image_data_url(r) for r in images)
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            out.append({"role": m["role"], "content": content})
            continue
        parts = []
        for part in content or []:
            if part.get("type") == "image":
                try:
                    parts.append({"type": "image_url", "image_url": {"url": next(urls)}})
                except StopIteration:
                    raise ValueError("more image placeholders than images in the request") from None
            else:
                parts.append({"type": "text", "text": part.get("text", "")})
        out.append({"role": m["role"], "content": parts})
    return out


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible server.

    Args:
        model: the served model name (``/v1/models`` lists them).
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1``; several, comma-separated, share the load.
        api_key: sent as a bearer token when given.
        concurrency: requests in flight at once, per endpoint.
        retries: extra attempts per request after the first.
        backoff: first retry delay in seconds (doubles each time, plus jitter).
        timeout: seconds per HTTP call.
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str | None = None,
        concurrency: int = 8,
        retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 300.0,
    ):
        self.urls = [u.strip().rstrip("/") for u in str(base_url).split(",") if u.strip()]
        if not self.urls:
            raise ValueError("the openai backend needs at least one base URL, e.g. http://127.0.0.1:8000/v1")
        self.name, self.base_url = model, ",".join(self.urls)
        self.api_key, self.concurrency = api_key, max(1, int(concurrency)) * len(self.urls)
        self.retries, self.backoff, self.timeout = int(retries), float(backoff), float(timeout)

    def info(self) -> dict[str, Any]:
        return {"kind": "openai", "name": self.name, "base_url": self.base_url, "concurrency": self.concurrency}

    def generate(self, requests: list[Request], *, batch_size: int = 8) -> list[str]:
        """Answer ``requests`` in order (``batch_size`` is unused: the server batches)."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._one, requests, [self.urls[i % len(self.urls)] for i in range(len(requests))]))

    def _one(self, req: Request, url: str | None = None) -> str:
        payload = {
            "model": self.name,
            "messages": to_openai_messages(req.messages, req.images),
            "max_tokens": req.max_new_tokens,
            "temperature": 0.0,
        }
        body = json.dumps(payload).encode("utf-8")
        url = url or self.urls[0]
        reply = self._post(f"{url}/chat/completions", body, req.id)
        try:
            return str(reply["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            raise BackendError(f"sample {req.id}: malformed reply from {url}: {str(reply)[:200]}") from None

    def _post(self, url: str, body: bytes, sample_id: str) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1) * (1 + random.random() / 2))
            try:
                req = urllib.request.Request(url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {e.read()[:200].decode('utf-8', 'replace')}"
                if e.code not in RETRY_STATUS:
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError, json.JSONDecodeError) as e:
                last = f"{type(e).__name__}: {e}"
        raise BackendError(
            f"sample {sample_id}: {url} failed after {attempt + 1} attempt(s) ({last}); "
            "is the server running? finished samples are cached, rerun to resume"
        )
