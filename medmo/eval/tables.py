"""Result tables in MedMO's layout: rows = models, columns as ``tables.yaml`` declares them, then averages.

One table per benchmark group (medical VQA, text QA, report generation, grounding, nano), written as
Markdown and CSV, plus a grouped bar chart per table. Several results files side by side give one row
each (``medmo eval table a.json b.json``). Values x 100, with the seeded bootstrap 95 % interval in
brackets where the results have one. Columns come from ``medmo/eval/tables.yaml`` (MedMO's seed tables:
VQA-RAD and SLAKE as closed / all, Medbullets op4 / op5); benchmarks the layout does not list are appended.

Two averages, each named in the header: ``Mean over benchmarks`` (one value per benchmark, its benchmark-
level metric: for VQA-RAD and SLAKE the "all" column) and MedMO's ``Avg.`` (every column counted, closed and
all separately: 9 values in the VQA table, as in MedMO's tables). The report table averages per metric.
Every table ends with notes naming the preset, prompts, judge and, for grounding, which IoU each column shows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medmo.eval.registry import GROUPS, UnknownBenchmarkError, get, table_layout
from medmo.eval.tasks import IOU_NOTE
from medmo.pages import Grid, grid_markdown

GROUP_TITLES = {
    "vqa": "Medical VQA",
    "text_qa": "Medical text QA",
    "report": "Report generation",
    "grounding": "Grounding",
    "nano": "nano suite",
}
METRIC_LABELS = {
    "overall_acc": "Acc",
    "closed_acc": "closed",
    "rougeL": "ROUGE-L",
    "cider_d": "CIDEr",
    "cider": "CIDEr",
    "bleu1": "BLEU-1",
    "bleu4": "BLEU-4",
    "ratescore": "RaTEScore",
    "semb_score": "SembScore",
    "finding_f1": "Finding F1",
    "iou_matched_mean": "IoU (matched)",
    "iou_first_mean": "IoU (first box)",
    "iou_best_mean": "IoU (best pair)",
}
MEAN_NAME, AVG_NAME = "Mean over benchmarks", "Avg."
AVERAGES_NOTE = (f"{MEAN_NAME}: one value per benchmark (VQA-RAD and SLAKE by their 'all' column); {AVG_NAME}: "
                 "MedMO's average over every column (closed and all counted separately).")


@dataclass
class Table:
    """One group's table: columns ``(benchmark, metric keys)``, rows ``(label, {column: value|None})``."""

    group: str
    columns: list[tuple[str, str]]
    titles: dict[tuple[str, str], str]
    rows: list[tuple[str, dict[tuple[str, str], float | None]]] = field(default_factory=list)
    cis: list[dict[tuple[str, str], list[float]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    per_metric: bool = False

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(m for _, m in self.columns))

    @property
    def per_metric_avg(self) -> bool:
        return self.per_metric

    def header(self, col: tuple[str, str]) -> str:
        return self.titles.get(col) or col[0]

    def averages(self, values: dict[tuple[str, str], float | None]) -> dict[str, float | None]:
        """Both named averages (per metric for report tables); ``None`` unless every needed column has a value."""
        def mean(cols):
            vals = [values.get(c) for c in cols]
            return sum(vals) / len(vals) if vals and all(v is not None for v in vals) else None

        if self.per_metric:
            return {f"{AVG_NAME} {METRIC_LABELS.get(m.split('|')[0], m)}": mean([c for c in self.columns if c[1] == m])
                    for m in self.metrics}
        benches = list(dict.fromkeys(b for b, _ in self.columns))
        per_bench = [next((c for c in self.columns if c[0] == b and "overall_acc" in c[1].split("|")),
                          [c for c in self.columns if c[0] == b][-1]) for b in benches]
        return {MEAN_NAME: mean(per_bench), AVG_NAME: mean(self.columns)}


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


def _columns(group: str, names: list[str], metas: dict[str, dict]) -> tuple[list, dict]:
    """The group's columns in ``tables.yaml`` order (metric keys joined by ``|``), unlisted benchmarks after."""
    layout = table_layout().get(group, {}).get("columns", [])
    cols, titles = [], {}
    for c in layout:
        if c["bench"] in names:
            key = (c["bench"], "|".join(c["metric"]))
            cols.append(key)
            title = c["title"] or f"{metas[c['bench']]['title']} {METRIC_LABELS.get(c['metric'][0], c['metric'][0])}"
            titles[key] = title if c["title"] or group == "report" else metas[c["bench"]]["title"]
    for n in names:
        if n not in {b for b, _ in cols}:
            for m in metas[n]["headline"][:1] if group != "report" else metas[n]["headline"]:
                cols.append((n, m))
                titles[(n, m)] = metas[n]["title"] if group != "report" else f"{metas[n]['title']} {m}"
    return cols, titles


def _value(entry: dict[str, Any], keys: str) -> tuple[float | None, list[float] | None]:
    metrics, ci = entry.get("metrics") or {}, entry.get("ci") or {}
    for k in keys.split("|"):
        if k in metrics:
            v = metrics[k]
            c = ci.get(k)
            return (None if v is None else 100.0 * float(v)), ([100.0 * x for x in c] if c else None)
    return None, None


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
        names = [n for n in metas if metas[n]["group"] == group]
        cols, titles = _columns(group, names, metas)
        t = Table(group, cols, titles, per_metric=table_layout().get(group, {}).get("per_metric_average", False))
        for res in results:
            entries = res.get("benchmarks", {})
            vals, cis = {}, {}
            for b, m in cols:
                if b in entries:  # absent key = not run; None = run but not computed
                    vals[(b, m)], c = _value(entries[b], m)
                    if c:
                        cis[(b, m)] = c
            t.rows.append((_row_label(res, presets), vals))
            t.cis.append(cis)
        t.notes = _notes(t, results, metas)
        tables.append(t)
    return tables


def _notes(t: Table, results: Sequence[dict[str, Any]], metas: dict[str, dict[str, Any]]) -> list[str]:
    notes = ["Values x 100, [95 % bootstrap CI]; averages only when the row has every column; n/a = not computed, "
             "- = not run.", AVERAGES_NOTE]
    for res in results:
        lim = {e.get("limit") for e in res.get("benchmarks", {}).values()} - {None}
        extra = f", limit {sorted(lim)}" if lim else ""
        judge = f"LLM judge {res['judge'].get('model')}" if res.get("judge") else "no judge"
        notes.append(f"{res.get('model')}: preset {res.get('preset')}, prompts {res.get('prompts', 'ours')}, "
                     f"{judge}{extra}.")
    iou_cols = [(b, m) for b, m in t.columns if m.startswith("iou")]
    if iou_cols:
        shown = ", ".join(f"{t.header(c)}: {c[1]}" for c in iou_cols)
        notes.append(f"IoU shown: {shown}. {IOU_NOTE}.")
    missing = {
        (b, m): (e.get("notes") or {}).get(m)
        for res in results
        for b, e in res.get("benchmarks", {}).items()
        for m in metas[b]["headline"]
        if (e.get("notes") or {}).get(m) and any(c[0] == b for c in t.columns)
    }
    notes += [f"{metas[b]['title']} {METRIC_LABELS.get(m, m)}: {why}" for (b, m), why in missing.items()]
    return notes


def _cell(vals: dict[tuple[str, str], float | None], col: tuple[str, str], cis: dict | None = None) -> str:
    if col not in vals:
        return "-"
    v = vals[col]
    if v is None:
        return "n/a"
    ci = (cis or {}).get(col)
    return f"{v:.1f} [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else f"{v:.1f}"


def to_grid(t: Table) -> Grid:
    """The table's cells (values x 100, CIs in brackets, both named averages) for Markdown or HTML."""
    avg_keys = list(t.averages({}).keys())
    title = table_layout().get(t.group, {}).get("title") or GROUP_TITLES.get(t.group, t.group)
    rows = []
    for (label, vals), cis in zip(t.rows, t.cis or [{}] * len(t.rows)):
        cells = [_cell(vals, c, cis) for c in t.columns]
        cells += ["-" if v is None else f"{v:.1f}" for v in t.averages(vals).values()]
        rows.append([label, *cells])
    return Grid(title, ["Model", *(t.header(c) for c in t.columns), *avg_keys], rows, notes=list(t.notes))


def to_markdown(t: Table) -> str:
    """A Markdown table with a title line and notes."""
    return grid_markdown(to_grid(t))


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


def report_section(results: Sequence[dict[str, Any]]) -> str:
    """Markdown for a run report: the tables (CIs in brackets, both averages), then per-category breakdowns.

    For ``medmo/speedrun_report.py``: ``md += report_section(results)`` where it now joins ``to_markdown``.
    """
    parts = [to_markdown(t) for t in build_tables(results)]
    for res in results:
        for name, entry in res.get("benchmarks", {}).items():
            for field_name, groups in (entry.get("breakdown") or {}).items():
                cells = ", ".join(f"{k} {100 * v['acc']:.1f} (n={v['n']})" for k, v in groups.items())
                parts.append(f"- {res.get('model')} / {name} by {field_name}: {cells}\n")
    return "\n".join(parts)
