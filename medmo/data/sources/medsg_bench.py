"""MedSG-Bench / MedSG-188K (Yue et al., 2025, arXiv 2505.11852): grounding across medical image sequences.

Eight tasks (``Registered_Diff``, ``Non_Registered_Diff``, ``multi_view``, ``object_tracking``,
``concept``, ``patch``, ``crossmodal``, ``referring``); items hold several images. Two JSON shapes:

* benchmark arrays ``{task, images, question, answer, size?}``: ``answer`` is ``[x1, y1, x2, y2]`` in
  absolute pixels of 336 x 336 images, except ``multi_view`` whose ``size`` is ``[w, h]`` (as hard-coded
  in the official ``eval/MedSG_Bench.py``). The item does not say which image the box is in; it is put
  on the last image (``meta["box_image"] = "assumed_last"``). Split ``test``.
* MedSG-188K training records ``{id, task, images, conversations}``: each human/gpt turn pair becomes
  one record; the gpt turn ``"It's in the third image. <|box_start|>(x1,y1),(x2,y2)<|box_end|>"`` gives
  the image and the box. Split ``train``.

Questions lose their ``<image>`` tokens (the prompt adds images) and Qwen2-VL ``<|object_ref_*|>``
markers; reference boxes written in pixels inside questions are rewritten on the 0-1000 grid as
``<box>[[x1, y1, x2, y2]]</box>``, MedMO's box syntax. If an image file has another size than the
declared one, boxes are scaled to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from medmo.boxes import sanitize_box, to_grid
from medmo.data.sources._base import Context, LayoutError, list_rows, read_json, rescale, text
from medmo.records import Box, ImageRef, RecordError, Sample, stable_id

DEFAULT_SIZE = (336, 336)
_REF = re.compile(r"<\|object_ref_start\|>(.*?)<\|object_ref_end\|>")
_BOX = re.compile(r"(?:<\|box_start\|>)?\(\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\)\s*,\s*\(\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\)(?:<\|box_(?:end|start)\|>)?")
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
_WHICH = re.compile(r"in the (\w+) image", re.I)


def clean_question(q: str, size: tuple[int, int]) -> str:
    """Drop ``<image>`` tokens and object-ref markers; pixel reference boxes -> grid ``<box>[[...]]</box>``."""
    q = re.sub(r"<image>\s*", "", q)
    q = _REF.sub(lambda m: m.group(1), q)
    q = _BOX.sub(lambda m: "<box>[[" + ", ".join(str(g) for g in to_grid([float(v) for v in m.groups()], *size)) + "]]</box>", q)
    return q.strip()


def _refs(ctx: Context, root: Path, json_dir: Path, paths: Sequence[str], size: tuple[int, int]) -> list[ImageRef]:
    refs = []
    for p in paths:
        p = text(p)
        tail = p.split("MedSG-Bench/", 1)[-1]
        cands = [Path(p), root / p, json_dir / p, root / tail, root / Path(p).name]
        path = next((c for c in cands if c.is_file()), root / p)
        ref = ctx.image(path)
        if ref.width is None:
            ref.width, ref.height = size
        refs.append(ref)
    return refs


def _box(raw: Sequence[float], size: tuple[int, int], ref: ImageRef) -> list[float]:
    box = [float(v) for v in raw]
    if (ref.width, ref.height) != size:
        box = rescale(box, size, (ref.width, ref.height))
    return sanitize_box(box, ref.width, ref.height)


def _label(question: str, task: str) -> str:
    names = _REF.findall(question)
    return text(names[-1]) if names else task.replace("_", " ")


def _bench(ctx: Context, root: Path, json_dir: Path, r: dict[str, Any], index: int, path: Path) -> Sample:
    task, size = text(r["task"]), tuple(int(v) for v in (r.get("size") or DEFAULT_SIZE))
    refs = _refs(ctx, root, json_dir, r["images"], size)
    if not refs:
        raise RecordError("item has no images")
    label = _label(text(r["question"]), task)
    return Sample(
        id=stable_id("medsg_bench", task, path.name, index),
        task="grounding",
        source="medsg_bench",
        split="test",
        question=clean_question(text(r["question"]), size),
        answer=label,
        boxes=[Box(label, _box(r["answer"], size, refs[-1]), image=len(refs) - 1)],
        images=refs,
        meta={"medsg_task": task, "box_image": "assumed_last", "declared_size": list(size)},
    )


def _train(ctx: Context, root: Path, json_dir: Path, r: dict[str, Any]) -> list[Sample]:
    task, size = text(r["task"]), tuple(int(v) for v in (r.get("size") or DEFAULT_SIZE))
    refs = _refs(ctx, root, json_dir, r["images"], size)
    turns = r["conversations"]
    out = []
    for t in range(0, len(turns) - 1, 2):
        human, gpt = text(turns[t]["value"]), text(turns[t + 1]["value"])
        which = _WHICH.search(gpt)
        image = _ORDINALS.index(which.group(1).lower()) if which and which.group(1).lower() in _ORDINALS else len(refs) - 1
        if image >= len(refs):
            raise RecordError(f"turn {t // 2}: answer names image {image + 1}, item has {len(refs)}")
        label = _label(human, task)
        boxes = [Box(label, _box(m.groups(), size, refs[image]), image=image) for m in _BOX.finditer(gpt)]
        if not boxes:
            raise RecordError(f"turn {t // 2}: no <|box_start|>(x1,y1),(x2,y2)<|box_end|> in the answer {gpt[:80]!r}")
        out.append(Sample(
            id=stable_id("medsg_bench", text(r["id"]), t // 2), task="grounding", source="medsg_bench", split="train",
            question=clean_question(human, size), answer=label, boxes=boxes, images=refs,
            meta={"medsg_task": task, "medsg_id": text(r["id"]), "turn": t // 2},
        ))
    return out


def load(root: Path, split: str | None, ctx: Context, *, tasks: Sequence[str] | None = None, **kw: Any) -> Iterator[Sample]:
    """Yield MedSG grounding records from every JSON array under ``root`` (or one JSON file)."""
    files = [root] if root.is_file() else sorted(root.rglob("*.json"))
    if not files:
        raise LayoutError(f"no *.json files under {root}")
    base = root.parent if root.is_file() else root
    for path in files:
        data = read_json(path)
        if not isinstance(data, list):
            continue  # not a MedSG item array (e.g. a config file next to the data)

        def convert(ir: tuple[int, dict[str, Any]], path: Path = path) -> Sample | list[Sample] | None:
            i, r = ir
            if tasks is not None and text(r.get("task")) not in tasks:
                return None
            kind = "train" if "conversations" in r else "test"
            if split not in (None, kind):
                return None
            return _train(ctx, base, path.parent, r) if kind == "train" else _bench(ctx, base, path.parent, r, i, path)

        yield from ctx.emit(((f, i, (i, r)) for f, i, r in list_rows(str(path), data)), convert)
