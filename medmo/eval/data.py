"""Where a benchmark's samples come from: the data folder, the source loader or records file, the filters.

A benchmark names its data by a key (``vqa_rad``, ``nano``, ...). The folder is given per run with
``--data KEY=PATH`` (``data={"vqa_rad": PATH}`` in Python) or the environment variable
``MEDMO_DATA_<KEY>``; nothing is downloaded implicitly. A missing folder is an error that says where to
get the dataset and which layout the loader expects (from :func:`medmo.data.sources.describe`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from medmo.data.io import read_records
from medmo.data.sources import get_source, load_source
from medmo.eval.registry import Benchmark
from medmo.records import Sample


class DataNotFoundError(FileNotFoundError):
    """A benchmark's data folder was not given or does not exist; the message says how to provide it."""


def env_name(key: str) -> str:
    """``MEDMO_DATA_<KEY>`` for a data key (``vqa_rad`` -> ``MEDMO_DATA_VQA_RAD``)."""
    return "MEDMO_DATA_" + "".join(c if c.isalnum() else "_" for c in key).upper()


def parse_data_args(items: list[str] | None) -> dict[str, str]:
    """``["vqa_rad=/d/rad", "nano=/d/nano"]`` -> a dict; a malformed item raises naming it."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"--data expects NAME=PATH, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _where(bench: Benchmark) -> str:
    lines = [bench.where] if bench.where else []
    source = bench.dataset.get("source")
    if source:
        try:

            info = get_source(source).to_dict()
        except (ImportError, KeyError):
            info = None
        if info:
            if info.get("hub_id"):
                lines.append(f"Hugging Face dataset id (usable as PATH): {info['hub_id']}")
            lines.append(f"Expected layout:\n{info.get('layout', '')}")
            if info.get("licence"):
                lines.append(f"Licence: {info['licence']}")
    return "\n".join(lines)


def data_root(bench: Benchmark, data: Mapping[str, str | Path] | None = None) -> str:
    """The data folder (or hub id) for ``bench``, from ``data`` or ``MEDMO_DATA_<KEY>``."""
    key = bench.data_key
    given = (data or {}).get(key) or os.environ.get(env_name(key))
    if given:
        value = str(given)
        looks_like_hub = bench.dataset.get("source") and "/" in value and not value.startswith((".", "/", "~"))
        if Path(value).expanduser().exists() or looks_like_hub:
            return value
        problem = f"{key} data path {value} does not exist"
    else:
        problem = f"benchmark {bench.name} needs the {key} dataset, which was not given"
    raise DataNotFoundError(
        f"{problem}. Pass --data {key}=PATH (or set {env_name(key)}=PATH).\n{_where(bench)}".rstrip()
    )


def _field(sample: Sample, name: str) -> Any:
    if name.startswith("meta."):
        return sample.meta.get(name[5:])
    if name == "has_image":
        return bool(sample.images)
    return getattr(sample, name, None)


def _same(a: Any, b: Any) -> bool:
    if isinstance(b, bool) or isinstance(a, bool):
        return bool(a) == bool(b) if a is not None else False
    return a is not None and str(a).strip().lower() == str(b).strip().lower()


def matches(sample: Sample, filters: Mapping[str, Any] | None) -> bool:
    """Whether ``sample`` passes every filter (``field: value`` or ``field: [values]``; ``meta.KEY`` reads meta).

    String comparison ignores case and surrounding spaces (``CLOSED`` matches ``closed``).
    """
    for name, want in (filters or {}).items():
        have = _field(sample, name)
        options = want if isinstance(want, list) else [want]
        if not any(_same(have, w) for w in options):
            return False
    return True


def _records_path(bench: Benchmark, root: str) -> Path:
    p = Path(root).expanduser()
    if p.is_file():
        return p
    return Path(str(bench.dataset["records"]).format(data=str(p)))


def iter_samples(bench: Benchmark, data: Mapping[str, str | Path] | None = None) -> Iterator[Sample]:
    """Every sample of ``bench`` after its filters, in the dataset's own order."""
    root = data_root(bench, data)
    ds = bench.dataset
    if "records" in ds:

        path = _records_path(bench, root)
        if not path.exists():
            raise DataNotFoundError(f"{bench.name}: records file {path} does not exist.\n{_where(bench)}")
        stream = read_records(path)
    else:

        stream = load_source(ds["source"], root, split=ds.get("split"), **dict(ds.get("kwargs") or {}))
    for s in stream:
        if matches(s, ds.get("filters")):
            yield s


def load_samples(
    bench: Benchmark, data: Mapping[str, str | Path] | None = None, limit: int | None = None
) -> list[Sample]:
    """The first ``limit`` samples of ``bench`` (all if None), ids made unique within the benchmark."""
    out: list[Sample] = []
    seen: dict[str, int] = {}
    for s in iter_samples(bench, data):
        if limit is not None and len(out) >= limit:
            break
        n = seen[s.id] = seen.get(s.id, 0) + 1
        if n > 1:  # duplicated rows (e.g. SLAKE repeats some pairs): keep both, keyed apart
            s.id = f"{s.id}#{n}"
        out.append(s)
    return out
