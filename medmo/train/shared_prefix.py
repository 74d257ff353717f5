"""Score GRPO completions with each distinct prompt run once (a shared-prefix forward).

GRPO samples every prompt ``num_generations`` times, and TRL's ``GRPOTrainer`` scores each completion
with its own copy of the prompt (``_get_per_token_logps_and_entropies``). For box grounding the prompt
(image tokens and the instruction) is most of the sequence: in the nano recipe a 70-token prompt
precedes a 26-token answer, so three quarters of the policy forward and backward recompute the same
prompt four times. Here each distinct prompt (same tokens, same mask, same pixels) runs once, its
key/value cache is gathered to the rows that share it (autograd sums their gradients back), and only
the completions run against it. The log-probabilities are the ones the full forward gives, to float
rounding. The idea is Prefix Grouper's (Liu et al. 2025, arXiv:2506.05433); neither TRL nor
transformers has this path for multimodal models, hence this module.

It applies to Qwen3-VL models (3-D rope positions from ``get_rope_index``) without gradient
checkpointing (a recomputed layer would append to the cache twice) and without MoE auxiliary losses;
elsewhere :func:`shared_prefix_logps` returns ``None`` and the caller keeps TRL's path.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from medmo.train.collate import IGNORE_INDEX


def prompt_groups(
    prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, pixels: list[torch.Tensor | None]
) -> tuple[list[int], torch.Tensor]:
    """Rows that hold the same prompt: same tokens, same padding, and bit-identical pixels.

    Args:
        prompt_ids / prompt_mask: ``(B, P)`` left-padded prompt tokens and their attention mask.
        pixels: each row's pixel rows (``None`` for a text-only row).

    Returns:
        The first row of each distinct prompt, and for every row the index of its prompt in that list.
    """
    by_tokens: dict[bytes, list[int]] = {}
    firsts: list[int] = []
    inverse = []
    for row in range(prompt_ids.size(0)):
        key = prompt_ids[row].cpu().numpy().tobytes() + prompt_mask[row].cpu().numpy().tobytes()
        candidates = by_tokens.setdefault(key, [])
        for group in candidates:
            a, b = pixels[firsts[group]], pixels[row]
            if (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b)):
                inverse.append(group)
                break
        else:
            candidates.append(len(firsts))
            inverse.append(len(firsts))
            firsts.append(row)
    return firsts, torch.tensor(inverse, dtype=torch.long, device=prompt_ids.device)


def _rope_module(model: Any) -> Any | None:
    for module in model.modules():
        if hasattr(module, "get_rope_index") and hasattr(module, "get_vision_position_ids"):
            return module
    return None


def _cache_kwarg(model: Any) -> str:
    """transformers 5.x renamed ``past_key_values`` to ``cache``; pass whichever the model takes."""
    for module in model.modules():
        if hasattr(module, "get_rope_index"):
            return "cache" if "cache" in inspect.signature(type(module).forward).parameters else "past_key_values"
    return "past_key_values"


def supported(model: Any, compute_aux_loss: bool = False) -> bool:
    """Whether :func:`shared_prefix_logps` can score this model exactly."""
    return (
        not compute_aux_loss
        and not getattr(model, "is_gradient_checkpointing", False)
        and _rope_module(model) is not None
    )


def shared_prefix_logps(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    *,
    pixel_values: torch.Tensor | None = None,
    image_grid_thw: torch.Tensor | None = None,
    num_images: list[int] | None = None,
    mm_token_type_ids: torch.Tensor | None = None,
    compute_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """Per-token log-probabilities (and entropies) of the completions, each distinct prompt run once.

    Same inputs and outputs as TRL's ``GRPOTrainer._get_per_token_logps_and_entropies``: ``input_ids``
    is ``(B, P + C)`` with left-padded prompts and right-padded completions, the last
    ``logits_to_keep`` (= C) columns are scored. ``model`` must carry TRL's fused LM head
    (``trl.trainer.utils.add_fused_lm_head``), which applies the sampling temperature.

    Returns:
        ``(logps, entropies)`` of shape ``(B, C)`` (entropies ``None`` unless asked), or ``None`` when
        no two rows share a prompt or the model is not supported: then the caller's own path is exact
        and no slower.
    """
    if not supported(model):
        return None
    prompt_len = input_ids.size(1) - logits_to_keep
    prompt_ids, prompt_mask = input_ids[:, :prompt_len], attention_mask[:, :prompt_len]
    if prompt_len < 2 or not bool(prompt_mask[:, -1].all()):
        return None  # not left-padded: the last prompt column must be a real token in every row
    pixels, grids = _per_row_images(input_ids.size(0), pixel_values, image_grid_thw, num_images)
    firsts, inverse = prompt_groups(prompt_ids, prompt_mask, pixels)
    if len(firsts) == input_ids.size(0):
        return None

    rope = _rope_module(model)
    mm = mm_token_type_ids[:, :prompt_len] if mm_token_type_ids is not None else torch.zeros_like(prompt_ids)
    rows = torch.tensor(firsts, device=input_ids.device)
    images: dict[str, torch.Tensor] = {}
    if pixel_values is not None and any(pixels[r] is not None for r in firsts):
        images["pixel_values"] = torch.cat([pixels[r] for r in firsts if pixels[r] is not None])
        images["image_grid_thw"] = torch.cat([grids[r] for r in firsts if grids[r] is not None])
    # The prompts' 3-D rope positions, computed as the full forward computes them.
    positions, _ = rope.get_rope_index(
        prompt_ids[rows], mm_token_type_ids=mm[rows], image_grid_thw=images.get("image_grid_thw"),
        attention_mask=prompt_mask[rows],
    )  # fmt: skip

    from transformers import DynamicCache

    cache = DynamicCache()
    cache_kw = _cache_kwarg(model)
    # All but the last prompt token go into the cache; the last one is run again with the completions,
    # so the fused head scores the first completion token like every other.
    model(
        input_ids=prompt_ids[rows, :-1], attention_mask=prompt_mask[rows, :-1], position_ids=positions[..., :-1],
        mm_token_type_ids=mm[rows, :-1], use_cache=True, logits_to_keep=1, **{cache_kw: cache}, **images,
    )  # fmt: skip
    cache.reorder_cache(inverse)
    tail = input_ids[:, prompt_len - 1 :]
    steps = torch.arange(tail.size(1), device=input_ids.device)
    tail_positions = positions[:, inverse, -1:] + steps  # text after the prompt: all three axes advance together
    labels = tail.masked_fill(attention_mask[:, prompt_len - 1 :] == 0, IGNORE_INDEX)
    out = model(
        input_ids=tail, attention_mask=attention_mask, position_ids=tail_positions, labels=labels,
        fused_lm_head=True, **{cache_kw: cache},
    )  # fmt: skip
    entropies = out.entropy if compute_entropy else None
    return out.log_probs, entropies


def _per_row_images(
    n_rows: int, pixel_values: torch.Tensor | None, image_grid_thw: torch.Tensor | None, num_images: list[int] | None
) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None]]:
    """Each row's pixel rows and grids, split the way TRL splits them (``num_images`` per row)."""
    if pixel_values is None or image_grid_thw is None:
        return [None] * n_rows, [None] * n_rows
    counts = list(num_images) if num_images is not None else [1] * n_rows
    grids = list(torch.split(image_grid_thw, counts))
    sizes = [int(g.prod(dim=-1).sum()) for g in grids]
    pixels = list(torch.split(pixel_values, sizes))
    return [p if n else None for p, n in zip(pixels, counts)], [g if n else None for g, n in zip(grids, counts)]


class SharedPrefixMixin:
    """A ``GRPOTrainer`` mixin: completions are scored with :func:`shared_prefix_logps` where it applies.

    Used as ``class Trainer(SharedPrefixMixin, GRPOTrainer)``; every other case (and ``batch_size``
    chunking smaller than the batch) falls through to TRL's own method.
    """

    def _get_per_token_logps_and_entropies(  # noqa: D401 - TRL's name and signature
        self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, compute_entropy=False,
        compute_aux_loss=False, **kw,
    ):  # fmt: skip
        extra = {k: v for k, v in kw.items() if v is not None}
        known = {"pixel_values", "image_grid_thw", "num_images", "mm_token_type_ids"}
        if (batch_size is None or batch_size >= input_ids.size(0)) and not compute_aux_loss and set(extra) <= known:
            with self.accelerator.autocast():
                got = shared_prefix_logps(
                    model, input_ids, attention_mask, logits_to_keep, compute_entropy=compute_entropy, **extra
                )
            if got is not None:
                return got[0], got[1], None
        return super()._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
            compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **kw,
        )  # fmt: skip
