"""MedMO's rewards as a verl custom reward function, for RL on many nodes with verl.

verl (Sheng et al., "HybridFlow", EuroSys 2025; github.com/volcengine/verl) loads a user function through
``custom_reward_function.path=<this file> custom_reward_function.name=compute_score`` and its reward
manager calls it once per rollout as ``compute_score(data_source, solution_str, ground_truth,
extra_info)``; a returned dict must hold ``score`` and its other keys become per-sample metrics, so every
call here returns the same keys.

It reads the verl parquet layout written by MedMO's exporter: ``data_source``, ``prompt``, ``images``,
``ability`` (the task), ``reward_model = {"style": "rule", "ground_truth": <JSON of
medmo.gold.gold_for(sample)>}`` and ``extra_info`` (``task``, ``id``, optional
``reward_weights``). A plain-string ground truth is accepted too (the task then comes from ``extra_info``
or is inferred from the answer), so verl datasets from other pipelines can be scored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from medmo.train.rewards import REWARDS, TASK_REWARDS, compute_rewards, normalize_text


def _gold(ground_truth: Any) -> dict[str, Any]:
    if isinstance(ground_truth, Mapping):
        return dict(ground_truth)
    if isinstance(ground_truth, (bytes, bytearray)):
        ground_truth = ground_truth.decode("utf-8", "replace")
    text = str(ground_truth if ground_truth is not None else "")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return dict(parsed) if isinstance(parsed, Mapping) else {"answer": text}


def _task(gold: Mapping[str, Any], extra_info: Mapping[str, Any]) -> str:
    """The task of a row: gold, then extra_info (``task`` or ``ability``), else inferred from the answer."""
    for task in (gold.get("task"), extra_info.get("task"), extra_info.get("ability")):
        if task in TASK_REWARDS:
            return str(task)
    if gold.get("boxes"):
        return "grounding"
    if gold.get("options"):
        return "mcq"
    return "closed_vqa" if normalize_text(str(gold.get("answer", ""))) in ("yes", "no") else "open_vqa"


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None, **_: Any
) -> dict[str, float]:
    """Score one rollout with MedMO's rewards (verl's custom reward function signature).

    Args:
        data_source: the row's dataset name (kept for verl's per-source metrics; not needed to score).
        solution_str: the decoded response.
        ground_truth: ``reward_model.ground_truth``: a :func:`medmo.gold.gold_for` dict or its
            JSON, or a plain answer string.
        extra_info: the row's ``extra_info``; ``task`` selects the rewards, ``reward_weights`` overrides
            the default weights.

    Returns:
        ``{"score": weighted total, "accuracy", "box", "factuality", "format"}``; rewards that do not
        apply to the row's task are 0.0 (verl needs the same keys for every sample).
    """
    info = dict(extra_info or {})
    gold = _gold(ground_truth)
    task = _task(gold, info)
    gold.setdefault("task", task)
    rewards = compute_rewards(task, solution_str or "", gold, info.get("reward_weights"))
    out = {"score": float(rewards["total"])}
    out.update({name: float(rewards.get(name) or 0.0) for name in REWARDS})
    return out
