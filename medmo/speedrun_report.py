"""The speedrun's trivial baseline and its report (``report.md`` + ``report.html``).

The baseline answers without looking at the image: the most frequent training answer of each task and,
for grounding, the mean training box. It runs through the same evaluation pipeline as the trained
models, so its row in the tables is scored by exactly the same rules.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

from medmo.data.io import read_records
from medmo.data.synth import available_cpus
from medmo.eval.report_html import grounding_page
from medmo.eval.tables import build_tables, to_grid, write_tables
from medmo.pages import Block, Code, Grid, Heading, Image, Links, Text, to_html, to_markdown
from medmo.train.distributed import resolve_precision
from medmo.train.logging import read_metrics
from medmo.train.recipe import load_recipe

STAGE_ROWS = (("baseline", "trivial baseline"), ("align", "after alignment"), ("grounding", "after grounding"),
              ("sft", "after instruction tuning"), ("grpo", "after GRPO"))
SUPERVISED = ("align", "grounding", "sft")


# ---------------------------------------------------------------------------------------- report


def _curves(run: Path, out: Path, iou: dict[str, float]) -> Path | None:
    """Loss (align, sft), reward (grpo) and box reward / IoU curves from the stages' metrics.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logs = {s: read_metrics(run / s) if (run / s / "metrics.jsonl").exists() else [] for s in (*SUPERVISED, "grpo")}
    if not any(logs.values()):
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    offset = 0
    for stage in SUPERVISED:
        pts = [(r["step"] + offset, r["loss"]) for r in logs[stage] if "loss" in r]
        if pts:
            axes[0].plot(*zip(*pts), label=f"{stage} train loss")
        ev = [(r["step"] + offset, r["eval_loss"]) for r in logs[stage] if "eval_loss" in r]
        if ev:
            axes[0].plot(*zip(*ev), "o--", label=f"{stage} validation loss")
        offset = max([offset] + [r["step"] + offset for r in logs[stage]])
    axes[0].set(title="loss (align, grounding, then sft)", xlabel="step", yscale="log")
    reward_keys = sorted({k for r in logs["grpo"] for k in r if k.startswith("reward")})
    for key in reward_keys:
        pts = [(r["step"], r[key]) for r in logs["grpo"] if isinstance(r.get(key), (int, float))]
        if pts:
            (axes[2] if "giou" in key or "box" in key else axes[1]).plot(*zip(*pts), label=key)
    axes[1].set(title="GRPO rewards", xlabel="step")
    if iou:
        axes[2].bar(list(iou), list(iou.values()), alpha=0.3, color="gray", label="held-out IoU by stage")
    axes[2].set(title="box reward (GRPO) / held-out IoU", xlabel="step / stage")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _results(run: Path) -> dict[str, dict]:
    """Each stage's results file under ``run/eval`` (``medmo eval run ... --name nano-<stage>`` or ``baseline``)."""
    found = {}
    for path in sorted((run / "eval").glob("results-*.json")):
        res = json.loads(path.read_text())
        stage = str(res.get("model", "")).removeprefix("nano-")
        if stage not in dict(STAGE_ROWS):
            continue
        for bench in res.get("benchmarks", {}).values():
            if bench.get("predictions_file"):
                bench["predictions_file"] = str(_locate(bench["predictions_file"], run))
        found[stage] = res
    return {stage: found[stage] for stage, _ in STAGE_ROWS if stage in found}


def _locate(path: str, run: Path) -> Path:
    """A file the eval stage wrote under ``run/eval``, found from any working directory.

    The evaluation records paths as the run saw them, relative to its working directory; the report can
    be rebuilt from elsewhere, so a path that does not resolve is re-rooted at the run's ``eval`` folder.
    """
    p = Path(path)
    if p.exists() or "eval" not in p.parts:
        return p
    parts = p.parts
    return run.joinpath(*parts[len(parts) - 1 - parts[::-1].index("eval"):])


def _iou(results: dict[str, dict]) -> dict[str, float]:
    """Held-out mean IoU (matched) by stage."""
    out = {}
    for stage, res in results.items():
        m = (res.get("benchmarks", {}).get("nano_grounding") or {}).get("metrics", {})
        if isinstance(m.get("iou_matched_mean"), (int, float)):
            out[stage] = m["iou_matched_mean"]
    return out


BREAKDOWN = (("nano_closed", "closed"), ("nano_mcq", "mcq"), ("nano_open", "open"))


def breakdown(results: dict[str, dict], test_records: str | Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Accuracy per question type and grounding IoU per findings count, per stage.

    The headline columns average over question types; this shows which skills a stage learned (a
    modality question at chance can hide behind a well-learned finding question). Each cell reads
    ``value (n)``; the question type is the record's ``meta.question_type`` (:mod:`medmo.data.synth`).

    Returns:
        ``(columns, {stage: {column: cell}})``.
    """
    meta = {s.id: s.meta for s in read_records(test_records)}
    cols: dict[str, None] = {}
    table: dict[str, dict[str, str]] = {}
    for stage, res in results.items():
        groups: dict[str, list[float]] = {}
        for bench, short in (*BREAKDOWN, ("nano_grounding", "grounding IoU")):
            path = (res.get("benchmarks", {}).get(bench) or {}).get("predictions_file")
            if not path or not Path(path).exists():
                continue
            for line in Path(path).read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                m = meta.get(row.get("id"), {})
                if bench == "nano_grounding":
                    key, value = f"{short}, {len(m.get('findings', []))} findings", row.get("iou_matched", 0.0)
                else:
                    key, value = f"{short}: {m.get('question_type', 'other')}", row.get("correct", 0.0)
                groups.setdefault(key, []).append(float(value))
        table[stage] = {k: f"{100 * sum(v) / len(v):.1f} ({len(v)})" for k, v in groups.items()}
        cols.update(dict.fromkeys(sorted(groups)))
    return list(cols), table


def grpo_diagnosis(headroom: dict[str, dict], metrics: list[dict], iou: dict[str, float],
                   completions: int) -> list[Block]:
    """Report blocks on what the GRPO stage had to learn from and what it changed.

    Sets the held-out IoU change beside the signal GRPO trains on: the sampling headroom of the policy
    before and after (:mod:`medmo.train.headroom`: greedy vs sampled vs best-of-group box reward on the
    test grounding prompts) and the training box reward and entropy over the first and last fifth of
    its steps. Entropy that falls while the greedy reward stays put means GRPO sharpened the policy
    around the answer greedy decoding already gives, rather than moving that answer.

    Args:
        headroom: ``{"sft" | "grpo": headroom stats}`` (``medmo train nano/grpo --headroom``; may be empty).
        metrics: the GRPO stage's ``metrics.jsonl`` rows.
        iou: held-out mean IoU (matched) by stage.
        completions: completions GRPO sampled (steps x prompts per step x group size).
    """
    labels = dict(STAGE_ROWS)
    out: list[Block] = []
    if "sft" in iou and "grpo" in iou:
        out.append(Text(f"Held-out grounding IoU: {100 * iou['sft']:.2f} after instruction tuning, "
                        f"{100 * iou['grpo']:.2f} after GRPO ({100 * (iou['grpo'] - iou['sft']):+.2f}), from "
                        f"{completions:,} sampled completions."))  # fmt: skip
    if headroom:
        first = next(iter(headroom.values()))
        rows = [[labels.get(stage, stage), f"{h['greedy']:.3f}", f"{h['sample_mean']:.3f}", f"{h['best_of_k']:.3f}",
                 f"{h['group_std']:.3f}", f"{100 * h['zero_spread']:.0f}%"] for stage, h in headroom.items()]
        out.append(Grid(f"Box reward ((GIoU + 1) / 2, matched) on {first.get('prompts', 0)} test grounding prompts, "
                        "sampled as GRPO samples",
                        ["policy", "greedy", "sampled (mean)", f"best of {first.get('k', 0)}", "within-group std",
                         "groups with no spread"], rows))  # fmt: skip
    rows = [r for r in metrics if isinstance(r.get("reward/box"), (int, float))]
    if len(rows) >= 5:
        n = len(rows) // 5

        def fifth(key: str, part: list[dict]) -> float:
            vals = [r[key] for r in part if isinstance(r.get(key), (int, float))]
            return sum(vals) / len(vals) if vals else float("nan")

        head, tail = rows[:n], rows[-n:]
        out.append(Text(f"Training box reward {fifth('reward/box', head):.3f} -> {fifth('reward/box', tail):.3f} and "
                        f"entropy {fifth('entropy', head):.3f} -> {fifth('entropy', tail):.3f} (first vs last fifth "
                        "of the GRPO steps)."))  # fmt: skip
    if out:
        out.append(Text("Best-of-group above greedy is the signal GRPO learns from. If the entropy falls while greedy "
                        "stays put, GRPO has sharpened the policy around the answer greedy decoding already gives "
                        "rather than moved that answer (the nano/grpo recipe lists the settings tried)."))
    return out


def _grpo_blocks(run: Path, results: dict[str, dict]) -> list[Block]:
    recipe = run / "grpo" / "recipe.yaml"
    headroom = {}
    for stage in ("sft", "grpo"):
        path = run / "eval" / f"headroom-{stage}.json"
        if path.exists():
            headroom[stage] = json.loads(path.read_text())["tasks"].get("grounding")
    headroom = {k: v for k, v in headroom.items() if v}
    completions = 0
    if recipe.exists():
        r = load_recipe(recipe)
        completions = r.max_steps * r.batch_size * r.grad_accum * (r.trl.get("num_generations") or 8)
    return grpo_diagnosis(headroom, read_metrics(run / "grpo"), _iou(results), completions)


def _stage_times(run: Path) -> list[tuple[str, float, float]]:
    rows = []
    for p in sorted((run / "stages").glob("*.json"), key=lambda p: p.stat().st_mtime):
        if p.stem == "chain":
            continue
        d = json.loads(p.read_text())
        if "seconds" in d:
            rows.append((p.stem, d["seconds"], d.get("peak_rss_mb", 0.0)))
    return rows


def machine() -> str:
    """The CPU, its core count and the training precision ``mixed_precision: auto`` gives on it."""
    model = platform.processor() or platform.machine()
    try:
        names = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                 if ln.startswith("model name")]  # fmt: skip
        model = names[0] if names else model
    except OSError:
        pass
    cores = available_cpus()
    precision = {"bf16": "bf16 autocast", "no": "fp32"}.get(resolve_precision("auto"), "fp32")
    return f"{model}, {cores} cores, training in {precision} where recipes say mixed_precision: auto"


def _relabel(results: dict[str, dict]) -> list[dict]:
    labels = dict(STAGE_ROWS)
    return [{**res, "model": labels.get(stage, stage)} for stage, res in results.items()]


def write_report(run: str | Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` (both from the same blocks), tables, curves and grounding pages."""
    run = Path(run)
    out = run / "report"
    out.mkdir(parents=True, exist_ok=True)
    raw = _results(run)
    results = _relabel(raw)
    files = write_tables(results, out) if results else {}
    pages = [grounding_page(res, out / f"grounding-{res['model'].replace(' ', '_')}.html") for res in results]
    blocks: list[Block] = [
        Heading("nano MedMO speedrun", 1),
        Text("Research use only: a nano model trained on synthetic data; not for clinical decisions."),
        Heading("Results on the held-out nano test split"),
        *(to_grid(t) for t in build_tables(results)),
    ]
    cols, by_type = breakdown(raw, run / "data" / "test.jsonl") if raw else ([], {})
    if cols:
        labels = dict(STAGE_ROWS)
        blocks += [Heading("By question type and findings count"),
                   Grid("Accuracy (or IoU) x 100 and the number of test samples, per stage",
                        ["", *(labels.get(st, st) for st in by_type)],
                        [[c, *(by_type[st].get(c, "-") for st in by_type)] for c in cols])]  # fmt: skip
    grpo = _grpo_blocks(run, raw)
    if grpo:
        blocks += [Heading("What GRPO had to learn from"), *grpo]
    curves = _curves(run, out, _iou(raw))
    if curves:
        blocks += [Heading("Training curves"), Image(curves, "curves")]
    if any(pages):
        blocks += [Heading("Grounding predictions"), Links([(p.stem, str(p)) for p in pages if p])]
    times = _stage_times(run)
    chain_file = run / "stages" / "chain.json"
    chain = json.loads(chain_file.read_text()) if chain_file.exists() else {}
    blocks += [Heading("Time and peak memory per step"),
               Grid("", ["step", "seconds", "peak RSS (MB)"], [[s, f"{sec:.1f}", f"{mem:.0f}"] for s, sec, mem in times]),
               Text(f"Total: {sum(t[1] for t in times):.1f} s. Seed {chain.get('seed', 0)}; {machine()}."),
               Heading("Commands"), Code(chain.get("steps", []))]  # fmt: skip
    report_md, report_html = run / "report.md", run / "report.html"
    report_md.write_text(to_markdown(blocks, run), encoding="utf-8")
    report_html.write_text(to_html(blocks, run, "nano MedMO speedrun"), encoding="utf-8")
    return {"report_md": report_md, "report_html": report_html, **files}
