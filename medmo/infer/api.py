"""The Python API: ``MedMO.from_pretrained(path).ask(image, question)``, ``.ground``, ``.report``, ``.chat``.

Questions are worded by :mod:`medmo.prompts`, exactly as in training and evaluation; box answers are read by
:func:`medmo.answers.parse_boxes` and mapped from Qwen3-VL's 0-1000 grid back to the original image's pixels
by :func:`medmo.boxes.from_grid` (``ground(..., convention="pixel@768x768")`` reads the pixel convention of
MedMO's own training data instead, :class:`medmo.boxes.BoxConvention`). Every method takes one input or
lists of inputs; lists go through the engine's batched generation in one call.

For research only: MedMO's answers are not medical advice and must not be used for clinical decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medmo.answers import parse_boxes
from medmo.boxes import GRID_CONVENTION, BoxConvention
from medmo.infer.engine import SAMPLING, Engine, HFEngine
from medmo.infer.inputs import API_POLICY, ImagePolicy, load_any, to_conversation
from medmo.prompts import CLOSED_SUFFIX, REPORT_PROMPT, grounding_prompt

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image


@dataclass
class GroundedBox:
    """A box the model found.

    Attributes:
        label: what the box shows (the model's label, else the requested target).
        box: ``[x1, y1, x2, y2]`` in the original image's pixels (floats; not clipped, so an
            out-of-image prediction stays visible). For DICOM and NIfTI input, the pixels of the frame or
            slice :func:`medmo.data.images.load_image` renders (pass a loaded PIL image to pick another).
        grid_box: the same box as the model said it, in ``convention`` units.
        convention: the box convention the answer was read in (``grid``: Qwen3-VL's 0-1000 grid;
            ``pixel@WxH``: pixels of the image resized to W x H, as MedMO's own training data states them).
    """

    label: str
    box: list[float]
    grid_box: list[float]
    convention: str = "grid"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_batch(x: Any) -> bool:
    return isinstance(x, (list, tuple))


def _broadcast(images: Any, texts: Any, name: str) -> tuple[list, list, bool]:
    """Pair images with texts; a single value on either side is repeated to the other side's length."""
    batched = _is_batch(images) or _is_batch(texts)
    imgs = list(images) if _is_batch(images) else None
    txts = list(texts) if _is_batch(texts) else None
    if imgs is not None and txts is not None and len(imgs) != len(txts):
        raise ValueError(f"got {len(imgs)} images but {len(txts)} {name}s; pass lists of the same length")
    n = len(imgs) if imgs is not None else len(txts) if txts is not None else 1
    return imgs or [images] * n, txts or [texts] * n, batched


class MedMO:
    """A MedMO model ready to answer questions about medical images.

    Args:
        engine: what generates text (:class:`~medmo.infer.engine.HFEngine` for a checkpoint).
        max_new_tokens: default answer length limit.
        policy: which image sources are read (local files by default; remote URLs off).
    """

    def __init__(self, engine: Engine, *, max_new_tokens: int = 256, policy: ImagePolicy = API_POLICY) -> None:
        self.engine = engine
        self.max_new_tokens = max_new_tokens
        self.policy = policy

    @classmethod
    def from_pretrained(
        cls, path_or_id: str | Path, *, max_new_tokens: int = 256, batch_size: int = 8, **load_kwargs: Any
    ) -> MedMO:
        """Load a checkpoint folder or hub id (``MBZUAI/MedMO-8B``) through :func:`medmo.model.load`.

        ``load_kwargs`` (``dtype``, ``device_map``, ``attn_implementation``, ``min_pixels``, ``max_pixels``,
        ``max_pixels_cap``, ``chat_template``) go to :func:`medmo.model.load` unchanged. Every task method
        takes the generation options ``max_new_tokens``, ``do_sample``, ``temperature``, ``top_p``, ``top_k``:
        greedy by default; with ``do_sample=True`` the values not given are the checkpoint's
        ``generation_config`` (Qwen3-VL: temperature 0.7, top_p 0.8, top_k 20).
        """
        return cls(HFEngine.load(path_or_id, batch_size=batch_size, **load_kwargs), max_new_tokens=max_new_tokens)

    @property
    def name(self) -> str:
        return getattr(self.engine, "name", "medmo")

    # ----------------------------------------------------------------------------------- tasks

    def ask(self, image: Any, question: str | Sequence[str], *, closed: bool = False, **gen: Any) -> str | list[str]:
        """Answer a question about an image (a visual question; ``closed=True`` asks for one word).

        ``image`` and ``question`` may be lists (answered in one batch; a single value is reused).
        """
        images, questions, batched = _broadcast(image, question, "question")
        texts = [f"{q}\n{CLOSED_SUFFIX}" if closed else q for q in questions]
        answers = self._generate(images, texts, **gen)
        return answers if batched else answers[0]

    def report(self, image: Any, **gen: Any) -> str | list[str]:
        """Write a radiology-style report (findings and impression) for an image or a list of images."""
        images, texts, batched = _broadcast(image, REPORT_PROMPT, "prompt")
        answers = self._generate(images, texts, **gen)
        return answers if batched else answers[0]

    def ground(
        self, image: Any, target: str | Sequence[str], *, convention: str | BoxConvention = GRID_CONVENTION, **gen: Any
    ) -> list[GroundedBox] | list[list[GroundedBox]]:
        """Boxes of ``target`` (e.g. ``"lung nodule"``) in the original image's pixel coordinates.

        ``convention`` is how the model is asked for, and read in, boxes: ``"grid"`` (Qwen3-VL's 0-1000 grid,
        the default) or ``"pixel@768x768"`` (pixels of the image resized to 768 x 768, as MedMO's own
        grounding data states them); every box says which it assumed. Returns one list of
        :class:`GroundedBox` per image (a list of such lists for batched input).
        """
        boxes, _ = self.ground_with_text(image, target, convention=convention, **gen)
        return boxes

    def ground_with_text(
        self, image: Any, target: Any, *, convention: str | BoxConvention = GRID_CONVENTION, **gen: Any
    ) -> tuple[Any, Any]:
        """:meth:`ground` plus the model's raw answer text (for display and debugging)."""
        conv = BoxConvention.parse(convention)
        images, targets, batched = _broadcast(image, target, "target")
        loaded = [load_any(im, self.policy) for im in images]
        texts = self._generate(loaded, [grounding_prompt(t, conv) for t in targets], **gen)
        boxes = [boxes_from_text(txt, t, im.size, conv) for txt, t, im in zip(texts, targets, loaded)]
        return (boxes, texts) if batched else (boxes[0], texts[0])

    def chat(self, messages: list[dict] | Sequence[list[dict]], **gen: Any) -> str | list[str]:
        """Answer chat messages (OpenAI ``image_url`` parts or transformers ``image`` parts).

        A list of conversations (a list of lists of messages) is answered in one batch.
        """
        batched = bool(messages) and isinstance(messages[0], list)
        convs, imgs = zip(*(to_conversation(m, self.policy) for m in (messages if batched else [messages])))
        answers = self.engine.generate(list(convs), list(imgs), **self._gen(gen))
        return answers if batched else answers[0]

    # --------------------------------------------------------------------------------- helpers

    def _gen(self, gen: dict[str, Any]) -> dict[str, Any]:
        """Generation options: greedy unless ``do_sample``; unset sampling values are the checkpoint's."""
        unknown = set(gen) - set(SAMPLING)
        if unknown:
            raise TypeError(f"unknown generation options {sorted(unknown)}; use {', '.join(SAMPLING)}")
        return {"max_new_tokens": self.max_new_tokens, **gen}

    def _generate(self, images: list[Any], texts: list[str], **gen: Any) -> list[str]:
        loaded = [load_any(im, self.policy) for im in images]
        convs = [image_conversation(t) for t in texts]
        return self.engine.generate(convs, [[im] for im in loaded], **self._gen(gen))


def image_conversation(text: str) -> list[dict]:
    """One user turn: the image, then ``text`` (the layout of :func:`medmo.prompts.messages`)."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


def boxes_from_text(
    text: str, target: str, size: tuple[int, int], convention: str | BoxConvention = GRID_CONVENTION
) -> list[GroundedBox]:
    """Boxes in a model answer (in ``convention``) -> :class:`GroundedBox` objects in pixels of an image of ``size``."""
    width, height = size
    conv = BoxConvention.parse(convention)
    return [
        GroundedBox(pb.label or target, conv.from_target(pb.box, width, height), list(pb.box), str(conv))
        for pb in parse_boxes(text)
    ]


def render_image(image: Any, policy: ImagePolicy = API_POLICY) -> Image.Image:
    """The RGB image the model sees for ``image`` (DICOM windowed, NIfTI sliced), e.g. to draw boxes on."""
    return load_any(image, policy)
