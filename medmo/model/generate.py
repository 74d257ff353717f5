"""Batched generation with a Qwen3-VL model and MedMO's processor (evaluation, inference and serving share it)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


@contextmanager
def left_padding(processor: Any):
    """Pad prompts on the left while generating (decoder-only generation appends on the right)."""
    tok = processor.tokenizer
    side = tok.padding_side
    tok.padding_side = "left"
    try:
        yield
    finally:
        tok.padding_side = side


def render_prompts(processor: Any, conversations: Sequence[list[dict]], images: Sequence[Sequence[Any]]) -> list[str]:
    """Chat-template each conversation with the assistant prompt, checking its image count."""
    prompts = []
    for i, (conv, imgs) in enumerate(zip(conversations, images)):
        text = processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
        n = text.count(processor.image_token)
        if n != len(imgs):
            raise ValueError(
                f"Conversation {i} has {n} image placeholder(s) but {len(imgs)} image(s) were given; "
                'add one {"type": "image"} content part per image.'
            )
        prompts.append(text)
    return prompts


def context_length(model: Any) -> int | None:
    """Most positions (prompt plus answer) the language model was built for: its ``max_position_embeddings``."""
    config = getattr(model, "config", None)
    text = getattr(config, "text_config", config)
    n = getattr(text, "max_position_embeddings", None)
    return int(n) if n else None


def prompt_lengths(processor: Any, prompts: Sequence[str], images: Sequence[Sequence[Any]]) -> list[int]:
    """Token count of each prompt after image expansion (for length-sorted batching)."""
    text_lens = [len(ids) for ids in processor.tokenizer(list(prompts))["input_ids"]]
    return [
        n + sum(processor.num_image_tokens(img.height, img.width) - 1 for img in imgs)
        for n, imgs in zip(text_lens, images)
    ]


@dataclass
class Generated:
    """One answer with its token counts (the server's ``usage`` and ``finish_reason``).

    Attributes:
        text: the decoded answer, special tokens removed.
        prompt_tokens: tokens of the prompt after image expansion.
        completion_tokens: tokens generated, the end-of-sequence token included when there is one.
        finish_reason: ``"stop"`` (an end-of-sequence token, or a caller's stop) or ``"length"`` (hit ``max_new_tokens``).
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


def sampling_settings(
    *, do_sample: bool = False, temperature: float | None = None, top_p: float | None = None,
    top_k: int | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``model.generate``: greedy, or sampling that keeps the checkpoint's own settings.

    With ``do_sample``, only the values given here are passed; the rest come from the checkpoint's
    ``generation_config.json`` (Qwen3-VL ships temperature 0.7, top_p 0.8, top_k 20), which transformers'
    ``generate`` loads with the model. ``top_k=0`` and ``top_p=1`` switch those filters off.

    Raises:
        ValueError: a value out of range, naming it.
    """
    settings: dict[str, Any] = {"do_sample": bool(do_sample)}
    if not do_sample:
        return settings
    if temperature is not None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0 when sampling, got {temperature!r}; use do_sample=False for greedy")
        settings["temperature"] = float(temperature)
    if top_p is not None:
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
        settings["top_p"] = float(top_p)
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0 (0: off), got {top_k!r}")
        settings["top_k"] = top_k
    return settings


def generate(
    model: Any,
    processor: Any,
    conversations: Sequence[list[dict]],
    images: Sequence[Sequence[Any]] | None = None,
    **kwargs: Any,
) -> list[str]:
    """Generate one answer per conversation, batched: the texts of :func:`generate_details`."""
    return [g.text for g in generate_details(model, processor, conversations, images, **kwargs)]


def generate_details(
    model: Any,
    processor: Any,
    conversations: Sequence[list[dict]],
    images: Sequence[Sequence[Any]] | None = None,
    *,
    max_new_tokens: int = 64,
    batch_size: int = 8,
    do_sample: bool = False,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    stops: Sequence[threading.Event | None] | None = None,
) -> list[Generated]:
    """Generate one answer per conversation, batched, with token counts.

    Prompts are sorted by length so each left-padded batch wastes little compute, and the answers
    come back in input order. Greedy decoding unless ``do_sample`` (then see :func:`sampling_settings`).

    Args:
        model: A ``Qwen3VLForConditionalGeneration`` (or a PEFT wrapper of one).
        processor: Its :class:`~medmo.model.processor.MedMOProcessor`.
        conversations: Chat messages per item, ending with the user turn (``medmo.prompts.messages(..., with_answer=False)``).
        images: PIL images per item, one per ``{"type": "image"}`` part; ``None`` or ``[]`` for text-only items.
        max_new_tokens: Longest answer in tokens.
        batch_size: Conversations per forward pass.
        do_sample: Sample instead of greedy decoding.
        temperature, top_p, top_k: Sampling settings (only with ``do_sample``); ``None`` keeps the checkpoint's.
        stops: Per conversation, an event that ends its generation at the next token once set (a caller
            that went away); a batch ends when all its rows have ended.

    Returns:
        One :class:`Generated` per conversation, in input order.
    """
    import torch

    if not conversations:
        return []
    images = [list(x or []) for x in images] if images is not None else [[] for _ in conversations]
    if len(images) != len(conversations):
        raise ValueError(f"Got {len(conversations)} conversations but {len(images)} image lists; pass one list each.")
    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError(f"batch_size and max_new_tokens must be >= 1, got {batch_size} and {max_new_tokens}.")
    stops = list(stops) if stops is not None else [None] * len(conversations)
    prompts = render_prompts(processor, conversations, images)
    order = sorted(range(len(prompts)), key=prompt_lengths(processor, prompts, images).__getitem__, reverse=True)
    settings = {"max_new_tokens": max_new_tokens, "pad_token_id": processor.tokenizer.pad_token_id,
                **sampling_settings(do_sample=do_sample, temperature=temperature, top_p=top_p, top_k=top_k)}
    answers: list[Generated | None] = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        flat = [img for i in idx for img in images[i]]
        with left_padding(processor):
            inputs = processor(text=[prompts[i] for i in idx], images=flat or None, padding=True, return_tensors="pt")
        inputs = inputs.to(model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        extra = stop_criteria([stops[i] for i in idx])
        with torch.inference_mode():
            out = model.generate(**inputs, **settings, **extra)
        for i, g in zip(idx, batch_details(model, processor, inputs, out, max_new_tokens)):
            answers[i] = g
    return answers  # type: ignore[return-value] - every index is filled


def stop_criteria(events: Sequence[threading.Event | None]) -> dict[str, Any]:
    """A per-row stopping criterion over the callers' stop events (none when no row has one)."""
    if all(e is None for e in events):
        return {}
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Stopped(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = [e is not None and e.is_set() for e in events]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return {"stopping_criteria": StoppingCriteriaList([_Stopped()])}


def batch_details(model: Any, processor: Any, inputs: Any, out: Any, max_new_tokens: int) -> list[Generated]:
    """Texts and token counts of one generated batch (rows padded after their end-of-sequence token)."""
    prompt_len = inputs["input_ids"].shape[1]
    new = out[:, prompt_len:]
    texts = processor.batch_decode(new, skip_special_tokens=True)
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
    pad = processor.tokenizer.pad_token_id
    result = []
    for row, text, mask in zip(new.tolist(), texts, inputs["attention_mask"]):
        end = next((k for k, t in enumerate(row) if t in eos_ids), None)
        if end is not None:
            n, reason = end + 1, "stop"
        else:
            n = len(row)
            while n and row[n - 1] == pad:
                n -= 1
            reason = "length" if n >= max_new_tokens else "stop"
        result.append(Generated(text, int(mask.sum()), n, reason))
    return result
