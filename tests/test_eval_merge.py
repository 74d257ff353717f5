"""Sharded evaluation: ``--shard I/N`` runs merge into exactly the one-process results; ``eval diff``."""

from __future__ import annotations

import json

import pytest

from medmo.eval.manifest import diff, diff_markdown
from medmo.eval.merge import interleave, merge
from medmo.eval.runner import evaluate
from tests.test_eval_runner import Scripted, _records

BENCHES = "nano_closed,nano_mcq,nano_open,nano_report"
STABLE = ("metrics", "ci", "breakdown", "n", "failed", "deviations", "metric_versions")


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "nano"
    folder.mkdir()
    return folder, _records(folder)


def test_interleave_restores_dataset_order():
    assert interleave([[0, 3, 6], [1, 4], [2, 5]]) == [0, 1, 2, 3, 4, 5, 6]


def test_shards_merge_to_the_one_process_results(data, tmp_path):
    folder, answers = data
    one = evaluate(Scripted(answers), BENCHES, out_dir=tmp_path / "one", data={"nano": folder}, seed=5)
    paths = []
    for i in range(3):
        res = evaluate(Scripted(answers), BENCHES, out_dir=tmp_path / "sh", data={"nano": folder}, seed=5,
                       shard=(i, 3))
        assert res["manifest"]["shard"] == f"{i}/3" and res["path"].endswith(f".shard-{i}-of-3.json")
        paths.append(res["path"])
    merged = merge(paths, tmp_path / "sh")
    for name in BENCHES.split(","):
        a, b = one["benchmarks"][name], merged["benchmarks"][name]
        assert {k: a[k] for k in STABLE} == {k: b[k] for k in STABLE}, name
        rows_a = [json.loads(x) for x in open(a["predictions_file"])]
        rows_b = [json.loads(x) for x in open(b["predictions_file"])]
        assert rows_a == rows_b  # corpus metrics (nano_report's CIDEr-D) computed once over the merged set
    with pytest.raises(ValueError, match="every shard"):
        merge(paths[:2])


def test_diff_names_changed_settings_and_moves(data, tmp_path, capsys):
    folder, answers = data
    a = evaluate(Scripted(answers), "nano_closed", out_dir=tmp_path / "a", data={"nano": folder})
    b = evaluate(Scripted(answers), "nano_closed", out_dir=tmp_path / "b", data={"nano": folder}, preset="medevalkit")
    d = diff(a, b)
    assert d["settings"]["preset"] == ["standard", "medevalkit"]
    move = d["benchmarks"]["nano_closed"]["metrics"]["overall_acc"]
    assert move["delta"] == pytest.approx(move["b"] - move["a"]) and move["ci_a"]
    assert "preset: 'standard' -> 'medevalkit'" in diff_markdown(d)
    from medmo.cli import main

    assert main(["eval", "diff", a["path"], b["path"]]) == 0
    assert "nano_closed overall_acc" in capsys.readouterr().out
