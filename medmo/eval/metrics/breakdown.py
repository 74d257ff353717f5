"""Per-category accuracy and seeded bootstrap confidence intervals over per-sample scores.

Breakdowns: for each category field a benchmark declares (``categories:`` in its YAML: ``meta.KEY``,
``modality``, ``task``, ``language``...) plus the sample kind (closed / open / mcq), the mean per-sample
``correct`` (or headline score) of each value, with its count.

Confidence intervals: the percentile bootstrap (Efron & Tibshirani, "An Introduction to the Bootstrap",
1993, ch. 13) of the mean of each headline metric that is a mean of per-sample values, 1,000 resamples of
the samples with ``numpy.random.default_rng(seed)``, 95 % (2.5th and 97.5th percentiles). A metric that is
not a per-sample mean (a corpus-level CIDEr-D, whose document frequencies depend on the set) gets none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medmo.records import Sample

N_BOOT = 1000
PER_SAMPLE_ALIASES = {"overall_acc": "correct", "closed_acc": "correct", "open_acc": "correct", "mcq_acc": "correct"}
KIND_FILTER = {"closed_acc": "closed", "open_acc": "open", "mcq_acc": "mcq"}


def _field(sample: Sample, name: str) -> Any:
    if name.startswith("meta."):
        return sample.meta.get(name[5:]) if isinstance(sample.meta, dict) else None
    return getattr(sample, name, None)


def breakdowns(samples: Sequence[Sample], rows: Sequence[dict], categories: Sequence[str]) -> dict[str, Any]:
    """``{field: {value: {"acc": mean correct, "n": count}}}`` for each category field with 2+ values."""
    if not rows or "correct" not in rows[0]:
        return {}
    fields = ["kind", *categories]
    out: dict[str, Any] = {}
    for f in fields:
        groups: dict[str, list[float]] = {}
        for s, r in zip(samples, rows):
            v = r.get("kind") if f == "kind" else _field(s, f)
            for key in v if isinstance(v, list) else [v]:
                if key not in (None, ""):
                    groups.setdefault(str(key), []).append(float(r.get("correct", 0.0)))
        if len(groups) >= 2:
            out[f] = {k: {"acc": sum(v) / len(v), "n": len(v)} for k, v in sorted(groups.items())}
    return out


def bootstrap_ci(values: Sequence[float], *, seed: int = 0, n_boot: int = N_BOOT) -> list[float] | None:
    """95 % percentile-bootstrap interval of the mean of ``values``; None for fewer than two values."""
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if len(x) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return [float(lo), float(hi)]


def confidence_intervals(rows: Sequence[dict], headline: Sequence[str], *, seed: int = 0) -> dict[str, list[float]]:
    """CIs of every headline metric that is a mean of per-sample values (see module docstring)."""
    out: dict[str, list[float]] = {}
    for name in headline:
        key = PER_SAMPLE_ALIASES.get(name, name)
        if rows and key not in rows[0] and name.endswith("_mean"):  # iou_matched_mean: mean of iou_matched
            key = name[: -len("_mean")]
        kind = KIND_FILTER.get(name)
        vals = [r[key] for r in rows if key in r and r[key] is not None and (kind is None or r.get("kind") == kind)]
        if name == "overall_acc":
            vals = [r["correct"] for r in rows if "correct" in r]
        if not vals or (len(vals) < len(rows) and kind is None and name != "overall_acc"):
            continue  # a corpus metric (no per-sample value on every row)
        ci = bootstrap_ci(vals, seed=seed)
        if ci is not None:
            out[name] = ci
    return out
