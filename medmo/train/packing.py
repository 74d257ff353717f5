"""Sample packing for Qwen3-VL: several samples per row, no attention across their borders.

TRL's packing and padding-free modes refuse Qwen's multimodal RoPE, so this module does it:

* :func:`best_fit_decreasing` fills rows up to a token budget that counts image tokens (Johnson 1974's
  BFD bin packing, as in Krell et al. 2021 "Efficient Sequence Packing without Cross-contamination").
* :class:`PackingCollator` concatenates the samples of each row keeping *each sample's own* 3-D rope
  positions (from the model's ``get_rope_index``, computed per sample by
  :class:`~medmo.train.collate.SampleEncoder`), and isolates samples:

  - ``sdpa`` / ``eager``: an explicit block-diagonal causal 4-D mask (bool for sdpa, additive float
    for eager); transformers passes a 4-D mask through unchanged.
  - ``sdpa_packed`` (:mod:`medmo.model.attention`): no mask; the attention reads each sample's block from
    the restarting text positions and computes that block only.
  - ``flash_attention_2``: rows are flattened into one padding-free row (batch 1) with no mask; the
    text position row restarts at 0 for every sample, from which transformers derives ``cu_seqlens``
    for ``flash_attn_varlen_func`` (``prepare_fa_kwargs_from_position_ids``).

  Positions go to the model as ``(4, B, L)``: row 0 is the per-sample text position (what the
  attention layers and the packed-sequence detection read), rows 1-3 the multimodal rope positions.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence

import torch

from medmo.train.collate import IGNORE_INDEX, Encoded, vision_inputs


def best_fit_decreasing(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Pack item indices into bins of capacity ``budget`` (each bin's lengths sum to <= budget).

    Items longer than the budget get a bin of their own. Runs in O(n log n) with a sorted list of
    remaining capacities.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (remaining capacity, bin index), sorted
    for i in order:
        need = lengths[i]
        k = bisect.bisect_left(free, (need, -1))
        if k < len(free):
            room, b = free.pop(k)
            bins[b].append(i)
            bisect.insort(free, (room - need, b))
        else:
            bins.append([i])
            if need < budget:
                bisect.insort(free, (budget - need, len(bins) - 1))
    return bins


def plan_batches(
    lengths: Sequence[int],
    *,
    batch_size: int,
    max_tokens: int,
    packing: bool,
    seed: int,
    epoch: int,
) -> list[list[list[int]]]:
    """The micro-batches of one epoch: each a list of rows, each row a list of sample indices.

    The plan depends only on (lengths, settings, seed, epoch), so a resumed run rebuilds exactly the
    batches it would have seen and skips those already consumed.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    if packing:
        rows = best_fit_decreasing(lengths, max_tokens)
        for row in rows:
            rng.shuffle(row)
        rng.shuffle(rows)
    else:
        order = list(range(len(lengths)))
        rng.shuffle(order)
        rows = [[i] for i in order]
    return [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]


def _block_causal(seq_ids: torch.Tensor) -> torch.Tensor:
    """(B, L) sample ids -> (B, 1, L, L) bool: query attends key iff same sample and key <= query."""
    same = seq_ids[:, :, None] == seq_ids[:, None, :]
    causal = torch.ones(seq_ids.shape[1], seq_ids.shape[1], dtype=torch.bool).tril()
    return (same & causal)[:, None]


class PackingCollator:
    """Collate rows of :class:`Encoded` samples into one packed batch.

    Args:
        pad_token_id: id that fills the tail of short rows.
        attn_implementation: ``sdpa``, ``eager``, ``sdpa_packed`` or ``flash_attention_2`` (see module
            docstring).
        mask_dtype: dtype of the additive mask for ``eager`` (the model's compute dtype).
        block_mask: emit the 4-D mask for sdpa/eager; with ``False`` the mask is left to transformers,
            which derives the same blocks from the restarting text positions (the path flash-attention
            takes).
        pad_to_multiple_of: round row width up (tensor-core friendly shapes on GPU).

    Returns (from ``__call__``): model inputs plus ``labels`` and ``seq_ids`` ((B, L) global index of
    each token's sample in the order given, -1 on padding).
    """

    def __init__(
        self,
        pad_token_id: int,
        attn_implementation: str | None = "sdpa",
        mask_dtype: torch.dtype = torch.float32,
        block_mask: bool = True,
        pad_to_multiple_of: int = 1,
    ):
        self.pad_token_id = pad_token_id
        self.flash = "flash" in (attn_implementation or "")
        self.eager = attn_implementation == "eager"
        self.mask_dtype = mask_dtype
        self.block_mask = block_mask and not self.flash and attn_implementation != "sdpa_packed"
        self.multiple = pad_to_multiple_of

    def __call__(self, rows: Sequence[Sequence[Encoded]]) -> dict[str, torch.Tensor]:
        if self.flash:  # one padding-free row: varlen attention reads the borders from positions
            rows = [[it for row in rows for it in row]]
        width = max(sum(len(it) for it in row) for row in rows)
        width = -(-width // self.multiple) * self.multiple
        b = len(rows)
        input_ids = torch.full((b, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((b, width), IGNORE_INDEX, dtype=torch.long)
        mm = torch.zeros((b, width), dtype=torch.long)
        positions = torch.zeros((4, b, width), dtype=torch.long)
        seq_ids = torch.full((b, width), -1, dtype=torch.long)
        k = 0
        for r, row in enumerate(rows):
            start = 0
            for it in row:
                n, end = len(it), start + len(it)
                input_ids[r, start:end], labels[r, start:end] = it.input_ids, it.labels
                mm[r, start:end] = it.mm_token_type_ids
                positions[0, r, start:end] = torch.arange(n)
                positions[1:, r, start:end] = it.position_ids
                seq_ids[r, start:end] = k
                start, k = end, k + 1
            positions[:, r, start:] = torch.arange(width - start)  # padding: a block of its own
        batch = {
            "input_ids": input_ids,
            "position_ids": positions,
            "mm_token_type_ids": mm,
            "labels": labels,
            "seq_ids": seq_ids,
        }
        if self.block_mask:
            # padding rows share id -1 per row: they form their own causal block, never a fully-masked row
            mask = _block_causal(seq_ids)
            if self.eager:
                zero = torch.zeros((), dtype=self.mask_dtype)
                mask = torch.where(mask, zero, torch.finfo(self.mask_dtype).min)
            batch["attention_mask"] = mask
        batch.update(vision_inputs([it for row in rows for it in row]))
        return batch


def packing_efficiency(batch: dict[str, torch.Tensor]) -> float:
    """Fraction of the batch's token slots that hold real tokens."""
    seq = batch["seq_ids"]
    return float((seq >= 0).sum()) / max(1, seq.numel())
