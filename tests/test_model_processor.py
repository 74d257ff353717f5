"""The image-only Qwen3-VL processor: placeholder expansion, resizing limits, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from medmo.model.processor import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS

PROMPT = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]}]


@pytest.fixture(scope="module")
def processor():
    from medmo.model import build_processor, train_tokenizer

    return build_processor(train_tokenizer(vocab_size=400), min_pixels=32 * 32, max_pixels=128 * 128)


def test_defaults_are_qwen_token_budgets_at_32px_per_token():
    assert DEFAULT_MIN_PIXELS == 256 * 32 * 32 and DEFAULT_MAX_PIXELS == 1280 * 32 * 32


@pytest.mark.parametrize("size", [(128, 128), (300, 97), (40, 40), (1411, 1411)])
def test_image_tokens_match_grid_and_limits(processor, size):
    image = Image.new("RGB", size, (120, 30, 200))
    text = processor.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    out = processor(text=[text], images=[image], return_tensors="pt")
    t, gh, gw = out["image_grid_thw"][0].tolist()
    assert t == 1 and gh % 2 == 0 and gw % 2 == 0
    n_tokens = gh * gw // 4
    assert int((out["input_ids"] == processor.image_token_id).sum()) == n_tokens
    assert processor.num_image_tokens(size[1], size[0]) == n_tokens
    assert out["mm_token_type_ids"].tolist() == (out["input_ids"] == processor.image_token_id).long().tolist()
    # 16 px patches x temporal 2 x RGB, one row per patch.
    assert tuple(out["pixel_values"].shape) == (gh * gw, 3 * 2 * 16 * 16)
    lo, hi = processor.pixel_range
    assert lo <= gh * gw * 16 * 16 <= hi


def test_batch_with_padding_and_text_only_rows(processor):
    image = Image.fromarray(np.full((64, 96, 3), 200, dtype=np.uint8))
    with_image = processor.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    text_only = processor.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
                                              tokenize=False)
    out = processor(text=[with_image, text_only], images=[image], padding=True, return_tensors="pt")
    assert set(out) >= {"input_ids", "attention_mask", "pixel_values", "image_grid_thw", "mm_token_type_ids"}
    assert out["input_ids"].shape == out["attention_mask"].shape == out["mm_token_type_ids"].shape
    assert int(out["mm_token_type_ids"][1].sum()) == 0
    assert processor.batch_decode(out["input_ids"][1:2], skip_special_tokens=True)[0].startswith("user\nHi")


def test_placeholder_image_mismatch_raises(processor):
    text = processor.apply_chat_template(PROMPT, tokenize=False)
    with pytest.raises(ValueError):
        processor(text=[text], images=None, return_tensors="pt")


def test_save_and_load_round_trip(processor, tmp_path):
    from medmo.model import load_processor

    processor.save_pretrained(tmp_path)
    again = load_processor(tmp_path)
    assert again.pixel_range == processor.pixel_range
    assert again.chat_template == processor.chat_template
    image = Image.new("RGB", (200, 150), (10, 200, 90))
    text = processor.apply_chat_template(PROMPT, tokenize=False)
    a = processor(text=[text], images=[image], return_tensors="pt")
    b = again(text=[text], images=[image], return_tensors="pt")
    for key in a:
        assert a[key].tolist() == b[key].tolist(), key
    # Explicit limits override the saved ones.
    assert load_processor(tmp_path, min_pixels=64 * 64, max_pixels=64 * 64).pixel_range == (64 * 64, 64 * 64)


def test_stock_qwen3_vl_preprocessor_config_is_followed(processor, tmp_path):
    """A downloaded Qwen3-VL folder's preprocessor_config.json budget (65,536 .. 16,777,216 pixels) is the default."""
    import json

    processor.tokenizer.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Qwen2VLImageProcessorFast", "patch_size": 16, "merge_size": 2,
        "temporal_patch_size": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "size": {"longest_edge": 16777216, "shortest_edge": 65536},
    }))
    from medmo.model import load_processor
    from medmo.model.processor import MAX_PIXELS_CAP

    loaded = load_processor(tmp_path)
    assert loaded.pixel_range == (65536, 16777216) == (65536, MAX_PIXELS_CAP)
    assert loaded.image_processor.patch_size == 16 and loaded.image_processor.merge_size == 2
    # A 2544x3056 chest X-ray keeps its resolution: 96 x 80 merged tokens, not the old 1,280-token cap's 1,248.
    assert loaded.num_image_tokens(3056, 2544) == 96 * 80
    # The memory cap is explicit and settable; an explicit max_pixels is used as given.
    assert load_processor(tmp_path, max_pixels_cap=DEFAULT_MAX_PIXELS).pixel_range == (65536, DEFAULT_MAX_PIXELS)
    assert load_processor(tmp_path, max_pixels=2 * MAX_PIXELS_CAP).pixel_range == (65536, 2 * MAX_PIXELS_CAP)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"size": {"longest_edge": 10**9, "shortest_edge": 65536}}))
    assert load_processor(tmp_path).pixel_range == (65536, MAX_PIXELS_CAP)
    assert load_processor(tmp_path, max_pixels_cap=None).pixel_range == (65536, 10**9)


def test_bad_pixel_limits_are_refused():
    from medmo.model.processor import build_image_processor

    with pytest.raises(ValueError, match="min_pixels"):
        build_image_processor(min_pixels=5000, max_pixels=100)


# ----------------------------------------------------------------------------------------------------
# encode_one: one conversation without the processor's per-call work, equal to it bit for bit


def _conversation(processor, n_images: int) -> str:
    content = [{"type": "image"}] * n_images + [{"type": "text", "text": "Locate the nodule."}]
    chat = [{"role": "user", "content": content}, {"role": "assistant", "content": "(10,20),(300,400)"}]
    return processor.apply_chat_template(chat, tokenize=False)


def _noise(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    """Every 8-bit value in every channel (a 64 x 64 image holds each about 16 times)."""
    rng = np.random.default_rng(seed)
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    return Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode)


def _assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("stats", ["qwen", "clip"])
@pytest.mark.parametrize("sizes", [[(64, 64)], [(128, 128), (96, 64)], []])
def test_encode_one_equals_the_processor_without_calling_it(processor, stats, sizes, monkeypatch):
    from medmo.model import build_processor
    from medmo.model.processor import MedMOProcessor, encode_one

    if stats == "clip":  # per-channel statistics exercise the per-channel value table
        processor = build_processor(processor.tokenizer, min_pixels=32 * 32, max_pixels=128 * 128,
                                    image_mean=[0.48145466, 0.4578275, 0.40821073],
                                    image_std=[0.26862954, 0.26130258, 0.27577711])
    images = [_noise(w, h, seed=i) for i, (w, h) in enumerate(sizes)]
    text = _conversation(processor, len(images))
    expected = dict(processor(text=[text], images=images or None, return_tensors="pt"))

    def refuse(*args, **kwargs):
        raise AssertionError("the direct path called the processor")

    monkeypatch.setattr(MedMOProcessor, "__call__", refuse)
    _assert_same(encode_one(processor, text, images), expected)


@pytest.mark.parametrize("case", ["resized", "grayscale", "too few placeholders"])
def test_encode_one_leaves_other_inputs_to_the_processor(processor, case):
    from medmo.model.processor import encode_one

    images = {"resized": [_noise(300, 97, seed=1)], "grayscale": [_noise(64, 64, seed=2, mode="L")],
              "too few placeholders": [_noise(64, 64, seed=3), _noise(64, 64, seed=4)]}[case]
    text = _conversation(processor, 1)
    if case == "too few placeholders":
        with pytest.raises(ValueError, match="image"):
            processor(text=[text], images=images, return_tensors="pt")
        with pytest.raises(ValueError, match="image"):
            encode_one(processor, text, images)
        return
    _assert_same(encode_one(processor, text, images), dict(processor(text=[text], images=images, return_tensors="pt")))
