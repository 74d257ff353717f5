"""Tiny/nano Qwen3-VL builders, save -> load, and a training step on a real image."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

CONV = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Locate the lesion."}]},
    {"role": "assistant", "content": [{"type": "text", "text": "lesion <box>[[100, 200, 300, 400]]</box>"}]},
]


@pytest.fixture(scope="module")
def retina():
    from skimage import data

    return Image.fromarray(data.retina())


def _batch(processor, image, with_answer=True):
    text = processor.apply_chat_template(CONV if with_answer else CONV[:1], tokenize=False,
                                         add_generation_prompt=not with_answer)
    return processor(text=[text], images=[image], return_tensors="pt")


def test_configs_keep_qwen3_vl_structure():
    from medmo.model import nano_config, tiny_config, train_tokenizer
    from medmo.model.tokenizer import special_token_ids

    tok = train_tokenizer(vocab_size=400)
    for make in (tiny_config, nano_config):
        cfg = make(tok)
        text, vision = cfg.text_config, cfg.vision_config
        assert sum(text.rope_parameters["mrope_section"]) == text.head_dim // 2
        assert len(vision.deepstack_visual_indexes) >= 1 and max(vision.deepstack_visual_indexes) < vision.depth
        assert vision.out_hidden_size == text.hidden_size and vision.patch_size == 16
        assert text.vocab_size == len(tok)
        assert {k: getattr(cfg, k) for k in special_token_ids(tok)} == special_token_ids(tok)
    assert tiny_config(tok, text={"num_hidden_layers": 3}).text_config.num_hidden_layers == 3
    with pytest.raises(ValueError, match="mrope_section"):
        tiny_config(tok, text={"rope_parameters": {"rope_type": "default", "mrope_section": [1, 1, 1]}})


def test_nano_size_and_visual_tokens():
    from medmo.model import build_model, build_processor, nano_config, train_tokenizer
    from medmo.model.build import NANO_PIXELS

    tok = train_tokenizer(vocab_size=600)
    model = build_model(nano_config(tok))
    n = sum(p.numel() for p in model.parameters())
    assert 3.5e6 < n < 5.5e6, n
    processor = build_processor(tok, min_pixels=NANO_PIXELS[0], max_pixels=NANO_PIXELS[1])
    assert processor.num_image_tokens(128, 128) == 16


def test_build_is_seeded():
    from medmo.model import build_model, tiny_config, train_tokenizer

    cfg = tiny_config(train_tokenizer(vocab_size=400))
    a, b, c = build_model(cfg, seed=1), build_model(cfg, seed=1), build_model(cfg, seed=2)
    wa, wb, wc = (m.model.visual.merger.linear_fc1.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_vision_positions_start_as_a_sincos_grid():
    from medmo.model import build_model, tiny_config, train_tokenizer
    from medmo.model.build import sincos_positions

    table = sincos_positions(16, 8)  # 4 x 4 grid, 2 channels each for sin/cos of rows and of columns
    grid = table.view(4, 4, 8)
    assert torch.equal(grid[:, 0, :4], grid[:, 3, :4])  # row channels ignore the column
    assert torch.equal(grid[0, :, 4:], grid[3, :, 4:])  # column channels ignore the row
    assert torch.cdist(table, table).add(torch.eye(16)).min() > 0.1  # every cell distinct
    assert torch.allclose(grid[1, 2, 4:6], torch.tensor([2.0, 2.0 / 10]).sin())  # sin(col * 100**(-k/2))
    with pytest.raises(ValueError, match="square"):
        sincos_positions(15, 8)
    model = build_model(tiny_config(train_tokenizer(vocab_size=400)))
    pos = model.model.visual.pos_embed.weight
    assert torch.equal(pos, sincos_positions(*pos.shape))


def test_save_load_round_trip_gives_same_logits(tiny_model_dir, retina, tmp_path):
    from medmo.model import load, save

    model, processor = load(tiny_model_dir)
    batch = _batch(processor, retina)
    with torch.no_grad():
        before = model(**batch).logits
    save(model, processor, tmp_path / "copy", dtype="float32")
    again, processor2 = load(tmp_path / "copy", dtype=torch.float32)
    batch2 = _batch(processor2, retina)
    assert torch.equal(batch["input_ids"], batch2["input_ids"])
    with torch.no_grad():
        after = again(**batch2).logits
    assert torch.allclose(before, after, atol=1e-6)
    assert again.generation_config.eos_token_id == model.generation_config.eos_token_id


def test_forward_backward_and_generate_on_a_real_image(tiny_model_dir, retina):
    from medmo.model import load
    from medmo.model.generate import generate

    model, processor = load(tiny_model_dir)
    model.train()
    batch = _batch(processor, retina)
    out = model(**batch, labels=batch["input_ids"])
    assert torch.isfinite(out.loss) and out.loss.item() > 0
    out.loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    # Gradients reach the vision tower, both DeepStack mergers, the main merger and the language model.
    for part in ("visual.blocks.0.", "visual.deepstack_merger_list.0.", "visual.deepstack_merger_list.1.",
                 "visual.merger.", "language_model.layers.0."):
        assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if part in n), part
    model.eval()
    answer = generate(model, processor, [CONV[:1]], [[retina]], max_new_tokens=5)
    assert len(answer) == 1 and isinstance(answer[0], str)


def test_image_changes_the_output(tiny_model, retina):
    model, processor = tiny_model
    black = Image.new("RGB", retina.size)
    with torch.no_grad():
        a = model(**_batch(processor, retina, with_answer=False)).logits[0, -1]
        b = model(**_batch(processor, black, with_answer=False)).logits[0, -1]
    assert not torch.allclose(a, b)


def test_real_qwen3_tokenizer_model_trains_and_generates(retina, tmp_path):
    from medmo.model import build_small, load
    from medmo.model.generate import generate

    path = build_small(tmp_path / "q", tokenizer="qwen3")
    model, processor = load(path)
    assert model.config.image_token_id == 151655 and model.config.text_config.vocab_size == 151669
    batch = _batch(processor, retina)
    loss = model(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert isinstance(generate(model, processor, [CONV[:1]], [[retina]], max_new_tokens=3)[0], str)


def test_load_errors_are_clear(tmp_path, monkeypatch):
    from medmo.model import load

    with pytest.raises(FileNotFoundError, match="config.json"):
        load(tmp_path)
    with pytest.raises(FileNotFoundError, match="No model folder"):
        load(tmp_path / "missing" / "model")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match="`hf download medmo-tests/no-such-model --local-dir DIR`"):
        load("medmo-tests/no-such-model")
    # The hint names a command the installed huggingface_hub really provides.
    from importlib.metadata import entry_points

    assert any(ep.name == "hf" and ep.value.startswith("huggingface_hub") for ep in entry_points(group="console_scripts"))


def test_flash_attention_without_package_is_a_clear_error(tiny_model_dir, monkeypatch):
    import importlib.util

    from medmo.model import load

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "flash_attn" else real(name, *a))
    with pytest.raises(ValueError, match="flash-attn"):
        load(tiny_model_dir, attn_implementation="flash_attention_2")


def test_attn_implementation_and_dtype_pass_through(tiny_model_dir):
    from medmo.model import load

    model, _ = load(tiny_model_dir, attn_implementation="eager", dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16
    assert model.config._attn_implementation == "eager"


def test_other_architectures_are_refused(tmp_path):
    import json

    from medmo.model import load

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(ValueError, match="Qwen3-VL"):
        load(tmp_path)


def test_processor_from_pretrained_is_the_image_only_one(tiny_model_dir):
    from medmo.model import MedMOProcessor

    processor = MedMOProcessor.from_pretrained(tiny_model_dir)
    assert isinstance(processor, MedMOProcessor) and processor.image_processor.patch_size == 16
