"""Gold answers in the one form every reward and exporter reads.

RL rewards (:mod:`medmo.train.rewards`), TRL dataset columns, verl parquet rows (:mod:`medmo.data.export`)
and the verl reward function (:mod:`medmo.train.verl_score`) all carry a record's gold answer as the dict
:func:`gold_for` builds, or its JSON (:func:`gold_json`).
"""

from __future__ import annotations

import json
from typing import Any

from medmo.boxes import convention_of
from medmo.prompts import target_text


def gold_for(sample: Any, think: bool = False) -> dict[str, Any]:
    """The gold answer of a :class:`medmo.records.Sample` in the form every reward reads.

    Returns:
        ``{"task", "answer", "options", "boxes", "box_convention", "think"}`` where ``boxes`` are in the
        convention the model answers in (the 0-1000 grid unless the record's ``meta["box_convention"]`` says
        otherwise, :func:`medmo.boxes.convention_of`) and ``answer`` of a report is its full text.
    """
    conv = convention_of(sample.meta)
    boxes = [conv.to_target(b.box, sample.images[b.image].width, sample.images[b.image].height) for b in sample.boxes]
    answer = target_text(sample) if sample.task in ("report",) else sample.answer
    return {
        "task": sample.task,
        "answer": answer,
        "options": dict(sample.options),
        "boxes": boxes if sample.task == "grounding" else [],
        "box_convention": str(conv),
        "think": bool(think),
    }


def gold_json(sample: Any, think: bool = False) -> str:
    """:func:`gold_for` as JSON: verl's ``reward_model.ground_truth`` and the GRPO dataset's ``gold`` column."""
    return json.dumps(gold_for(sample, think=think), ensure_ascii=False)
