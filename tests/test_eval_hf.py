"""The local transformers backend on a tiny random Qwen3-VL: plumbing, caching, result layout, CLI.

Random weights score about zero, so these tests check what runs and what is written, not the scores.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from medmo.eval.registry import get
from medmo.eval.runner import evaluate


@pytest.fixture(scope="module")
def nano_dir(tmp_path_factory):
    from medmo.data.synth import build_nano

    out = tmp_path_factory.mktemp("nano")
    build_nano(out, n_train=0, n_val=0, n_test=8, image_size=64)  # 8 images give grounding samples too
    return out


def short(name: str, tokens: int):
    return replace(get(name), generation={"max_new_tokens": tokens, "greedy": True})


def test_loaded_model_is_evaluated_cached_and_resumed(tiny_model, nano_dir, tmp_path):
    benches = [short("nano_closed", 4), short("nano_mcq", 4)]
    first = evaluate(tiny_model, benches, out_dir=tmp_path, data={"nano": nano_dir}, limit=3, batch_size=2,
                     model_name="tiny")
    for name in ("nano_closed", "nano_mcq"):
        e = first["benchmarks"][name]
        assert e["n"] == 3 and e["n_generated"] == 3 and e["n_cached"] == 0
        rows = [json.loads(x) for x in open(e["predictions_file"])]
        assert len(rows) == 3 and all(isinstance(r["prediction"], str) and r["prediction"] for r in rows)
        assert 0.0 <= e["metrics"]["overall_acc"] <= 1.0
    assert first["backend"]["kind"] == "hf" and first["backend"]["n_params"] > 0
    again = evaluate(tiny_model, benches, out_dir=tmp_path, data={"nano": nano_dir}, limit=3, model_name="tiny")
    for name in ("nano_closed", "nano_mcq"):
        assert again["benchmarks"][name]["n_generated"] == 0 and again["benchmarks"][name]["n_cached"] == 3
        assert again["benchmarks"][name]["metrics"] == first["benchmarks"][name]["metrics"]


def test_cli_run_writes_results_tables_and_grounding_page(tiny_model_dir, nano_dir, tmp_path, capsys):
    from medmo.cli import main

    out = tmp_path / "eval"
    code = main(["eval", "run", str(tiny_model_dir), "--bench", "nano_grounding", "--data", f"nano={nano_dir}",
                 "--limit", "1", "--batch-size", "2", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| Model | nano grounding |" in printed and "grounding page" in printed
    results = json.loads(next(out.glob("results-*-standard.json")).read_text())
    assert results["limit"] == 1 and results["benchmarks"]["nano_grounding"]["n"] == 1
    assert (out / "tables" / "nano.csv").exists() and (out / "tables" / "nano.png").exists()
    assert "<svg" in (out / "grounding.html").read_text()


def test_the_pixel_budget_reaches_the_backend_and_its_cache_key(tiny_model_dir):
    from medmo.cli import build_parser
    from medmo.eval.backends.hf import HFBackend

    default = HFBackend.from_pretrained(str(tiny_model_dir))
    smaller = HFBackend.from_pretrained(str(tiny_model_dir), max_pixels=32 * 32)
    assert smaller.info()["pixel_budget"] != default.info()["pixel_budget"]
    assert smaller.fingerprint != default.fingerprint  # answers may change: cached ones are not reused
    args = build_parser().parse_args(["eval", "run", "m", "--bench", "nano", "--max-pixels", "1024",
                                      "--chat-template", "checkpoint"])  # fmt: skip
    assert (args.max_pixels, args.chat_template) == (1024, "checkpoint")
