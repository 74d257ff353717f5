"""OmniMedVQA (Hu et al., CVPR 2024): multiple-choice medical VQA over 73 source datasets (test only).

Reads ``QA_information/<access>/<Dataset>.json`` arrays. The gold answer is option *text*; it is mapped
to a letter by comparing normalised text (case, surrounding space, trailing period), as the answer
strings are inconsistent (``x_ray.`` vs ``X-ray``). Missing / empty options are dropped. One file uses
``modality`` instead of ``modality_type``; both are read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, SourceInfo, list_rows, map_modality, read_json, text
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="omnimedvqa",
    tasks=("mcq",),
    modality="other",
    splits=("test",),
    layout="<root>/QA_information/{Open-access,Restricted-access}/<Dataset>.json + Images/<Dataset>/...",
    hub_id="foreverbeliever/OmniMedVQA",
    licence="per source dataset (card)",
)

ACCESS = ("Open-access", "Restricted-access")


def _norm(s: str) -> str:
    return text(s).lower().rstrip(".").strip()


def _image(ctx: Context, root: Path, rel: str) -> Any:
    rel = rel[2:] if rel.startswith("./") else rel
    # The prefix of image_path is not documented: try it against the root, then under Images/.
    for cand in (root / rel, root / "Images" / rel, root.parent / rel):
        if cand.is_file():
            return ctx.image(cand)
    return ctx.image(root / rel)


def _sample(ctx: Context, root: Path, r: dict[str, Any]) -> Sample:
    options = {k: text(r.get(f"option_{k}")) for k in "ABCDEF" if text(r.get(f"option_{k}"))}
    gold = _norm(r["gt_answer"])
    letter = next((k for k, v in options.items() if _norm(v) == gold), None)
    if letter is None:
        raise RecordError(f"gt_answer {r['gt_answer']!r} matches none of the options {list(options.values())}")
    return ctx.sample(
        r["question_id"],
        task="mcq",
        split="test",
        question=text(r["question"]),
        answer=letter,
        options=options,
        images=[_image(ctx, root, text(r["image_path"]))],
        modality=map_modality(r.get("modality_type", r.get("modality"))),
        meta={
            "question_id": r["question_id"],
            "dataset": text(r.get("dataset")),
            "question_type": text(r.get("question_type")),
            "modality_type": text(r.get("modality_type", r.get("modality"))),
            "gt_answer": str(r["gt_answer"]),  # as released: MedEvalKit matches it to the options exactly
        },
    )


def load(
    root: Path,
    split: str | None,
    ctx: Context,
    *,
    access: Sequence[str] = ("Open-access",),
    datasets: Sequence[str] | None = None,
) -> Iterator[Sample]:
    """Yield OmniMedVQA samples from the given access groups (and source ``datasets``, if given)."""
    base = next((b for b in (root, root / "OmniMedVQA") if (b / "QA_information").is_dir()), None)
    if base is None:
        raise LayoutError(f"no QA_information/ folder in {root}")
    for group in access:
        if group not in ACCESS:
            raise ValueError(f"access must be among {ACCESS}, got {group!r}")
        for path in sorted((base / "QA_information" / group).glob("*.json")):
            if datasets is None or path.stem in datasets:
                yield from ctx.emit(list_rows(str(path), read_json(path)), lambda r: _sample(ctx, base, r))
