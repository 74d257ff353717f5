"""Small pure functions per benchmark kind: sample -> prompt, sample -> gold, predictions -> scores.

Prompts come from :mod:`medmo.prompts` (the wording the model was trained on); answers are read by
:mod:`medmo.answers`; scores come from :mod:`medmo.eval.metrics`. Three scorers cover every benchmark:

- ``qa``: closed / open VQA, multiple choice and text QA, per sample by the record's task, under the
  chosen preset (``standard`` or ``medevalkit``, :func:`medmo.eval.metrics.vqa.vqa`);
- ``report``: ROUGE-L, CIDEr-D, BLEU-1..4 against the reference report, plus RaTEScore and SembScore
  when their optional plugins are installed;
- ``grounding``: predicted boxes mapped back to pixels from the record's box convention (the 0-1000 grid
  unless ``meta["box_convention"]`` says otherwise), IoU against the gold boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medmo.answers import parse_boxes, split_think
from medmo.boxes import convention_of
from medmo.data.images import image_size as read_size
from medmo.eval.backends.base import Request
from medmo.eval.metrics import get_metric
from medmo.eval.metrics.cider import cider
from medmo.eval.metrics.grounding import grounding
from medmo.eval.metrics.judge import JUDGE_VERSION
from medmo.eval.metrics.judge import judge as run_judge
from medmo.eval.metrics.text import bleu, rouge_l
from medmo.eval.metrics.vqa import vqa
from medmo.eval.registry import Benchmark
from medmo.findings import findings_metric
from medmo.prompts import messages, question_text, target_text
from medmo.records import Sample

QA_KINDS = {"closed_vqa": "closed", "open_vqa": "open", "text_qa": "open", "caption": "open", "mcq": "mcq"}
IOU_NOTE = (
    "iou_matched: Hungarian one-to-one matching, summed IoU / max(#pred, #gold); iou_first: first predicted vs "
    "first gold box (MedSG-Bench); iou_best: best pair; acc@t(first): share of samples with iou_first >= t"
)


@dataclass
class Scored:
    """A benchmark's scores: aggregate metrics, one row per sample, metric versions and notes."""

    metrics: dict[str, float | None]
    rows: list[dict[str, Any]]
    versions: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------- prompts


def to_request(sample: Sample, bench: Benchmark) -> Request:
    """The generation request for a sample: MedMO's chat prompt without the answer, plus its images."""
    return Request(
        id=sample.id,
        messages=messages(sample, with_answer=False, think=bench.think),
        images=list(sample.images),
        max_new_tokens=bench.max_new_tokens,
        task=sample.task,
    )


def length_hint(sample: Sample) -> int:
    """A cheap stand-in for the prompt's token count, for length-sorted batches."""
    return len(question_text(sample)) // 4 + 256 * len(sample.images)


def final_answer(prediction: str, bench: Benchmark) -> str:
    """The answer part of a prediction (the text inside ``<answer>`` for thinking prompts)."""
    if not bench.think:
        return prediction

    return split_think(prediction).answer


# ---------------------------------------------------------------------------------------- gold


def gold_text(sample: Sample) -> str:
    """The reference text: the answer (letter for mcq), or the report's findings + impression."""
    return sample.answer if sample.task != "report" else target_text(sample)


def image_size(sample: Sample, index: int = 0) -> tuple[int, int]:
    """``(width, height)`` of one of the sample's images, read from the file when the record lacks it."""
    ref = sample.images[index]
    if ref.width and ref.height:
        return int(ref.width), int(ref.height)

    return read_size(ref.path)


def gold_boxes(sample: Sample) -> list[list[float]]:
    """The sample's gold boxes in pixels ``[x1, y1, x2, y2]``."""
    return [list(map(float, b.box)) for b in sample.boxes]


def predicted_boxes(prediction: str, sample: Sample) -> list[list[float]]:
    """Boxes read from model text, in the record's box convention, mapped to pixels of the gold boxes' image."""
    w, h = image_size(sample, sample.boxes[0].image if sample.boxes else 0)
    conv = convention_of(sample.meta)
    return [conv.from_target(pb.box, w, h) for pb in parse_boxes(prediction) if len(pb.box) == 4]


# ------------------------------------------------------------------------------------- scoring


def score(bench: Benchmark, samples: list[Sample], predictions: list[str], *, preset: str = "standard",
          judge: Any = None) -> Scored:
    """Score ``predictions`` (one per sample, same order) with the benchmark's scorer."""
    if len(samples) != len(predictions):
        raise ValueError(f"{bench.name}: {len(predictions)} predictions for {len(samples)} samples")
    answers = [final_answer(p, bench) for p in predictions]
    fn = {"qa": score_qa, "report": score_report, "grounding": score_grounding}[bench.scorer]
    scored = fn(samples, answers, preset=preset, judge=judge)
    for row, s, raw in zip(scored.rows, samples, predictions):
        row.setdefault("id", s.id)
        row["prediction"] = raw
    return scored


def score_qa(samples: list[Sample], answers: list[str], *, preset: str, judge: Any = None) -> Scored:
    """VQA / multiple choice / text QA under a preset (:func:`medmo.eval.metrics.vqa.vqa`)."""
    kinds = [QA_KINDS.get(s.task, "open") for s in samples]
    res = vqa(answers, [s.answer for s in samples], options=[s.options or None for s in samples], kinds=kinds,
              preset=preset)
    metrics = {k: float(v) for k, v in res["aggregate"].items()}
    versions = {"vqa": res["version"]}
    notes = {}
    if judge is not None:
        metrics, versions, notes = _apply_judge(judge, samples, answers, kinds, res["per_sample"], metrics, versions)
    # Rows keep the fields medmo.eval.score.score_file reads, so `medmo eval score` can rescore the file.
    rows = [
        {"id": s.id, "task": s.task, "question": s.question, "answer": s.answer, "options": s.options, **r}
        for s, r in zip(samples, res["per_sample"])
    ]
    return Scored(metrics, rows, versions, notes)


def _apply_judge(judge: Any, samples, answers, kinds, per_sample, metrics, versions):
    """Add LLM-judge verdicts for open answers (:func:`medmo.eval.metrics.judge.judge`) as ``judge_acc``.

    Rule-based metrics stay as they are: judged accuracy is reported beside them, never in their place.
    """
    idx = [i for i, k in enumerate(kinds) if k == "open"]
    if not idx:
        return metrics, versions, {}
    res = run_judge([answers[i] for i in idx], [samples[i].answer for i in idx],
                    questions=[samples[i].question for i in idx], config=judge)
    for i, row in zip(idx, res["per_sample"]):
        per_sample[i].update(row)
    metrics.update({k: float(v) for k, v in res["aggregate"].items()})
    versions["judge"] = f"{res['version']} ({res.get('judge_model')})"
    return metrics, versions, {"judge_acc": f"open answers judged by {res.get('judge_model')}"}


def judge_info(judge: Any) -> dict[str, Any] | None:
    """What the results file says about the judge (None = rule-based scoring only)."""
    if judge is None:
        return None

    return {"model": getattr(judge, "model", None), "base_url": getattr(judge, "base_url", None),
            "version": JUDGE_VERSION}


REPORT_PLUGINS = {"ratescore": "RaTEScore", "semb_score": "f1chexbert"}


def score_report(samples: list[Sample], answers: list[str], *, preset: str, judge: Any = None) -> Scored:
    """ROUGE-L, CIDEr-D, BLEU-1..4 (coco-caption definitions), rule-based finding F1, and RaTEScore /
    SembScore when their plugins and local weights are available."""
    refs = [gold_text(s) for s in samples]
    parts = {"rouge_l": rouge_l(answers, refs), "cider": cider(answers, refs), "bleu": bleu(answers, refs),
             "finding_f1": findings_metric(answers, refs)}
    metrics: dict[str, float | None] = {}
    rows = [{"id": s.id, "task": s.task, "reference": r} for s, r in zip(samples, refs)]
    versions, notes = {}, {}
    for name, res in parts.items():
        metrics.update({k: float(v) for k, v in res["aggregate"].items()})
        versions[name] = res["version"]
        for row, per in zip(rows, res["per_sample"]):
            row.update(per)
    for name in REPORT_PLUGINS:
        value, version, note = _plugin_score(name, answers, refs)
        metrics[name] = value
        if version:
            versions[name] = version
        if note:
            notes[name] = note
    return Scored(metrics, rows, versions, notes)


def _plugin_score(name: str, predictions: list[str], references: list[str]) -> tuple[float | None, str, str]:
    """A report metric from an optional plugin: ``(value, version, note)``; value None when unavailable."""
    try:

        metric = get_metric(name)
        res = metric(predictions, references)
    except (ImportError, FileNotFoundError, KeyError) as e:  # plugin package or local weights missing
        return None, "", f"not computed: {e}"
    agg = res.get("aggregate", {}) if isinstance(res, dict) else {}
    value = agg.get(name, next(iter(agg.values()), None)) if agg else None
    return (float(value) if value is not None else None), str(res.get("version", "")), ""


def score_grounding(samples: list[Sample], answers: list[str], *, preset: str, judge: Any = None) -> Scored:
    """IoU of predicted vs gold pixel boxes (:func:`medmo.eval.metrics.grounding.grounding`)."""
    preds = [predicted_boxes(a, s) for a, s in zip(answers, samples)]
    golds = [gold_boxes(s) for s in samples]
    res = grounding(preds, golds, units="pixel")
    metrics = {k: float(v) for k, v in res["aggregate"].items()}
    rows = []
    for s, g, p, per in zip(samples, golds, preds, res["per_sample"]):
        w, h = image_size(s, s.boxes[0].image if s.boxes else 0)
        rows.append({"id": s.id, "task": s.task, "label": s.boxes[0].label if s.boxes else "", "image": _box_image(s),
                     "width": w, "height": h, "box_convention": str(convention_of(s.meta)), "boxes": g,
                     "pred_boxes": p, **per})  # fmt: skip
    assumed = sorted({r["box_convention"] for r in rows})
    notes = {"iou": IOU_NOTE, "box_convention": f"predicted boxes read as {', '.join(assumed) or 'grid'} "
             "(the record's meta['box_convention']; grid = Qwen3-VL 0-1000) and mapped back to original pixels"}
    return Scored(metrics, rows, {"grounding": res["version"]}, notes)


def _box_image(sample: Sample) -> str | None:
    if not sample.images:
        return None
    return sample.images[sample.boxes[0].image if sample.boxes else 0].path
