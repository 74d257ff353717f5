"""Export records to the layouts of other training frameworks, streaming.

- ``llamafactory``: LLaMA-Factory's ShareGPT-style multimodal JSONL (``messages`` with ``role``/``content``,
  one ``<image>`` tag per image, and ``images``), plus a ``dataset_info.json`` entry beside it
  (LLaMA-Factory ``data/README.md``, "sharegpt" format with ``messages`` and ``images`` columns).
- ``swift``: ms-swift's standard JSONL (``messages`` + ``images``; ms-swift docs, "Custom dataset").
- ``verl``: verl's RL parquet layout (``data_source``, ``prompt`` chat messages, ``images``, ``ability``,
  ``reward_model = {style: rule, ground_truth}``, ``extra_info``), as written by verl's
  ``examples/data_preprocess/geo3k.py``; the ground truth is :func:`medmo.gold.gold_json`
  so ``medmo/train/verl_score.py:compute_score`` scores the rollouts.

Prompts and answers come from :mod:`medmo.prompts` (box answers on Qwen3-VL's 0-1000 grid), so exported
data teaches exactly what MedMO's own trainer teaches. Exported data carries pixels only
(:mod:`medmo.data.outbound`, formats detected by content): a plain PNG/JPEG without metadata stays where
it is (absolute path); every other image (DICOM whatever its name, NIfTI, TIFF, a chosen frame, a PNG with
text chunks, a JPEG with EXIF) is rendered once with :func:`medmo.data.images.load_image` to a
metadata-free PNG in ``<output>_images/``. ``embed_images=True`` (verl only) stores those same bytes in
the parquet instead of paths.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from medmo.data.io import read_records
from medmo.data.outbound import safe_image_bytes, shareable_as_stored
from medmo.gold import gold_json
from medmo.prompts import question_text, target_text
from medmo.records import ImageRef, Sample

log = logging.getLogger(__name__)

FORMATS = ("llamafactory", "swift", "verl")
IMAGE_TAG = "<image>"
VERL_BATCH_ROWS = 512


def export(
    records: str | Path | Iterable[Sample],
    out: str | Path,
    fmt: str,
    *,
    think: bool = False,
    embed_images: bool = False,
) -> dict[str, Any]:
    """Export records (a records file/folder, or Samples) to ``out`` in format ``fmt``.

    Args:
        records: a path :func:`medmo.data.io.read_records` accepts, or an iterable of Samples.
        out: output file (``.jsonl`` for llamafactory/swift, ``.parquet`` for verl).
        fmt: one of :data:`FORMATS`.
        think: ask for ``<think>``/``<answer>`` reasoning in the prompt (RL data).
        embed_images: verl only: the images' encoded pixels in the parquet instead of image paths.

    Returns:
        ``{"path", "format", "written", "rendered_images"}``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if embed_images and fmt != "verl":
        raise ValueError("embed_images is only supported for the verl format")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    samples = _samples(records)
    images = ImagePaths(out.parent / f"{out.name.split('.')[0]}_images")
    if fmt == "verl":
        written = _write_verl(samples, out, images, think=think, embed=embed_images)
    else:
        row = to_llamafactory if fmt == "llamafactory" else to_swift
        written = _write_jsonl((row(s, images.paths(s), think=think) for s in samples), out)
        if fmt == "llamafactory":
            _write_dataset_info(out)
    return {"path": str(out), "format": fmt, "written": written, "rendered_images": images.rendered}


def _samples(records: str | Path | Iterable[Sample]) -> Iterator[Sample]:
    if isinstance(records, (str, Path)):
        return read_records(records)
    return iter(records)


# ----------------------------------------------------------------------------------------------------
# rows


def _user_text(s: Sample, think: bool) -> str:
    return IMAGE_TAG * len(s.images) + question_text(s, think=think)


def to_llamafactory(s: Sample, image_paths: list[str], think: bool = False) -> dict[str, Any]:
    """One LLaMA-Factory ShareGPT-style row: ``{"messages": [user, assistant], "images": [...]}``."""
    messages = [{"role": "user", "content": _user_text(s, think)}, {"role": "assistant", "content": target_text(s)}]
    return {"messages": messages, "images": image_paths}


def to_swift(s: Sample, image_paths: list[str], think: bool = False) -> dict[str, Any]:
    """One ms-swift row: ``{"messages": [user, assistant], "images": [...]}`` (same message layout)."""
    return to_llamafactory(s, image_paths, think=think)


def to_verl(s: Sample, images: list[dict[str, Any]], index: int, think: bool = False) -> dict[str, Any]:
    """One verl row (``images`` entries are ``{"image": path}`` or ``{"bytes": png}``)."""
    return {
        "data_source": s.source,
        "prompt": [{"role": "user", "content": _user_text(s, think)}],
        "images": images,
        "ability": s.task,
        "reward_model": {"style": "rule", "ground_truth": gold_json(s, think=think)},
        "extra_info": {"index": index, "id": s.id, "split": s.split, "task": s.task, "answer": target_text(s)},
    }


# ----------------------------------------------------------------------------------------------------
# images


class ImagePaths:
    """Image paths for exported rows: plain PNG/JPEG files as they are, everything else rendered once to PNG."""

    def __init__(self, render_dir: Path):
        self.render_dir = render_dir
        self.rendered = 0
        self._as_stored: dict[str, bool] = {}  # path -> the file may be exported as it is

    def paths(self, s: Sample) -> list[str]:
        return [self.path(ref) for ref in s.images]

    def path(self, ref: ImageRef) -> str:
        p = os.path.abspath(ref.path)
        if ref.frame is None and self._shareable(p):
            return p
        target = self.render_dir / f"{hashlib.sha1(f'{p}|{ref.frame}'.encode()).hexdigest()[:20]}.png"
        if not target.exists():
            self.render_dir.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp.png")
            tmp.write_bytes(self.image_bytes(ref))
            os.replace(tmp, target)
            self.rendered += 1
        return str(target)

    def image_bytes(self, ref: ImageRef) -> bytes:
        """The encoded pixels of ``ref`` (the stored bytes of a plain PNG/JPEG, else a rendered PNG)."""
        return safe_image_bytes(ref.path, frame=ref.frame)[0]

    def _shareable(self, path: str) -> bool:
        if path not in self._as_stored:
            if len(self._as_stored) > 100_000:  # bound the cache on huge exports
                self._as_stored.clear()
            self._as_stored[path] = shareable_as_stored(path) is not None
        return self._as_stored[path]


# ----------------------------------------------------------------------------------------------------
# writers


def _write_jsonl(rows: Iterable[dict[str, Any]], out: Path) -> int:
    tmp = out.with_name(f".{out.name}.tmp")
    n = 0
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def _write_dataset_info(out: Path) -> None:
    """LLaMA-Factory's dataset registration for the exported file, next to it (merged if present)."""
    info_path = out.parent / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
    info[out.name.split(".")[0]] = {
        "file_name": out.name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
    }
    info_path.write_text(json.dumps(info, indent=2), encoding="utf-8")


def verl_schema(embed: bool) -> Any:
    import pyarrow as pa

    s = pa.string()
    image = pa.struct([("bytes", pa.binary())]) if embed else pa.struct([("image", s)])
    return pa.schema(
        [
            ("data_source", s),
            ("prompt", pa.list_(pa.struct([("role", s), ("content", s)]))),
            ("images", pa.list_(image)),
            ("ability", s),
            ("reward_model", pa.struct([("style", s), ("ground_truth", s)])),
            ("extra_info", pa.struct([("index", pa.int64()), ("id", s), ("split", s), ("task", s), ("answer", s)])),
        ]
    )


def _write_verl(samples: Iterable[Sample], out: Path, images: ImagePaths, *, think: bool, embed: bool) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = verl_schema(embed)
    tmp = out.with_name(f".{out.name}.tmp")
    n, batch = 0, []
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for s in samples:
                entries = ([{"bytes": images.image_bytes(r)} for r in s.images] if embed
                           else [{"image": p} for p in images.paths(s)])  # fmt: skip
                batch.append(to_verl(s, entries, n, think=think))
                n += 1
                if len(batch) >= VERL_BATCH_ROWS:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    batch.clear()
            if batch or n == 0:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return n
