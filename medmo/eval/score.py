"""Rescore a predictions file with any registered metric, without a model.

A predictions JSONL has one object per line with a ``prediction`` (model text) and either a
``reference`` (a string, or a list of strings for caption sets) or the task's own fields: ``answer``,
``options`` (``{letter: text}`` or a list), ``boxes`` (``[{"label", "box"}]`` or ``[[x1, y1, x2, y2]]`` in
pixels) with the image size (``images[0].width/height``, ``width``/``height`` or ``image_size``).
A record written with a nested ``sample`` object (a :class:`~medmo.records.Sample` dict) works too.
Lines that cannot be read are reported under ``problems`` with their line number and skipped.

Each record becomes a :class:`~medmo.records.Sample` and the file is scored by the same function as
``medmo eval run`` (:func:`medmo.eval.scoring.score`) with the benchmark's declared metrics, so a rescore
equals the run. Text and factuality metrics are corpus-level (CIDEr's document frequencies come from the
whole file), so a file is always scored as one set.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from medmo import __version__
from medmo.answers import PARSER_VERSION, parse_boxes
from medmo.boxes import to_grid
from medmo.eval import scoring
from medmo.eval.registry import BENCH_DIR, Benchmark, UnknownBenchmarkError, _read_yaml, get
from medmo.records import LETTERS, Box, ImageRef, Sample

QA_KINDS = {"closed_vqa": "closed", "open_vqa": "open", "text_qa": "open", "mcq": "mcq"}
DEFAULT_METRICS = {  # files without a benchmark: the metrics of their task group
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


def to_sample(rec: dict, task: str) -> Sample:
    """A predictions record as the Sample the scoring path reads (loose fields accepted, see module docstring)."""
    size = _size(rec)
    images = [ImageRef(str(rec.get("image") or "image"), int(size[0]), int(size[1]))] if size else []
    if isinstance(rec.get("images"), list) and rec["images"] and isinstance(rec["images"][0], dict):
        images = [ImageRef(**{k: v for k, v in im.items() if k in ("path", "width", "height", "frame")})
                  for im in rec["images"]]
    meta = dict(rec.get("meta") or {})
    ref = _text_ref(rec)
    if isinstance(ref, list):
        meta["references"] = [str(r) for r in ref]
    answer = rec.get("answer") if rec.get("answer") is not None else (ref if isinstance(ref, str) else "")
    boxes = [Box(str(b.get("label", "")) if isinstance(b, dict) else "", bb, int(b.get("image", 0))
                 if isinstance(b, dict) else 0) for b, bb in zip(_raw_boxes(rec), _boxes(rec))] if task == "grounding" else []
    return Sample(
        id=str(rec.get("id", f"line{rec['_line']}")), task=task, source=str(rec.get("source") or ""),
        split=str(rec.get("split") or ""), question=str(rec.get("question") or ""), answer=str(answer),
        options=_options(rec) or {}, boxes=boxes, images=images, modality=str(rec.get("modality") or "other"),
        language=str(rec.get("language") or "en"), findings=rec.get("findings"), impression=rec.get("impression"),
        meta=meta,
    )


def _raw_boxes(rec: dict) -> list:
    raw = rec.get("boxes") if rec.get("boxes") is not None else rec.get("reference") or []
    return [raw] if raw and isinstance(raw[0], (int, float)) else list(raw)


def _benchmark(name: str | None, group: str, metrics: Sequence[str] | None) -> Benchmark:
    """The benchmark whose declared metrics score the file: ``name``, else the shared defaults of its task group."""
    if name:
        bench = get(name)
    else:
        base = {"qa": "_qa.yaml", "report": "_report.yaml", "caption": "_report.yaml", "retrieval": "_report.yaml",
                "grounding": "_grounding.yaml"}[group]
        d = _read_yaml(BENCH_DIR / base)
        metrics = metrics or DEFAULT_METRICS.get(group)
        bench = Benchmark(name=f"file:{group}", version=str(d.get("version", "1")), group=d.get("group", "nano"),
                          title=group, dataset={"records": "{data}"}, prompt_version="",
                          metrics=tuple(d.get("metrics") or ()), headline=tuple(_as_list(d.get("headline"))))
    return replace(bench, metrics=tuple(metrics)) if metrics else bench


def _as_list(v) -> list:
    return [] if v is None else ([v] if isinstance(v, str) else list(v))


def score_file(
    path: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    preset: str = "standard",
    task: str | None = None,
    units: str = "grid",
    bench: str | None = None,
    seed: int = 0,
) -> dict:
    """Rescore a predictions JSONL through the same path as ``medmo eval run`` (:func:`medmo.eval.scoring.score`).

    Args:
        path: the predictions file (``medmo eval run`` writes them under ``predictions/``).
        metrics: registered metric names to use instead of the benchmark's declared ones.
        preset: ``standard`` or ``medevalkit``.
        task: the task of every record (else each record's ``task`` field, else a guess).
        units: units of box predictions (``grid`` 0-1000 or ``pixel``).
        bench: the registered benchmark the file belongs to (default: the file name, e.g. ``vqa_rad.jsonl``,
            when it names one; else the shared defaults of each record's task group).
        seed: bootstrap seed of the confidence intervals.

    Returns:
        ``{"path", "n", "task", "benchmark", "metrics", "aggregate", "ci", "breakdown", "per_sample",
        "versions", "notes", "problems"}``.
    """
    records, problems = read_predictions(path)
    name = bench or _bench_from_filename(path)
    rec_tasks = [task or infer_task(r) for r in records]
    tasks = sorted(set(rec_tasks))
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(rec_tasks):
        groups.setdefault("qa" if t in QA_KINDS or t not in DEFAULT_METRICS else t, []).append(i)
    rows: list[dict] = [{} for _ in records]
    aggregate, versions, notes, ci, breakdown, used = {}, {"medmo": __version__, "parser": PARSER_VERSION}, {}, {}, {}, []
    for group, idx in groups.items():
        b = _benchmark(name, group, metrics)
        prefix = f"{group}/" if len(groups) > 1 else ""
        samples = [to_sample(records[i], rec_tasks[i]) for i in idx]
        preds = [records[i].get("prediction") or "" for i in idx]
        if group == "grounding" and units == "pixel":
            preds = [_pixel_to_grid(p, s) for p, s in zip(preds, samples)]
        failed = {s.id: str(records[i]["failed"]) for s, i in zip(samples, idx) if records[i].get("failed")}
        res = scoring.score(b, samples, preds, preset=preset, failed=failed, seed=seed)
        aggregate.update({prefix + k: v for k, v in res.metrics.items()})
        ci.update({prefix + k: v for k, v in res.ci.items()})
        breakdown.update({prefix + k: v for k, v in res.breakdown.items()})
        versions.update(res.versions)
        notes.update(res.notes)
        used += [m for m in scoring.metric_names(b, preset) if m not in used]
        for i, row in zip(idx, res.rows):
            row.pop("sample", None)
            rows[i] = row
    return {"path": str(path), "n": len(records), "task": tasks[0] if len(tasks) == 1 else ("mixed" if tasks else ""),
            "benchmark": name, "metrics": used, "aggregate": aggregate, "ci": ci, "breakdown": breakdown,
            "per_sample": rows, "versions": versions, "notes": notes, "problems": problems}


def _bench_from_filename(path: str | Path) -> str | None:
    stem = Path(path).name.split(".")[0]
    try:
        get(stem)
        return stem
    except UnknownBenchmarkError:
        return None


def _pixel_to_grid(prediction: str, sample: Sample) -> str:
    """Pixel-unit box predictions rewritten on the 0-1000 grid (the scoring path reads grid boxes)."""
    if not sample.images:
        return prediction
    w, h = sample.images[0].width, sample.images[0].height
    boxes = [to_grid(b.box, w, h) for b in parse_boxes(prediction) if len(b.box) == 4]
    return "<box>" + json.dumps(boxes) + "</box>" if boxes else prediction
