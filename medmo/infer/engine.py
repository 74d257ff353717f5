"""Generation engines behind :class:`medmo.infer.MedMO` and the server.

An engine turns a batch of chat conversations (transformers' multimodal format, with ``{"type": "image"}``
placeholders) and their images into answers. Everything above it (prompts, box parsing, the HTTP server,
its queue) is engine-agnostic, so the same code serves a local transformers checkpoint
(:class:`HFEngine`) or scripted replies for testing clients without a model (:class:`ScriptedEngine`).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import medmo.model  # load() resolves on first call: importing this module loads no transformers
from medmo.model.generate import generate, render_prompts

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

Conversation = list[dict[str, Any]]


class Engine(ABC):
    """What MedMO needs from a model: batched chat generation.

    ``name`` identifies the model (``/v1/models``); :meth:`generate` answers one text per conversation, in
    order. Engines subclass this and implement :meth:`_generate`; the batch checks live here once. (The
    server and :class:`~medmo.infer.MedMO` only call ``name`` and ``generate``, so any object with those
    works too.)
    """

    name: str

    def generate(
        self,
        conversations: Sequence[Conversation],
        images: Sequence[Sequence[Image.Image]],
        *,
        max_new_tokens: int = 256,
        do_sample: bool = False,
        temperature: float = 1.0,
    ) -> list[str]:
        """Answer every conversation; ``images[i]`` fills the image placeholders of ``conversations[i]``.

        Raises:
            ValueError: the two lists differ in length.
        """
        if len(conversations) != len(images):
            raise ValueError(f"{len(conversations)} conversations but {len(images)} image lists; pass one list each")
        return self._generate(
            [list(c) for c in conversations],
            [list(i) for i in images],
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
        )

    @abstractmethod
    def _generate(
        self, conversations: list[Conversation], images: list[list[Image.Image]], **sampling: Any
    ) -> list[str]:
        """One answer per conversation; ``sampling`` holds ``max_new_tokens``, ``do_sample``, ``temperature``."""


class HFEngine(Engine):
    """A transformers Qwen3-VL checkpoint run through :func:`medmo.model.generate.generate`.

    Calls are serialized with a lock: one model, one generation at a time (batching happens inside a call).
    """

    def __init__(self, model: Any, processor: Any, *, name: str = "medmo", batch_size: int = 8) -> None:
        self.model = model
        self.processor = processor
        self.name = name
        self.batch_size = batch_size
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path_or_id: str | Path, *, batch_size: int = 8, **load_kwargs: Any) -> HFEngine:
        """Load a checkpoint folder (or hub id) with :func:`medmo.model.load`."""
        model, processor = medmo.model.load(str(path_or_id), **load_kwargs)
        model.eval()
        name = Path(str(path_or_id)).name or str(path_or_id)
        return cls(model, processor, name=name, batch_size=batch_size)

    def _generate(
        self, conversations: list[Conversation], images: list[list[Image.Image]], **sampling: Any
    ) -> list[str]:
        with self._lock:
            return generate(self.model, self.processor, conversations, images, batch_size=self.batch_size, **sampling)

    def stream(
        self,
        conversation: Conversation,
        images: Sequence[Image.Image],
        *,
        stop: threading.Event | None = None,
        max_new_tokens: int = 256,
        do_sample: bool = False,
        temperature: float = 1.0,
    ) -> Iterator[str]:
        """Answer one conversation, yielding text as it is generated (transformers' ``TextIteratorStreamer``).

        Setting ``stop`` ends generation at the next token (a client that went away stops costing compute).
        """
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return stop is not None and stop.is_set()

        prompts = render_prompts(self.processor, [conversation], [list(images)])
        inputs = self.processor(text=prompts, images=list(images) or None, return_tensors="pt").to(self.model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        settings: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "streamer": streamer,
                                    "pad_token_id": self.processor.tokenizer.pad_token_id,
                                    "stopping_criteria": StoppingCriteriaList([_Stop()])}
        if do_sample:
            settings["temperature"] = temperature
        errors: list[BaseException] = []
        worker = threading.Thread(target=self._generate_into, args=(inputs, settings, streamer, errors), daemon=True)
        worker.start()
        for piece in streamer:
            if piece:
                yield piece
        worker.join()
        if errors:
            raise errors[0]

    def _generate_into(self, inputs: Any, settings: dict[str, Any], streamer: Any, errors: list) -> None:
        import torch

        try:
            with self._lock, torch.inference_mode():
                self.model.generate(**inputs, **settings)
        except BaseException as e:  # noqa: BLE001 - re-raised in the consuming thread
            errors.append(e)
            streamer.end()

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` encodes to (for the server's ``usage`` field)."""
        tok = getattr(self.processor, "tokenizer", self.processor)
        return len(tok(text, add_special_tokens=False)["input_ids"])


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
