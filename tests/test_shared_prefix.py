"""Shared-prefix GRPO: the same samples, log-probabilities, entropies and gradients as TRL's own paths."""

from __future__ import annotations

import contextlib
import types

import numpy as np
import pytest
import torch
from PIL import Image

from medmo.train.shared_prefix import prompt_groups, shared_prefix_logps, supported


def test_prompt_groups_need_same_tokens_mask_and_pixels():
    ids = torch.tensor([[0, 5, 6], [0, 5, 6], [0, 5, 6], [7, 5, 6], [0, 5, 6], [0, 5, 6]])
    mask = torch.tensor([[0, 1, 1], [0, 1, 1], [0, 1, 1], [1, 1, 1], [1, 1, 1], [0, 1, 1]])
    a, b = torch.ones(4, 3), torch.zeros(4, 3)
    pixels = [a, a.clone(), b, a, a, a]
    firsts, inverse = prompt_groups(ids, mask, pixels)
    # rows 0, 1, 5 share everything; 2 differs in pixels, 3 in tokens, 4 in padding
    assert firsts == [0, 2, 3, 4]
    assert inverse.tolist() == [0, 0, 1, 2, 3, 0]
    text_only = prompt_groups(ids[:2], mask[:2], [None, None])
    assert text_only[0] == [0] and text_only[1].tolist() == [0, 0]


def _batch(processor, prompts, answers, order):
    """TRL's layout: left-padded prompts then right-padded completions, rows in ``order``."""
    from medmo.prompts import grounding_prompt

    texts, images = [], []
    for target, seeds in prompts:
        seeds = seeds if isinstance(seeds, tuple) else (seeds,)  # one image per seed
        content = [{"type": "image"} for _ in seeds] + [{"type": "text", "text": grounding_prompt(target)}]
        conv = [{"role": "user", "content": content}]
        texts.append(processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False))
        rngs = [np.random.default_rng(seed) for seed in seeds]
        images.append([Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for rng in rngs])
    texts, images = [texts[i] for i in order], [images[i] for i in order]
    enc = processor(text=texts, images=images, return_tensors="pt", padding=True)
    comp = [processor.tokenizer(a).input_ids for a in answers]
    width = max(map(len, comp))
    comp_ids = torch.tensor([c + [0] * (width - len(c)) for c in comp])
    comp_mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in comp])
    return {
        "input_ids": torch.cat([enc.input_ids, comp_ids], 1),
        "attention_mask": torch.cat([enc.attention_mask, comp_mask], 1),
        "logits_to_keep": width,
        "pixel_values": enc.pixel_values,
        "image_grid_thw": enc.image_grid_thw,
        "num_images": [len(im) for im in images],
        "mm_token_type_ids": torch.cat([enc.mm_token_type_ids, torch.zeros_like(comp_ids)], 1),
    }, comp_mask.bool()


@pytest.fixture(scope="module")
def scored(tiny_model_dir):
    """A fresh tiny model with TRL's fused head (temperature 0.7), its processor left-padding."""
    from trl.trainer.utils import add_fused_lm_head

    from medmo.model import load

    model, processor = load(tiny_model_dir, dtype="float32")
    processor.tokenizer.padding_side = "left"
    add_fused_lm_head(model, temperature=0.7, outputs=("log_probs", "entropy"))
    return model.train(), processor


def _trl_scores(model, batch):
    from trl import GRPOTrainer

    # TRL's method unwrapped from its profiling decorator; it only needs ``accelerator.autocast``.
    method = GRPOTrainer._get_per_token_logps_and_entropies.__wrapped__
    owner = types.SimpleNamespace(accelerator=types.SimpleNamespace(autocast=contextlib.nullcontext))
    b = dict(batch)
    logps, ent, _ = method(owner, model, b.pop("input_ids"), b.pop("attention_mask"), b.pop("logits_to_keep"),
                           compute_entropy=True, **b)  # fmt: skip
    return logps, ent


def _grads(model, logps, mask):
    model.zero_grad()
    (logps * mask).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return grads


def test_matches_trl_scores_and_gradients(scored):
    model, processor = scored
    # Two prompts with the same words and different images, one with a longer question (left padding),
    # each sampled three times; rows shuffled as TRL shuffles a generation batch; ragged completions.
    prompts = [("nodule", 0), ("nodule", (1, 3)), ("enlarged cardiac silhouette", 2)]  # the second has two images
    order = [0, 2, 1, 0, 1, 2, 2, 0, 1]
    answers = [f"nodule <box>[[{10 * i}, 20, 300, {400 + i}]]</box>" + " x" * (i % 3) for i in range(len(order))]
    batch, mask = _batch(processor, prompts, answers, order)

    ref_logps, ref_ent = _trl_scores(model, batch)
    ref_grads = _grads(model, ref_logps, mask)
    b = dict(batch)
    got = shared_prefix_logps(model, b.pop("input_ids"), b.pop("attention_mask"), b.pop("logits_to_keep"),
                              compute_entropy=True, **b)  # fmt: skip
    assert got is not None
    logps, ent = got
    assert logps.shape == ref_logps.shape == mask.shape
    torch.testing.assert_close(logps[mask], ref_logps[mask], rtol=0, atol=1e-4)
    torch.testing.assert_close(ent[mask], ref_ent[mask], rtol=0, atol=1e-4)
    grads = _grads(model, logps, mask)
    assert any(".visual." in n for n in grads) and grads.keys() <= ref_grads.keys()
    # The tiny model adds its last DeepStack level after its last layer: that reaches only the image
    # positions' final states, which no completion reads. TRL's full forward gives that merger zero
    # gradients; the shared prefix gives it none.
    for name in ref_grads.keys() - grads.keys():
        assert "deepstack_merger_list.1" in name and not ref_grads[name].any(), name
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-3, atol=1e-5, msg=name)


def test_falls_back_when_nothing_is_shared_or_the_model_is_unsupported(scored, tiny_model_dir):
    from medmo.model import load

    model, processor = scored
    batch, _ = _batch(processor, [("nodule", 0), ("mass", 1)], ["mass <box>[[1, 2, 3, 4]]</box>"] * 2, [0, 1])
    b = dict(batch)
    assert shared_prefix_logps(model, b.pop("input_ids"), b.pop("attention_mask"), b.pop("logits_to_keep"), **b) is None

    batch, _ = _batch(processor, [("nodule", 0)], ["mass <box>[[1, 2, 3, 4]]</box>"] * 2, [0, 0])
    b = dict(batch, num_images=[2, 1])  # counts that do not add up to the images given: TRL's path decides
    assert shared_prefix_logps(model, b.pop("input_ids"), b.pop("attention_mask"), b.pop("logits_to_keep"), **b) is None
    b = dict(batch)
    assert shared_prefix_logps(model, b.pop("input_ids"), b.pop("attention_mask"), b.pop("logits_to_keep"), **b)

    other, _ = load(tiny_model_dir, dtype="float32")
    assert supported(other)
    other.activation_checkpointing_enable()  # recomputed layers would write the cache twice
    assert not supported(other)
    assert not supported(torch.nn.Linear(2, 2))
    assert not supported(model, compute_aux_loss=True)



def test_generate_gives_the_same_sequences(tiny_model_dir):
    from transformers import GenerationConfig

    from medmo.model import load
    from medmo.train.shared_prefix import images_per_row, prefill, shared_prefix_generate

    model, processor = load(tiny_model_dir, dtype="float32")
    processor.tokenizer.padding_side = "left"
    # A row with two images: generate's inputs carry no per-row image count, it is read off the tokens.
    prompts = [("nodule", 0), ("nodule", (1, 3)), ("enlarged cardiac silhouette", 2)]
    batch, _ = _batch(processor, prompts, ["a"] * 7, [0, 0, 1, 2, 2, 1, 0])
    assert images_per_row(batch["mm_token_type_ids"]) == [1, 1, 2, 1, 1, 2, 1]
    inputs = {k: batch[k] for k in ("pixel_values", "image_grid_thw", "mm_token_type_ids")}
    cut = -batch["logits_to_keep"]
    inputs["mm_token_type_ids"] = inputs["mm_token_type_ids"][:, :cut]
    ids, mask = batch["input_ids"][:, :cut], batch["attention_mask"][:, :cut]
    assert prefill(model, ids, mask, **inputs) is not None  # three distinct prompts for seven rows
    for sample in (False, True):
        config = GenerationConfig(max_new_tokens=8, min_new_tokens=8, do_sample=sample, temperature=1.0, top_k=0,
                                  top_p=1.0, pad_token_id=processor.tokenizer.pad_token_id,
                                  eos_token_id=processor.tokenizer.eos_token_id)  # fmt: skip
        torch.manual_seed(0)
        ref = model.generate(input_ids=ids, attention_mask=mask, generation_config=config, **inputs)
        torch.manual_seed(0)
        got = shared_prefix_generate(model, model.generate, ids, mask, generation_config=config, **inputs)
        assert got.shape == ref.shape == (7, ids.size(1) + 8)
        assert torch.equal(got, ref), f"do_sample={sample}"


def test_a_changed_trl_private_method_fails_loudly():
    from trl import GRPOTrainer

    from medmo.train.shared_prefix import SharedPrefixMixin, check_overrides

    check_overrides(GRPOTrainer)  # the installed TRL is the tested one

    class Changed(GRPOTrainer):
        def _get_per_token_logps_and_entropies(self, model, input_ids, logits_to_keep, attention_mask):
            raise AssertionError

    with pytest.raises(RuntimeError, match="_get_per_token_logps_and_entropies.*shared_prefix: false"):
        type("T", (SharedPrefixMixin, Changed), {})

    class Gone:
        pass

    with pytest.raises(RuntimeError, match="no longer has"):
        type("T", (SharedPrefixMixin, Gone), {})


def test_a_changed_processor_hook_fails_loudly():
    from medmo.model.processor import check_processor_hooks

    class Changed:
        def replace_image_token(self, inputs, index):
            return ""

    with pytest.raises(ImportError, match="replace_image_token.*constraints-cpu.txt"):
        check_processor_hooks(Changed)
