"""The evaluation runner end to end with a scripted backend: hand-computed scores, resume, limit, versions."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from PIL import Image

from medmo.eval.data import DataNotFoundError
from medmo.eval.registry import get
from medmo.eval.runner import evaluate
from medmo.records import Box, ImageRef, Sample

# (id, task, question, gold, options, scripted answer)
QA = [
    ("c1", "closed_vqa", "Is there a nodule?", "yes", {}, "Yes, there is."),
    ("c2", "closed_vqa", "Is there a mass?", "no", {}, "no"),
    ("c3", "closed_vqa", "Is there a cyst?", "yes", {}, "no"),
    ("c4", "closed_vqa", "Is there a lesion?", "no", {}, "I cannot tell"),
    ("m1", "mcq", "Which finding?", "B", {"A": "nodule", "B": "mass", "C": "cyst"}, "B"),
    ("m2", "mcq", "Which finding?", "A", {"A": "nodule", "B": "mass", "C": "cyst"}, "The answer is C."),
    ("o1", "open_vqa", "Where is the nodule?", "left lung", {}, "left lung"),
    ("o2", "open_vqa", "Where is the mass?", "upper right", {}, "right"),
]
# (id, gold pixel box on a 200 x 100 image, scripted answer on the 0-1000 grid)
GROUNDING = [
    ("g1", [20, 10, 120, 60], "nodule <box>[[100, 100, 600, 600]]</box>"),  # exactly the gold box: IoU 1
    ("g2", [0, 0, 100, 100], "nodule <box>[[0, 0, 250, 1000]]</box>"),  # [0, 0, 50, 100] px: IoU 0.5
    ("g3", [0, 0, 100, 100], "I see nothing."),  # no box: IoU 0
]
REPORTS = [
    ("r1", "No acute findings.", "No acute findings."),
    ("r2", "Small nodule in the left lung.", ""),
]


def _records(folder) -> dict[str, str]:
    """Write the hand-made test split; returns the scripted answer per sample id."""
    Image.new("RGB", (200, 100), (60, 60, 60)).save(folder / "img.png")
    img = [ImageRef("img.png", 200, 100)]
    samples, answers = [], {}
    for sid, task, q, gold, opts, ans in QA:
        samples.append(Sample(sid, task, "t", "test", question=q, answer=gold, options=opts, images=img))
        answers[sid] = ans
    for sid, box, ans in GROUNDING:
        samples.append(Sample(sid, "grounding", "t", "test", answer="nodule", boxes=[Box("nodule", box)], images=img))
        answers[sid] = ans
    for sid, ref, ans in REPORTS:
        samples.append(Sample(sid, "report", "t", "test", answer=ref, images=img))
        answers[sid] = ans
    with open(folder / "test.jsonl", "w") as f:
        for s in samples:
            f.write(json.dumps(s.validate().to_dict()) + "\n")
    return answers


class Scripted:
    """A backend answering from a script; records what it generated; can crash after ``fail_after`` samples."""

    def __init__(self, answers: dict[str, str], name: str = "scripted", fail_after: int | None = None):
        self.answers, self.name, self.fail_after = answers, name, fail_after
        self.generated: list[str] = []
        self.prompts: list = []

    def info(self):
        return {"kind": "scripted"}

    def generate(self, requests, *, batch_size=8):
        out = []
        for r in requests:
            if self.fail_after is not None and len(self.generated) >= self.fail_after:
                raise RuntimeError("backend died")
            self.generated.append(r.id)
            self.prompts.append(r)
            out.append(self.answers[r.id])
        return out


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "nano"
    folder.mkdir()
    return folder, _records(folder)


BENCHES = "nano_closed,nano_mcq,nano_open,nano_grounding,nano_report"


def test_scores_match_hand_computed_values(data, tmp_path):
    folder, answers = data
    res = evaluate(Scripted(answers), BENCHES, out_dir=tmp_path / "out", data={"nano": folder}, batch_size=3)
    b = res["benchmarks"]
    assert b["nano_closed"]["metrics"]["closed_acc"] == pytest.approx(0.5)  # c1 ("Yes, there is.") and c2
    assert b["nano_mcq"]["metrics"]["mcq_acc"] == pytest.approx(0.5)
    assert b["nano_open"]["metrics"]["open_acc"] == pytest.approx(0.5)  # exact match: o1 only
    assert b["nano_open"]["metrics"]["open_recall"] == pytest.approx(0.75)  # (1 + 1/2) / 2
    g = b["nano_grounding"]["metrics"]
    assert g["iou_matched_mean"] == pytest.approx(0.5, abs=1e-6)  # (1 + 0.5 + 0) / 3
    assert g["acc@0.5(first)"] == pytest.approx(2 / 3)
    r = b["nano_report"]["metrics"]
    assert r["rougeL"] == pytest.approx(0.5) and r["ratescore"] is None  # plugin without weights: n/a
    assert "not computed" in b["nano_report"]["notes"]["ratescore"]
    rows = [json.loads(x) for x in open(b["nano_grounding"]["predictions_file"])]
    assert rows[1]["pred_boxes"] == [pytest.approx([0.0, 0.0, 50.0, 100.0])]


def test_medevalkit_preset_differs_where_its_rules_do(data, tmp_path):
    folder, answers = data
    res = evaluate(Scripted(answers), "nano_closed", out_dir=tmp_path / "o", data={"nano": folder}, preset="medevalkit")
    # MedEvalKit's substring rule reads "I cannot tell" as containing "no" -> c4 counts as correct.
    assert res["benchmarks"]["nano_closed"]["metrics"]["closed_acc"] == pytest.approx(0.75)
    assert res["preset"] == "medevalkit" and res["benchmarks"]["nano_closed"]["metric_versions"]["qa_medevalkit"].startswith(
        "vqa-medevalkit"
    )


def test_results_file_records_every_setting_and_version(data, tmp_path):
    folder, answers = data
    res = evaluate(Scripted(answers, name="org/model"), "nano_closed", out_dir=tmp_path / "o", data={"nano": folder},
                   limit=3)
    on_disk = json.loads(open(res["path"]).read())
    assert on_disk["model"] == "org/model" and on_disk["limit"] == 3 and on_disk["judge"] is None
    assert set(on_disk["versions"]) >= {"medmo", "prompt", "parser", "record", "results"}
    entry = on_disk["benchmarks"]["nano_closed"]
    assert entry["n"] == 3 and entry["benchmark"]["version"] == "1" and entry["benchmark"]["prompt_version"]
    assert entry["benchmark"]["generation"]["max_new_tokens"] > 0 and entry["preset"] == "standard"
    assert entry["started"] <= entry["finished"] and "vqa" in entry["metric_versions"]


def test_killed_run_resumes_without_recomputing(data, tmp_path):
    folder, answers = data
    out = tmp_path / "out"
    dying = Scripted(answers, fail_after=5)  # dies inside the third batch of two
    with pytest.raises(RuntimeError, match="backend died"):
        evaluate(dying, "nano_closed,nano_mcq,nano_open", out_dir=out, data={"nano": folder}, batch_size=2)
    cache = out / "cache" / "scripted" / "nano_closed.jsonl"
    with open(cache, "a") as f:
        f.write('{"id": "torn')  # a write cut short by the kill
    survived = [json.loads(x)["id"] for x in open(cache).read().splitlines()[:-1]]
    assert len(survived) == 4  # two finished batches, the third lost

    again = Scripted(answers)
    res = evaluate(again, "nano_closed,nano_mcq,nano_open", out_dir=out, data={"nano": folder}, batch_size=2)
    assert sorted(again.generated) == sorted(set(answers) & {q[0] for q in QA} - set(survived))
    assert res["benchmarks"]["nano_closed"]["n_cached"] == 4 and res["benchmarks"]["nano_closed"]["n_generated"] == 0

    fresh = evaluate(Scripted(answers), "nano_closed,nano_mcq,nano_open", out_dir=tmp_path / "fresh",
                     data={"nano": folder}, batch_size=2)
    for name in ("nano_closed", "nano_mcq", "nano_open"):
        assert res["benchmarks"][name]["metrics"] == fresh["benchmarks"][name]["metrics"]

    third = Scripted(answers)
    evaluate(third, "nano_closed", out_dir=out, data={"nano": folder})
    assert third.generated == []  # everything cached now


def test_changed_prompt_version_regenerates(data, tmp_path):
    folder, answers = data
    bench = get("nano_closed")
    first = Scripted(answers)
    evaluate(first, [bench], out_dir=tmp_path, data={"nano": folder})
    second = Scripted(answers)
    evaluate(second, [replace(bench, prompt_version="other-prompts")], out_dir=tmp_path, data={"nano": folder})
    assert sorted(second.generated) == sorted(first.generated) and len(first.generated) == 4


def test_requests_carry_prompt_images_and_budget(data, tmp_path):
    folder, answers = data
    backend = Scripted(answers)
    evaluate(backend, "nano_mcq", out_dir=tmp_path, data={"nano": folder})
    req = backend.prompts[0]
    text = req.messages[0]["content"][-1]["text"]
    assert "A. nodule" in text and req.messages[0]["content"][0] == {"type": "image"}
    assert req.images[0].path == str(folder / "img.png") and req.max_new_tokens == get("nano_mcq").max_new_tokens


def test_missing_data_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDMO_DATA_VQA_RAD", raising=False)
    with pytest.raises(DataNotFoundError) as e:
        evaluate(Scripted({}), "vqa_rad", out_dir=tmp_path)
    msg = str(e.value)
    from medmo.data.sources import get_source

    assert "--data vqa_rad=PATH" in msg and "MEDMO_DATA_VQA_RAD" in msg
    assert get_source("vqa_rad").layout in msg  # the loader's expected layout, from the source registry
    monkeypatch.setenv("MEDMO_DATA_NANO", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError, match="does not exist"):
        evaluate(Scripted({}), "nano_closed", out_dir=tmp_path)


def test_env_variable_gives_the_data_folder(data, tmp_path, monkeypatch):
    folder, answers = data
    monkeypatch.setenv("MEDMO_DATA_NANO", str(folder))
    res = evaluate(Scripted(answers), "nano_open", out_dir=tmp_path)
    assert res["benchmarks"]["nano_open"]["n"] == 2


def test_bad_settings_fail_fast(tmp_path):
    with pytest.raises(ValueError, match="preset"):
        evaluate(Scripted({}), "nano_closed", out_dir=tmp_path, preset="lenient")
    with pytest.raises(ValueError, match="limit"):
        evaluate(Scripted({}), "nano_closed", out_dir=tmp_path, limit=0)


def test_run_and_score_share_one_scoring_path(data, tmp_path, monkeypatch):
    """`eval run` and `eval score` both score through medmo.eval.scoring.score with the benchmark's metrics."""
    from medmo.eval import scoring
    from medmo.eval.score import score_file

    folder, answers = data
    calls, real = [], scoring.score
    monkeypatch.setattr(scoring, "score", lambda bench, *a, **k: calls.append(bench.name) or real(bench, *a, **k))
    res = evaluate(Scripted(answers), "nano_closed,nano_report", out_dir=tmp_path, data={"nano": folder},
                   preset="medevalkit")
    rescored = score_file(res["benchmarks"]["nano_closed"]["predictions_file"], preset="medevalkit")
    assert calls == ["nano_closed", "nano_report", "nano_closed"]
    assert rescored["benchmark"] == "nano_closed" and rescored["metrics"] == ["qa_medevalkit"]


def test_unreadable_image_fails_alone_and_resumes(data, tmp_path):
    """One unreadable image: that sample is recorded as failed and scored wrong; the rest run; a rerun resumes."""
    from medmo.data.images import ImageLoadError

    folder, answers = data

    class BadImage(Scripted):
        def generate(self, requests, *, batch_size=8):
            if any(r.id == "c2" for r in requests):
                raise ImageLoadError("cannot read image img.png: UnidentifiedImageError; re-download the file")
            return super().generate(requests, batch_size=batch_size)

    res = evaluate(BadImage(answers), "nano_closed", out_dir=tmp_path, data={"nano": folder}, batch_size=4)
    entry = res["benchmarks"]["nano_closed"]
    assert [f["id"] for f in entry["failed"]] == ["c2"] and "re-download" in entry["failed"][0]["error"]
    assert entry["metrics"]["closed_acc"] == pytest.approx(0.25)  # c1 right, c2 failed (wrong), c3, c4 wrong
    assert "failed" in entry["notes"]
    again = BadImage(answers)
    res2 = evaluate(again, "nano_closed", out_dir=tmp_path, data={"nano": folder})
    assert again.generated == [] and res2["benchmarks"]["nano_closed"]["failed"] == entry["failed"]
    fixed = Scripted(answers)
    res3 = evaluate(fixed, "nano_closed", out_dir=tmp_path, data={"nano": folder}, retry_failed=True)
    assert fixed.generated == ["c2"] and res3["benchmarks"]["nano_closed"]["failed"] == []


def test_results_carry_manifest_cis_and_breakdowns(data, tmp_path):
    folder, answers = data
    res = evaluate(Scripted(answers), "nano_closed,nano_mcq", out_dir=tmp_path, data={"nano": folder}, seed=3)
    m = res["manifest"]
    assert m["seed"] == 3 and m["preset"] == "standard" and m["prompts"] == "ours" and "numpy" in m["packages"]
    assert {"prompt_version", "parser_version", "pixel_budget", "chat_template_sha1", "checkpoint_fingerprint",
            "judge"} <= set(m)
    lo, hi = res["benchmarks"]["nano_closed"]["ci"]["overall_acc"]
    assert 0.0 <= lo <= res["benchmarks"]["nano_closed"]["metrics"]["overall_acc"] <= hi <= 1.0
    again = evaluate(Scripted(answers), "nano_closed", out_dir=tmp_path / "b", data={"nano": folder}, seed=3)
    assert again["benchmarks"]["nano_closed"]["ci"] == res["benchmarks"]["nano_closed"]["ci"]  # seeded


def test_all_data_folders_are_checked_before_generating(data, tmp_path, monkeypatch):
    folder, answers = data
    monkeypatch.delenv("MEDMO_DATA_PATHVQA", raising=False)
    backend = Scripted(answers)
    with pytest.raises(DataNotFoundError, match="pathvqa"):
        evaluate(backend, "nano_closed,pathvqa", out_dir=tmp_path, data={"nano": folder})
    assert backend.generated == []


def test_source_backed_benchmark_end_to_end(tmp_path):
    """vqa_rad reads a hand-made MEVF-layout folder through medmo.data.sources."""
    root = tmp_path / "data_RAD"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (48, 48), (80, 80, 80)).save(root / "images" / "synpic1.jpg")
    rows = [  # MEVF testset.json fields; mixed casing and a trailing space as in the real file
        {"qid": 1, "image_name": "synpic1.jpg", "image_organ": "HEAD", "answer": "Yes ", "answer_type": "CLOSED",
         "question_type": "PRES", "question": "Is there a bleed?", "phrase_type": "freeform"},
        {"qid": 2, "image_name": "synpic1.jpg", "image_organ": "HEAD", "answer": "no", "answer_type": "CLOSED",
         "question_type": "PRES", "question": "Is there a mass?", "phrase_type": "freeform"},
        {"qid": 3, "image_name": "synpic1.jpg", "image_organ": "HEAD", "answer": "left temporal lobe",
         "answer_type": "OPEN", "question_type": "POS", "question": "Where is the lesion?", "phrase_type": "freeform"},
    ]
    (root / "testset.json").write_text(json.dumps(rows))
    (root / "trainset.json").write_text("[]")
    script = {"Is there a bleed?": "yes", "Is there a mass?": "yes", "Where is the lesion?": "temporal lobe"}

    class ByQuestion(Scripted):
        def generate(self, requests, *, batch_size=8):
            return [next(a for q, a in script.items() if q in r.messages[0]["content"][-1]["text"]) for r in requests]

    res = evaluate(ByQuestion({}), "vqa_rad", out_dir=tmp_path / "o", data={"vqa_rad": tmp_path})
    full = res["benchmarks"]["vqa_rad"]  # closed and all are two columns of one benchmark
    assert full["metrics"]["closed_acc"] == pytest.approx(0.5) and full["metrics"]["closed_n"] == 2
    assert full["n"] == 3 and full["metrics"]["overall_acc"] == pytest.approx(1 / 3)
    assert full["metrics"]["open_recall"] == pytest.approx(2 / 3)  # "temporal lobe" of "left temporal lobe"
