"""PubMedQA PQA-L (Jin et al., EMNLP 2019): yes / no / maybe questions on PubMed abstracts.

Reads ``ori_pqal.json`` (an object keyed by PMID; gold label ``final_decision``) and
``test_ground_truth.json`` (the 500 test PMIDs of the official ``split_dataset.py``); the other 500 form
``train`` (the 10-fold CV pool). The hub copy ``qiaojin/PubMedQA`` (config ``pqa_labeled``) puts all
1,000 in ``train``: pass ``test_ids=<test_ground_truth.json>`` to split it. Records are ``mcq`` with
options A yes / B no / C maybe, and the question carries the abstract contexts (the reasoning-required
setting); ``with_long_answer=True`` appends the conclusion (reasoning-free setting).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, SourceInfo, hub_split, list_rows, read_json, text
from medmo.records import RecordError, Sample

SOURCE = SourceInfo(
    name="pubmedqa",
    tasks=("mcq",),
    modality="other",
    splits=("train", "test"),
    layout="<root>/[data/]ori_pqal.json + test_ground_truth.json (the 500 test PMIDs)",
    hub_id="qiaojin/PubMedQA",
    licence="MIT",
)

OPTIONS = {"A": "yes", "B": "no", "C": "maybe"}
LETTER = {v: k for k, v in OPTIONS.items()}


def _question(question: str, contexts: list[str], labels: list[str], long_answer: str | None) -> str:
    parts = [
        f"{text(lab)}: {text(c)}" if text(lab) else text(c)
        for c, lab in zip(contexts, labels + [""] * len(contexts), strict=False)
    ]
    if long_answer:
        parts.append(f"CONCLUSION: {text(long_answer)}")
    return "Context:\n" + "\n".join(parts) + f"\n\nQuestion: {text(question)}"


def _sample(
    ctx: Context,
    pmid: str,
    q: str,
    contexts: list,
    labels: list,
    decision: Any,
    long_answer: str,
    split: str,
    with_long_answer: bool,
    meshes: list,
) -> Sample:
    label = text(decision).lower()
    if label not in LETTER:
        raise RecordError(f"PMID {pmid}: final_decision {decision!r} is not yes/no/maybe")
    return ctx.sample(
        pmid,
        task="mcq",
        split=split,
        question=_question(q, list(contexts), list(labels), long_answer if with_long_answer else None),
        answer=LETTER[label],
        options=dict(OPTIONS),
        meta={"pmid": pmid, "label": label, "meshes": list(meshes or [])[:20],
              "question_raw": text(q), "contexts": [text(c) for c in contexts]},  # MedEvalKit's prompt layout
    )


def load(root: Path, split: str | None, ctx: Context, *, with_long_answer: bool = False) -> Iterator[Sample]:
    """Yield the 1,000 PQA-L items as ``test`` (500 official PMIDs) and ``train`` (the rest)."""
    base = next((b for b in (root, root / "data") if (b / "ori_pqal.json").is_file()), None)
    if base is None:
        raise LayoutError(f"no ori_pqal.json in {root}")
    gt = base / "test_ground_truth.json"
    if not gt.is_file():
        raise LayoutError(f"no test_ground_truth.json next to {base / 'ori_pqal.json'}; it defines the test split")
    test = set(read_json(gt))
    data = read_json(base / "ori_pqal.json")

    def convert(item: tuple[str, dict[str, Any]]) -> Sample | None:
        pmid, r = item
        s = "test" if pmid in test else "train"
        if split not in (None, s):
            return None
        return _sample(
            ctx,
            pmid,
            r["QUESTION"],
            r["CONTEXTS"],
            r.get("LABELS") or [],
            r["final_decision"],
            r.get("LONG_ANSWER", ""),
            s,
            with_long_answer,
            r.get("MESHES"),
        )

    yield from ctx.emit(list_rows(str(base / "ori_pqal.json"), data.items()), convert)


def load_hub(
    hub_id: str,
    split: str | None,
    ctx: Context,
    *,
    test_ids: str | Path | None = None,
    with_long_answer: bool = False,
    config: str = "pqa_labeled",
) -> Iterator[Sample]:
    """Yield ``pqa_labeled`` rows; the test split needs ``test_ids`` (the official test_ground_truth.json)."""
    if split is not None and test_ids is None:
        raise ValueError("the hub copy has no test split: pass test_ids=<path to test_ground_truth.json>")
    test = set(read_json(Path(test_ids))) if test_ids else set()
    ds = hub_split(hub_id, config, "train")

    def convert(r: dict[str, Any]) -> Sample | None:
        pmid = text(r["pubid"])
        s = "test" if pmid in test else "train"
        if split not in (None, s):
            return None
        c = r["context"]
        return _sample(
            ctx,
            pmid,
            r["question"],
            c["contexts"],
            c.get("labels") or [],
            r["final_decision"],
            r.get("long_answer", ""),
            s,
            with_long_answer,
            c.get("meshes"),
        )

    yield from ctx.emit(list_rows(f"{hub_id}[train]", ds), convert)
