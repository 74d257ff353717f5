"""OmniMedVQA (Hu et al., CVPR 2024): multiple-choice medical VQA over 73 source datasets (test only).

Reads ``QA_information/<access>/<Dataset>.json`` arrays. The gold answer is option *text*. It becomes a
letter by the rule MedEvalKit applies (``utils/OmniMedVQA/OmniMedVQA.py`` at 9b12e3b: the last option whose
released text equals ``gt_answer`` exactly), else by comparing normalised text (case, surrounding space,
trailing period, ``_`` / ``-`` / space alike), as the answer strings are inconsistent (``x_ray.`` vs
``X-ray``); several normalised matches take the last, as MedEvalKit does with exact ones.

A record whose ``gt_answer`` matches no option even after normalising (a few exist) is kept, not dropped:
it becomes a ``closed_vqa`` record whose answer is the released text, with the options beside it and
``meta.gold_not_in_options`` set. MedMO's own prompts ask it as a closed question; MedEvalKit's show the
options and judge against the text (the ``--preset medevalkit`` verdict reads ``meta.gt_answer``).

``meta`` keeps what MedEvalKit's class reads as released: ``gt_answer``, and ``options_raw`` (the
``option_A``..``option_D`` values present, unstripped, empty ones included) when they differ from
``options`` (stripped, empty ones dropped), and ``question_raw`` when the question has surrounding space.
One file uses ``modality`` instead of ``modality_type``; both are read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, SourceInfo, list_rows, map_modality, read_json, text
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="omnimedvqa",
    tasks=("mcq", "closed_vqa"),
    modality="other",
    splits=("test",),
    layout="<root>/QA_information/{Open-access,Restricted-access}/<Dataset>.json + Images/<Dataset>/...",
    hub_id="foreverbeliever/OmniMedVQA",
    licence="per source dataset (card)",
)

ACCESS = ("Open-access", "Restricted-access")


def _norm(s: str) -> str:
    return " ".join(text(s).lower().rstrip(".").replace("_", " ").replace("-", " ").split())


def gold_letter(options: dict[str, str], raw: dict[str, Any], gt: Any) -> str | None:
    """The option letter of ``gt``: MedEvalKit's exact rule first, then normalised text; None if neither."""
    exact = [k for k, v in raw.items() if v == gt]
    if exact:
        return exact[-1]
    loose = [k for k, v in options.items() if _norm(v) == _norm(gt)]
    return loose[-1] if loose else None


def _image(ctx: Context, root: Path, rel: str) -> Any:
    rel = rel[2:] if rel.startswith("./") else rel
    # The prefix of image_path is not documented: try it against the root, then under Images/.
    for cand in (root / rel, root / "Images" / rel, root.parent / rel):
        if cand.is_file():
            return ctx.image(cand)
    return ctx.image(root / rel)


def _sample(ctx: Context, root: Path, r: dict[str, Any]) -> Sample:
    options = {k: text(r.get(f"option_{k}")) for k in "ABCDEF" if text(r.get(f"option_{k}"))}
    raw = {k: r[f"option_{k}"] for k in "ABCD" if f"option_{k}" in r}  # what MedEvalKit reads
    letter = gold_letter(options, raw, r["gt_answer"])
    meta = {
        "question_id": r["question_id"],
        "dataset": text(r.get("dataset")),
        "question_type": text(r.get("question_type")),
        "modality_type": text(r.get("modality_type", r.get("modality"))),
        "gt_answer": str(r["gt_answer"]),  # as released: MedEvalKit matches it to the options exactly
    }
    if raw != options:
        meta["options_raw"] = {k: str(v) for k, v in raw.items()}
    if str(r["question"]) != text(r["question"]):
        meta["question_raw"] = str(r["question"])
    if letter is None:
        if not text(r["gt_answer"]):
            raise RecordError("gt_answer is empty")
        meta["gold_not_in_options"] = True
    return ctx.sample(
        r["question_id"],
        task="mcq" if letter else "closed_vqa",
        split="test",
        question=text(r["question"]),
        answer=letter or text(r["gt_answer"]),
        options=options,
        images=[_image(ctx, root, text(r["image_path"]))],
        modality=map_modality(r.get("modality_type", r.get("modality"))),
        meta=meta,
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
