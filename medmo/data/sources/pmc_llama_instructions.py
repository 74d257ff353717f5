"""PMC-LLaMA's instruction set MedC-I (Wu et al., arXiv 2304.14454): 513,999 instruction / input / output rows.

Reads ``release.json`` of ``axiong/pmc_llama_instructions`` (fields ``instruction, input, output, source,
sample_id``; ``source`` is one of ``medqa_train``, ``medmcqa``, ``pubmedqa.ori_pqaa``, ``liveqa``,
``medicationqa``, ``umls``, ``umls_relation``). Multiple-choice rows have ``input`` = ``###Question: ...
###Options:\\nA. ...`` and ``output`` = ``###Answer: OPTION D IS CORRECT.`` (or a ``###Rationale: ...``
before it): as in MedMO's loader they become multiple choice (question ``##Instruction:\\n...\\n\\n##Question:
\\n...``, the gold letter from ``OPTION X``); the other rows are ``text_qa``. One ``train`` split (the
MedQA / MedMCQA / PubMedQA rows come from those benchmarks' training partitions, per the card).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, SourceInfo, text
from medmo.data.sources._tables import emit_table, table_files
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="pmc_llama_instructions",
    tasks=("mcq", "text_qa"),
    modality="other",
    splits=("train", "validation"),
    layout="<root>/release.json: JSON list of {instruction, input, output, source, sample_id}",
    hub_id="axiong/pmc_llama_instructions",
    licence="openrail (HF card tag; no LICENSE file); the MedQA/MedMCQA/PubMedQA/UMLS parts keep their own terms",
    aliases=("pmc_instruct_qa", "medc_i"),
)
_OPTION = re.compile(r"^\s*([A-J])\.\s*(.*)$", re.M)
_GOLD = re.compile(r"OPTION\s+([A-J])\b", re.I)


def _make(ctx: Context, r: dict[str, Any], split: str, index: int) -> Sample:
    instruction, inp, out = text(r["instruction"]), text(r["input"]), text(r["output"])
    if not (instruction or inp) or not out:
        raise RecordError("empty input or output")
    stem, _, opts = inp.partition("###Options:")
    stem = stem.replace("###Question:", "").strip()
    options = {k: v.strip() for k, v in _OPTION.findall(opts)}
    gold = _GOLD.search(out.split("###Answer:")[-1])
    key = (text(r.get("source")), text(r.get("sample_id")), index)
    meta = {"source": text(r.get("source"))}
    if len(options) >= 2 and gold and gold.group(1).upper() in options:
        return ctx.sample(*key, task="mcq", split=split, question=f"##Instruction:\n{instruction}\n\n##Question:\n{stem}",
                          options=options, answer=gold.group(1).upper(), meta=meta)  # fmt: skip
    return ctx.sample(*key, task="text_qa", split=split, question=f"{instruction}\n\n{inp}".strip(), answer=out, meta=meta)


def load(root: Path, split: str | None, ctx: Context, *, n_holdout: int = 0) -> Iterator[Sample]:
    """Yield one record per row of ``release.json`` (the last ``n_holdout`` as ``validation``)."""
    files = table_files(root, ("release.json", "*.json", "*.parquet"), "PMC-LLaMA release.json")
    yield from emit_table(ctx, files[:1], split, n_holdout, lambda r, s, i: _make(ctx, r, s, i))
