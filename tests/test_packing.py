"""Packing: best-fit-decreasing plans, and packed rows that compute exactly what separate samples do."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medmo.train.packing import PackingCollator, best_fit_decreasing, packing_efficiency, plan_batches


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 120), min_size=0, max_size=60), st.integers(20, 200))
def test_best_fit_decreasing_is_a_valid_packing(lengths, budget):
    bins = best_fit_decreasing(lengths, budget)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    loads = [sum(lengths[i] for i in b) for b in bins]
    for b, load in zip(bins, loads):
        assert load <= budget or len(b) == 1  # only an oversize item may exceed, alone
    # BFD never leaves two bins at most half full (the later one's items would have fit the earlier one)
    assert sum(load * 2 <= budget for load in loads) <= 1


def test_best_fit_prefers_the_tightest_bin():
    # 6 and 5 open bins with 4 and 5 left; 4 must go to the 6-bin (best fit), leaving 5 room for 5... then 1.
    assert best_fit_decreasing([6, 5, 4, 5, 1], 10) == [[0, 2], [1, 3], [4]]


def test_plan_is_deterministic_per_epoch_and_complete():
    lengths = [10, 50, 30, 70, 20, 90, 40, 60] * 3
    a = plan_batches(lengths, batch_size=2, max_tokens=100, packing=True, seed=1, epoch=0)
    assert a == plan_batches(lengths, batch_size=2, max_tokens=100, packing=True, seed=1, epoch=0)
    assert a != plan_batches(lengths, batch_size=2, max_tokens=100, packing=True, seed=1, epoch=1)
    assert sorted(i for batch in a for row in batch for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 100 for batch in a for row in batch)
    padded = plan_batches(lengths, batch_size=4, max_tokens=100, packing=False, seed=1, epoch=0)
    assert [len(b) for b in padded] == [4] * 6 and all(len(row) == 1 for b in padded for row in b)


# ------------------------------------------------------------------ equivalence on the tiny model


@pytest.fixture(scope="module")
def setup(tiny_model_dir, tmp_path_factory):
    from medmo.data.io import read_records
    from medmo.data.synth import build_nano
    from medmo.model import load
    from medmo.model.attention import register
    from medmo.train.collate import SampleEncoder, rope_index_of

    register()  # the tests switch the model between sdpa and sdpa_packed

    paths = build_nano(tmp_path_factory.mktemp("nano"), n_train=2, n_val=1, n_test=1, image_size=64)
    samples = list(read_records(paths["train"]))
    model, processor = load(tiny_model_dir, attn_implementation="sdpa", dtype=torch.float32)
    encoder = SampleEncoder(processor, rope_index_of(model), max_length=512)
    picked = [s for s in samples if s.images][:7] + [s for s in samples if not s.images][:1]
    return model, processor, [encoder(s) for s in picked]


def _one_by_one(model, items):
    """Each sample alone through the stock forward (the model computes its own rope positions)."""
    from medmo.train.collate import IGNORE_INDEX

    out = []
    for it in items:
        kw = {"pixel_values": it.pixel_values, "image_grid_thw": it.image_grid_thw} if it.pixel_values is not None else {}
        logits = model(input_ids=it.input_ids[None], mm_token_type_ids=it.mm_token_type_ids[None], **kw).logits[0]
        labels = it.labels[1:]
        keep = labels != IGNORE_INDEX
        out.append(torch.nn.functional.cross_entropy(logits[:-1][keep], labels[keep]))
    return torch.stack(out)


@pytest.mark.parametrize(
    ("attn", "block_mask"),
    [("sdpa", True), ("eager", True), ("sdpa", False), ("flash_attention_2", False), ("sdpa_packed", True)],
    ids=["sdpa-4d-mask", "eager-additive-mask", "positions-only", "flattened-varlen-layout", "sdpa-packed-blocks"],
)
def test_packed_losses_equal_one_by_one(setup, attn, block_mask, monkeypatch):
    from medmo.model import attention
    from medmo.train.sft import sample_losses

    layouts = []
    real_layout = attention.sample_layout
    monkeypatch.setattr(attention, "sample_layout", lambda pos: layouts.append(real_layout(pos)) or layouts[-1])

    model, processor, items = setup
    assert any(it.pixel_values is not None for it in items) and any(it.pixel_values is None for it in items)
    rows = best_fit_decreasing([len(it) for it in items], budget=260)
    assert len(rows) < len(items)  # several samples per row
    order = [i for row in rows for i in row]
    model.set_attn_implementation(attn if attn in ("eager", "sdpa_packed") else "sdpa")
    try:
        # "flash_attention_2" here only selects the collator's padding-free layout (one row, no mask,
        # borders from restarting positions); on CPU sdpa then derives the same block mask from them.
        collate = PackingCollator(processor.tokenizer.pad_token_id, attn_implementation=attn, block_mask=block_mask)
        batch = collate([[items[i] for i in row] for row in rows])
        with torch.no_grad():
            packed = sample_losses(model, batch, len(items))
            alone = _one_by_one(model, items)
    finally:
        model.set_attn_implementation("sdpa")
    packed = packed[torch.argsort(torch.tensor(order))]
    assert torch.allclose(packed, alone, atol=1e-4), (packed, alone)
    assert packing_efficiency(batch) > 0.5
    if attn == "flash_attention_2":
        assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
    if attn == "sdpa_packed":  # no mask at all: the samples are kept apart by the attention itself
        assert batch["input_ids"].shape[0] == len(rows) and "attention_mask" not in batch
        assert layouts[0] is not None  # the packed batch took the per-sample path (alone: plain causal)
    else:
        assert not layouts


@pytest.mark.parametrize("attn", ["sdpa", "sdpa_packed"])
def test_packed_gradients_equal_sum_of_separate_gradients(setup, attn):
    from medmo.train.sft import token_losses

    model, processor, items = setup
    items = items[:3]
    collate = PackingCollator(processor.tokenizer.pad_token_id, attn_implementation=attn)
    model.set_attn_implementation(attn)
    try:
        model.zero_grad()
        losses, _ = token_losses(model, collate([items[:2], items[2:]]))
        losses.sum().backward()
        packed = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad()
        for it in items:
            losses, _ = token_losses(model, collate([[it]]))
            losses.sum().backward()
    finally:
        model.set_attn_implementation("sdpa")
    for name, grad in packed.items():
        assert torch.allclose(grad, dict(model.named_parameters())[name].grad, atol=1e-5), name
    model.zero_grad()


def test_packed_positions_restart_per_sample(setup):
    model, processor, items = setup
    batch = PackingCollator(processor.tokenizer.pad_token_id)([items[:3]])
    pos, seq = batch["position_ids"], batch["seq_ids"][0]
    assert pos.shape[:2] == (4, 1)
    start = 0
    for k, it in enumerate(items[:3]):
        n = len(it)
        assert (seq[start : start + n] == k).all()
        assert torch.equal(pos[0, 0, start : start + n], torch.arange(n))  # text row restarts
        assert torch.equal(pos[1:, 0, start : start + n], it.position_ids)  # the sample's own mrope
        start += n
    mask = batch["attention_mask"][0, 0]
    first = len(items[0])
    assert not mask[first, first - 1] and mask[first, first] and mask[first - 1, 0]
    image_tokens = int((batch["input_ids"] == processor.image_token_id).sum())
    assert image_tokens == int(batch["image_grid_thw"].prod(-1).sum()) // 4
