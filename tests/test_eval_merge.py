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


@pytest.mark.slow
def test_a_torchrun_launched_run_shards_itself_and_merges_to_the_one_process_results(data, tmp_path):
    """``torchrun --nproc_per_node 2 -m medmo.cli eval run ... --shard auto``: each process takes its shard, the
    first merges; the merged file scores like one process (corpus metrics over the whole set)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from medmo.cli import main
    from tests.test_distributed import _free_port

    folder, _ = data
    args = ["eval", "run", str(folder / "test.jsonl"), "--backend", "baseline", "--bench", BENCHES,
            "--data", f"nano={folder}", "--seed", "5"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    root = Path(__file__).parents[1]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(_free_port()), "-m", "medmo.cli", *args, "--shard", "auto", "--out", str(tmp_path / "two")],
                          env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "shard 1/2:" in done.stdout and done.stdout.count("results: ") == 1  # the first process merged
    one, two = (json.loads(next((tmp_path / d).glob("results-*standard.json")).read_text()) for d in ("one", "two"))
    assert sorted(p.name for p in (tmp_path / "two").glob("results-*.json")) == [
        "results-baseline-standard.json", "results-baseline-standard.shard-0-of-2.json",
        "results-baseline-standard.shard-1-of-2.json"]
    for name in BENCHES.split(","):
        a, b = one["benchmarks"][name], two["benchmarks"][name]
        assert {k: a[k] for k in STABLE} == {k: b[k] for k in STABLE}, name
    assert two["manifest"]["shard"] is None and len(two["manifest"]["merged_from"]) == 2


def test_shard_auto_without_a_launcher_is_one_process_and_a_bare_world_size_is_refused(monkeypatch):
    from medmo.eval.launched import auto_shard

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert auto_shard() is None
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(ValueError, match="torchrun or accelerate launch"):
        auto_shard()
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    assert auto_shard() == (3, 4)
