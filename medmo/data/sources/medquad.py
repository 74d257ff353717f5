"""MedQuAD (Ben Abacha & Demner-Fushman, BMC Bioinformatics 2019): 47,457 consumer-health QA pairs from NIH sites.

Reads the GitHub release ``abachaa/MedQuAD``: folders ``N_Source_QA/`` (e.g. ``1_CancerGov_QA``) of XML
documents ``<Document id source url><Focus>..</Focus><QAPairs><QAPair pid><Question qid qtype>..</Question>
<Answer>..</Answer></QAPair>...``; three MedlinePlus folders ship without answers (copyright), and such
pairs are left out (counted as filtered). A CSV with ``Question``, ``Answer`` (and ``qtype``) columns, the
flat export MedMO trained on, is read too. No split: the last ``holdout`` (500) pairs are ``validation``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, SourceInfo, text
from medmo.data.sources._tables import emit_table, holdout, table_files
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="medquad",
    tasks=("text_qa",),
    modality="other",
    splits=("train", "validation"),
    layout="<root>/N_Source_QA/*.xml (abachaa/MedQuAD: <Document><QAPairs><QAPair><Question qtype>..</Question>"
    "<Answer>..</Answer>) or a CSV with Question, Answer[, qtype] columns",
    licence="CC BY 4.0 (GitHub README; not re-read); answers of three MedlinePlus collections withheld",
    aliases=("medquad_qa",),
)


def xml_pairs(path: Path) -> list[dict[str, Any]]:
    """The QA pairs of one MedQuAD document (question, answer, qtype, qid, focus, source)."""
    try:
        doc = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise RecordError(f"{path}: invalid XML ({e})") from None
    focus, source = text(doc.findtext("Focus")), text(doc.get("source"))
    out = []
    for pair in doc.iter("QAPair"):
        q = pair.find("Question")
        out.append({"question": text(q.text if q is not None else ""), "answer": text(pair.findtext("Answer")),
                    "qtype": text(q.get("qtype") if q is not None else ""), "qid": text(q.get("qid") if q is not None else ""),
                    "focus": focus, "source": source})  # fmt: skip
    return out


def _make(ctx: Context, r: dict[str, Any], split: str, index: int) -> Sample | None:
    question, answer = text(r.get("question") or r.get("Question")), text(r.get("answer") or r.get("Answer"))
    if not question:
        raise RecordError("empty question")
    if not answer:
        return None  # published without an answer
    meta = {k: text(r.get(k)) for k in ("qtype", "focus", "source") if text(r.get(k))}
    return ctx.sample(text(r.get("qid")) or index, question, task="text_qa", split=split, question=question,
                      answer=answer, meta=meta)  # fmt: skip


def load(root: Path, split: str | None, ctx: Context, *, n_holdout: int = 500) -> Iterator[Sample]:
    """Yield one ``text_qa`` record per answered QA pair."""
    xmls = [root] if root.suffix.lower() == ".xml" else sorted(root.glob("*_QA/*.xml")) or sorted(root.rglob("*.xml"))
    if not xmls:
        yield from emit_table(ctx, table_files(root, ("*.csv",), "MedQuAD XML or CSV"), split, n_holdout,
                              lambda r, s, i: _make(ctx, r, s, i))  # fmt: skip
        return
    pairs = []
    for path in xmls:
        pairs += [(str(path), p) for p in xml_pairs(path)]
    if not pairs:
        raise LayoutError(f"the MedQuAD XML files under {root} hold no QAPair")

    def convert(item: tuple[int, dict[str, Any]]) -> Sample | None:
        i, r = item
        name = holdout(i, len(pairs), n_holdout)
        return _make(ctx, r, name, i) if split in (None, name) else None

    yield from ctx.emit(((f, i, (i, r)) for i, (f, r) in enumerate(pairs)), convert)
