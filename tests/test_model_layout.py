"""Saved folders are standard Qwen3-VL checkpoints: the release's file set and JSON keys, read by transformers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

FACTS = json.loads((Path(__file__).parent / "fixtures" / "qwen3_vl_4b_instruct_files.json").read_text())


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny model saved with the default bf16 weights."""
    from medmo.model import build_small

    return build_small(tmp_path_factory.mktemp("layout") / "m", dtype="bfloat16")


def _keys(path: Path) -> set[str]:
    return set(json.loads(path.read_text()))


def test_the_file_set_is_the_release_s(saved):
    names = {p.name for p in saved.iterdir()}
    assert names == set(FACTS["files"]) | {"model.safetensors"}  # one shard instead of the release's two


@pytest.mark.parametrize("name", ["preprocessor_config.json", "video_preprocessor_config.json",
                                  "chat_template.json"])  # fmt: skip
def test_processor_files_have_exactly_the_release_keys(saved, name):
    assert _keys(saved / name) == set(FACTS[name])


def test_processor_values_name_qwen3_vl(saved):
    pre = json.loads((saved / "preprocessor_config.json").read_text())
    video = json.loads((saved / "video_preprocessor_config.json").read_text())
    for key in ("processor_class", "image_processor_type", "patch_size", "temporal_patch_size", "merge_size",
                "image_mean", "image_std"):
        assert pre[key] == FACTS["preprocessor_values"][key], key
    assert pre["size"] == {"longest_edge": 64 * 64, "shortest_edge": 32 * 32}  # the tiny model's own budget
    assert {k: video[k] for k in FACTS["video_values"]} == FACTS["video_values"]
    tok = json.loads((saved / "tokenizer_config.json").read_text())
    assert tok["tokenizer_class"] == FACTS["tokenizer_class"] and tok["processor_class"] == "Qwen3VLProcessor"


def test_the_chat_template_is_qwen3_vl_s_own(saved):
    from medmo.model.layout import qwen3_vl_chat_template

    template = json.loads((saved / "chat_template.json").read_text())["chat_template"]
    assert template == qwen3_vl_chat_template()
    assert hashlib.sha256(template.encode()).hexdigest() == FACTS["chat_template_sha256"]
    assert "{% generation %}" not in template and "generation" not in template.replace("add_generation_prompt", "")
    assert json.loads((saved / "tokenizer_config.json").read_text())["chat_template"] == template


def test_config_keys_are_the_release_s(saved):
    config = json.loads((saved / "config.json").read_text())
    assert set(FACTS["config.json"]) <= set(config)
    renamed = FACTS["renamed_by_transformers_5"]
    assert {renamed.get(k, k) for k in FACTS["text_config"]} - set(renamed.values()) <= set(config["text_config"])
    assert "rope_parameters" in config["text_config"] and "tie_word_embeddings" in config
    assert set(FACTS["vision_config"]) <= set(config["vision_config"])
    assert config["architectures"] == FACTS["config_values"]["architectures"]
    assert config["model_type"] == FACTS["config_values"]["model_type"]
    assert config["dtype"] == config["text_config"]["dtype"] == "bfloat16"


def test_weights_are_bfloat16_and_load_through_transformers_alone(saved):
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    assert {t.dtype for t in load_file(str(saved / "model.safetensors")).values()} == {torch.bfloat16}
    assert AutoConfig.from_pretrained(saved).model_type == "qwen3_vl"
    model = AutoModelForImageTextToText.from_pretrained(saved, dtype="auto")
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration" and model.dtype == torch.bfloat16
    tokenizer = AutoTokenizer.from_pretrained(saved)
    assert type(tokenizer).__name__ == "Qwen2Tokenizer" and tokenizer.chat_template
    image = Qwen2VLImageProcessorPil.from_pretrained(saved)
    assert (image.size["shortest_edge"], image.size["longest_edge"]) == (32 * 32, 64 * 64)


def test_auto_processor_picks_qwen3_vl_s_processor(saved):
    # Qwen3VLProcessor needs torchvision for its video processor; here it is absent, so AutoProcessor stops
    # there -- having chosen the real Qwen3-VL processor, not a bare tokenizer.
    from transformers import AutoProcessor

    with pytest.raises(ImportError, match="Qwen3VLVideoProcessor requires the Torchvision"):
        AutoProcessor.from_pretrained(saved)


def test_the_tokenizer_files_reproduce_the_same_ids(saved):
    from transformers import AutoTokenizer

    from medmo.model import load

    _, processor = load(saved)
    text = "Locate the nodule. <|vision_start|><|image_pad|><|vision_end|> [[120, 40, 560, 999]]"
    assert AutoTokenizer.from_pretrained(saved)(text).input_ids == processor.tokenizer(text).input_ids
    vocab = json.loads((saved / "vocab.json").read_text())
    assert len(vocab) > 256 and (saved / "merges.txt").read_text().startswith("#version")


def test_qwen_s_template_and_medmo_s_render_the_same_prompt(saved):
    from medmo.model import CHAT_TEMPLATE, load
    from medmo.model.layout import qwen3_vl_chat_template

    _, processor = load(saved)
    tok = processor.tokenizer
    for conversation in (
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is there a mass?"}]}],
        [{"role": "system", "content": "You are a radiologist."},
         {"role": "user", "content": [{"type": "text", "text": "Q"}, {"type": "image"}, {"type": "image"}]},
         {"role": "assistant", "content": [{"type": "text", "text": "yes"}]},
         {"role": "user", "content": "and now?"}],
    ):
        ours = tok.apply_chat_template(conversation, chat_template=CHAT_TEMPLATE, tokenize=False,
                                       add_generation_prompt=True)
        qwen = tok.apply_chat_template(conversation, chat_template=qwen3_vl_chat_template(), tokenize=False,
                                       add_generation_prompt=True)
        assert ours == qwen


def test_an_unknown_save_dtype_is_refused(tmp_path):
    from medmo.model import build_small

    with pytest.raises(ValueError, match="bfloat16, float16, float32"):
        build_small(tmp_path / "x", dtype="int8")
