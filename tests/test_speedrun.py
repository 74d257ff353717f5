"""The main job: a chain of public commands. Installed from a built wheel, `medmo speedrun --quick` runs
every step from an empty folder and writes the report; the chain recipe and the report's parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from medmo import recipes
from medmo.records import Box, ImageRef, Sample
from medmo.speedrun import load_chain
from medmo.speedrun_report import breakdown

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    """A fresh virtual environment with MedMO installed from its wheel (the dependencies reused from this one)."""
    work = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(work / "dist"), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((work / "dist").glob("medmo-*.whl"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # reuse the installed dependencies, but not this checkout's editable medmo
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                    "--ignore-installed",
                    str(wheel)], check=True, timeout=600, capture_output=True)  # fmt: skip
    return venv


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


@pytest.mark.slow
def test_the_wheel_runs_the_quick_speedrun_from_an_empty_folder(wheel_venv, tmp_path):
    medmo = wheel_venv / "bin" / "medmo"
    where = subprocess.run([str(wheel_venv / "bin" / "python"), "-c", "import medmo; print(medmo.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path, env=_env()).stdout
    assert str(ROOT) not in where and "site-packages" in where  # the wheel's copy, not this checkout
    cmd = [str(medmo), "speedrun", "--quick", "--out", ".", "--name", "ci"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, cwd=tmp_path, env=_env())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    run = tmp_path / "ci"
    chain = load_chain(quick=True)
    for name, argv in chain:
        marker = json.loads((run / "stages" / f"{name}.json").read_text())
        assert marker["seconds"] > 0 and marker["peak_rss_mb"] > 0 and marker["command"].startswith("medmo "), name
        assert f"$ {marker['command']}" in done.stdout  # each step is printed as the command a user types
    for stage in ("align", "grounding", "sft", "grpo"):
        assert (run / stage / "config.json").is_file(), f"{stage} saved no loadable model"
        assert (run / stage / "preprocessor_config.json").is_file()
    report = (run / "report.md").read_text()
    for row in ("trivial baseline", "after alignment", "after grounding", "after instruction tuning", "after GRPO"):
        assert row in report
    assert "nano grounding" in report and "peak RSS" in report and "medmo train nano/sft" in report
    assert "Seed 0;" in report and " cores, training in " in report  # which machine made these figures
    assert "By question type and findings count" in report and "mcq: modality" in report
    headroom = json.loads((run / "eval" / "headroom-sft.json").read_text())
    group = yaml.safe_load(recipes.path("nano/grpo").read_text())["trl"]["num_generations"]  # samples per prompt
    assert headroom["tasks"]["grounding"]["prompts"] == 4 and headroom["tasks"]["grounding"]["k"] == group
    assert "What GRPO had to learn from" in report and "| after GRPO |" in report
    assert (run / "report" / "curves.png").stat().st_size > 1000
    page = (run / "report.html").read_text()
    assert "<table>" in page and "data:image/png;base64," in page

    # A second run resumes: every step is already done, nothing is recomputed.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=_env())
    assert again.returncode == 0
    assert again.stdout.count("done earlier, skipping") == len(chain)


def test_the_chain_is_public_commands_and_quick_only_appends():
    full, quick = load_chain(), load_chain(quick=True)
    assert [n for n, _ in full] == [n for n, _ in quick]
    for (name, a), (_, b) in zip(full, quick):
        assert a[0] == "medmo" and b[: len(a)] == a, name
    names = [n for n, _ in full]
    assert names.index("align") < names.index("grounding") < names.index("sft") < names.index("grpo")
    steps = dict(full)
    assert steps["sft"] == ["medmo", "train", "nano/sft", "seed=0"]  # step counts live in the recipe, not the chain
    assert all("max_steps" not in " ".join(argv) for argv in steps.values())


def test_one_seed_seeds_the_data_the_model_and_every_stage():
    steps = dict(load_chain(seed=3))
    assert steps["data"][steps["data"].index("--seed") + 1] == "3"
    assert steps["model"][steps["model"].index("--seed") + 1] == "3"
    for stage in ("align", "grounding", "sft", "grpo", "headroom-sft"):
        assert "seed=3" in steps[stage], stage
    assert not any("{seed}" in " ".join(argv) for argv in steps.values())


def test_a_chain_with_other_than_medmo_commands_is_refused(tmp_path):
    bad = tmp_path / "chain.yaml"
    bad.write_text("steps:\n  one: rm -rf data\n")
    with pytest.raises(ValueError, match="must be a `medmo ...` command"):
        load_chain(str(bad))
    bad.write_text("steps:\n  one: medmo data sources\nquick:\n  two: --x\n")
    with pytest.raises(ValueError, match="quick names no step"):
        load_chain(str(bad))


def test_a_failed_step_keeps_the_finished_ones_and_names_the_command(tmp_path):
    from medmo.speedrun import speedrun

    chain = tmp_path / "chain.yaml"
    chain.write_text("steps:\n  ok: medmo recipes ls\n  broken: medmo train nano/nope\n")
    with pytest.raises(RuntimeError, match="step 'broken' failed .*medmo train nano/nope"):
        speedrun(tmp_path / "run", recipe=str(chain))
    assert json.loads((tmp_path / "run" / "stages" / "ok.json").read_text())["command"] == "medmo recipes ls"


def test_recipes_command_lists_prints_and_copies(tmp_path, capsys):
    from medmo.cli import main

    assert main(["recipes"]) == 0 and "nano/speedrun" in capsys.readouterr().out
    assert main(["recipes", "path", "nano/sft"]) == 0 and capsys.readouterr().out.strip() == str(recipes.path("nano/sft"))
    assert main(["recipes", "cp", "nano/sft", str(tmp_path)]) == 0
    assert (tmp_path / "sft.yaml").read_text() == recipes.path("nano/sft").read_text()


def test_nano_mixture_repeats_tasks_from_the_run_folder(tmp_path, monkeypatch):
    # paths of shipped recipes mean the working directory: `make demo` builds under the relative runs/nano
    from medmo.data.io import read_records
    from medmo.data.mixture import build_mixture
    from medmo.data.synth import build_nano

    run = tmp_path / "runs" / "nano"
    build_nano(run / "data", n_train=24, n_val=2, n_test=2)
    monkeypatch.chdir(run)
    report = build_mixture("nano/mixture", "data/mixtures/sft", stage="sft")
    assert [src["skipped"] for src in report["sources"]] == [0, 0, 0, 0, 0]
    base, grounding, two, caption, mcq = (src["selected"] for src in report["sources"])
    sources = yaml.safe_load(recipes.path("nano/mixture").read_text())["stages"]["sft"]["sources"]
    weights = [src.get("weight", 1.0) for src in sources]
    w_grounding, w_two, w_caption, w_mcq = (int(w) for w in weights[1:])
    assert caption == w_caption * 24 and mcq == w_mcq * 24  # every training image has one of each
    assert grounding == w_grounding * (grounding // w_grounding) > 0 and two == w_two * (two // w_two) > 0
    assert report["written"] == base + grounding + two + caption + mcq
    third = [s for s in read_records("data/mixtures/sft") if "-s2" in s.id]  # the third source's copies
    assert len(third) == two and all(s.task == "grounding" and s.meta["n_findings"] == 2 for s in third)
    # the grounding stage is grounding-heavy, on its easy images, and keeps every other task
    heavy = build_mixture("nano/mixture", "data/mixtures/grounding", stage="grounding")
    every, repeated = (src["selected"] for src in heavy["sources"])
    assert repeated == 20 * (repeated // 20) > every / 2 and heavy["written"] == every + repeated
    easy = [s for s in read_records("data/mixtures/grounding") if s.id.endswith("-r1")]
    assert easy and all(s.task == "grounding" and s.meta["background"] == "flat" and len(s.boxes) == 1 for s in easy)


def test_breakdown_splits_accuracy_by_question_type_and_iou_by_findings(tmp_path):
    from medmo.data.io import write_jsonl

    img, opts = [ImageRef("a.png", 128, 128)], {"A": "CT", "B": "MRI", "C": "X-ray"}

    def mcq(sid: str, kind: str) -> Sample:
        return Sample(sid, "mcq", "nano_synth", "test", images=img, question="Which?", options=opts, answer="A",
                      meta={"question_type": kind})

    recs = [
        mcq("q1", "modality"), mcq("q2", "modality"), mcq("q3", "quadrant"),
        Sample("g1", "grounding", "nano_synth", "test", images=img, answer="mass", boxes=[Box("mass", [0, 0, 9, 9])],
               meta={"findings": [["mass", 0, 0, 9, 9], ["nodule", 50, 50, 60, 60]]}),
    ]
    write_jsonl(recs, tmp_path / "test.jsonl")
    mcq = tmp_path / "mcq.jsonl"
    mcq.write_text("\n".join(json.dumps({"id": i, "correct": c}) for i, c in (("q1", 1.0), ("q2", 0.0), ("q3", 1.0))))
    ground = tmp_path / "ground.jsonl"
    ground.write_text(json.dumps({"id": "g1", "iou_matched": 0.25}))
    results = {"sft": {"benchmarks": {"nano_mcq": {"predictions_file": str(mcq)},
                                      "nano_grounding": {"predictions_file": str(ground)}}}}
    cols, table = breakdown(results, tmp_path / "test.jsonl")
    assert table["sft"]["mcq: modality"] == "50.0 (2)"
    assert table["sft"]["mcq: quadrant"] == "100.0 (1)"
    assert table["sft"]["grounding IoU, 2 findings"] == "25.0 (1)"
    assert set(cols) == {"mcq: modality", "mcq: quadrant", "grounding IoU, 2 findings"}


def test_repeated_entries_of_one_file_keep_every_id_unique(tmp_path, monkeypatch):
    from medmo.data.io import read_records
    from medmo.data.mixture import build_mixture
    from medmo.data.synth import build_nano

    build_nano(tmp_path / "data", n_train=6, n_val=1, n_test=1)
    monkeypatch.chdir(tmp_path)
    report = build_mixture("nano/mixture", "data/sft", stage="sft")
    ids = [s.id for s in read_records(tmp_path / "data" / "sft")]
    assert len(ids) == len(set(ids)) == report["written"]  # none dropped as a duplicate id when read back
