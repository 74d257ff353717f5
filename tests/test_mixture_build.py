"""Mixture builds: bad YAML, killed rebuilds, text decontamination per (source, eval set), workers, shard jobs, stages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmo.cli import main
from medmo.data.io import read_records, write_jsonl
from medmo.data.mixture import build_mixture, merge_scans, scan_jobs
from medmo.data.mixture_config import load_config, stage_names
from medmo.records import ImageRef, RecordError, Sample

QUESTIONS = [
    "A 23-year-old pregnant woman at 22 weeks gestation presents with burning upon urination that started one day ago",
    "Which of the following is the most likely cause of the patient's chest pain after a long flight from abroad",
]


@pytest.fixture()
def data(tmp_path):
    """Images, an image source (60 VQA records over 12 images), a text source (40 questions), evaluation files."""
    (tmp_path / "img").mkdir()
    for i in range(12):
        Image.fromarray(np.full((16, 16), i * 15, np.uint8)).save(tmp_path / "img" / f"{i}.png")
    vqa = [Sample(f"v{i}", "open_vqa", "V", "train", question=f"what is shown {i}?", answer="x",
                  images=[ImageRef(f"img/{i % 12}.png", 16, 16)]) for i in range(60)]  # fmt: skip
    text = [Sample(f"t{i}", "text_qa", "T", "train", question=f"Question number {i} about renal physiology and its many "
                   f"clinical consequences in adults {i}", answer="a") for i in range(38)]  # fmt: skip
    text += [Sample("t-leak", "text_qa", "T", "train", question="##Question: " + QUESTIONS[0].upper() + "?", answer="b"),
             Sample("t-short", "text_qa", "T", "train", question="What is it?", answer="c")]
    evals = [Sample("e1", "mcq", "medqa", "test", question=QUESTIONS[0], options={"A": "x", "B": "y"}, answer="A"),
             Sample("e2", "mcq", "medqa", "test", question="What is it?", options={"A": "x", "B": "y"}, answer="A"),
             Sample("e3", "open_vqa", "vqa", "test", question="what is shown 1?", answer="x",
                    images=[ImageRef("img/5.png", 16, 16)])]  # fmt: skip
    write_jsonl(vqa, tmp_path / "vqa.jsonl")
    write_jsonl(text, tmp_path / "text.jsonl")
    write_jsonl(evals[:2], tmp_path / "eval_text.jsonl")
    write_jsonl(evals[2:], tmp_path / "eval_img.jsonl")
    return tmp_path


def cfg(d: Path, **kw) -> dict:
    out = {"seed": 0, "shard_size": 16, "decontaminate_against": [str(d / "eval_text.jsonl"), str(d / "eval_img.jsonl")],
           "sources": [{"records": str(d / "vqa.jsonl")}, {"records": str(d / "text.jsonl"), "weight": 1.5}]}  # fmt: skip
    out.update(kw)
    return out


def rows(folder: Path) -> list[dict]:
    return [s.to_dict() for s in read_records(folder)]


def test_text_and_image_contamination_is_counted_per_source_and_eval_set(data):
    report = build_mixture(cfg(data), data / "out")
    v, t = report["sources"]
    assert v["contaminated"] == 5 and v["contaminated_by"] == {"eval_img.jsonl": {"image": 5, "text": 0}}
    assert t["contaminated"] == 1 and t["contaminated_by"] == {"eval_text.jsonl": {"image": 0, "text": 1}}
    pairs = {(p["train"], p["eval"]): (p["image"], p["text"], p["kept"]) for p in report["contamination"]["pairs"]}
    assert pairs == {(str(data / "vqa.jsonl"), "eval_img.jsonl"): (5, 0, False),
                     (str(data / "text.jsonl"), "eval_text.jsonl"): (0, 1, False)}  # fmt: skip
    ids = {r["id"] for r in rows(data / "out")}
    assert "t-leak" not in ids and not any(i.startswith("t-leak") for i in ids)  # normalised 13-gram match
    assert "t-short" in ids  # "What is it?" is shorter than MIN_WORDS: never matched
    listed = {x["id"]: x["eval"] for x in report["contamination"]["samples"]}
    assert listed["t-leak"] == ["eval_text.jsonl"]
    sets = {e["eval"]: e for e in report["contamination"]["eval_sets"]}
    assert sets["eval_text.jsonl"]["records"] == 2 and sets["eval_img.jsonl"]["images"] == 1


def test_allowed_contamination_is_kept_and_shown_as_training_on_evaluation_data(data):
    c = cfg(data)
    c["sources"][1] = {"records": str(data / "text.jsonl"), "allow_contamination": True, "note": "MedMO trains on it"}
    report = build_mixture(c, data / "out", workers=1)
    (t,) = report["contamination"]["trained_on_evaluation_data"]
    assert t["note"] == "MedMO trains on it" and t["kept_contaminated"] == 1 and "eval_text.jsonl" in t["overlaps"]
    assert "t-leak" in {r["id"] for r in rows(data / "out")}


def test_registered_evaluation_sources_decontaminate_too(data, monkeypatch):
    from medmo.data import mixture

    seen = {}

    def fake(name, root, split=None, **kw):
        seen[name] = (split, kw.get("check_images"))
        return iter(list(read_records(data / "eval_text.jsonl")))

    monkeypatch.setattr(mixture, "load_source", fake)
    c = cfg(data, decontaminate_against=[{"name": "medqa", "root": str(data)}])
    c["sources"] = c["sources"][1:]
    report = build_mixture(c, data / "out")
    assert seen == {"medqa": ("test", False)} and report["sources"][0]["contaminated_by"] == {"medqa:test": {"image": 0, "text": 1}}


def test_two_workers_and_shard_jobs_merged_give_the_one_machine_output(data):
    one = build_mixture(cfg(data), data / "one", workers=1)
    two = build_mixture(cfg(data), data / "two", workers=2)
    assert rows(data / "one") == rows(data / "two") and one["written"] == two["written"] == 55 + round(39 * 1.5)
    for k in range(3):  # three "machines", one per shard, each scanning every source
        scan_jobs(cfg(data), data / "scans", (k, 3))
    merged = merge_scans(cfg(data), data / "scans", data / "merged")
    assert rows(data / "merged") == rows(data / "one") and merged["sources"] == one["sources"]


def test_a_missing_scan_job_is_named_before_anything_is_written(data):
    scan_jobs(cfg(data), data / "scans", (0, 2), source=0)
    scan_jobs(cfg(data), data / "scans", (1, 2), source=0)
    scan_jobs(cfg(data), data / "scans", (0, 2), source=1)
    with pytest.raises(FileNotFoundError, match=r"source #2 .* incomplete .*shard-0000-of-0002"):
        merge_scans(cfg(data), data / "scans", data / "merged")
    assert not (data / "merged").exists()


def _mix(d: Path, text: str) -> Path:
    p = d / "mix.yaml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    "body,message",
    [
        ("sources:\n  - {records: vqa.jsonl, weight: abc}\n", "weight must be a number, got the text 'abc'"),
        ("sources:\n  - {records: vqa.jsonl, weight: 1.0e9}\n", "YAML 1.1 reads a number like 1.0e9 as text"),
        ("sources:\n  - {records: vqa.jsonl, weight: .inf}\n", "weight must be between 0 and 1000"),
        ("sources:\n  - {records: vqa.jsonl, weight: -1}\n", "weight must be between 0 and 1000"),
        ("shard_size: big\nsources:\n  - {records: vqa.jsonl}\n", "shard_size must be a whole number, got 'big'"),
        ("sources:\n  - {records: vqa.jsonl\n", "not valid YAML (line 3, column 1)"),
        ("prefix: ../x\nsources:\n  - {records: vqa.jsonl}\n", "prefix '../x' must be a plain file-name prefix"),
        ("sources:\n  - {records: vqa.jsonl, max_samples: 1.5}\n", "max_samples must be a whole number"),
        ("sources: {records: vqa.jsonl}\n", "lists no sources"),
        ("- a\n- b\n", "a mixture is a mapping"),
        ("strict: 1\nsources:\n  - {records: vqa.jsonl}\n", "strict must be true or false, got 1"),
    ],
)
def test_bad_mixture_yaml_is_a_clear_error_not_a_traceback(data, capsys, body, message):
    path = _mix(data, body)
    assert main(["data", "build", str(path), "--out", str(data / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and str(path) in err
    assert not (data / "out").exists() and not (data.parent / "x").exists()


def test_prefix_cannot_reach_outside_out_and_foreign_files_are_never_deleted(data, capsys):
    (data / "victim-00000.parquet").write_text("not ours")
    with pytest.raises(ValueError, match="plain file-name prefix"):
        build_mixture({**cfg(data), "prefix": "../victim"}, data / "out")
    assert (data / "victim-00000.parquet").read_text() == "not ours"
    (data / "out").mkdir()
    (data / "out" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds files a mixture build did not write"):
        build_mixture(cfg(data), data / "out")
    assert (data / "out" / "notes.txt").read_text() == "mine"


def test_a_failed_rebuild_leaves_the_previous_build_whole(data, monkeypatch):
    from medmo.data import mixture

    first = build_mixture(cfg(data), data / "out")
    before = rows(data / "out")

    def broken(*a, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(mixture, "write_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        build_mixture(cfg(data, seed=5), data / "out")
    assert rows(data / "out") == before
    assert json.loads((data / "out" / "mixture_report.json").read_text())["written"] == first["written"]
    assert (data / "out" / ".image_hashes.sqlite").is_file()  # the cache was put back
    assert not list(data.glob(".out.building-*"))


def test_a_killed_rebuild_never_looks_complete(data):
    """SIGKILL a rebuild right after it wrote its first shard: the old build and its report stay as they were."""
    build_mixture(cfg(data), data / "out")
    before, report = rows(data / "out"), (data / "out" / "mixture_report.json").read_text()
    code = f"""
import os, signal, json
import medmo.data.mixture as m
real = m.write_parquet
def killing(samples, out, **kw):
    def gen():
        for i, s in enumerate(samples):
            if i == 20:
                os.kill(os.getpid(), signal.SIGKILL)
            yield s
    return real(gen(), out, **kw)
m.write_parquet = killing
m.build_mixture(json.loads({json.dumps(json.dumps(cfg(data, seed=9)))}), {str(data / 'out')!r})
"""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -9, done.stderr
    assert list(data.glob(".out.building-*"))  # the unfinished build is beside out, under another name
    assert rows(data / "out") == before and (data / "out" / "mixture_report.json").read_text() == report
    assert main(["data", "validate", str(data / "out")]) == 0
    build_mixture(cfg(data, seed=9), data / "out")  # the next build removes the dead one's folder
    assert not list(data.glob(".out.building-*")) and rows(data / "out") != before


def test_stages_file_and_data_dir(data, capsys):
    path = _mix(data, "data_dir: /nowhere\nseed: 1\ndecontaminate_against: [eval_img.jsonl]\nstages:\n"
                      "  sft: {expected_records: 100, sources: [{records: '{data_dir}/vqa.jsonl'}]}\n"
                      "  grpo: {seed: 2, sources: [{records: '{data_dir}/text.jsonl', max_samples: 3}]}\n")  # fmt: skip
    assert stage_names(path) == ["sft", "grpo"]
    with pytest.raises(ValueError, match=r"choose one with --stage \(sft, grpo\)"):
        load_config(path)
    c = load_config(path, "grpo", data_dir=str(data))
    assert (c.seed, c.stage, c.sources[0].records) == (2, "grpo", str(data / "text.jsonl"))
    assert main(["data", "build", str(path), "--out", str(data / "stages"), "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "stage sft: 55 records (MedMO: 100)" in out and "stage grpo: 3 records" in out
    assert (data / "stages" / "sft" / "mixture_report.json").is_file() and (data / "stages" / "grpo").is_dir()
    assert main(["data", "build", str(path), "--out", str(data / "x"), "--stage", "rl"]) == 2
    assert "no stage 'rl'" in capsys.readouterr().err


def test_missing_skip_leaves_out_and_reports_absent_sources_and_eval_sets(data, capsys):
    c = cfg(data, missing="skip")
    c["sources"].append({"name": "vqa_rad", "root": str(data / "no_vqa_rad")})
    c["decontaminate_against"].append({"name": "slake", "root": str(data / "no_slake"), "split": "test"})
    report = build_mixture(c, data / "out")
    absent = {s["source"]: s.get("missing") for s in report["sources"]}
    assert "does not exist" in absent["vqa_rad"] and absent[str(data / "vqa.jsonl")] is None
    sets = {e["eval"]: e for e in report["contamination"]["eval_sets"]}
    assert "does not exist" in sets["slake:test"]["missing"] and not sets["eval_img.jsonl"].get("missing")
    assert report["written"] == len(rows(data / "out")) > 0
    c.pop("missing")  # the default is an error naming the folder
    with pytest.raises(Exception, match="no_slake does not exist"):
        build_mixture(c, data / "out2")
    c["sources"][-1]["optional"] = True
    c["decontaminate_against"][-1]["optional"] = True
    assert build_mixture(c, data / "out2")["written"] == report["written"]


def test_a_records_evaluation_set_can_be_limited_to_one_split(data):
    c = cfg(data, decontaminate_against=[{"records": str(data / "eval_img.jsonl"), "split": "validation"}])
    report = build_mixture(c, data / "out")
    assert report["contamination"]["count"] == 0  # eval_img.jsonl's record is a test record
    assert report["contamination"]["eval_sets"][0]["eval"] == "eval_img.jsonl:validation"
    c["decontaminate_against"][0]["split"] = "test"
    assert build_mixture(c, data / "out")["contamination"]["count"] == 5


def test_evaluation_records_with_a_repeated_id_are_decontaminated_against_and_reported(data, capsys):
    """Each record of an evaluation file counts, whatever its id: a repeated id is listed, never left out."""
    e3 = Sample("e3", "open_vqa", "vqa", "test", question="what is shown?", answer="x", images=[ImageRef("img/5.png", 16, 16)])
    again = Sample("e3", "open_vqa", "vqa", "test", question="and here?", answer="y", images=[ImageRef("img/7.png", 16, 16)])
    path = write_jsonl([e3, again], data / "eval_dup.jsonl")
    path.write_text(path.read_text() + '{"id": "e4", "task"\n')
    c = cfg(data, decontaminate_against=[str(path)])
    report = build_mixture(c, data / "out")
    assert report["sources"][0]["contaminated_by"] == {"eval_dup.jsonl": {"image": 10, "text": 0}}  # 5 + 5 images
    (e,) = report["contamination"]["eval_sets"]
    assert (e["records"], e["images"], e["duplicate_ids"], e["skipped"], e["skip_reasons"]) == (2, 2, 1, 1, {"malformed_json": 1})
    assert e["duplicate_id_examples"] == [f"{path} line 2: duplicate_id: id 'e3' is already used by an earlier record "
                                          "(line 1); ids must be unique: rename or drop one of them"]  # fmt: skip
    assert len(e["problems"]) == 1 and e["problems"][0].startswith(f"{path} line 3: malformed_json: Expecting")
    assert main(["data", "build", str(_mix(data, json.dumps(c))), "--out", str(data / "cli")]) == 0
    out = capsys.readouterr().out
    assert "evaluation set eval_dup.jsonl: 1 records repeat an earlier record's id (still decontaminated against" in out
    assert f"    {path} line 2: duplicate_id: id 'e3'" in out
    assert "evaluation set eval_dup.jsonl: 1 records skipped (malformed_json: 1), not decontaminated against" in out
    with pytest.raises(RecordError, match=r"eval_dup.jsonl:3: malformed_json"):  # strict: a bad evaluation record stops
        build_mixture(c, data / "out", strict=True)
    path.write_text("\n".join(path.read_text().splitlines()[:2]) + "\n")
    assert build_mixture(c, data / "out", strict=True)["contamination"]["eval_sets"][0]["duplicate_ids"] == 1


def test_strict_comes_from_the_mixture_or_the_call_and_reaches_every_reader(data, monkeypatch):
    from medmo.data import mixture

    seen = {}

    def fake(name, root, split=None, **kw):
        seen[name] = kw.get("strict")
        return iter(list(read_records(data / "eval_text.jsonl")))

    monkeypatch.setattr(mixture, "load_source", fake)
    (data / "img" / "3.png").unlink()
    c = cfg(data, strict=True, decontaminate_against=[{"name": "medqa", "root": str(data)}])
    missing = rf"{data / 'vqa.jsonl'}: record 'v3': image {data / 'img' / '3.png'} cannot be read \(No such file"
    with pytest.raises(RecordError, match=missing):
        build_mixture(c, data / "out", workers=2)
    assert seen == {"medqa": True} and not (data / "out").exists() and not list(data.glob(".out.*"))
    with pytest.raises(RecordError, match=missing):
        scan_jobs(c, data / "scans", (0, 1))
    report = build_mixture(c, data / "out", strict=False)  # the call wins over the file
    v = report["sources"][0]
    assert seen == {"medqa": False} and v["skip_reasons"] == {"missing_image": 5} and len(v["problems"]) == 5
    assert report["config"]["strict"] is False and v["problems"][0].startswith(f"{data / 'vqa.jsonl'}: record 'v3'")


def test_a_records_file_listed_by_several_sources_is_parsed_once_and_again_when_it_changes(data, monkeypatch):
    from medmo.data import mixture

    calls = []

    def counting(path, **kw):
        calls.append(Path(path).name)
        return read_records(path, **kw)

    monkeypatch.setattr(mixture, "read_records", counting)
    monkeypatch.setattr(mixture, "_reused", None)
    vqa = str(data / "vqa.jsonl")
    c = cfg(data, dedup=False, decontaminate_against=[], sources=[
        {"records": vqa}, {"records": vqa, "weight": 2.0, "where": {"answer": "y"}}, {"records": vqa, "max_samples": 5}])
    once = build_mixture(c, data / "once")
    assert calls == ["vqa.jsonl"]
    monkeypatch.setattr(mixture, "_REUSE_MAX_BYTES", 0)  # stream every source, as for a large file
    every = build_mixture(c, data / "every")
    assert calls == ["vqa.jsonl"] * 4
    assert rows(data / "once") == rows(data / "every") and once["sources"] == every["sources"]
    assert [s["selected"] for s in once["sources"]] == [60, 0, 5]
    monkeypatch.setattr(mixture, "_REUSE_MAX_BYTES", 32 << 20)
    write_jsonl([Sample("n0", "open_vqa", "V", "train", question="what now?", answer="y",
                        images=[ImageRef("img/0.png", 16, 16)])], data / "vqa.jsonl")  # fmt: skip
    changed = build_mixture(c, data / "changed")
    assert calls[4:] == ["vqa.jsonl"] and [s["selected"] for s in changed["sources"]] == [1, 2, 1]
