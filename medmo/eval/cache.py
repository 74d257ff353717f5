"""Append-only prediction cache: one JSONL file per (model, benchmark), one line per finished sample.

A line is written (and flushed to disk) as soon as its batch is generated, so a run that is killed
keeps every finished sample and the next run generates only the rest. A line counts for a later run
only when its benchmark version, prompt version, generation settings and model fingerprint match
(``key``); a changed prompt template, benchmark version or checkpoint therefore regenerates instead of
silently reusing old answers.
A torn last line (the process died mid-write) is skipped, never an error.
A sample whose generation failed (an unreadable image) is written with its ``error``: a rerun does not try it
again (it would fail the same way) unless asked to (``retry_failed``), and results name it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CACHE_VERSION = "1"


def slug(text: str) -> str:
    """A file-name-safe form of a model name or path (``org/Model-4B`` -> ``org__Model-4B``)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "__", str(text).strip().rstrip("/"))
    return s.strip("_.") or "model"


def cache_key(
    benchmark_version: str, prompt_version: str, generation: dict[str, Any], model_fingerprint: str | None = None
) -> str:
    """A short digest of everything that changes a prediction besides the model's name and the sample.

    ``model_fingerprint`` (e.g. sizes and times of a checkpoint's weight files) makes a retrained model
    saved under the same name regenerate instead of reusing the old model's answers.
    """
    blob = json.dumps([CACHE_VERSION, benchmark_version, prompt_version, generation, model_fingerprint], sort_keys=True)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:12]


class PredictionCache:
    """Predictions of one model on one benchmark, persisted under ``root/<model>/<benchmark>.jsonl``.

    Args:
        root: cache folder.
        model: model name (any string; slugged for the path).
        benchmark: benchmark name.
        key: :func:`cache_key` of the benchmark version, prompt version and generation settings.
    """

    def __init__(self, root: str | Path, model: str, benchmark: str, key: str):
        self.path = Path(root) / slug(model) / f"{benchmark}.jsonl"
        self.model, self.benchmark, self.key = model, benchmark, key
        self._done: dict[str, str] = {}
        self.failures: dict[str, str] = {}
        self.skipped_lines = 0
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("r", encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    self.skipped_lines += 1  # torn write of a killed run
                    continue
                if isinstance(row, dict) and row.get("key") == self.key and "id" in row:
                    if row.get("error"):
                        self.failures[str(row["id"])] = str(row["error"])
                        self._done.pop(str(row["id"]), None)
                    else:
                        self._done[str(row["id"])] = str(row.get("prediction", ""))
                        self.failures.pop(str(row["id"]), None)

    def __contains__(self, sample_id: str) -> bool:
        return sample_id in self._done or sample_id in self.failures

    def __len__(self) -> int:
        return len(self._done)

    def get(self, sample_id: str) -> str | None:
        return self._done.get(sample_id)

    def forget_failures(self) -> None:
        """Let failed samples be generated again (``--retry-failed``)."""
        self.failures.clear()

    def add_failed(self, items: Iterable[tuple[str, str]]) -> None:
        """Record ``(sample_id, error)`` of samples that could not be generated."""
        self._append([{"id": sid, "key": self.key, "error": err, "model": self.model, "time": round(time.time(), 3)}
                      for sid, err in items])

    def add(self, items: Iterable[tuple[str, str]]) -> None:
        """Append ``(sample_id, prediction)`` pairs and make them durable before returning."""
        self._append([
            {"id": sid, "key": self.key, "prediction": pred, "model": self.model, "time": round(time.time(), 3)}
            for sid, pred in items
        ])

    def _append(self, rows: list[dict]) -> None:
        if not rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            if f.tell() > 0 and not self._ends_with_newline():
                f.write("\n")  # fence off a torn line left by a killed run
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
        for r in rows:
            if "error" in r:
                self.failures[r["id"]] = r["error"]
            else:
                self._done[r["id"]] = r["prediction"]
                self.failures.pop(r["id"], None)

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"
