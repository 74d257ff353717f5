"""What every evaluation backend speaks: :class:`Request`, :class:`Backend`, :class:`BackendError`, image loading."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from medmo.data.images import load_image
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
        task: the sample's task (:data:`medmo.records.TASKS`), for backends that answer by task.
    """

    id: str
    messages: list[dict[str, Any]]
    images: list[ImageRef] = field(default_factory=list)
    max_new_tokens: int = 64
    task: str = ""


@runtime_checkable
class Backend(Protocol):
    name: str

    def info(self) -> dict[str, Any]: ...

    def generate(self, requests: list[Request], *, batch_size: int = 8) -> list[str]: ...


def load_pil(ref: ImageRef):
    """The image of ``ref`` as RGB PIL (DICOM, NIfTI and frames through :func:`medmo.data.images.load_image`)."""
    return load_image(ref.path, frame=ref.frame)
