"""Rescore a predictions file with any registered metric, without a model.

A predictions JSONL has one object per line with a ``prediction`` (model text) and either a
``reference`` (a string, or a list of strings for caption sets) or the task's own fields: ``answer``,
``options`` (``{letter: text}`` or a list), ``boxes`` (``[{"label", "box"}]`` or ``[[x1, y1, x2, y2]]`` in
pixels) with the image size (``images[0].width/height``, ``width``/``height`` or ``image_size``).
A record written with a nested ``sample`` object (a :class:`~medmo.records.Sample` dict) works too.
Lines that cannot be read are reported under ``problems`` with their line number and skipped.

Text and factuality metrics are corpus-level (CIDEr's document frequencies come from the whole file), so
a file is always scored as one set.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medmo import __version__
from medmo.answers import PARSER_VERSION
from medmo.eval.metrics import REGISTRY, get_metric
from medmo.records import LETTERS

QA_KINDS = {"closed_vqa": "closed", "open_vqa": "open", "text_qa": "open", "mcq": "mcq"}
DEFAULT_METRICS = {
    "caption": ["cider", "bleu", "rougeL", "rougeL_coco"],
    "retrieval": ["cider", "bleu", "rougeL", "rougeL_coco"],
    "report": ["cider", "bleu", "rougeL", "rougeL_coco", "finding_f1"],
    "grounding": ["grounding"],
}


def read_predictions(path: str | Path) -> tuple[list[dict], list[dict]]:
    """Records of a predictions JSONL and the problems of unreadable lines (``{"line", "reason"}``)."""
    records, problems = [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                problems.append({"line": n, "reason": f"not JSON: {e.msg}"})
                continue
            if not isinstance(rec, dict):
                problems.append({"line": n, "reason": "not a JSON object"})
                continue
            if isinstance(rec.get("sample"), dict):
                rec = {**rec["sample"], **{k: v for k, v in rec.items() if k != "sample"}}
            if "prediction" not in rec:
                problems.append({"line": n, "reason": "no 'prediction' field"})
                continue
            rec["_line"] = n
            records.append(rec)
    return records, problems


def infer_task(rec: dict) -> str:
    """The record's ``task`` field, else a guess: boxes -> grounding, options -> mcq, list ref -> caption."""
    if rec.get("task"):
        return str(rec["task"])
    if rec.get("boxes"):
        return "grounding"
    if rec.get("options"):
        return "mcq"
    if isinstance(rec.get("reference"), list):
        return "caption"
    return "open_vqa"


def _options(rec: dict) -> dict[str, str] | None:
    opts = rec.get("options")
    if isinstance(opts, list):
        return {LETTERS[i]: str(t) for i, t in enumerate(opts)}
    return {str(k): str(v) for k, v in opts.items()} if isinstance(opts, dict) and opts else None


def _text_ref(rec: dict) -> str | list[str]:
    ref = rec.get("reference")
    if ref is None:
        ref = rec.get("answer") or "\n".join(x for x in (rec.get("findings"), rec.get("impression")) if x)
    return ref if isinstance(ref, (str, list)) else str(ref)


def _boxes(rec: dict) -> list[list[float]]:
    raw = rec.get("boxes") if rec.get("boxes") is not None else rec.get("reference") or []
    if raw and isinstance(raw[0], (int, float)):
        raw = [raw]
    return [list(map(float, b["box"] if isinstance(b, dict) else b)) for b in raw]


def _size(rec: dict) -> tuple[float, float] | None:
    imgs = rec.get("images") or []
    if imgs and isinstance(imgs[0], dict) and imgs[0].get("width") and imgs[0].get("height"):
        return float(imgs[0]["width"]), float(imgs[0]["height"])
    if rec.get("width") and rec.get("height"):
        return float(rec["width"]), float(rec["height"])
    size = rec.get("image_size") or rec.get("size")
    return (float(size[0]), float(size[1])) if size else None


def _call(name: str, recs: list[dict], task: str, units: str, options: dict[str, Any]) -> dict:
    """Run one registered metric on records, giving it the inputs its kind needs."""
    fn, kind = get_metric(name), REGISTRY[name].kind
    preds = [r.get("prediction") or "" for r in recs]
    if kind == "vqa":
        golds = [str(r.get("answer") if r.get("answer") is not None else r.get("reference", "")) for r in recs]
        kinds = [QA_KINDS.get(r.get("task") or task) for r in recs]
        return fn(preds, golds, options=[_options(r) for r in recs], kinds=kinds, **options)
    if kind == "grounding":
        return fn(preds, [_boxes(r) for r in recs], image_sizes=[_size(r) for r in recs], units=units, **options)
    if kind == "judge":
        golds = [str(r.get("answer") or r.get("reference") or "") for r in recs]
        return fn(preds, golds, questions=[r.get("question", "") for r in recs], **options)
    return fn(preds, [_text_ref(r) for r in recs], **options)


def score_file(
    path: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    preset: str = "standard",
    task: str | None = None,
    units: str = "grid",
    metric_options: dict[str, dict[str, Any]] | None = None,
) -> dict:
    """Rescore a predictions JSONL.

    Args:
        path: the predictions file.
        metrics: registered metric names (:func:`medmo.eval.metrics.list_metrics`); default by task:
            VQA kinds -> ``vqa_<preset>``, caption -> CIDEr/BLEU/ROUGE-L, report -> those + ``finding_f1``,
            grounding -> ``grounding``.
        preset: VQA preset for the default VQA metric (``standard`` or ``medevalkit``).
        task: the task of every record (else each record's ``task`` field, else a guess).
        units: units of box predictions (``grid`` 0-1000 or ``pixel``).
        metric_options: extra keyword arguments per metric name (e.g. plugin ``weights_dir``).

    Returns:
        ``{"path", "n", "task", "metrics", "aggregate", "per_sample", "versions", "problems"}``; per-sample rows
        carry the record ``id`` (or line number) and every metric's per-sample scores.
    """
    records, problems = read_predictions(path)
    rec_tasks = [task or infer_task(r) for r in records]
    tasks = sorted(set(rec_tasks))
    the_task = tasks[0] if len(tasks) == 1 else ("mixed" if tasks else task or "")
    rows = [{"id": r.get("id", f"line{r['_line']}"), "task": t} for r, t in zip(records, rec_tasks)]
    if metrics:  # the caller's metrics, on every record
        plan = [(name, None, list(range(len(records)))) for name in metrics]
    else:  # each task group gets its default metrics (closed/open/mcq share the VQA presets)
        groups: dict[str, list[int]] = {}
        for i, t in enumerate(rec_tasks):
            groups.setdefault("qa" if t in QA_KINDS or t not in DEFAULT_METRICS else t, []).append(i)
        plan = [
            (name, g if len(groups) > 1 else None, idx)
            for g, idx in groups.items()
            for name in DEFAULT_METRICS.get(g, [f"vqa_{preset}"])
        ]
    aggregate: dict[str, float] = {}
    versions = {"medmo": __version__, "parser": PARSER_VERSION}
    for name, prefix, idx in plan:
        sub = [records[i] for i in idx]
        res = _call(name, sub, task or the_task, units, (metric_options or {}).get(name, {}))
        aggregate.update({(f"{prefix}/{k}" if prefix else k): v for k, v in res["aggregate"].items()})
        versions[name] = res.get("version", "")
        for i, per in zip(idx, res["per_sample"]):
            rows[i].update(per)
    return {
        "path": str(path),
        "n": len(records),
        "task": the_task,
        "metrics": list(dict.fromkeys(name for name, _, _ in plan)),
        "aggregate": aggregate,
        "per_sample": rows,
        "versions": versions,
        "problems": problems,
    }


