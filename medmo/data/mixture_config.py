"""Mixture configuration: the YAML a ``medmo data build`` reads, parsed and checked field by field.

A file holds one mixture (``sources:`` at the top) or one per training stage::

    # medmo data build data/medmo --stage grounding --out runs/data/grounding
    data_dir: /data                       # "{data_dir}" in any root / records path is replaced by this
    seed: 0
    decontaminate_against:                # shared by every stage; a records file or a registered source
      - {name: vqa_rad, root: "{data_dir}/vqa_rad", split: test}
      - eval/extra_test.jsonl
    stages:
      general_sft: {expected_records: 18500000, sources: [...]}
      grounding: {sources: [...]}

Keys of the file apply to every stage; a stage's own keys win. ``missing: skip`` (or a source's
``optional: true``) leaves out, and reports, a source or evaluation set whose folder does not exist, so a
recipe listing MedMO's whole corpus builds from the part of it at hand. Every value is checked here and a bad one
is a :class:`ValueError` naming the file, the entry and what is allowed (never a traceback): ``weight: abc``,
``weight: 1.0e9`` (YAML 1.1 reads that as text), ``.inf``, ``shard_size: big``, a YAML syntax error (with
its line), an output ``prefix`` that is not a plain file-name prefix (``../x`` would write elsewhere).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from medmo import recipes

MAX_WEIGHT = 1000.0
PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_NUMBER_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass
class SourceSpec:
    """One entry of a mixture: a registered source (``name`` + ``root``) or a ``records`` file/folder.

    ``label`` names the entry in the report (default: the source, with ``:split`` unless it is train, or the
    records path). ``allow_contamination`` keeps this source's records that share an image or a question with an
    evaluation set (they are still counted, per evaluation set, in the report); ``note`` says why.
    """

    name: str | None = None
    root: str | None = None
    split: str | None = "train"
    records: str | None = None
    weight: float = 1.0
    max_samples: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    allow_contamination: bool = False
    optional: bool = False
    note: str = ""
    label_: str = ""
    tasks: list[str] = field(default_factory=list)  # keep only records of these tasks (empty: all)
    where: dict[str, list[Any]] = field(default_factory=dict)  # keep only records whose fields match

    def keeps(self, sample: Any) -> bool:
        """Whether a record passes the entry's ``tasks`` and ``where`` filters.

        ``where`` maps a record field (``modality``, ``source``...) or a ``meta.<key>`` to the values
        kept: ``{modality: [ct, mri], meta.background: flat}`` keeps CT and MRI records on flat backgrounds.
        """
        if self.tasks and sample.task not in self.tasks:
            return False
        for key, allowed in self.where.items():
            if key.startswith("meta."):
                value = (sample.meta or {}).get(key.removeprefix("meta."))
            else:
                value = getattr(sample, key, None)
            if value not in allowed:
                return False
        return True

    @property
    def label(self) -> str:
        """How the report names the entry: ``label`` if given, else the source (``:split`` unless train) or path."""
        if self.label_:
            return self.label_
        if self.name:
            return self.name if self.split in ("train", None) else f"{self.name}:{self.split}"
        return str(self.records)


@dataclass
class EvalSpec:
    """An evaluation set to decontaminate against: a registered source's split (default test), or a records
    file or folder (all of it, or only the records of ``split`` when one is given)."""

    name: str | None = None
    root: str | None = None
    split: str | None = "test"
    records: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    optional: bool = False

    @property
    def label(self) -> str:
        if self.name:
            return f"{self.name}:{self.split or 'all'}"
        return Path(str(self.records)).name + (f":{self.split}" if self.split else "")


@dataclass
class MixtureConfig:
    """A parsed mixture (see the module docstring)."""

    sources: list[SourceSpec]
    seed: int = 0
    shard_size: int = 10000
    prefix: str = "part"
    dedup: bool | str = True
    decontaminate_against: list[EvalSpec] = field(default_factory=list)
    report_only_contamination: bool = False
    strict: bool = False  # stop at the first bad record (file, line, reason) instead of skipping and reporting it
    ngram: int = 13
    expected_records: int | None = None
    missing: str = "error"
    stage: str | None = None
    note: str = ""


SHARED_KEYS = {f.name for f in fields(MixtureConfig)} - {"sources", "stage"} | {"data_dir"}


def read_yaml(path: Path) -> Any:
    """The parsed YAML of ``path``; a syntax error is a ValueError with the file, line and column."""
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"mixture file {path} does not exist")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ValueError(f"{path}: not valid YAML{where}: {problem}; fix the syntax") from None


def stage_names(config: str | Path | dict[str, Any]) -> list[str]:
    """The stages of a mixture file (empty for a single-mixture file)."""
    raw = read_yaml(recipes.path(config)) if not isinstance(config, dict) else config
    stages = raw.get("stages") if isinstance(raw, dict) else None
    return list(stages) if isinstance(stages, dict) else []


def load_config(config: str | Path | dict[str, Any], stage: str | None = None, data_dir: str | None = None) -> MixtureConfig:
    """Parse and check a mixture YAML file or dict; relative paths resolve against the YAML's folder.

    Args:
        config: a YAML path or the same dict.
        stage: for a file with ``stages:``, which one (required there, refused elsewhere).
        data_dir: replaces the file's ``data_dir`` in ``{data_dir}`` paths.

    Raises:
        ValueError: unknown keys, wrong types, bad values, an unknown or missing stage; the message names
            the entry and what to write instead.
    """
    base, where = Path.cwd(), "mixture"
    if not isinstance(config, dict):
        path = recipes.path(config)  # a file, or a shipped mixture by name (nano/mixture)
        # paths in a shipped recipe mean the working directory (the run folder); in a user's file, its folder
        # (absolute: from a relative base, relative image paths would be written relative to nothing)
        base, where = (Path.cwd() if recipes.is_shipped(path) else path.absolute().parent), str(config)
        config = read_yaml(path)
    if not isinstance(config, dict):
        raise ValueError(f"{where}: a mixture is a mapping with a 'sources' list (or 'stages'), got {type(config).__name__}")
    raw = dict(config)
    stages = raw.pop("stages", None)
    if stages is not None:
        if not isinstance(stages, dict) or not stages:
            raise ValueError(f"{where}: 'stages' must map stage names to mixtures")
        if stage is None:
            raise ValueError(f"{where} holds one mixture per stage; choose one with --stage ({', '.join(stages)})")
        if stage not in stages:
            raise ValueError(f"{where}: no stage {stage!r}; stages: {', '.join(stages)}")
        if not isinstance(stages[stage], dict):
            raise ValueError(f"{where}: stage {stage!r} must be a mapping with a 'sources' list")
        _no_unknown(raw, SHARED_KEYS, f"{where} (keys shared by the stages)")
        raw = {**raw, **stages[stage], "stage": stage}
        where = f"{where} stage {stage}"
    elif stage is not None:
        raise ValueError(f"{where} has no stages; drop --stage {stage}")
    return _parse(raw, base, where, data_dir)


def _parse(raw: dict[str, Any], base: Path, where: str, data_dir: str | None) -> MixtureConfig:
    allowed = {f.name for f in fields(MixtureConfig)} | {"data_dir"}
    _no_unknown(raw, allowed, where)
    subst = {"data_dir": str(data_dir if data_dir is not None else raw.pop("data_dir", "") or "")}
    raw.pop("data_dir", None)
    sources = raw.pop("sources", None)
    if not isinstance(sources, list) or not sources:
        raise ValueError(f"{where}: the mixture lists no sources (give 'sources:' as a list)")
    specs = [_source(s, i, base, where, subst) for i, s in enumerate(sources)]
    evals = raw.pop("decontaminate_against", None) or []
    if not isinstance(evals, list):
        raise ValueError(f"{where}: decontaminate_against must be a list of records files or sources")
    out = MixtureConfig(sources=specs, decontaminate_against=[_eval(e, i, base, where, subst) for i, e in enumerate(evals)])
    out.seed = _int(raw, "seed", 0, where)
    out.shard_size = _int(raw, "shard_size", 10000, where, minimum=1)
    out.ngram = _int(raw, "ngram", 13, where, minimum=4)
    out.expected_records = _int(raw, "expected_records", None, where, minimum=0)
    out.prefix = str(raw.get("prefix", "part"))
    if not PREFIX.match(out.prefix):
        raise ValueError(f"{where}: prefix {out.prefix!r} must be a plain file-name prefix (letters, digits, '_', '-'); "
                         "shards are always written inside --out")  # fmt: skip
    out.dedup = raw.get("dedup", True)
    if out.dedup not in (True, False, "record", "image"):
        raise ValueError(f"{where}: dedup must be true, false or 'image', got {out.dedup!r}")
    out.report_only_contamination = _bool(raw, "report_only_contamination", where)
    out.strict = _bool(raw, "strict", where)
    out.missing = str(raw.get("missing", "error"))
    if out.missing not in ("error", "skip"):
        raise ValueError(f"{where}: missing must be 'error' or 'skip' (leave out, and report, a source or evaluation "
                         f"set whose folder does not exist), got {out.missing!r}")  # fmt: skip
    for spec in [*out.sources, *out.decontaminate_against]:
        spec.optional = spec.optional or out.missing == "skip"
    out.stage = raw.get("stage")
    out.note = str(raw.get("note") or "")
    return out


def _no_unknown(d: dict, allowed: set[str] | dict, what: str) -> None:
    unknown = set(d) - set(allowed)
    if unknown:
        raise ValueError(f"{what}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")


def _path(value: Any, base: Path, subst: dict[str, str], what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a path (a string), got {value!r}")
    if "{data_dir}" in value:
        if not subst["data_dir"]:
            raise ValueError(f"{what} uses {{data_dir}} but no data_dir is set (add 'data_dir:' or pass --data-dir)")
        value = value.replace("{data_dir}", subst["data_dir"])
    return value if Path(value).expanduser().is_absolute() else str(base / value)


def _source(s: Any, i: int, base: Path, where: str, subst: dict[str, str]) -> SourceSpec:
    what = f"{where}: source #{i + 1}"
    if not isinstance(s, dict):
        raise ValueError(f"{what} must be a mapping (name + root, or records), got {s!r}")
    _no_unknown(s, {f.name for f in fields(SourceSpec)} - {"label_"} | {"label"}, what)
    label = s.get("label") or s.get("name") or s.get("records")
    what = f"{what} ({label})" if label else what
    if bool(s.get("name")) == bool(s.get("records")):
        raise ValueError(f"{what}: give either 'name' (+ 'root') or 'records', not {s}")
    if s.get("name") and not s.get("root"):
        raise ValueError(f"{what}: 'root' (dataset folder or hub id) is missing")
    spec = SourceSpec(name=s.get("name"), split=_split(s, what, "train"), options=_options(s, what))
    spec.weight = _weight(s.get("weight", 1.0), what)
    spec.max_samples = _int(s, "max_samples", None, what, minimum=0)
    spec.allow_contamination = _bool(s, "allow_contamination", what)
    spec.optional = _bool(s, "optional", what)
    spec.note = str(s.get("note") or "")
    tasks = s.get("tasks") or []
    tasks = [tasks] if isinstance(tasks, str) else tasks
    if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
        raise ValueError(f"{what}: tasks must be a list of record tasks, e.g. [grounding], got {s.get('tasks')!r}")
    spec.tasks = tasks
    spec.where = _where(s.get("where"), what)
    if not isinstance(s.get("label", ""), str):
        raise ValueError(f"{what}: label must be text (how the report names this entry), got {s['label']!r}")
    spec.label_ = s.get("label", "")
    spec.records = _path(s.get("records"), base, subst, f"{what} records")
    root = s.get("root")
    spec.root = root if isinstance(root, str) and looks_like_hub_id(root) else _path(root, base, subst, f"{what} root")
    return spec


# The record fields a ``where:`` filter may name besides ``meta.<key>`` (scalar fields of medmo.records.Sample).
WHERE_FIELDS = ("task", "source", "split", "modality", "language", "answer")


def _where(raw: Any, what: str) -> dict[str, list[Any]]:
    """A source's ``where:`` mapping, each value made a list of the values kept."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{what}: where must map record fields to the values kept, e.g. "
                         f"{{meta.background: flat, modality: [ct, mri]}}, got {raw!r}")  # fmt: skip
    out = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not (key in WHERE_FIELDS or (key.startswith("meta.") and len(key) > 5)):
            raise ValueError(f"{what}: where cannot filter on {key!r}; use one of {list(WHERE_FIELDS)} or meta.<key>")
        values = value if isinstance(value, list) else [value]
        if not values or not all(v is None or isinstance(v, (str, int, float, bool)) for v in values):
            raise ValueError(f"{what}: where {key} must be a value or a list of values, got {value!r}")
        out[key] = values
    return out


def _eval(e: Any, i: int, base: Path, where: str, subst: dict[str, str]) -> EvalSpec:
    what = f"{where}: decontaminate_against #{i + 1}"
    if isinstance(e, str):
        return EvalSpec(records=_path(e, base, subst, what), split=None)
    if not isinstance(e, dict):
        raise ValueError(f"{what} must be a records path or a mapping (name, root, split), got {e!r}")
    _no_unknown(e, {f.name for f in fields(EvalSpec)}, what)
    if bool(e.get("name")) == bool(e.get("records")) or (e.get("name") and not e.get("root")):
        raise ValueError(f"{what}: give 'records', or 'name' + 'root' (+ 'split', default test)")
    root = e.get("root")
    split = _split(e, what, "test" if e.get("name") else None)  # a records file: all of it, or the split named
    return EvalSpec(name=e.get("name"), split=split, options=_options(e, what),
                    records=_path(e.get("records"), base, subst, what), optional=_bool(e, "optional", what),
                    root=root if isinstance(root, str) and looks_like_hub_id(root) else _path(root, base, subst, what))  # fmt: skip


def looks_like_hub_id(root: str) -> bool:
    return "/" in root and not root.startswith((".", "/", "~", "{")) and not Path(root).exists() and root.count("/") == 1


def _weight(value: Any, what: str) -> float:
    if isinstance(value, str):
        hint = (" (YAML 1.1 reads a number like 1.0e9 as text; write 1.0e+9 or 1000000000)"
                if _NUMBER_TEXT.match(value.strip()) else "")  # fmt: skip
        raise ValueError(f"{what}: weight must be a number, got the text {value!r}{hint}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what}: weight must be a number, got {value!r}")
    w = float(value)
    if not math.isfinite(w) or not 0 <= w <= MAX_WEIGHT:
        raise ValueError(f"{what}: weight must be between 0 and {MAX_WEIGHT:g} (a multiple of the source's records), "
                         f"got {value!r}")  # fmt: skip
    return w


def _int(d: dict, key: str, default: int | None, what: str, minimum: int | None = None) -> int | None:
    value = d.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer() and math.isfinite(value):
            value = int(value)
        else:
            raise ValueError(f"{what}: {key} must be a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{what}: {key} must be >= {minimum}, got {value}")
    return value


def _bool(d: dict, key: str, what: str) -> bool:
    value = d.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{what}: {key} must be true or false, got {value!r}")
    return value


def _split(d: dict, what: str, default: str) -> str | None:
    value = d.get("split", default)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{what}: split must be a split name (train, validation, test, all) or null, got {value!r}")
    return value


def _options(d: dict, what: str) -> dict[str, Any]:
    value = d.get("options") or {}
    if not isinstance(value, dict):
        raise ValueError(f"{what}: options must be a mapping of loader options, got {value!r}")
    return dict(value)
