"""Result tables in MedMO's layout: rows = models, columns = benchmarks, then Avg.

One table per benchmark group (medical VQA, text QA, report generation, grounding, nano), written as
Markdown and CSV, plus a grouped bar chart per table. Several results files side by side give one row
each (``medmo eval table a.json b.json``). Values are the benchmark's headline metric x 100; a
benchmark with several headline metrics (report generation) gets one column per metric and one Avg.
per metric. Every table ends with notes naming the preset and, for grounding, which IoU each column shows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medmo.eval.registry import GROUPS, UnknownBenchmarkError, get
from medmo.eval.tasks import IOU_NOTE

GROUP_TITLES = {
    "vqa": "Medical VQA",
    "text_qa": "Medical text QA",
    "report": "Report generation",
    "grounding": "Grounding",
    "nano": "nano suite",
}
METRIC_LABELS = {
    "overall_acc": "Acc",
    "rougeL": "ROUGE-L",
    "cider_d": "CIDEr",
    "bleu1": "BLEU-1",
    "bleu4": "BLEU-4",
    "ratescore": "RaTEScore",
    "semb_score": "SembScore",
    "finding_f1": "Finding F1",
    "iou_matched_mean": "IoU (matched)",
    "iou_first_mean": "IoU (first box)",
    "iou_best_mean": "IoU (best pair)",
}


@dataclass
class Table:
    """One group's table: column keys ``(benchmark, metric)``, rows ``(label, {column: value|None})``."""

    group: str
    columns: list[tuple[str, str]]
    titles: dict[str, str]
    rows: list[tuple[str, dict[tuple[str, str], float | None]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(m for _, m in self.columns))

    @property
    def per_metric_avg(self) -> bool:
        """Report tables (several metrics per benchmark) average each metric; others average all columns."""
        benches = [b for b, _ in self.columns]
        return len(set(benches)) < len(benches)

    def header(self, col: tuple[str, str]) -> str:
        bench, metric = col
        title = self.titles.get(bench, bench)
        return title if len(self.metrics) == 1 else f"{title} {METRIC_LABELS.get(metric, metric)}"

    def averages(self, values: dict[tuple[str, str], float | None]) -> dict[str, float | None]:
        """Row means, ``None`` unless every column has a value: one ``Avg.``, or one per metric."""
        groups = {m: [c for c in self.columns if c[1] == m] for m in self.metrics} if self.per_metric_avg else {
            "": self.columns
        }
        out = {}
        for m, cols in groups.items():
            vals = [values.get(c) for c in cols]
            key = f"Avg. {METRIC_LABELS.get(m, m)}" if m else "Avg."
            out[key] = sum(vals) / len(vals) if vals and all(v is not None for v in vals) else None
        return out


def _row_label(res: dict[str, Any], presets: set[str]) -> str:
    label = str(res.get("model", "model"))
    return f"{label} [{res.get('preset')}]" if len(presets) > 1 else label


def _bench_meta(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    meta = dict(entry.get("benchmark") or {})
    try:
        reg = get(name).to_dict()
        meta = {**reg, **meta}
    except UnknownBenchmarkError:
        pass
    meta.setdefault("group", "nano")
    meta.setdefault("title", name)
    meta.setdefault("headline", entry.get("headline") or [])
    return meta


def build_tables(results: Sequence[dict[str, Any]]) -> list[Table]:
    """Tables (one per group present) from results dicts, rows in the given order."""
    order = {g: i for i, g in enumerate(GROUPS)}
    metas: dict[str, dict[str, Any]] = {}
    for res in results:
        for name, entry in res.get("benchmarks", {}).items():
            metas.setdefault(name, _bench_meta(name, entry))
    presets = {str(r.get("preset")) for r in results}
    tables = []
    for group in sorted({m["group"] for m in metas.values()}, key=lambda g: order.get(g, 99)):
        names = sorted((n for n in metas if metas[n]["group"] == group), key=lambda n: (metas[n].get("order", 1000), n))
        cols = [(n, m) for n in names for m in metas[n]["headline"]]
        t = Table(group, cols, {n: metas[n]["title"] for n in names})
        for res in results:
            entries = res.get("benchmarks", {})
            vals = {}
            for b, m in cols:
                if b in entries:  # absent key = not run; None = run but not computed
                    v = entries[b].get("metrics", {}).get(m)
                    vals[(b, m)] = None if v is None else 100.0 * float(v)
            t.rows.append((_row_label(res, presets), vals))
        t.notes = _notes(t, results, metas)
        tables.append(t)
    return tables


def _notes(t: Table, results: Sequence[dict[str, Any]], metas: dict[str, dict[str, Any]]) -> list[str]:
    notes = ["Values x 100; Avg. only when the row has every column; n/a = not computed, - = not run."]
    for res in results:
        lim = {e.get("limit") for e in res.get("benchmarks", {}).values()} - {None}
        extra = f", limit {sorted(lim)}" if lim else ""
        judge = "LLM judge" if res.get("judge") else "no judge"
        notes.append(f"{res.get('model')}: preset {res.get('preset')}, {judge}{extra}.")
    iou_cols = [(b, m) for b, m in t.columns if m.startswith("iou")]
    if iou_cols:
        shown = ", ".join(f"{t.titles[b]}: {m}" for b, m in iou_cols)
        notes.append(f"IoU shown: {shown}. {IOU_NOTE}.")
    missing = {
        (b, m): (e.get("notes") or {}).get(m)
        for res in results
        for b, e in res.get("benchmarks", {}).items()
        for m in metas[b]["headline"]
        if (e.get("notes") or {}).get(m) and b in t.titles
    }
    notes += [f"{t.titles[b]} {METRIC_LABELS.get(m, m)}: {why}" for (b, m), why in missing.items()]
    return notes


def _cell(vals: dict[tuple[str, str], float | None], col: tuple[str, str]) -> str:
    if col not in vals:
        return "-"
    v = vals[col]
    return "n/a" if v is None else f"{v:.1f}"


def to_markdown(t: Table) -> str:
    """A Markdown table with a title line and notes."""
    avg_keys = list(t.averages({}).keys())
    head = ["Model", *(t.header(c) for c in t.columns), *avg_keys]
    lines = [f"### {GROUP_TITLES.get(t.group, t.group)}", "", "| " + " | ".join(head) + " |",
             "|" + "|".join([" --- "] + [" ---: "] * (len(head) - 1)) + "|"]
    for label, vals in t.rows:
        cells = [_cell(vals, c) for c in t.columns]
        cells += ["-" if v is None else f"{v:.1f}" for v in t.averages(vals).values()]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    lines += [""] + [f"- {n}" for n in t.notes]
    return "\n".join(lines) + "\n"


def to_csv(t: Table) -> str:
    """CSV: one header row, one row per model, empty cells where a value is missing."""
    buf = io.StringIO()
    w = csv.writer(buf)
    avg_keys = list(t.averages({}).keys())
    w.writerow(["model", *(t.header(c) for c in t.columns), *avg_keys])
    for label, vals in t.rows:
        nums = [vals.get(c) for c in t.columns] + list(t.averages(vals).values())
        w.writerow([label, *("" if v is None else f"{v:.4f}" for v in nums)])
    return buf.getvalue()


def bar_chart(t: Table, path: str | Path) -> Path:
    """A grouped bar chart of the table (benchmarks on x, one bar per model) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_models = max(1, len(t.rows))
    width = min(0.8 / n_models, 0.5)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(t.columns) + 2), 4.0))
    for i, (label, vals) in enumerate(t.rows):
        xs = [j + (i - (n_models - 1) / 2) * width for j in range(len(t.columns))]
        ax.bar(xs, [vals.get(c) or 0.0 for c in t.columns], width=width, label=label)
    ax.set_xlim(-0.75, len(t.columns) - 0.25)  # keeps a lone column from filling the whole plot
    ax.set_xticks(range(len(t.columns)))
    ax.set_xticklabels([t.header(c) for c in t.columns], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("score x 100")
    ax.set_title(GROUP_TITLES.get(t.group, t.group))
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_tables(results: Sequence[dict[str, Any]], out_dir: str | Path, *, plots: bool = True) -> dict[str, Path]:
    """Write ``<group>.md``, ``<group>.csv``, ``<group>.png`` and an all-in-one ``tables.md``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    tables = build_tables(results)
    for t in tables:
        (out / f"{t.group}.md").write_text(to_markdown(t), encoding="utf-8")
        (out / f"{t.group}.csv").write_text(to_csv(t), encoding="utf-8")
        written[f"{t.group}.md"], written[f"{t.group}.csv"] = out / f"{t.group}.md", out / f"{t.group}.csv"
        if plots:
            written[f"{t.group}.png"] = bar_chart(t, out / f"{t.group}.png")
    (out / "tables.md").write_text("\n".join(to_markdown(t) for t in tables), encoding="utf-8")
    written["tables.md"] = out / "tables.md"
    return written
