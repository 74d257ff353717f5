"""``--preset medevalkit`` reproduces MedEvalKit's own verdicts, stored as golden fixtures.

``tests/fixtures/medevalkit/`` holds 1,300+ model outputs we wrote (letters in every form, think tags,
``\\boxed{}``, markdown, fullwidth and Chinese prefixes, empty and truncated answers, yes/no phrasings, open
answers, reports) for items in each benchmark's released field shapes, with the verdicts and metrics that
MedEvalKit's own code (commit 9b12e3b, run unedited) gave them: ``qa.jsonl`` (+ ``qa_meta.json``: items,
aggregates, prompts), ``mmmu.jsonl`` and ``reports.jsonl``. Each test below turns the items into MedMO records
the way our loaders do and checks the preset against every stored verdict.

A second set (``make_extra.py`` rebuilds it) runs the released file layouts through our loaders: OmniMedVQA
records whose ``gt_answer`` is not (exactly) among the options (``omnimedvqa/`` + ``omnimedvqa.jsonl``),
PMC-VQA's ``test_2.csv`` (``pmc_vqa_2/`` + ``pmc_vqa_2.jsonl``), MMMU items with unstripped options, an
"open" item with options and a multiple-choice item MedEvalKit crashes on (``mmmu_extra*``), and cidereval's
``df="corpus"`` CIDEr (``reports_cider_corpus.json``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmo.eval import registry
from medmo.eval.metrics import medevalkit_bench as meb
from medmo.records import LETTERS, Sample

FIX = Path(__file__).parent / "fixtures" / "medevalkit"
QA = [json.loads(x) for x in (FIX / "qa.jsonl").read_text(encoding="utf-8").splitlines()]
META = json.loads((FIX / "qa_meta.json").read_text(encoding="utf-8"))
ITEMS = META["items"]


def _yes_no(a: str) -> str:
    return a.strip().lower() if a.strip().lower() in ("yes", "no") else a.strip()


def to_sample(bench: str, it: dict) -> Sample:
    """A native item as our loader of that benchmark turns it into a record."""
    base = dict(id=f"{bench}-x", source=bench, split="test", question=str(it.get("question", it.get("Question", ""))))
    if bench in ("vqa_rad", "pathvqa"):
        ans = _yes_no(it["answer"])
        meta = {"answer_raw": it["answer"]} if it["answer"] != ans else {}
        return Sample(task="closed_vqa" if ans in ("yes", "no") else "open_vqa", answer=ans, meta=meta, **base)
    if bench == "slake":
        meta = {"answer_type": it["answer_type"], "answer_raw": it["answer"]}
        task = "closed_vqa" if it["answer_type"] == "CLOSED" else "open_vqa"
        return Sample(task=task, answer=_yes_no(it["answer"]), language=it["q_lang"], meta=meta, **base)
    if bench == "pmc_vqa":
        opts = dict(zip("ABCD", it["choices"]))
        return Sample(task="mcq", answer=it["Answer"], options=opts, **base)
    if bench == "omnimedvqa":
        opts = {k: it[f"option_{k}"] for k in "ABCD" if f"option_{k}" in it}
        letter = next(k for k, v in opts.items() if v.strip().lower() == it["gt_answer"].strip().lower())
        meta = {"gt_answer": it["gt_answer"], "question_type": it["question_type"],
                "modality_type": it["modality_type"]}
        return Sample(task="mcq", answer=letter, options=opts, meta=meta, **base)
    if bench.startswith("medxpertqa") or bench in ("medqa", "medbullets_op4"):
        return Sample(task="mcq", answer=it.get("label") or it["answer_idx"], options=dict(it["options"]), **base)
    if bench == "medmcqa":
        opts = {k: it[f"op{k.lower()}"] for k in "ABCD"}
        return Sample(task="mcq", answer="ABCD"[it["cop"]], options=opts, **base)
    if bench == "pubmedqa":
        d = it["data"]
        return Sample(task="mcq", answer=d["Correct Option"], options=dict(d["Options"]), **base)
    if bench == "mmlu_med":
        return Sample(task="mcq", answer="ABCD"[it["answer"]], options=dict(zip("ABCD", it["choices"])), **base)
    if bench == "medbullets_op5":
        opts = {k: it[f"op{k.lower()}"] for k in "ABCDE"}
        return Sample(task="mcq", answer=it["answer_idx"], options=opts, **base)
    if bench == "supergpqa_med":
        opts = {LETTERS[i]: o for i, o in enumerate(it["options"])}
        return Sample(task="mcq", answer=it["answer_letter"], options=opts, **base)
    raise KeyError(bench)


def _rows(bench):
    return [r for r in QA if r["bench"] == bench]


@pytest.mark.parametrize("bench", sorted({r["bench"] for r in QA}))
def test_every_qa_verdict_matches_medevalkit(bench):
    profile = registry.get(bench).medevalkit
    rows = _rows(bench)
    samples = [to_sample(bench, ITEMS[bench][r["item"]]) for r in rows]
    res = meb.score(samples, [r["prediction"] for r in rows], profile)
    bad = []
    for r, got in zip(rows, res["per_sample"]):
        want = r["mek"]
        if "crash" in want:  # MedEvalKit raised here: we score it wrong and say what it would have raised
            if got.get("mek_crash") != want["crash"] or got["correct"] != 0.0:
                bad.append((r["style"], r["prediction"], want, got.get("mek_crash")))
            continue
        if got["correct"] != float(want["correct"]):
            bad.append((r["style"], r["prediction"], want["correct"], got["correct"]))
        for k, v in (want.get("metrics") or {}).items():
            mine = {"em": got["em"], "precision": got.get("printed_precision"), "recall": got.get("printed_recall"),
                    "f1": got.get("printed_f1")}.get(k, got.get(k))
            if mine != pytest.approx(float(v), rel=1e-9, abs=1e-12):
                bad.append((r["style"], r["prediction"], k, v, mine))
    assert not bad, f"{len(bad)} of {len(rows)} differ: {bad[:5]}"


@pytest.mark.parametrize("bench", sorted({r["bench"] for r in QA}))
def test_benchmark_totals_match_medevalkit(bench):
    agg = META["aggregates"][bench]
    rows = _rows(bench)
    if "crash" in agg["all"]:  # the full set aborts MedEvalKit; its totals exist for the rest
        assert any("crash" in r["mek"] for r in rows)
        keep = agg["without_crashes"]["rows"]
        want = agg["without_crashes"]["metrics"]
    else:
        keep, want = range(len(rows)), agg["all"]["metrics"]
    rows = [rows[i] for i in keep]
    res = meb.score([to_sample(bench, ITEMS[bench][r["item"]]) for r in rows], [r["prediction"] for r in rows],
                    registry.get(bench).medevalkit)
    got = res["aggregate"]
    assert got["overall_acc"] == pytest.approx(want["total metrics"]["acc"])
    if "close" in want:
        assert got["closed_acc"] == pytest.approx(want["close"]["acc"])
        assert got["open_acc"] == pytest.approx(want["open"]["em"])
        for k in ("bleu1", "bleu4", "rouge1", "rougel"):
            assert got[f"open_{k}"] == pytest.approx(want["open"][k], rel=1e-9)
        assert got["open_printed_f1"] == pytest.approx(want["open"]["f1"])


# ------------------------------------------------------------------------------------------------ MMMU
MMMU = [json.loads(x) for x in (FIX / "mmmu.jsonl").read_text(encoding="utf-8").splitlines()]
MMMU_META = json.loads((FIX / "mmmu_meta.json").read_text(encoding="utf-8"))


def _mmmu_sample(it: dict) -> Sample:
    import ast

    opts = {LETTERS[i]: o for i, o in enumerate(ast.literal_eval(it["options"]))}
    mcq = it["question_type"] == "multiple-choice"
    return Sample(id=it["id"], task="mcq" if mcq else "open_vqa", source="mmmu_med", split="validation",
                  question=it["question"], answer=it["answer"], options=opts if mcq else {},
                  meta={"subject": it["subject"]})


def test_mmmu_verdicts_alone_and_in_medevalkit_order():
    items = MMMU_META["items"]
    profile = registry.get("mmmu_med").medevalkit
    for r in MMMU:  # each sample alone: eval.py's seed 42, then one draw at most
        got = meb.score([_mmmu_sample(items[r["item"]])], [r["prediction"]], profile)["per_sample"][0]
        assert got["correct"] == float(r["mek"]["correct"]), r
        assert got.get("random_guess", False) == bool(r["mek"].get("random")), r
        assert got["parsed"] == r["mek"]["parsed"] or got.get("random_guess"), r
    agg = MMMU_META["aggregate"]
    order = agg["order"]  # the whole benchmark, subjects in MedEvalKit's order, one seeded RNG
    res = meb.score([_mmmu_sample(items[MMMU[j]["item"]]) for j in order], [MMMU[j]["prediction"] for j in order],
                    profile)
    assert [row["correct"] for row in res["per_sample"]] == [float(MMMU[j]["mek"]["correct_in_run"]) for j in order]
    assert res["aggregate"]["overall_acc"] == pytest.approx(agg["metrics"]["total"]["acc"])
    assert res["aggregate"]["random_guesses"] == len(agg["draws"])


# --------------------------------------------------------------------------------------------- reports
REPORTS = [json.loads(x) for x in (FIX / "reports.jsonl").read_text(encoding="utf-8").splitlines()]
REP_META = json.loads((FIX / "reports_meta.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def coco_df(tmp_path_factory):
    """The document-frequency table the fixtures were scored with (built from our own reports corpus)."""
    p = tmp_path_factory.mktemp("df") / "df.json"
    p.write_text(json.dumps(REP_META["document_frequencies"]))
    return str(p)


def _reference(r):
    from medmo.eval.metrics.medevalkit_report import reference_text

    it = REP_META["items"][r["item"]]
    return reference_text(it["findings"], it["impression"])


@pytest.mark.parametrize("bench", ["iu_xray", "mimic_cxr", "chexpert_plus"])
def test_report_metrics_match_medevalkit(bench, coco_df):
    from medmo.eval.metrics.medevalkit_report import ptb_tokenize, report_medevalkit

    rows = [r for r in REPORTS if r["bench"] == bench]
    res = report_medevalkit([r["prediction"] for r in rows], [_reference(r) for r in rows], df_path=coco_df)
    exact_ptb = "tokens=ptb " in res["version"]
    assert res["version"].endswith("df=file") and "deviations" not in res  # the table given: no deviation
    for r, got in zip(rows, res["per_sample"]):
        want = r["mek"]
        if want.get("skipped"):
            assert got.get("mek_skipped") and "cider" not in got
        elif "crash" in want:
            assert got["mek_crash"] == want["crash"] and got["rougeL"] == 0.0
        else:
            for k in ("bleu1", "bleu2", "bleu3", "bleu4", "rouge1", "rouge2", "rougeL"):
                assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-300), (r["style"], k)
            if exact_ptb:
                assert got["cider"] == pytest.approx(want["cider"], rel=1e-9, abs=1e-12), r["style"]
    ok = REP_META["aggregates"][bench]["without_crashes"]
    keep = [rows[i] for i in ok["rows"]]
    agg = report_medevalkit([r["prediction"] for r in keep], [_reference(r) for r in keep], df_path=coco_df)
    for k in ("bleu1", "bleu4", "rouge1", "rougeL") + (("cider",) if exact_ptb else ()):
        assert agg["aggregate"][k] == pytest.approx(ok[k], rel=1e-9), k
    assert "crash" in REP_META["aggregates"][bench]["all"] and res["aggregate"]["mek_crashes"] > 0
    assert ptb_tokenize(["A test."])[0][0] == ["a", "test"]


# --------------------------------------------------------------------------------------------- prompts
@pytest.mark.parametrize("bench", sorted(META["prompts"]))
@pytest.mark.parametrize("reasoning", ["False", "True"])
def test_medevalkit_prompts_match_its_classes(bench, reasoning):
    from medmo.eval.prompts_medevalkit import prompt_text

    items = ITEMS[bench]
    if bench == "supergpqa_med":
        items = [it for it in items if it["discipline"] == "Medicine"]
    if bench == "omnimedvqa":  # load order of MedEvalKit's file listing
        items = sorted(items, key=lambda it: [p for p in META["prompts"][bench]["False"]].index(
            next(p for p in META["prompts"][bench]["False"] if it["question"] in p)))
    b = registry.get(bench)
    for it, want in zip(items, META["prompts"][bench][reasoning]):
        s = to_sample(bench, it)
        if bench == "pubmedqa":
            s.meta = {"contexts": it["data"]["Context"], "question_raw": it["data"]["Question"]}
        assert prompt_text(s, b, reasoning=reasoning == "True") == want


def test_medevalkit_prompt_messages_and_mmmu_layout():
    from medmo.eval.prompts_medevalkit import messages, prompt_text
    from medmo.records import ImageRef

    items, prompts = MMMU_META["items"], MMMU_META["prompts"]
    b = registry.get("mmmu_med")
    for i, it in enumerate(items):
        for r in ("False", "True"):
            assert prompt_text(_mmmu_sample(it), b, reasoning=r == "True") == prompts[str(i)][r]
    s = to_sample("medxpertqa_mm", ITEMS["medxpertqa_mm"][1])
    s.images = [ImageRef("a.png"), ImageRef("b.png")]
    msgs, imgs = messages(s, registry.get("medxpertqa_mm"))
    assert [p.get("text", "IMG")[:10] for p in msgs[0]["content"]][:4] == ["<image_1>:", "IMG", "<image_2>:", "IMG"]
    assert len(msgs) == 1 and msgs[0]["role"] == "user" and len(imgs) == 2  # no system turn
    assert prompt_text(Sample("r", "report", "mimic_cxr", "test", answer="x"), registry.get("mimic_cxr")).startswith(
        "\n        You are a helpful assistant.")


def test_category_breakdowns_match_medevalkit_omnimedvqa():
    from medmo.eval import scoring

    rows = _rows("omnimedvqa")
    res = scoring.score(registry.get("omnimedvqa"), [to_sample("omnimedvqa", ITEMS["omnimedvqa"][r["item"]])
                                                     for r in rows], [r["prediction"] for r in rows],
                        preset="medevalkit")
    want = META["aggregates"]["omnimedvqa"]["all"]["metrics"]
    for field_name, key in (("meta.question_type", "question type metrics"), ("meta.modality_type",
                                                                              "modality type metrics")):
        got = res.breakdown[field_name]
        assert {k: v["n"] for k, v in got.items()} == {k: v["total"] for k, v in want[key].items()}
        assert {k: v["acc"] for k, v in got.items()} == pytest.approx({k: v["acc"] for k, v in want[key].items()})


# ---------------------------------------------------------------------- OmniMedVQA: gold not among options
def _fixture_rows(name: str) -> list[dict]:
    return [json.loads(x) for x in (FIX / name).read_text(encoding="utf-8").splitlines()]


def test_omnimedvqa_gold_outside_options_kept_and_judged_as_medevalkit():
    from medmo.data.sources import load_source
    from medmo.eval import scoring
    from medmo.eval.prompts_medevalkit import prompt_text

    meta = json.loads((FIX / "omnimedvqa_meta.json").read_text(encoding="utf-8"))
    got = {s.meta["question_id"]: s for s in load_source("omnimedvqa", FIX / "omnimedvqa", strict=True,
                                                         check_images=False, read_sizes=False)}
    assert set(got) == set(meta["gold_passed_to_judge"])  # every record kept, none dropped
    bench = registry.get("omnimedvqa")
    for qid, want in meta["gold_passed_to_judge"].items():  # MedEvalKit's gold: a letter, or the released text
        s = got[qid]
        assert meb.mcq_gold(s, bench.medevalkit) == want
        assert (s.task == "closed_vqa") == bool(s.meta.get("gold_not_in_options"))
        for r in ("False", "True"):
            assert prompt_text(s, bench, reasoning=r == "True") == meta["prompts"][qid][r]
    assert got["RadImageNet_0101"].answer == "Gallbladder" and got["RadImageNet_0101"].options["A"] == "Liver"
    assert got["RadImageNet_0102"].answer == "A"  # x_ray. ~ X-ray for our own scoring; text for MedEvalKit's
    rows = _fixture_rows("omnimedvqa.jsonl")
    samples, preds = [got[r["item"]] for r in rows], [r["prediction"] for r in rows]
    res = scoring.score(bench, samples, preds, preset="medevalkit")
    bad = [(r["item"], r["style"], r["mek"]) for r, g in zip(rows, res.rows)
           if g["correct"] != float(r["mek"]["correct"])]
    assert not bad, f"{len(bad)} of {len(rows)} differ: {bad[:5]}"
    want = meta["aggregate"]
    assert res.metrics["overall_acc"] == pytest.approx(want["total metrics"]["acc"])
    for field_name, key in (("meta.question_type", "question type metrics"), ("meta.modality_type",
                                                                               "modality type metrics")):
        assert {k: (v["n"], pytest.approx(v["acc"])) for k, v in res.breakdown[field_name].items()} == {
            k: (v["total"], v["acc"]) for k, v in want[key].items()}
    std = scoring.score(bench, samples, preds)  # our own rules: the odd records are closed questions
    assert std.metrics["closed_n"] == sum(s.task == "closed_vqa" for s in samples)
    assert std.metrics["overall_acc"] != res.metrics["overall_acc"]


# ------------------------------------------------------------------------------ PMC-VQA: test_2.csv
def test_pmc_vqa_medevalkit_reads_test_2_with_its_cells(tmp_path):
    import shutil

    from PIL import Image

    from medmo.eval import scoring
    from medmo.eval.data import load_samples
    from medmo.eval.prompts_medevalkit import prompt_text

    meta = json.loads((FIX / "pmc_vqa_2_meta.json").read_text(encoding="utf-8"))
    shutil.copy(FIX / "pmc_vqa_2" / "test_2.csv", tmp_path / "test_2.csv")
    (tmp_path / "images").mkdir()
    for fig in meta["prompts"]:
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / fig)
    plain = registry.get("pmc_vqa")
    bench = plain.for_preset("medevalkit")
    assert plain.for_preset("standard") is plain and plain.dataset.get("kwargs") is None
    assert bench.dataset["kwargs"] == {"version": 2} and bench.to_dict()["dataset"]["kwargs"] == {"version": 2}
    got = {s.meta["figure"]: s for s in load_samples(bench, {"pmc_vqa": tmp_path})}
    assert list(got) == list(meta["prompts"])  # every row of test_2.csv, in file order
    for fig, s in got.items():
        assert meb.choice_strings(s, bench.medevalkit) == meta["choices_passed_to_judge"][fig]
        assert s.answer in s.options and meb.mcq_gold(s, bench.medevalkit) == s.meta["answer_raw"]
        for r in ("False", "True"):
            assert prompt_text(s, bench, reasoning=r == "True") == meta["prompts"][fig][r]
    assert got["PMC6234567_F2.jpg"].options["C"] == "FLAIR" and got["PMC5555501_F4.jpg"].options["A"] == "1:2"
    rows = _fixture_rows("pmc_vqa_2.jsonl")
    res = scoring.score(bench, [got[r["item"]] for r in rows], [r["prediction"] for r in rows], preset="medevalkit")
    bad = [(r["item"], r["style"], r["mek"]) for r, g in zip(rows, res.rows)
           if g["correct"] != float(r["mek"]["correct"])]
    assert not bad, f"{len(bad)} of {len(rows)} differ: {bad[:5]}"
    assert res.metrics["overall_acc"] == pytest.approx(meta["aggregate"]["total metrics"]["acc"])


# ------------------------------------------------------------------- MMMU: raw options, question type
def _mmmu_parquet(root: Path, items: list[dict]) -> None:
    import io

    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    by_subject: dict[str, list[dict]] = {}
    for it in items:  # the HF snapshot's columns, as MedEvalKit's harness rows had them
        row = {k: v for k, v in it.items() if k != "subject"}
        row.update({"image_1": {"bytes": buf.getvalue(), "path": "x.png"}, "img_type": "[]",
                    "topic_difficulty": "Medium", "subfield": ""})
        by_subject.setdefault(it["subject"], []).append(row)
    for subject, rows in by_subject.items():
        (root / subject).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), root / subject / "validation-00000-of-00001.parquet")


def test_mmmu_release_values_and_question_type_match_medevalkit(tmp_path):
    from medmo.data.sources import load_source
    from medmo.eval.prompts_medevalkit import prompt_text

    meta = json.loads((FIX / "mmmu_extra_meta.json").read_text(encoding="utf-8"))
    _mmmu_parquet(tmp_path / "mmmu", meta["items"])
    got = {s.meta["mmmu_id"]: s for s in load_source("mmmu_med", tmp_path / "mmmu", split="validation",
                                                     image_dir=tmp_path / "img", strict=True)}
    assert set(got) == {it["id"] for it in meta["items"]}
    pharm = got["validation_Pharmacy_21"]  # options in list order, letters A.., as released beside the stripped
    assert pharm.options == {"A": "5 mg", "B": "10 mg", "C": "15 mg", "D": "20 mg"}
    assert pharm.meta["options_raw"] == {"A": " 5 mg", "B": "10 mg ", "C": "15 mg", "D": "20 mg"}
    assert got["validation_Clinical_Medicine_10"].task == "mcq"  # MedEvalKit: an open question (question_type)
    bench = registry.get("mmmu_med")
    for qid, want in meta["prompts"].items():
        for r in ("False", "True"):
            if isinstance(want[r], str):
                assert prompt_text(got[qid], bench, reasoning=r == "True") == want[r]
            else:  # MedEvalKit raises building this prompt; we keep its multiple-choice layout
                assert "(B) Type II" in prompt_text(got[qid], bench, reasoning=r == "True")
    rows, bad = _fixture_rows("mmmu_extra.jsonl"), []
    for r in rows:  # each alone after eval.py's seed 42, as the fixture was made
        g = meb.score([got[r["item"]]], [r["prediction"]], bench.medevalkit)["per_sample"][0]
        w = r["mek"]
        if "crash" in w:
            ok = g.get("mek_crash") == w["crash"] and g["correct"] == 0.0
        else:
            ok = (g["correct"] == float(w["correct"]) and bool(g.get("random_guess")) == w["random"]
                  and (w["random"] or g["parsed"] == w["parsed"]))
        if not ok:
            bad.append((r["item"], r["style"], w, g))
    assert not bad, f"{len(bad)} of {len(rows)} differ: {bad[:3]}"
    assert sum("crash" in r["mek"] for r in rows) == 9 and "mmmu_crash" in meb.DEVIATIONS


# -------------------------------------------------------------- CIDEr without COCO's document frequencies
CORPUS = json.loads((FIX / "reports_cider_corpus.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("bench", ["iu_xray", "mimic_cxr", "chexpert_plus"])
def test_cider_without_coco_table_is_cidereval_corpus_mode_and_named(bench, monkeypatch, tmp_path):
    from medmo.eval import scoring
    from medmo.eval.metrics.medevalkit_report import report_medevalkit
    from medmo.records import ImageRef

    want = CORPUS["benchmarks"][bench]
    rows = [r for r in REPORTS if r["bench"] == bench]
    keep = [rows[i] for i in want["rows"]]
    res = report_medevalkit([r["prediction"] for r in keep], [_reference(r) for r in keep], df_path="corpus")
    assert "df=corpus" in res["version"] and "cider_df" in res["deviations"]
    if "tokens=ptb " in res["version"]:  # cidereval tokenizes with Stanford's PTBTokenizer (Java)
        assert [row["cider"] for row in res["per_sample"]] == pytest.approx(want["scores"], rel=1e-9, abs=1e-12)
        assert res["aggregate"]["cider"] == pytest.approx(want["avg_score"], rel=1e-9)
    # no table anywhere: the same numbers, and the results say what was computed instead and how to get
    # MedEvalKit's
    monkeypatch.setenv("MEDMO_COCO_DF", str(tmp_path / "absent.p"))
    items = [REP_META["items"][r["item"]] for r in keep]
    samples = [Sample(f"r{i}", "report", bench, "test", findings=it["findings"], impression=it["impression"],
                      images=[ImageRef("x.png")]) for i, it in enumerate(items)]
    scored = scoring.score(registry.get(bench), samples, [r["prediction"] for r in keep], preset="medevalkit")
    assert scored.metrics["cider"] == pytest.approx(res["aggregate"]["cider"], rel=1e-12)
    msg = scored.deviations["cider_df"]
    assert f"own {len(keep)} reference report(s)" in msg and "df='corpus'" in msg
    assert "not MedEvalKit's number" in msg and "MEDMO_COCO_DF" in msg and "coco-val.p" in msg
    assert scored.versions["report_medevalkit"].endswith("df=corpus")
    std = scoring.score(registry.get(bench), samples, [r["prediction"] for r in keep])
    assert "cider_df" not in std.deviations
