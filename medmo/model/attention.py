"""``sdpa_packed``: attention for packed training rows that computes each sample's block only, on CPU.

A packed row (:mod:`medmo.train.packing`) holds several samples that must not see each other. With
``sdpa`` the row carries a dense block-diagonal ``(B, 1, L, L)`` mask and PyTorch's CPU attention kernel
computes every score of the ``L x L`` square before masking: on the nano recipes' 2 x 512-token rows of
~60-140-token samples most of that work is thrown away (about 15 ms per layer for forward and backward,
a quarter of a training step). flash-attn's varlen kernels, which skip it, run on GPUs only. This module
is a CPU counterpart registered through transformers' public ``AttentionInterface`` /
``AttentionMaskInterface``: it reads the sample borders from the text position row (it restarts at 0
for every sample, the convention :class:`~medmo.train.packing.PackingCollator` and
``prepare_fa_kwargs_from_position_ids`` share), lays the samples out as a padded ``(samples, heads,
longest, dim)`` batch and runs causal attention on it (matmul, float32 softmax, matmul: on these sizes
about twice as fast as the fused kernel, whose per-call overhead dominates small blocks). The result
equals ``sdpa`` with the block mask (tested to float rounding).

Anything else, generation with a cache, padded batches, the vision tower's bidirectional attention,
goes to transformers' own ``sdpa`` unchanged, so a model loaded with ``attn_implementation="sdpa_packed"``
behaves as an ``sdpa`` one everywhere but in packed training rows. Training stages that choose it also
batch the vision tower (:func:`speed_up_vision`).
"""

from __future__ import annotations

from typing import Any

import torch

PACKED_SDPA = "sdpa_packed"

# Layout of the last position row seen: the decoder layers of one forward share the same tensor.
_last: tuple[torch.Tensor, tuple[torch.Tensor, ...] | None] | None = None


def register() -> str:
    """Make ``attn_implementation="sdpa_packed"`` known to transformers (idempotent); returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(PACKED_SDPA, packed_sdpa_attention)
    AttentionMaskInterface.register(PACKED_SDPA, packed_mask)
    return PACKED_SDPA


def packed_mask(
    batch_size: int, q_length: int, kv_length: int, q_offset: int = 0, kv_offset: int = 0,
    attention_mask: torch.Tensor | None = None, **kwargs: Any,
) -> torch.Tensor | None:
    """No mask for an unpadded full-length forward (the attention derives it); ``sdpa``'s mask otherwise."""
    if attention_mask is None and q_length == kv_length and q_offset == 0 and kv_offset == 0:
        return None
    from transformers.masking_utils import sdpa_mask

    return sdpa_mask(batch_size, q_length, kv_length, q_offset, kv_offset, attention_mask=attention_mask, **kwargs)


def sample_layout(position_ids: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
    """Where each sample of packed rows lies, from the ``(B, L)`` text positions; ``None`` if one per row.

    A sample starts at every row start and wherever the position does not continue the previous one.

    Returns:
        ``(index, sample, offset)``: ``index`` ``(S, longest)`` flat token indices of each sample, padded
        with 0 past its end; ``sample`` and ``offset`` ``(B * L,)``, each token's sample and place in it.
    """
    rows, length = position_ids.shape
    start = torch.ones_like(position_ids, dtype=torch.bool)
    start[:, 1:] = position_ids[:, 1:] != position_ids[:, :-1] + 1
    start = start.reshape(-1)
    firsts = start.nonzero().squeeze(1)
    if len(firsts) == rows:
        return None
    sample = start.cumsum(0) - 1
    offset = torch.arange(rows * length, device=position_ids.device) - firsts[sample]
    longest = int(torch.diff(firsts, append=firsts.new_tensor([rows * length])).max())
    index = torch.zeros(len(firsts), longest, dtype=torch.long, device=position_ids.device)
    index[sample, offset] = torch.arange(rows * length, device=position_ids.device)
    return index, sample, offset


def _layout(position_ids: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
    global _last
    last = _last  # one read: a server's threads may replace it meanwhile
    if last is None or last[0] is not position_ids:
        last = _last = (position_ids, sample_layout(position_ids))
    return last[1]


def packed_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    position_ids: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Causal attention within each packed sample; transformers' ``sdpa`` for every other call.

    Args: as transformers' attention functions: ``query`` ``(B, H, L, D)``, ``key``/``value``
    ``(B, H_kv, L, D)``; ``position_ids`` the ``(B, L)`` text positions the decoder layers pass on.

    Returns:
        ``(output (B, L, H, D), None)``.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    plain = (
        attention_mask is not None or position_ids is None or not causal or position_ids.dim() != 2
        or query.shape[2] != key.shape[2] or (dropout and module.training)
    )
    layout = None if plain else _layout(position_ids)
    if layout is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    index, sample, offset = layout
    b, heads, length, dim = query.shape
    scale = dim**-0.5 if scaling is None else scaling

    def per_sample(t: torch.Tensor) -> torch.Tensor:  # (B, h, L, D) -> (S, H, longest, D)
        t = t.transpose(1, 2).reshape(b * length, t.shape[1], dim)[index].transpose(1, 2)
        return t.repeat_interleave(heads // t.shape[1], dim=1) if t.shape[1] != heads else t

    q, k, v = per_sample(query), per_sample(key), per_sample(value)
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    longest = index.shape[1]
    future = torch.ones(longest, longest, dtype=torch.bool, device=query.device).triu(1)
    probs = scores.masked_fill(future, float("-inf")).softmax(-1, dtype=torch.float32).to(v.dtype)
    out = torch.matmul(probs, v).transpose(1, 2)[sample, offset]  # (B * L, H, D), the tokens back in order
    return out.reshape(b, length, heads, dim), None


# ---------------------------------------------------------------------------------------- vision tower


def speed_up_vision(model: torch.nn.Module) -> int:
    """Run a Qwen3-VL vision tower's patch embedding and attention as batched matmuls; returns modules changed.

    transformers' vision tower (Qwen3-VL, transformers 5.x) embeds patches with a ``Conv3d`` whose kernel
    equals its stride and input, that is, one matrix product, and, with any attention but flash-attn, runs
    attention image by image in a Python loop. On CPU both cost more than they compute: for the nano
    recipes' ~13 images of 64 patches per step, the convolution's forward and backward take 12 ms and the
    loop's 7 ms per layer, against 2 ms each as a matrix product and as one batched attention over images of
    equal size (images of different sizes keep the loop). Same math; the weights, their names and what is
    saved do not change. Used by training stages that pick ``sdpa_packed``.

    Raises:
        RuntimeError: the installed transformers' vision modules no longer have the attributes read here.
    """
    changed = 0
    for module in model.modules():
        kind = type(module).__name__
        if kind.endswith("VisionPatchEmbed"):
            _require(module, ("proj", "embed_dim"))
            module.forward = _patch_embed_forward.__get__(module)
            changed += 1
        elif kind.endswith("VisionAttention"):
            _require(module, ("qkv", "proj", "num_heads", "scaling"))
            module.forward = _vision_attention_forward(module, module.forward)
            changed += 1
    return changed


def _require(module: torch.nn.Module, names: tuple[str, ...]) -> None:
    missing = [n for n in names if not hasattr(module, n)]
    if missing:
        raise RuntimeError(
            f"{type(module).__name__} has no {', '.join(missing)}: the installed transformers changed the Qwen3-VL "
            "vision tower that medmo.model.attention.speed_up_vision rewrites; install the version constraints-cpu.txt "
            "pins, or train with attn_implementation: sdpa."
        )


def _patch_embed_forward(self: Any, hidden_states: torch.Tensor) -> torch.Tensor:
    weight = self.proj.weight
    return torch.nn.functional.linear(hidden_states.to(weight.dtype), weight.reshape(self.embed_dim, -1),
                                      self.proj.bias)


def _vision_attention_forward(module: Any, stock: Any) -> Any:
    from transformers.models.qwen3_vl.modeling_qwen3_vl import apply_rotary_pos_emb_vision

    def forward(hidden_states: torch.Tensor, cu_seqlens: torch.Tensor,
                position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None, **kwargs: Any) -> torch.Tensor:
        lengths = torch.diff(cu_seqlens)
        if position_embeddings is None or not bool((lengths == lengths[0]).all()):
            return stock(hidden_states, cu_seqlens, position_embeddings=position_embeddings, **kwargs)
        tokens, images = hidden_states.shape[0], len(lengths)
        q, k, v = module.qkv(hidden_states).reshape(tokens, 3, module.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
        q, k = apply_rotary_pos_emb_vision(q, k, *position_embeddings)

        def per_image(t: torch.Tensor) -> torch.Tensor:  # (tokens, H, D) -> (images, H, length, D)
            return t.reshape(images, tokens // images, module.num_heads, -1).transpose(1, 2)

        q, k, v = per_image(q), per_image(k), per_image(v)
        probs = (torch.matmul(q, k.transpose(-1, -2)) * module.scaling).softmax(-1, dtype=torch.float32).to(v.dtype)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(tokens, -1)
        return module.proj(out)

    return forward
