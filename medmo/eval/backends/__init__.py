"""Generation backends for the evaluation runner.

A backend turns :class:`Request` objects (a chat in transformers' multimodal format with
``{"type": "image"}`` placeholders, plus the image files those placeholders stand for) into answer
texts. Two ship with MedMO:

- :class:`medmo.eval.backends.hf.HFBackend`: a local transformers model through
  :func:`medmo.model.generate.generate` (batched, left-padded, greedy);
- :class:`medmo.eval.backends.openai.OpenAIBackend`: any OpenAI-compatible endpoint (vLLM,
  ``medmo serve``) with bounded concurrency and retries.

Anything with a ``name`` attribute, an ``info()`` method and ``generate(requests, batch_size=...)`` is a
backend (scripted fakes in tests, for instance).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from medmo.records import ImageRef


class BackendError(RuntimeError):
    """A backend that could not produce an answer (after its retries); finished samples stay cached."""


@dataclass
class Request:
    """One prompt to answer.

    Attributes:
        id: the sample id (for error messages and logs).
        messages: chat messages, images as ``{"type": "image"}`` placeholders in order.
        images: the images the placeholders stand for, as resolved absolute references.
        max_new_tokens: generation budget.
    """

    id: str
    messages: list[dict[str, Any]]
    images: list[ImageRef] = field(default_factory=list)
    max_new_tokens: int = 64


@runtime_checkable
class Backend(Protocol):
    name: str

    def info(self) -> dict[str, Any]: ...

    def generate(self, requests: list[Request], *, batch_size: int = 8) -> list[str]: ...


def load_pil(ref: ImageRef):
    """The image of ``ref`` as RGB PIL (DICOM, NIfTI and frames through :func:`medmo.data.images.load_image`)."""
    from medmo.data.images import load_image

    return load_image(ref.path, frame=ref.frame)


def make_backend(kind: str, model: str, *, base_url: str | None = None, **kw: Any) -> Backend:
    """Build a backend by kind: ``hf`` (a local model folder or hub id) or ``openai`` (needs ``base_url``)."""
    if kind == "hf":
        from medmo.eval.backends.hf import HFBackend

        return HFBackend.from_pretrained(model, **kw)
    if kind == "openai":
        if not base_url:
            raise ValueError("the openai backend needs --base-url, e.g. http://127.0.0.1:8000/v1")
        import os

        from medmo.eval.backends.openai import OpenAIBackend

        kw.setdefault("api_key", os.environ.get("MEDMO_API_KEY"))  # for servers started with an API key
        return OpenAIBackend(model, base_url, **kw)
    raise ValueError(f"unknown backend {kind!r}; use hf or openai")
