"""Sampling headroom: how much reward a GRPO stage can find in a policy's own samples.

GRPO learns only from the spread of rewards inside a group of completions sampled for one prompt
(Shao et al., "DeepSeekMath", 2024): a group whose samples all score alike has zero advantage and teaches
nothing. Before (or after) spending compute on RL, this measures on a set of prompts, for each task's main
verifiable reward (:data:`MAIN_REWARD`, scored by :func:`medmo.train.rewards.score`):

* ``greedy``: the mean reward of the greedy answer (what evaluation reports);
* ``sample_mean``: the mean reward of a sampled answer at the RL temperature;
* ``best_of_k``: the mean over prompts of the best of ``k`` samples (the reward RL could reach by
  always picking the best answer it already produces, the "pass@k" of continuous rewards);
* ``group_std``: the mean within-group standard deviation (the signal GRPO's advantages are made of);
* ``zero_spread``: the share of groups whose ``k`` rewards are all equal (no gradient from them).

``best_of_k`` well above ``greedy`` means the signal exists; whether GRPO turns it into a better greedy
answer then depends on how many groups it sees, which :mod:`medmo.speedrun_report` sets beside it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medmo.data.images import load_image
from medmo.data.io import read_records
from medmo.gold import gold_for
from medmo.model import load
from medmo.model.generate import generate
from medmo.prompts import messages
from medmo.records import Sample
from medmo.train.recipe import GRPOStageConfig
from medmo.train.rewards import TASK_REWARDS, score

# The reward each task is judged by (the format reward only gates syntax, so it is left out).
MAIN_REWARD = {"grounding": "box", "report": "factuality"}


def group_stats(greedy: Sequence[float], samples: Sequence[Sequence[float]]) -> dict[str, float]:
    """Headroom figures from per-prompt rewards: ``greedy[i]`` and ``samples[i]`` (``k`` values each).

    Raises:
        ValueError: no prompts, lists of different lengths, or a prompt without samples.
    """
    if not greedy or len(greedy) != len(samples) or any(not g for g in samples):
        raise ValueError(f"need one greedy reward and >= 1 sampled rewards per prompt; got {len(greedy)} greedy "
                         f"and {len(samples)} sample groups")  # fmt: skip
    n = len(greedy)
    return {
        "prompts": n,
        "k": min(len(g) for g in samples),
        "greedy": sum(greedy) / n,
        "sample_mean": sum(sum(g) / len(g) for g in samples) / n,
        "best_of_k": sum(max(g) for g in samples) / n,
        "group_std": sum(statistics.pstdev(g) for g in samples) / n,
        "zero_spread": sum(max(g) - min(g) < 1e-9 for g in samples) / n,
    }


def headroom(
    model: str | Path | tuple[Any, Any],
    samples: Sequence[Sample],
    *,
    k: int = 4,
    temperature: float = 1.0,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Greedy vs sampled vs best-of-``k`` main reward per task of ``samples``.

    Args:
        model: a checkpoint folder / hub id (loaded with :func:`medmo.model.load`) or a ``(model, processor)``
            pair.
        samples: records with gold answers, image paths resolved (e.g. from
            :func:`medmo.data.io.read_records`); tasks without a reward are skipped.
        k: samples per prompt (a GRPO stage's ``num_generations``).
        temperature: sampling temperature (the GRPO stage's).
        max_new_tokens: longest answer.
        batch_size: prompts per generation batch.
        seed: torch seed for the samples.

    Returns:
        ``{task: group_stats(...)}`` for every task present.

    Raises:
        ValueError: ``k < 1`` or no record has a reward.
    """
    import torch

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rows = [s for s in samples if s.task in TASK_REWARDS]
    if not rows:
        raise ValueError(f"no record with a reward among {len(samples)}; rewarded tasks: {', '.join(TASK_REWARDS)}")
    net, processor = load(str(model)) if isinstance(model, (str, Path)) else model
    net.eval()
    convs = [messages(s, with_answer=False) for s in rows]
    images = [[load_image(ref.path, frame=ref.frame) for ref in s.images] for s in rows]
    golds = [gold_for(s) for s in rows]

    def rewards(texts: list[str]) -> list[float]:
        return [float(score(MAIN_REWARD.get(s.task, "accuracy"), s.task, t, g))
                for s, t, g in zip(rows, texts, golds)]  # fmt: skip

    run = dict(max_new_tokens=max_new_tokens, batch_size=batch_size)
    greedy = rewards(generate(net, processor, convs, images, **run))
    torch.manual_seed(seed)
    draws = [rewards(generate(net, processor, convs, images, do_sample=True, temperature=temperature, **run))
             for _ in range(k)]  # fmt: skip
    out = {}
    for task in sorted({s.task for s in rows}):
        idx = [i for i, s in enumerate(rows) if s.task == task]
        out[task] = group_stats([greedy[i] for i in idx], [[d[i] for d in draws] for i in idx])
    return out


def recipe_headroom(recipe: GRPOStageConfig, records: str | Path, limit: int | None = 100) -> dict[str, Any]:
    """:func:`headroom` of ``recipe.model`` on ``records``, sampled as the GRPO recipe samples.

    The group size, temperature, answer length, tasks and seed are the recipe's own (its ``trl:`` and
    ``data.tasks``), so the figures describe what that GRPO stage will learn from.

    Args:
        recipe: a ``grpo`` stage config.
        records: record file or folder (e.g. the test split); the first ``limit`` rewarded records are used.
        limit: how many prompts (``None``: all).
    """
    tasks = set(recipe.data.tasks) or set(TASK_REWARDS)
    prompts = [s for s in read_records(records) if s.task in tasks and s.task in TASK_REWARDS][:limit]
    trl = recipe.trl
    stats = headroom(recipe.model, prompts, k=trl.get("num_generations") or 8, temperature=trl.get("temperature", 1.0),
                     max_new_tokens=trl.get("max_completion_length") or 256, seed=recipe.seed)
    return {"model": str(recipe.model), "records": str(records), "tasks": stats}
