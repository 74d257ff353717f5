"""MedPix 2.0 ClinQA (Siragusa et al., arXiv 2407.02994): clinical questions on MedPix cases, the "CLiQA" set MedMO uses.

Reads the hub release ``adishourya/MEDPIX-ClinQA`` as a local snapshot (``data/train-0000N-of-00007-*.parquet``)
whose rows hold an embedded image (``image_id`` or ``image``), ``question``, ``answer`` and, as in the
sister set MEDPIX-ShortQA, ``case_id``, ``mode`` and ``split``; or MedMO's own CSV export
(``data_csv/{train,validation}.csv`` with ``image_path``, ``answer`` and optionally ``question``).
Rows with a question are open VQA; MedMO's loader ignores the question and asks for a report with one of its
report prompts (``style="medmo"``: ``report`` records), which is also what rows without a question get.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, SourceInfo, canonical_split, parquet_rows, text
from medmo.data.sources._medmo_style import report_prompt
from medmo.data.sources._tables import record, table_rows
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="medpix",
    tasks=("open_vqa", "report"),
    modality="other",
    splits=("train", "validation", "test"),
    layout="<root>/data/train-*.parquet (adishourya/MEDPIX-ClinQA: image_id|image, question, answer[, case_id, mode, "
    "split]) or <root>/data_csv/{train,validation}.csv (image_path, answer[, question])",
    hub_id="adishourya/MEDPIX-ClinQA",
    licence="apache-2.0 (HF card tag); MedPix images from the NLM MedPix database",
    aliases=("medpix_clinqa", "medpix_cliqa", "cliqa"),
)
STYLES = ("data", "medmo")


def _sample(ctx: Context, r: dict[str, Any], split: str, index: int, image: Any, style: str) -> Sample:
    answer = text(r.get("answer"))
    if not answer:
        raise RecordError("empty answer")
    question = text(r.get("question"))
    key = (text(r.get("case_id")), question, index)
    ref = ctx.image(image) if isinstance(image, Path) else ctx.embedded(image)
    meta = {k: text(r.get(k)) for k in ("case_id", "mode") if text(r.get(k))}
    if question and style == "data":
        return ctx.sample(*key, task="open_vqa", split=split, question=question, answer=answer, images=[ref], meta=meta)
    return ctx.sample(*key, task="report", split=split, question=report_prompt(str(key)), answer=answer, images=[ref],
                      meta=meta)  # fmt: skip


def load(root: Path, split: str | None, ctx: Context, *, style: str = "data") -> Iterator[Sample]:
    """Yield one record per row (``style="medmo"``: MedMO's report prompt instead of the question)."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    parquet = [root] if root.suffix == ".parquet" else sorted(root.glob("**/*.parquet"))
    for f in parquet:

        def from_parquet(item: tuple[int, dict[str, Any]]) -> Sample | None:
            i, r = item
            name = canonical_split(text(r.get("split")) or "train") or "train"
            if split not in (None, name):
                return None
            return _sample(ctx, r, name, i, r.get("image_id") if r.get("image") is None else r["image"], style)

        yield from ctx.emit(((p, i, (i, r)) for p, i, r in parquet_rows(f)), from_parquet)
    if parquet:
        return
    csvs = sorted((root / "data_csv" if (root / "data_csv").is_dir() else root).glob("*.csv"))
    if not csvs:
        raise LayoutError(f"no data/*.parquet or data_csv/*.csv under {root}")
    for path in csvs:
        name = canonical_split(path.stem) or path.stem
        if split not in (None, name):
            continue

        def from_csv(item: tuple[int, Any], n: str = name, base: Path = path.parent) -> Sample:
            r = record(item[1])
            image = Path(text(r["image_path"]))
            return _sample(ctx, r, n, item[0], image if image.is_absolute() else base / image, style)

        yield from ctx.emit(((p, ln, (ln, r)) for p, ln, r in table_rows(path)), from_csv)
