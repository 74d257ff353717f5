"""``sdpa_packed``: sample borders read from packed positions; every other call is transformers' ``sdpa``."""

from __future__ import annotations

import json

import pytest
import torch

from medmo.model.attention import packed_sdpa_attention, sample_layout


def test_layout_finds_each_sample_of_each_row():
    # row 0: samples of 3 and 2 tokens; row 1: 4 tokens, then padding that restarts at 0 (its own block)
    pos = torch.tensor([[0, 1, 2, 0, 1], [0, 1, 2, 3, 0]])
    index, sample, offset = sample_layout(pos)
    assert sample.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2, 3]
    assert offset.tolist() == [0, 1, 2, 0, 1, 0, 1, 2, 3, 0]
    assert index.tolist() == [[0, 1, 2, 0], [3, 4, 0, 0], [5, 6, 7, 8], [9, 0, 0, 0]]
    assert sample_layout(torch.arange(6).expand(2, 6)) is None  # one sample per row: plain causal attention


class _Attn(torch.nn.Module):
    is_causal = True


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_equals_sdpa_with_the_block_mask(kv_heads):
    from medmo.train.packing import _block_causal

    torch.manual_seed(0)
    pos = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 3], [0, 1, 0, 1, 2, 3, 4, 5, 6, 0, 1, 2]])
    q = torch.randn(2, 4, 12, 8, requires_grad=True)
    k = torch.randn(2, kv_heads, 12, 8, requires_grad=True)
    v = torch.randn(2, kv_heads, 12, 8, requires_grad=True)
    out, _ = packed_sdpa_attention(_Attn(), q, k, v, None, scaling=0.3, position_ids=pos)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    seq = torch.cumsum(torch.cat([torch.ones(2, 1), (pos[:, 1:] == 0).float()], 1), 1)
    rep = 4 // kv_heads
    mask = _block_causal(seq.long())
    ref = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), attn_mask=mask, scale=0.3).transpose(1, 2)
    ref_grads = torch.autograd.grad(ref.square().sum(), (q, k, v))
    assert out.shape == (2, 12, 4, 8)
    assert torch.allclose(out, ref, atol=1e-6)
    for a, b in zip(grads, ref_grads):
        assert torch.allclose(a, b, atol=1e-5)


def test_generation_and_saved_config_are_sdpas(tiny_model_dir, tmp_path):
    """Generation with a cache and padded batches takes the sdpa path: the same tokens; the saved
    config names no attention backend, as a released checkpoint's does."""
    from medmo.model import load, save
    from medmo.model.generate import generate

    from PIL import Image

    image = Image.fromarray((torch.arange(64 * 64 * 3) % 251).reshape(64, 64, 3).to(torch.uint8).numpy())
    prompts = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]}],
               [{"role": "user", "content": [{"type": "text", "text": "Is there a nodule in the upper lobe?"}]}]]
    answers = {}
    for attn in ("sdpa", "sdpa_packed"):
        model, processor = load(tiny_model_dir, attn_implementation=attn, dtype=torch.float32)
        answers[attn] = generate(model, processor, prompts, [[image], []], max_new_tokens=8, batch_size=2)
    assert answers["sdpa"] == answers["sdpa_packed"]
    save(model, processor, tmp_path / "out")
    assert "sdpa_packed" not in (tmp_path / "out" / "config.json").read_text()
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "qwen3_vl"


@pytest.mark.parametrize("sizes", [[(64, 64)] * 3, [(64, 64), (64, 96)]], ids=["equal-sizes-batched", "mixed-sizes-loop"])
def test_vision_speed_up_computes_the_same(tiny_model_dir, sizes):
    """The batched patch embedding and attention give the stock vision tower's features and gradients."""
    from PIL import Image

    from medmo.model import load
    from medmo.model.attention import speed_up_vision

    model, processor = load(tiny_model_dir, attn_implementation="sdpa", dtype=torch.float32)
    images = [Image.fromarray(((torch.arange(h * w * 3) * (i + 3)) % 253).reshape(h, w, 3).to(torch.uint8).numpy())
              for i, (w, h) in enumerate(sizes)]
    enc = processor.image_processor(images=images, return_tensors="pt")

    def run():
        model.zero_grad()
        out = model.model.visual(enc["pixel_values"], grid_thw=enc["image_grid_thw"])
        feats = [out.pooler_output, *out.deepstack_features]
        sum(f.square().sum() for f in feats).backward()
        return [f.detach() for f in feats], {n: p.grad.clone() for n, p in model.model.visual.named_parameters()}

    stock_feats, stock_grads = run()
    assert speed_up_vision(model) == 1 + len(model.model.visual.blocks)
    fast_feats, fast_grads = run()
    for a, b in zip(stock_feats, fast_feats):
        assert torch.allclose(a, b, atol=1e-5)
    for name, grad in stock_grads.items():
        assert torch.allclose(grad, fast_grads[name], atol=1e-4), name
    assert model.state_dict().keys() == load(tiny_model_dir)[0].state_dict().keys()
