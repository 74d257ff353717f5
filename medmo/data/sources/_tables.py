"""Row readers shared by the instruction and text-QA loaders: one table file or a folder of them.

The text sets ship as a JSON list, JSON lines, CSV or Parquet shards (the hub layout
``<config>/train-00000-of-00001-*.parquet``); :func:`table_rows` streams any of them as
``(file, row number, dict)`` rows for :meth:`~medmo.data.sources._base.Context.emit`. Many of these sets
have no published split; :func:`holdout` makes the last rows a ``validation`` split, as MedMO's loaders
did, so a mixture can hold them out and decontaminate against them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, Row, csv_rows, jsonl_rows, parquet_rows, read_json, text
from medmo.records import Sample

TABLE_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv")


def table_files(root: Path, patterns: Iterable[str] = ("*.parquet", "*.jsonl", "*.json", "*.csv"), what: str = "") -> list[Path]:
    """``root`` itself when it is a file, else its files matching the first pattern that matches any."""
    if root.is_file():
        return [root]
    pats = list(patterns)
    for pat in pats:
        hits = sorted(p for p in root.glob(pat) if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES)
        if hits:
            return hits
    raise LayoutError(f"no {what or 'data'} file under {root} (looked for {', '.join(pats)})")


def json_records(path: Path) -> list[Any]:
    """The records of a JSON file: a list, or the list under ``data`` (some releases wrap it)."""
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise LayoutError(f"{path} is not a JSON list of records")
    return data


def table_rows(path: Path) -> Iterator[Row]:
    """``(file, row number, row)`` of a .json / .jsonl / .parquet / .csv file; read each row with :func:`record`.

    JSON lines stay text here, so a broken line fails alone, in the loader's convert step.
    """
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        yield from parquet_rows(path)
    elif suffix == ".csv":
        yield from csv_rows(path)
    elif suffix == ".jsonl":
        yield from jsonl_rows(path)
    else:
        for i, r in enumerate(json_records(path)):
            yield str(path), i, r


def record(row: Any) -> dict[str, Any]:
    """A row of :func:`table_rows` as a dict (JSON lines parsed here; a broken line raises JSONDecodeError)."""
    out = json.loads(row) if isinstance(row, str) else row
    if not isinstance(out, dict):
        raise TypeError(f"expected a JSON object, got {type(out).__name__}")
    return out


def count_rows(path: Path) -> int:
    """Rows of a table file without keeping them (Parquet metadata; a line count for JSON lines)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            return sum(1 for line in f if line.strip())
    if suffix == ".csv":
        return sum(1 for _ in csv_rows(path))
    return len(json_records(path))


def holdout(index: int, total: int, n: int) -> str:
    """``validation`` for the last ``n`` of ``total`` rows, else ``train``."""
    return "validation" if index >= total - n else "train"


def all_rows(files: list[Path]) -> tuple[int, Iterator[Row]]:
    """The row count of several files, and their rows as ``(file, line, (index, row))`` with ``index`` counted
    across the files from 0 (for :func:`holdout`)."""
    total = sum(count_rows(f) for f in files)

    def rows() -> Iterator[Row]:
        i = 0
        for f in files:
            for file, line, r in table_rows(f):
                yield file, line, (i, r)
                i += 1

    return total, rows()


def emit_table(
    ctx: Context, files: list[Path], split: str | None, n_holdout: int,
    make: Callable[[dict[str, Any], str, int], Sample | None],
) -> Iterator[Sample]:  # fmt: skip
    """Records of table files without a published split: the last ``n_holdout`` rows are ``validation``.

    ``make(row, split, index)`` builds a record (or None to leave the row out) and raises for a broken row.
    """
    total, rows = all_rows(files)

    def convert(item: tuple[int, Any]) -> Sample | None:
        index, raw = item
        name = holdout(index, total, n_holdout)
        return make(record(raw), name, index) if split in (None, name) else None

    yield from ctx.emit(rows, convert)


_LINE_OPTION = re.compile(r"^\s*\(?([A-J])[\).:：、．\s]\s*(.*?)\s*$")


def parse_options(value: Any) -> dict[str, str]:
    """Options in any published form -> ``{"A": text, ...}``.

    Accepts a dict (``{"A": "..."}``), a list of ``{"key": "A", "value": "..."}`` dicts, a list of strings
    (lettered in order), or text with one ``A. ...`` / ``A ...`` / ``(A) ...`` option per line.
    """
    if isinstance(value, dict):
        return {text(k).upper(): text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if all(isinstance(o, dict) and "key" in o for o in value):
            return {text(o["key"]).upper(): text(o.get("value")) for o in value}
        return {"ABCDEFGHIJ"[i]: text(o) for i, o in enumerate(value) if i < 10}
    out = {}
    for line in text(value).splitlines():
        m = _LINE_OPTION.match(line)
        if m:
            out[m.group(1)] = m.group(2)
    return out
