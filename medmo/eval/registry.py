"""The benchmark registry: every benchmark is a YAML file under ``medmo/eval/benchmarks/``.

A benchmark is data plus a few pure functions (:mod:`medmo.eval.tasks`), the way
lm-evaluation-harness and lmms-eval describe tasks: the YAML names the dataset (a registered source of
:mod:`medmo.data.sources` with a split and filters, or a records file under a data folder), the prompt
template version, the generation settings, the metrics and the benchmark's own version. Files whose
name starts with ``_`` are shared defaults pulled in with ``include:`` and are not benchmarks.

Example (``vqa_rad.yaml``)::

    # medmo eval run MODEL --bench vqa_rad --data vqa_rad=/path/to/vqa_rad
    include: _qa.yaml
    name: vqa_rad
    version: "1"
    dataset: {source: vqa_rad, split: test}

``metrics:`` names registered metrics (:mod:`medmo.eval.metrics`) that score the benchmark
(:mod:`medmo.eval.scoring`); ``headline:`` the result keys it reports. Table columns and their order are
declared once, in ``tables.yaml`` (:func:`table_layout`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from medmo.prompts import PROMPT_VERSION

BENCH_DIR = Path(__file__).parent / "benchmarks"
TABLES_FILE = Path(__file__).parent / "tables.yaml"
GROUPS = ("vqa", "text_qa", "report", "grounding", "nano")


class UnknownBenchmarkError(ValueError):
    """A benchmark name that is not registered; the message lists the close matches."""


@dataclass(frozen=True)
class Benchmark:
    """One registered benchmark, as read from its YAML file.

    Attributes:
        name: registry name, e.g. ``"vqa_rad"``.
        version: the benchmark's own version; bump it when data selection, prompt or scoring changes.
        group: table the benchmark belongs to (one of :data:`GROUPS`).
        title: column header in MedMO's tables, e.g. ``"VQA-RAD"``.
        dataset: ``source`` (a registered source name) + ``split`` + ``filters`` + ``kwargs``, or
            ``records`` (a file path, ``{data}`` standing for the data folder); ``data`` names the
            ``--data NAME=PATH`` key (default: the source name).
        prompt_version: the prompt template version (:data:`medmo.prompts.PROMPT_VERSION`).
        think: ask for ``<think>``/``<answer>`` output.
        generation: ``max_new_tokens`` and ``greedy``.
        metrics: registered metric names that score it (:mod:`medmo.eval.metrics`).
        headline: the result keys it reports first (bootstrap intervals are computed for these).
        where: where to get the data and its expected layout (shown when data is missing).
        medevalkit: MedEvalKit's rules and prompt for this benchmark (``rule``, ``choices``, ``prompt`` ...;
            :mod:`medmo.eval.metrics.medevalkit_bench`); empty where MedEvalKit has no such benchmark.
        categories: record fields (``meta.KEY``, ``modality``, ``task``...) to break accuracy down by.
        path: the YAML file.
    """

    name: str
    version: str
    group: str
    title: str
    dataset: dict[str, Any]
    prompt_version: str
    think: bool = False
    generation: dict[str, Any] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    headline: tuple[str, ...] = ()
    where: str = ""
    medevalkit: dict[str, Any] = field(default_factory=dict)
    categories: tuple[str, ...] = ()
    path: str = ""

    @property
    def data_key(self) -> str:
        """The name used by ``--data NAME=PATH`` and ``MEDMO_DATA_<NAME>``."""
        return str(self.dataset.get("data") or self.dataset.get("source") or self.name)

    @property
    def max_new_tokens(self) -> int:
        return int(self.generation.get("max_new_tokens", 64))

    def for_preset(self, preset: str) -> Benchmark:
        """The benchmark as ``preset`` evaluates it: under ``medevalkit``, a ``dataset:`` entry of the
        ``medevalkit:`` block is merged over ``dataset:`` (PMC-VQA: ``kwargs: {version: 2}``, the
        ``test_2.csv`` MedEvalKit reads). Other presets, and benchmarks without such an entry, are unchanged."""
        override = self.medevalkit.get("dataset") if preset == "medevalkit" else None
        if not override:
            return self
        return replace(self, dataset=_merge(self.dataset, dict(override)))

    def to_dict(self) -> dict[str, Any]:
        """Every setting of the benchmark, for results files."""
        return {
            "name": self.name,
            "version": self.version,
            "group": self.group,
            "title": self.title,
            "dataset": self.dataset,
            "prompt_version": self.prompt_version,
            "think": self.think,
            "generation": self.generation,
            "metrics": list(self.metrics),
            "headline": list(self.headline),
            "medevalkit": self.medevalkit,
            "categories": list(self.categories),
        }


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    import yaml

    if path in seen:
        raise ValueError(f"{path}: include cycle through {[p.name for p in seen]}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a benchmark file must be a YAML mapping")
    inc = data.pop("include", None)
    if inc:
        data = _merge(_read_yaml(path.parent / inc, (*seen, path)), data)
    return data


def _as_tuple(v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    return (str(v),) if isinstance(v, str) else tuple(str(x) for x in v)


def load_benchmark_file(path: str | Path) -> Benchmark:
    """Read and check one benchmark YAML (``include:`` files merged underneath it)."""
    path = Path(path)
    d = _read_yaml(path)
    missing = [k for k in ("name", "version", "group", "dataset", "metrics") if k not in d]
    if missing:
        raise ValueError(f"{path}: missing keys {missing}")
    if d["group"] not in GROUPS:
        raise ValueError(f"{path}: group {d['group']!r} is not one of {GROUPS}")
    ds = d["dataset"]
    if not isinstance(ds, dict) or not ({"source", "records"} & set(ds)):
        raise ValueError(f"{path}: dataset needs `source:` (a registered source) or `records:` (a file)")
    if (d.get("generation") or {}).get("greedy", True) is not True:
        raise ValueError(f"{path}: evaluation decodes greedily (generation.greedy: true) so scores are reproducible")
    prompt = d.get("prompt") or {}

    metrics = _as_tuple(d.get("metrics"))
    return Benchmark(
        name=str(d["name"]),
        version=str(d["version"]),
        group=d["group"],
        title=str(d.get("title") or d["name"]),
        dataset=dict(ds),
        prompt_version=str(prompt.get("version") or PROMPT_VERSION),
        think=bool(prompt.get("think", False)),
        generation=dict(d.get("generation") or {}),
        metrics=metrics,
        headline=_as_tuple(d.get("headline")) or metrics[:1],
        where=str(d.get("where") or "").strip(),
        medevalkit=dict(d.get("medevalkit") or {}),
        categories=_as_tuple(d.get("categories")),
        path=str(path),
    )


@lru_cache(maxsize=1)
def _registry() -> dict[str, Benchmark]:
    out: dict[str, Benchmark] = {}
    for p in sorted(BENCH_DIR.glob("*.yaml")):
        if p.name.startswith("_"):
            continue
        b = load_benchmark_file(p)
        if b.name in out:
            raise ValueError(f"benchmark {b.name!r} is defined twice: {out[b.name].path} and {p}")
        out[b.name] = b
    return out


def names() -> list[str]:
    """All registered benchmark names, sorted."""
    return sorted(_registry())


@lru_cache(maxsize=1)
def table_layout() -> dict[str, dict[str, Any]]:
    """``tables.yaml``: per group its title and columns ``{bench, metric: [keys], title}`` in order."""
    import yaml

    raw = yaml.safe_load(TABLES_FILE.read_text(encoding="utf-8")) or {}
    out = {}
    for group, t in raw.items():
        if group not in GROUPS:
            raise ValueError(f"{TABLES_FILE}: table {group!r} is not one of {GROUPS}")
        cols = [{"bench": str(c["bench"]), "metric": list(_as_tuple(c["metric"])), "title": c.get("title")}
                for c in t.get("columns") or []]
        out[group] = {"title": str(t.get("title") or group), "columns": cols,
                      "per_metric_average": bool(t.get("per_metric_average"))}
    return out


def _position(b: Benchmark) -> int:
    cols = [c["bench"] for c in table_layout().get(b.group, {}).get("columns", [])]
    return cols.index(b.name) if b.name in cols else len(cols)


def benchmarks(group: str | None = None) -> list[Benchmark]:
    """Registered benchmarks (of one group if given), in table order (group, then ``tables.yaml``'s columns)."""
    items = _registry().values()
    order = {g: i for i, g in enumerate(GROUPS)}
    out = [b for b in items if group is None or b.group == group]
    return sorted(out, key=lambda b: (order[b.group], _position(b), b.name))


def get(name: str) -> Benchmark:
    """The benchmark called ``name``; an unknown name raises with the closest registered names."""
    reg = _registry()
    if name in reg:
        return reg[name]
    close = difflib.get_close_matches(name, list(reg), n=5, cutoff=0.5)
    close += [n for n in reg if name and name in n and n not in close][:5]
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownBenchmarkError(
        f"unknown benchmark {name!r}.{hint} Registered: {', '.join(sorted(reg))} (see `medmo eval list`)."
    )


def resolve(spec: str | list[str] | tuple[str, ...]) -> list[Benchmark]:
    """Benchmarks from ``"a,b"``, a list of names, or a group name (``"vqa"``, ``"nano"``, ...)."""
    items = [spec] if isinstance(spec, str) else list(spec)
    parts = [p.strip() for item in items for p in item.split(",")]
    out: list[Benchmark] = []
    for p in filter(None, parts):
        chosen = benchmarks(p) if p in GROUPS else [get(p)]
        out += [b for b in chosen if b not in out]
    if not out:
        raise UnknownBenchmarkError(f"no benchmark named in {spec!r}; see `medmo eval list`")
    return out
