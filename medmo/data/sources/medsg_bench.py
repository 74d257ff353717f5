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

``style="medmo-sft"`` / ``"medmo-grpo"`` words the records as MedMO's ``medsg_bbox`` / ``medsg_bbox_grpo``
loaders did: the question as written (only ``<image>`` tokens dropped, reference boxes left in pixels), the
label ``Difference detected`` and the target box in pixels of the image (``meta["box_convention"] = "pixel"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from medmo.boxes import CONVENTION_KEY, sanitize_box, to_grid
from medmo.data.sources._base import Context, LayoutError, SourceInfo, read_json, rescale, text
from medmo.data.sources._medmo_style import check_style
from medmo.records import Box, ImageRef, RecordError, Sample

SOURCE = SourceInfo(
    name="medsg_bench",
    tasks=("grounding",),
    modality="other",
    splits=("train", "test"),
    layout="<root>/**/*.json: benchmark arrays {task, images, question, answer[, size]} or MedSG-188K {id, task, "
           "images, conversations}; image paths relative to <root>",
    hub_id="MedSG-Bench/MedSG-Bench",
    licence="CC-BY-4.0",
    aliases=("medsg",),
)

DEFAULT_SIZE = (336, 336)
_REF = re.compile(r"<\|object_ref_start\|>(.*?)<\|object_ref_end\|>")
_BOX = re.compile(
    r"(?:<\|box_start\|>)?\(\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\)\s*,\s*\(\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\)(?:<\|box_(?:end|start)\|>)?"
)
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
_WHICH = re.compile(r"in the (\w+) image", re.I)
MEDMO_LABEL = "Difference detected"  # MedMO's answer label for every MedSG task


def clean_question(q: str, size: tuple[int, int]) -> str:
    """Drop ``<image>`` tokens and object-ref markers; pixel reference boxes -> grid ``<box>[[...]]</box>``."""
    q = re.sub(r"<image>\s*", "", q)
    q = _REF.sub(lambda m: m.group(1), q)
    q = _BOX.sub(
        lambda m: "<box>[[" + ", ".join(str(g) for g in to_grid([float(v) for v in m.groups()], *size)) + "]]</box>", q
    )
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


def _styled(question: str, label: str, size: tuple[int, int], meta: dict[str, Any], style: str) -> tuple[str, str]:
    """``(question, label)`` in ``style``; MedMO's styles also set the record's pixel convention in ``meta``."""
    if style == "qwen":
        return clean_question(question, size), label
    meta[CONVENTION_KEY] = "pixel"
    return re.sub(r"<image>\s*", "", question).strip(), MEDMO_LABEL


def _bench(ctx: Context, root: Path, json_dir: Path, r: dict[str, Any], index: int, path: Path,
           style: str = "qwen") -> Sample:  # fmt: skip
    task, size = text(r["task"]), tuple(int(v) for v in (r.get("size") or DEFAULT_SIZE))
    refs = _refs(ctx, root, json_dir, r["images"], size)
    if not refs:
        raise RecordError("item has no images")
    meta: dict[str, Any] = {"medsg_task": task, "box_image": "assumed_last", "declared_size": list(size)}
    question, label = _styled(text(r["question"]), _label(text(r["question"]), task), size, meta, style)
    return ctx.sample(
        task, path.name, index,
        task="grounding",
        split="test",
        question=question,
        answer=label,
        boxes=[Box(label, _box(r["answer"], size, refs[-1]), image=len(refs) - 1)],
        images=refs,
        meta=meta,
    )


def _turn(ctx: Context, root: Path, json_dir: Path, r: dict[str, Any], t: int, style: str = "qwen") -> Sample:
    """Record of the ``t``-th human/gpt pair of a MedSG-188K conversation."""
    task, size = text(r["task"]), tuple(int(v) for v in (r.get("size") or DEFAULT_SIZE))
    refs = _refs(ctx, root, json_dir, r["images"], size)
    turns = r["conversations"]
    human, gpt = text(turns[2 * t]["value"]), text(turns[2 * t + 1]["value"])
    which = _WHICH.search(gpt)
    image = _ORDINALS.index(which.group(1).lower()) if which and which.group(1).lower() in _ORDINALS else len(refs) - 1
    if image >= len(refs):
        raise RecordError(f"turn {t}: answer names image {image + 1}, item has {len(refs)}")
    meta: dict[str, Any] = {"medsg_task": task, "medsg_id": text(r["id"]), "turn": t}
    question, label = _styled(human, _label(human, task), size, meta, style)
    boxes = [Box(label, _box(m.groups(), size, refs[image]), image=image) for m in _BOX.finditer(gpt)]
    if not boxes:
        raise RecordError(f"turn {t}: no <|box_start|>(x1,y1),(x2,y2)<|box_end|> in the answer {gpt[:80]!r}")
    return ctx.sample(
        text(r["id"]), t,
        task="grounding",
        split="train",
        question=question,
        answer=label,
        boxes=boxes,
        images=refs,
        meta=meta,
    )


def _rows(path: Path, data: list[Any]) -> Iterator[tuple[str, int, tuple[int, int | None, Any]]]:
    """One row per benchmark item, one per human/gpt turn pair of a training item."""
    for i, r in enumerate(data):
        convs = r.get("conversations") if isinstance(r, dict) else None
        if isinstance(convs, list):
            for t in range(len(convs) // 2):
                yield str(path), i, (i, t, r)
        else:
            yield str(path), i, (i, None, r)


def load(root: Path, split: str | None, ctx: Context, *, tasks: Sequence[str] | None = None,
         style: str = "qwen") -> Iterator[Sample]:  # fmt: skip
    """Yield MedSG grounding records from every JSON array under ``root`` (or one JSON file), worded in ``style``."""
    check_style(style)
    files = [root] if root.is_file() else sorted(root.rglob("*.json"))
    if not files:
        raise LayoutError(f"no *.json files under {root}")
    base = root.parent if root.is_file() else root
    for path in files:
        data = read_json(path)
        if not isinstance(data, list):
            continue  # not a MedSG item array (e.g. a config file next to the data)

        def convert(row: tuple[int, int | None, Any], path: Path = path) -> Sample | None:
            i, turn, r = row
            if tasks is not None and text(r.get("task")) not in tasks:
                return None
            kind = "test" if turn is None else "train"
            if split not in (None, kind):
                return None
            return (
                _bench(ctx, base, path.parent, r, i, path, style)
                if turn is None
                else _turn(ctx, base, path.parent, r, turn, style)
            )

        yield from ctx.emit(_rows(path, data), convert)
