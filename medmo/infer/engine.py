"""Generation engines behind :class:`medmo.infer.MedMO` and the server.

An engine turns a batch of chat conversations (transformers' multimodal format, with ``{"type": "image"}``
placeholders) and their images into answers. Everything above it (prompts, box parsing, the HTTP server,
its queue) is engine-agnostic, so the same code serves a local transformers checkpoint
(:class:`HFEngine`) or scripted replies for testing clients without a model (:class:`ScriptedEngine`).

:meth:`Engine.complete` is the server's entry: one :class:`Completion` (text, token counts, finish reason)
or one exception per conversation, so a request the model cannot take (a prompt beyond its context, an
image its processor refuses) fails alone instead of failing everything batched with it.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import medmo.model  # load() resolves on first call: importing this module loads no transformers
from medmo.infer.errors import InputError
from medmo.model.generate import (batch_details, context_length, generate_details, prompt_lengths, render_prompts,
                                  sampling_settings, stop_criteria)

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

Conversation = list[dict[str, Any]]
# The generation settings every engine takes (``None``: the checkpoint's own, from generation_config.json).
SAMPLING = ("max_new_tokens", "do_sample", "temperature", "top_p", "top_k")


@dataclass
class Completion:
    """One answer with what the server reports about it (OpenAI's ``usage`` and ``finish_reason``).

    Token counts are the model's tokens; a :class:`ScriptedEngine` counts words.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"

    @property
    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}


class Engine(ABC):
    """What MedMO needs from a model: batched chat generation.

    ``name`` identifies the model (``/v1/models``); :meth:`generate` answers one text per conversation, in
    order. Engines subclass this and implement :meth:`_generate`; the batch checks live here once. (The
    server and :class:`~medmo.infer.MedMO` call ``name``, ``generate`` and, where present, ``complete``; any
    object with the first two works too.)
    """

    name: str

    def generate(
        self,
        conversations: Sequence[Conversation],
        images: Sequence[Sequence[Image.Image]],
        *,
        max_new_tokens: int = 256,
        do_sample: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
    ) -> list[str]:
        """Answer every conversation; ``images[i]`` fills the image placeholders of ``conversations[i]``.

        Raises:
            ValueError: the two lists differ in length.
        """
        if len(conversations) != len(images):
            raise ValueError(f"{len(conversations)} conversations but {len(images)} image lists; pass one list each")
        return self._generate([list(c) for c in conversations], [list(i) for i in images], max_new_tokens=max_new_tokens,
                              do_sample=do_sample, temperature=temperature, top_p=top_p, top_k=top_k)

    @abstractmethod
    def _generate(
        self, conversations: list[Conversation], images: list[list[Image.Image]], **sampling: Any
    ) -> list[str]:
        """One answer per conversation; ``sampling`` holds the :data:`SAMPLING` settings."""

    def complete(
        self, conversations: Sequence[Conversation], images: Sequence[Sequence[Image.Image]], *,
        stops: Sequence[threading.Event | None] | None = None, **sampling: Any,
    ) -> list[Completion | Exception]:
        """One :class:`Completion` (or the exception that request alone hit) per conversation.

        This default runs :meth:`generate` and counts words; engines with a tokenizer count tokens.
        """
        return word_counts(conversations, self.generate(conversations, images, **sampling),
                            sampling.get("max_new_tokens", 256))

    def prepare_image(self, image: Image.Image) -> Image.Image:
        """The image as this engine will use it (an engine may shrink it early to free memory); default as is."""
        return image


def complete(engine: Any, conversations: list, images: list, *, stops: list | None = None,
             **sampling: Any) -> list[Completion | Exception]:
    """:meth:`Engine.complete` for any engine, also a plain object with only ``name`` and ``generate``."""
    if hasattr(engine, "complete"):
        return engine.complete(conversations, images, stops=stops, **sampling)
    given = {k: v for k, v in sampling.items() if v is not None}  # an older engine may not know top_p / top_k
    return word_counts(conversations, engine.generate(conversations, images, **given), given.get("max_new_tokens", 256))


def word_counts(conversations: Sequence[Conversation], texts: list[str], max_new_tokens: int) -> list[Completion]:
    """Completions counted in words, for engines without a tokenizer (prompt: the words of its text parts)."""
    out = []
    for conv, text in zip(conversations, texts):
        prompt = sum(len(p.get("text", "").split()) for m in conv for p in m.get("content", []) if isinstance(p, dict))
        n = len(text.split())
        out.append(Completion(text, prompt, n, "length" if n >= max_new_tokens else "stop"))
    return out


class HFEngine(Engine):
    """A transformers Qwen3-VL checkpoint run through :func:`medmo.model.generate.generate_details`.

    Calls are serialized with a lock: one model, one generation at a time (batching happens inside a call).
    The tokenizer is used only under that lock: transformers' fast tokenizers keep padding state on the
    shared Rust object, so a second thread encoding while a padded batch is encoded makes either fail.
    """

    def __init__(self, model: Any, processor: Any, *, name: str = "medmo", batch_size: int = 8) -> None:
        self.model = model
        self.processor = processor
        self.name = name
        self.batch_size = batch_size
        self.context = context_length(model)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path_or_id: str | Path, *, batch_size: int = 8, **load_kwargs: Any) -> HFEngine:
        """Load a checkpoint folder (or hub id) with :func:`medmo.model.load` (``load_kwargs`` passed on)."""
        model, processor = medmo.model.load(str(path_or_id), **load_kwargs)
        model.eval()
        name = Path(str(path_or_id)).name or str(path_or_id)
        return cls(model, processor, name=name, batch_size=batch_size)

    def _generate(
        self, conversations: list[Conversation], images: list[list[Image.Image]], **sampling: Any
    ) -> list[str]:
        results = self.complete(conversations, images, **sampling)
        for r in results:
            if isinstance(r, Exception):
                raise r
        return [r.text for r in results]  # type: ignore[union-attr] - no exceptions left

    def complete(
        self, conversations: Sequence[Conversation], images: Sequence[Sequence[Image.Image]], *,
        stops: Sequence[threading.Event | None] | None = None, **sampling: Any,
    ) -> list[Completion | Exception]:
        """Check each request alone (images, prompt length against the context), then generate the rest batched."""
        stops = list(stops) if stops is not None else [None] * len(conversations)
        max_new = sampling.get("max_new_tokens", 256)
        with self._lock:
            results: list[Completion | Exception | None] = [None] * len(conversations)
            for i, (conv, imgs) in enumerate(zip(conversations, images)):
                try:
                    self._check(conv, imgs, max_new)
                except InputError as e:
                    results[i] = e
            ok = [i for i, r in enumerate(results) if r is None]
            if ok:
                done = generate_details(self.model, self.processor, [conversations[i] for i in ok],
                                        [images[i] for i in ok], batch_size=self.batch_size,
                                        stops=[stops[i] for i in ok], **sampling)
                for i, g in zip(ok, done):
                    results[i] = Completion(g.text, g.prompt_tokens, g.completion_tokens, g.finish_reason)
        return results  # type: ignore[return-value] - every index is filled

    def _check(self, conversation: Conversation, images: Sequence[Image.Image], max_new_tokens: int) -> int:
        """The prompt's token count, images included; :class:`InputError` when the model cannot take it."""
        try:
            prompts = render_prompts(self.processor, [conversation], [list(images)])
            n = prompt_lengths(self.processor, prompts, [list(images)])[0]
        except ValueError as e:  # image count, or an image the processor refuses (aspect ratio above 200)
            raise InputError(f"messages: the model cannot take this conversation: {e}") from None
        if self.context is not None and n + max_new_tokens > self.context:
            raise InputError(
                f"messages: the prompt is {n} tokens (images included) and up to {max_new_tokens} new tokens were "
                f"asked for (max_tokens): above the model's context of {self.context} tokens; shorten the prompt or "
                "lower max_tokens"
            )
        return n

    def prepare_image(self, image: Image.Image) -> Image.Image:
        """Resize to the size the processor resizes to (same pixels; much less memory while a request queues).

        Raises:
            InputError: the processor refuses the image (Qwen2-VL's ``smart_resize``: aspect ratio above 200).
        """
        from PIL import Image
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

        ip = self.processor.image_processor
        if not getattr(ip, "do_resize", True):
            return image
        lo, hi = self.processor.pixel_range
        try:
            h, w = smart_resize(image.height, image.width, ip.patch_size * ip.merge_size, lo, hi)
        except ValueError as e:
            raise InputError(f"image is {image.width}x{image.height}, which the model cannot take ({e}); "
                             "crop or pad it") from None
        return image if (w, h) == image.size else image.resize((w, h), resample=Image.Resampling(ip.resample))

    def stream(
        self, conversation: Conversation, images: Sequence[Image.Image], *, stop: threading.Event | None = None,
        **sampling: Any,
    ) -> Generator[str, None, Completion]:
        """Answer one conversation, yielding text as it is generated (transformers' ``TextIteratorStreamer``).

        Setting ``stop`` ends generation at the next token (a client that went away stops costing compute).
        The generator's return value is the :class:`Completion` (token counts for ``usage``).
        """
        from transformers import TextIteratorStreamer

        max_new = sampling.pop("max_new_tokens", 256)
        with self._lock:
            n = self._check(conversation, images, max_new)
            prompts = render_prompts(self.processor, [conversation], [list(images)])
            inputs = self.processor(text=prompts, images=list(images) or None, return_tensors="pt").to(self.model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        settings = {"max_new_tokens": max_new, "streamer": streamer, "pad_token_id": self.processor.tokenizer.pad_token_id,
                    **sampling_settings(**sampling), **stop_criteria([stop])}
        box: dict[str, Any] = {}
        worker = threading.Thread(target=self._generate_into, args=(inputs, settings, streamer, box), daemon=True)
        worker.start()
        for piece in streamer:
            if piece:
                yield piece
        worker.join()
        if "error" in box:
            raise box["error"]
        g = batch_details(self.model, self.processor, inputs, box["out"], max_new)[0]
        return Completion(g.text, n, g.completion_tokens, g.finish_reason)

    def _generate_into(self, inputs: Any, settings: dict[str, Any], streamer: Any, box: dict) -> None:
        import torch

        try:
            with self._lock, torch.inference_mode():
                box["out"] = self.model.generate(**inputs, **settings)
        except BaseException as e:  # noqa: BLE001 - re-raised in the consuming thread
            box["error"] = e
            streamer.end()


Reply = str | Callable[[Conversation], str]


class ScriptedEngine(Engine):
    """Replies with scripted text instead of running a model: for testing clients, pages and servers.

    Args:
        reply: the answer to every conversation, or a function of the conversation returning it.
        name: the model name reported by the server.
        delay_s: seconds each ``generate`` call sleeps (to exercise queues and timeouts).
    """

    def __init__(self, reply: Reply = "", *, name: str = "scripted", delay_s: float = 0.0) -> None:
        self.reply = reply
        self.name = name
        self.delay_s = delay_s
        self.calls: list[int] = []  # batch size of every generate call, in order

    def _generate(
        self, conversations: list[Conversation], images: list[list[Image.Image]], **sampling: Any
    ) -> list[str]:
        import time

        self.calls.append(len(conversations))
        if self.delay_s:
            time.sleep(self.delay_s)
        return [self.reply(c) if callable(self.reply) else self.reply for c in conversations]


def last_user_text(conversation: Conversation) -> str:
    """The text of the last user turn (handy in a :class:`ScriptedEngine` reply function)."""
    for msg in reversed(conversation):
        if msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            return "\n".join(p.get("text", "") for p in content if p.get("type") == "text")
    return ""


def stream_text(text: str, piece_chars: int = 16) -> Iterator[str]:
    """Split a finished answer into pieces for streaming responses, at word boundaries where possible."""
    start = 0
    while start < len(text):
        end = min(len(text), start + piece_chars)
        space = text.rfind(" ", start + 1, end + 1) if end < len(text) else -1
        end = space if space > start else end
        yield text[start:end]
        start = end
