"""GRPO with each distinct prompt run once: a shared-prefix prefill for sampling and for scoring.

GRPO samples every prompt ``num_generations`` times, and TRL's ``GRPOTrainer`` runs each copy of the
prompt separately, both when sampling (``generate`` on the repeated prompts) and when scoring
(``_get_per_token_logps_and_entropies``). For box grounding the prompt (image tokens and the
instruction) is most of the sequence: in the nano recipe a 70-token prompt precedes a 26-token answer,
so most of the compute recomputes the same prompt four times. Here each distinct prompt (same tokens,
same mask, same pixels) runs once, its key/value cache is gathered to the rows that share it (autograd
sums their gradients back), and only the completions run against it. Sampled tokens (same seed) and
log-probabilities are those of the full forward, to float rounding. The idea is Prefix Grouper's (Liu
et al. 2025, arXiv:2506.05433), done here through transformers' key/value cache; neither TRL nor
transformers has it for multimodal models, hence this module.

It applies to Qwen3-VL models (3-D rope positions from ``get_rope_index``) without gradient
checkpointing (a recomputed layer would append to the cache twice) and without MoE auxiliary losses;
elsewhere :func:`prefill` returns ``None`` and TRL's own path runs.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any

import torch

from medmo.train.collate import IGNORE_INDEX, rope_index_of


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
    ids, mask = prompt_ids.cpu().numpy(), prompt_mask.cpu().numpy()
    by_tokens: dict[bytes, list[int]] = {}
    firsts: list[int] = []
    inverse = []
    for row in range(len(ids)):
        key = ids[row].tobytes() + mask[row].tobytes()
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
    """The module holding Qwen3-VL's ``get_rope_index`` (and its ``rope_deltas``), or ``None``."""
    try:
        return rope_index_of(model).__self__
    except ValueError:
        return None


def _cache_kwarg(rope: Any) -> str:
    """transformers 5.x renamed ``past_key_values`` to ``cache``; pass whichever the model takes."""
    return "cache" if "cache" in inspect.signature(type(rope).forward).parameters else "past_key_values"


def _checkpointing(model: Any) -> bool:
    """Whether activation checkpointing is on anywhere in ``model`` (PEFT and accelerate wrappers included)."""
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())


def supported(model: Any, compute_aux_loss: bool = False) -> bool:
    """Whether :func:`prefill` applies to this model (else TRL's own paths run)."""
    return not compute_aux_loss and not _checkpointing(model) and _rope_module(model) is not None


@dataclass
class Prefill:
    """Distinct prompts run once, their cache gathered back to every row.

    Attributes:
        cache: key/value cache of each row's prompt without its last token, ``B`` rows.
        last_positions: ``(3, B, 1)`` rope positions of each row's last prompt token.
        rope_deltas: ``(B, 1)`` offsets of text positions after the prompt (Qwen3-VL's ``rope_deltas``).
        rope: the module that holds ``get_rope_index`` and reads ``rope_deltas`` while generating.
        cache_kwarg: the name the model's forward takes the cache under.
    """

    cache: Any
    last_positions: torch.Tensor
    rope_deltas: torch.Tensor
    rope: Any
    cache_kwarg: str


def prefill(
    model: Any,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    *,
    pixel_values: torch.Tensor | None = None,
    image_grid_thw: torch.Tensor | None = None,
    num_images: list[int] | None = None,
    mm_token_type_ids: torch.Tensor | None = None,
) -> Prefill | None:
    """Run each distinct left-padded prompt once, all but its last token, and gather the cache to its rows.

    Gradients flow through the cache when grad is enabled. Returns ``None`` when the model is not
    supported, the prompts are not left-padded, or no two rows share a prompt.
    """
    if not supported(model) or prompt_ids.size(1) < 2 or not bool(prompt_mask[:, -1].all()):
        return None  # the last prompt column must be a real token in every row (left padding)
    n = prompt_ids.size(0)
    if num_images is None and mm_token_type_ids is not None:
        num_images = images_per_row(mm_token_type_ids)  # generate's inputs do not carry TRL's num_images
    split = _per_row_images(n, pixel_values, image_grid_thw, num_images)
    if split is None:
        return None
    pixels, grids = split
    firsts, inverse = prompt_groups(prompt_ids, prompt_mask, pixels)
    if len(firsts) == n:
        return None

    from transformers import DynamicCache

    rope = _rope_module(model)
    mm = mm_token_type_ids if mm_token_type_ids is not None else torch.zeros_like(prompt_ids)
    rows = torch.tensor(firsts, device=prompt_ids.device)
    images: dict[str, torch.Tensor] = {}
    if any(pixels[r] is not None for r in firsts):
        images["pixel_values"] = torch.cat([pixels[r] for r in firsts if pixels[r] is not None])
        images["image_grid_thw"] = torch.cat([grids[r] for r in firsts if grids[r] is not None])
    # The prompts' 3-D rope positions, computed as the full forward computes them.
    positions, deltas = rope.get_rope_index(
        prompt_ids[rows], mm_token_type_ids=mm[rows], image_grid_thw=images.get("image_grid_thw"),
        attention_mask=prompt_mask[rows],
    )  # fmt: skip
    cache, cache_kw = DynamicCache(), _cache_kwarg(rope)
    model(
        input_ids=prompt_ids[rows, :-1], attention_mask=prompt_mask[rows, :-1], position_ids=positions[..., :-1],
        mm_token_type_ids=mm[rows, :-1], use_cache=True, logits_to_keep=1, **{cache_kw: cache}, **images,
    )  # fmt: skip
    cache.reorder_cache(inverse)
    return Prefill(cache, positions[:, inverse, -1:], deltas[inverse], rope, cache_kw)


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
    prompt_len = input_ids.size(1) - logits_to_keep
    mm = mm_token_type_ids[:, :prompt_len] if mm_token_type_ids is not None else None
    pre = prefill(model, input_ids[:, :prompt_len], attention_mask[:, :prompt_len], pixel_values=pixel_values,
                  image_grid_thw=image_grid_thw, num_images=num_images, mm_token_type_ids=mm)  # fmt: skip
    if pre is None:
        return None
    # The last prompt token runs again with the completions, so the fused head scores the first
    # completion token like every other. Text after the prompt: all three rope axes advance together.
    tail = input_ids[:, prompt_len - 1 :]
    positions = pre.last_positions + torch.arange(tail.size(1), device=tail.device)
    labels = tail.masked_fill(attention_mask[:, prompt_len - 1 :] == 0, IGNORE_INDEX)
    out = model(
        input_ids=tail, attention_mask=attention_mask, position_ids=positions, labels=labels, fused_lm_head=True,
        **{pre.cache_kwarg: pre.cache},
    )  # fmt: skip
    return out.log_probs, (out.entropy if compute_entropy else None)


def shared_prefix_generate(
    model: Any,
    generate: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    pixel_values: torch.Tensor | None = None,
    image_grid_thw: torch.Tensor | None = None,
    mm_token_type_ids: torch.Tensor | None = None,
    **kwargs: Any,
) -> Any:
    """``generate`` (the model's own) with each distinct prompt prefilled once.

    HF ``generate`` continues from a given cache: it runs only the uncached last prompt token, takes
    text positions from the model's stored ``rope_deltas``, and returns the same sequences as a
    full prefill (same tokens under the same seed). The images are already in the cache, so they are
    not passed on. Anything else (one row per prompt, a cache given, several sequences per row) goes
    to ``generate`` unchanged.
    """
    config = kwargs.get("generation_config")
    plain = dict(pixel_values=pixel_values, image_grid_thw=image_grid_thw, mm_token_type_ids=mm_token_type_ids)
    if any(k in kwargs for k in ("cache", "past_key_values")) or (getattr(config, "num_return_sequences", 1) or 1) > 1:
        return generate(input_ids=input_ids, attention_mask=attention_mask, **plain, **kwargs)
    with torch.no_grad():
        pre = prefill(model, input_ids, attention_mask, pixel_values=pixel_values, image_grid_thw=image_grid_thw,
                      mm_token_type_ids=mm_token_type_ids)  # fmt: skip
    if pre is None:
        return generate(input_ids=input_ids, attention_mask=attention_mask, **plain, **kwargs)
    pre.rope.rope_deltas = pre.rope_deltas
    return generate(input_ids=input_ids, attention_mask=attention_mask, mm_token_type_ids=mm_token_type_ids,
                    **{pre.cache_kwarg: pre.cache}, **kwargs)  # fmt: skip


def images_per_row(mm_token_type_ids: torch.Tensor) -> list[int]:
    """Images in each row: runs of image tokens (type 1) in ``mm_token_type_ids``; each image's tokens are
    contiguous and images are separated by their vision start/end tokens."""
    image = mm_token_type_ids == 1
    starts = image.clone()
    starts[:, 1:] &= ~image[:, :-1]
    return starts.sum(dim=1).tolist()


def _per_row_images(
    n_rows: int, pixel_values: torch.Tensor | None, image_grid_thw: torch.Tensor | None, num_images: list[int] | None
) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None]] | None:
    """Each row's pixel rows and grids, split the way TRL splits them (``num_images`` per row); ``None``
    when the counts do not add up to the grids given."""
    if pixel_values is None or image_grid_thw is None:
        return [None] * n_rows, [None] * n_rows
    counts = list(num_images) if num_images is not None else [1] * n_rows
    if len(counts) != n_rows or sum(counts) != image_grid_thw.size(0):
        return None
    grids = list(torch.split(image_grid_thw, counts))
    sizes = [int(g.prod(dim=-1).sum()) for g in grids]
    if sum(sizes) != pixel_values.size(0):
        return None
    pixels = list(torch.split(pixel_values, sizes))
    return [p if n else None for p, n in zip(pixels, counts)], [g if n else None for g, n in zip(grids, counts)]


# The private GRPOTrainer methods the mixin replaces, with the parameters it relies on (TRL 1.16).
OVERRIDDEN = {
    "_generate_single_turn": (),
    "_get_per_token_logps_and_entropies": ("model", "input_ids", "attention_mask", "logits_to_keep", "batch_size",
                                           "compute_entropy", "compute_aux_loss"),
}


def check_overrides(trainer_cls: type) -> None:
    """Fail loudly when the installed TRL no longer has the private methods the mixin replaces.

    Raises:
        RuntimeError: which method changed and what to do (the tested TRL, or ``shared_prefix: false``).
    """
    import trl

    for name, params in OVERRIDDEN.items():
        method = getattr(trainer_cls, name, None)
        have = list(inspect.signature(method).parameters)[1:] if callable(method) else None
        if have is None or list(params) != [p for p in have if p in params] or set(params) - set(have):
            raise RuntimeError(
                f"the shared-prefix GRPO trainer replaces {trainer_cls.__name__}.{name}{tuple(params)}, which trl "
                f"{trl.__version__} {'no longer has' if have is None else f'defines as {tuple(have)}'}; install the "
                "tested TRL (`pip install -c constraints-cpu.txt trl`, see pyproject.toml) or set shared_prefix: false")


class SharedPrefixMixin:
    """A ``GRPOTrainer`` mixin: each distinct prompt is prefilled once when sampling (transformers
    generation) and run once when scoring, where :func:`prefill` applies.

    Used as ``class Trainer(SharedPrefixMixin, GRPOTrainer)``; creating that class checks that TRL still
    has the methods replaced here (:func:`check_overrides`). vLLM and continuous-batching generation,
    scoring in chunks smaller than the batch, and unsupported models keep TRL's own paths.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        mro = cls.__mro__
        rest = mro[mro.index(SharedPrefixMixin) + 1 :]
        if rest and rest[0] is not object:  # the trainer class the mixin sits on
            check_overrides(rest[0])

    def _generate_single_turn(self, *args, **kwargs):
        if self.use_vllm or getattr(self, "use_transformers_continuous_batching", False):
            return super()._generate_single_turn(*args, **kwargs)
        # TRL calls ``generate`` on the unwrapped model inside this method; route that one call here.
        model = self.accelerator.unwrap_model(self.model)
        own = vars(model).get("generate")
        model.generate = functools.partial(shared_prefix_generate, model, model.generate)
        try:
            return super()._generate_single_turn(*args, **kwargs)
        finally:
            if own is None:
                del model.generate
            else:
                model.generate = own

    def _get_per_token_logps_and_entropies(
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
