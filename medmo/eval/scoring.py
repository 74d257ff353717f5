"""The one scoring path: a benchmark's YAML ``metrics:`` list, run through the metric registry.

``medmo eval run`` (after generation) and ``medmo eval score`` (on a predictions file) both call
:func:`score`. Each name in ``metrics:`` is a registered metric (:mod:`medmo.eval.metrics`); its kind says
which inputs it gets (answers and gold / options for ``vqa``, reference texts for ``text`` / ``report`` /
``model``, pixel boxes for ``grounding``). Under ``preset="medevalkit"`` a metric with a MedEvalKit
counterpart (``MetricSpec.medevalkit``) is replaced by it, fed as the benchmark's ``medevalkit:`` block
says, and the raw model text is scored (MedEvalKit keeps ``<think>`` text; the standard preset reads the
``<answer>`` part of thinking prompts).

Per sample, the row keeps the whole record (``sample``) so a predictions file rescores without its data.
Samples whose generation failed (``failed``: an unreadable image, a backend error) are scored by the rule
in :data:`FAILED_RULE` and listed under ``failed`` in the results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medmo.boxes import convention_of
from medmo.eval import tasks
from medmo.eval.metrics import REGISTRY, get_metric
from medmo.eval.metrics.breakdown import breakdowns, confidence_intervals
from medmo.eval.metrics.grounding import grounding
from medmo.eval.metrics.medevalkit_bench import DEVIATIONS
from medmo.eval.metrics.medevalkit_bench import score as medevalkit_score
from medmo.eval.metrics.medevalkit_report import reference_text, report_medevalkit
from medmo.eval.metrics.plugins import PluginUnavailable
from medmo.eval.registry import Benchmark
from medmo.records import Sample

QA_KINDS = {"closed_vqa": "closed", "open_vqa": "open", "text_qa": "open", "caption": "open", "mcq": "mcq"}
FAILED_RULE = "a sample whose generation failed is scored as an empty answer (wrong; IoU 0; text scores 0)"


@dataclass
class Scored:
    """A benchmark's scores: aggregate metrics, one row per sample, versions, notes, breakdowns, CIs."""

    metrics: dict[str, float | None]
    rows: list[dict[str, Any]]
    versions: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    breakdown: dict[str, Any] = field(default_factory=dict)
    ci: dict[str, list[float]] = field(default_factory=dict)
    deviations: dict[str, str] = field(default_factory=dict)


def metric_names(bench: Benchmark, preset: str) -> list[str]:
    """The registered metrics that score ``bench`` under ``preset`` (MedEvalKit counterparts swapped in)."""
    out: list[str] = []
    for name in bench.metrics:
        if name not in REGISTRY:
            raise KeyError(f"{bench.path}: metric {name!r} is not registered (see medmo.eval.metrics)")
        spec = REGISTRY[name]
        if preset == "medevalkit" and spec.medevalkit:
            name = spec.medevalkit
        if name not in out:
            out.append(name)
    return out


def _inputs(bench: Benchmark, samples: list[Sample], preds: list[str], preset: str) -> list[str]:
    if preset == "medevalkit":
        return [p or "" for p in preds]
    return [tasks.final_answer(p or "", bench) for p in preds]


def _run(name: str, bench: Benchmark, samples: list[Sample], answers: list[str], seed: int) -> dict:
    spec = REGISTRY[name]
    if spec.kind == "medevalkit_qa":
        if bench.medevalkit.get("rule") in ("vqa", "mcq", "mmmu"):
            return medevalkit_score(samples, answers, bench.medevalkit, seed=seed)
        spec = REGISTRY["vqa_medevalkit"]  # no MedEvalKit class for this benchmark: its generic rules
        name = spec.name
    if spec.kind == "medevalkit_report":
        refs = [reference_text(s.findings, s.impression) if (s.findings or s.impression) else s.answer
                for s in samples]
        return report_medevalkit(answers, refs)
    fn = get_metric(name)
    if spec.kind == "vqa":
        kinds = [QA_KINDS.get(s.task, "open") for s in samples]
        return fn(answers, [s.answer for s in samples], options=[s.options or None for s in samples], kinds=kinds)
    if spec.kind == "grounding":
        return _grounding(samples, answers)
    return fn(answers, [tasks.gold_text(s) for s in samples])


def _grounding(samples: list[Sample], answers: list[str]) -> dict:
    preds = [tasks.predicted_boxes(a, s) for a, s in zip(answers, samples)]
    res = grounding(preds, [tasks.gold_boxes(s) for s in samples], units="pixel")
    for s, p, row in zip(samples, preds, res["per_sample"]):
        w, h = tasks.image_size(s, s.boxes[0].image if s.boxes else 0)
        row.update({"label": s.boxes[0].label if s.boxes else "", "image": tasks.box_image(s), "width": w,
                    "height": h, "box_convention": str(convention_of(s.meta)), "boxes": tasks.gold_boxes(s),
                    "pred_boxes": p})  # fmt: skip
    assumed = sorted({row["box_convention"] for row in res["per_sample"]})
    res["note"] = (f"{tasks.IOU_NOTE}. Predicted boxes read as {', '.join(assumed) or 'grid'} (the record's "
                   "meta['box_convention']; grid = Qwen3-VL's 0-1000) and mapped back to original pixels")
    return res


def score(
    bench: Benchmark,
    samples: list[Sample],
    predictions: list[str],
    *,
    preset: str = "standard",
    failed: dict[str, str] | None = None,
    seed: int = 0,
) -> Scored:
    """Score ``predictions`` (one per sample, same order) with the benchmark's declared metrics."""
    if len(samples) != len(predictions):
        raise ValueError(f"{bench.name}: {len(predictions)} predictions for {len(samples)} samples")
    failed = failed or {}
    preds = ["" if s.id in failed else (p or "") for s, p in zip(samples, predictions)]
    answers = _inputs(bench, samples, preds, preset)
    rows: list[dict[str, Any]] = [{"id": s.id, "task": s.task} for s in samples]
    out = Scored({}, rows)
    found: dict[str, str] = {}  # deviations a metric reports for this run (e.g. CIDEr without COCO's table)
    for name in metric_names(bench, preset):
        try:
            res = _run(name, bench, samples, answers, seed=42 if preset == "medevalkit" else seed)
        except PluginUnavailable as e:  # a model-based plugin without its package or weights
            out.metrics[name] = None
            out.notes[name] = f"not computed: {e}"
            continue
        out.metrics.update({k: (None if v is None else float(v)) for k, v in res["aggregate"].items()})
        out.versions[name] = str(res.get("version", ""))
        if res.get("note"):
            out.notes[name] = res["note"]
        found.update(res.get("deviations") or {})
        for row, per in zip(rows, res["per_sample"]):
            row.update(per)
    if preset == "medevalkit" and bench.medevalkit:
        out.deviations = dict(DEVIATIONS)
    out.deviations.update(found)
    for row, s, raw in zip(rows, samples, predictions):
        row["prediction"] = raw
        row["sample"] = s.to_dict()
        if s.id in failed:
            row["failed"] = failed[s.id]
    if failed:
        out.notes["failed"] = f"{len(failed)} sample(s) failed to generate; {FAILED_RULE}"
    out.breakdown = breakdowns(samples, rows, bench.categories)
    out.ci = confidence_intervals(rows, bench.headline, seed=seed)
    return out
