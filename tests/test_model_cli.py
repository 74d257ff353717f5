"""``medmo model build`` and ``medmo model info``."""

from __future__ import annotations

import json


def test_build_then_info(tmp_path, capsys):
    from medmo.cli import main
    from medmo.model import load

    out = tmp_path / "tiny"
    assert main(["model", "build", "--size", "tiny", "--out", str(out), "--vocab-size", "400", "--seed", "3"]) == 0
    model, processor = load(out)
    assert model.config.text_config.hidden_size == 64 and len(processor.tokenizer) <= 406
    capsys.readouterr()
    assert main(["model", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    params = info["parameters"]
    assert params["all"] == sum(p.numel() for p in model.parameters())
    assert params["all"] == params["vision"] + params["merger"] + params["llm"]


def test_build_bpe_from_records(tmp_path, capsys):
    from medmo.cli import main
    from medmo.data.io import write_jsonl
    from medmo.model import load
    from medmo.records import Sample

    samples = [Sample(id=f"s{i}", task="text_qa", source="test", split="train", question="Which organ is shown?",
                      answer="pancreas") for i in range(3)]
    records = write_jsonl(samples, tmp_path / "train.jsonl")
    out = tmp_path / "m"
    assert main(["model", "build", "--size", "tiny", "--out", str(out), "--corpus", str(records)]) == 0
    _, processor = load(out)
    assert len(processor.tokenizer.encode("pancreas")) == 1  # the corpus answer became one token


def test_missing_checkpoint_is_an_error_exit(tmp_path, capsys):
    from medmo.cli import main

    assert main(["model", "info", str(tmp_path / "nope" / "x")]) == 2
    assert "No model folder" in capsys.readouterr().err
