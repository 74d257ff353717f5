"""Batched generation with a Qwen3-VL model and MedMO's processor (evaluation, inference and serving share it)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
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


def prompt_lengths(processor: Any, prompts: Sequence[str], images: Sequence[Sequence[Any]]) -> list[int]:
    """Token count of each prompt after image expansion (for length-sorted batching)."""
    text_lens = [len(ids) for ids in processor.tokenizer(list(prompts))["input_ids"]]
    return [
        n + sum(processor.num_image_tokens(img.height, img.width) - 1 for img in imgs)
        for n, imgs in zip(text_lens, images)
    ]


def generate(
    model: Any,
    processor: Any,
    conversations: Sequence[list[dict]],
    images: Sequence[Sequence[Any]] | None = None,
    *,
    max_new_tokens: int = 64,
    batch_size: int = 8,
    do_sample: bool = False,
    temperature: float = 1.0,
) -> list[str]:
    """Generate one answer per conversation, batched.

    Prompts are sorted by length so each left-padded batch wastes little compute, and the answers
    come back in input order. Greedy decoding unless ``do_sample``.

    Args:
        model: A ``Qwen3VLForConditionalGeneration`` (or a PEFT wrapper of one).
        processor: Its :class:`~medmo.model.processor.MedMOProcessor`.
        conversations: Chat messages per item, ending with the user turn (``medmo.prompts.messages(..., with_answer=False)``).
        images: PIL images per item, one per ``{"type": "image"}`` part; ``None`` or ``[]`` for text-only items.
        max_new_tokens: Longest answer in tokens.
        batch_size: Conversations per forward pass.
        do_sample: Sample instead of greedy decoding.
        temperature: Sampling temperature (only with ``do_sample``).

    Returns:
        The decoded answers (special tokens removed), in input order.
    """
    import torch

    if not conversations:
        return []
    images = [list(x or []) for x in images] if images is not None else [[] for _ in conversations]
    if len(images) != len(conversations):
        raise ValueError(f"Got {len(conversations)} conversations but {len(images)} image lists; pass one list each.")
    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError(f"batch_size and max_new_tokens must be >= 1, got {batch_size} and {max_new_tokens}.")
    prompts = render_prompts(processor, conversations, images)
    order = sorted(range(len(prompts)), key=prompt_lengths(processor, prompts, images).__getitem__, reverse=True)
    settings: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample}
    if do_sample:
        settings["temperature"] = temperature
    settings["pad_token_id"] = processor.tokenizer.pad_token_id
    answers: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        flat = [img for i in idx for img in images[i]]
        with left_padding(processor):
            inputs = processor(text=[prompts[i] for i in idx], images=flat or None, padding=True, return_tensors="pt")
        inputs = inputs.to(model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        with torch.inference_mode():
            out = model.generate(**inputs, **settings)
        texts = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        for i, text in zip(idx, texts):
            answers[i] = text
    return answers
