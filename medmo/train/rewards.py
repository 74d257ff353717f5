"""Verifiable rewards for RL on MedMO tasks: box GIoU, answer accuracy, report factuality and format.

MedMO's RL stage rewards "accuracy / factuality + box GIoU + format" (MedMO paper, Sec. RL). Each reward
here is a pure function of a completion and the gold answer, with values in ``[0, 1]``:

* ``box``: boxes read by :func:`medmo.answers.parse_boxes` are matched one-to-one to the gold boxes by
  the Hungarian algorithm on GIoU (:func:`medmo.boxes.match_boxes`); the score is the sum of the matched
  ``(GIoU + 1) / 2`` divided by ``max(#predicted, #gold)``, so missing and extra boxes both cost, and an
  output without a readable box scores 0. GIoU (Rezatofighi et al., CVPR 2019) still gives a gradient
  when a box misses the target entirely, which plain IoU does not. Box labels are not compared: the
  prompt names the one target to locate;
* ``accuracy``: yes/no (:func:`medmo.answers.yes_no`) and option letters
  (:func:`medmo.answers.extract_choice`) exact; free-text answers by SQuAD-style normalized token F1
  (Rajpurkar et al. 2016);
* ``factuality``: finding-level F1 of a report against the reference, with negation handling
  (:func:`medmo.findings.finding_f1`);
* ``format``: the answer syntax the task asks for (a ``<box>`` answer for grounding, a lone letter for
  multiple choice, yes/no for closed questions, Findings/Impression for reports) and, when the prompt asks
  for reasoning, a well-formed ``<think>...</think><answer>...</answer>`` (DeepSeek-R1's format reward).

Every task gets only the rewards that apply to it (:data:`TASK_REWARDS`). :func:`compute_rewards` scores
one completion; :func:`trl_reward_funcs` wraps the same functions as TRL ``GRPOTrainer`` reward callables,
and :mod:`medmo.train.verl_score` as a verl ``compute_score``. Gold answers travel as the dict built by
:func:`medmo.gold.gold_for` (JSON in dataset columns and verl parquet files).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from medmo.answers import extract_choice, normalize_text, parse_boxes, split_think, yes_no
from medmo.boxes import match_boxes
from medmo.findings import finding_f1

REWARD_VERSION = "medmo-rewards-1"
REWARDS = ("accuracy", "box", "factuality", "format")
ALIASES = {"giou": "box", "iou": "box", "acc": "accuracy", "finding_f1": "factuality"}
TASK_REWARDS: dict[str, tuple[str, ...]] = {
    "grounding": ("box", "format"),
    "closed_vqa": ("accuracy", "format"),
    "mcq": ("accuracy", "format"),
    "open_vqa": ("accuracy", "format"),
    "text_qa": ("accuracy", "format"),
    "caption": ("accuracy", "format"),
    "retrieval": ("accuracy", "format"),
    "report": ("factuality", "format"),
}
DEFAULT_WEIGHTS = {"accuracy": 1.0, "box": 1.0, "factuality": 1.0, "format": 0.5}
_LETTER = re.compile(r"[(\[]?\s*([A-Za-z])\s*[)\].:]?")


def completion_text(completion: Any) -> str:
    """Plain text of a completion: a string, or TRL's conversational ``[{"role", "content"}]`` list."""
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    parts = []
    for msg in completion:
        content = msg.get("content", "") if isinstance(msg, Mapping) else msg
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
        parts.append(str(content))
    return "".join(parts)


# --------------------------------------------------------------------------------------- rewards


def box_reward(completion: str, gold_boxes: Sequence[Sequence[float]]) -> float:
    """Hungarian-matched ``(GIoU + 1) / 2`` summed over pairs, divided by ``max(#pred, #gold)``.

    Args:
        completion: model output; the boxes of its answer part are read (any syntax ``parse_boxes`` knows).
        gold_boxes: gold ``[x1, y1, x2, y2]`` boxes in the same units as the model's (0-1000 grid).

    Returns:
        A score in ``[0, 1]``; 0 when no box can be read or there is no gold box.
    """
    pred = [p.box for p in parse_boxes(split_think(completion).answer)]
    if not pred or not gold_boxes:
        return 0.0
    m = match_boxes(pred, [list(map(float, b)) for b in gold_boxes], metric="giou")
    return float(sum((s + 1.0) / 2.0 for s in m.scores) / max(len(pred), len(gold_boxes)))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 between two texts after :func:`medmo.answers.normalize_text`."""
    pred, ref = normalize_text(prediction).split(), normalize_text(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def accuracy_reward(task: str, completion: str, answer: str, options: Mapping[str, str] | None = None) -> float:
    """Closed yes/no and option letters: exact (1 or 0); other answers: normalized token F1."""
    if task == "mcq":
        return float(extract_choice(completion, dict(options or {}) or None) == str(answer).strip().upper())
    text = split_think(completion).answer
    gold = normalize_text(answer)
    if task == "closed_vqa":
        if gold in ("yes", "no"):
            return float(yes_no(completion) == gold)
        return float(normalize_text(text) == gold)
    return token_f1(text, answer)


def factuality_reward(completion: str, reference: str) -> float:
    """Finding-level F1 of a generated report against the reference (negated findings count as absent)."""
    return float(finding_f1(split_think(completion).answer, reference))


def format_reward(
    task: str, completion: str, think: bool = False, options: Mapping[str, str] | None = None
) -> float:
    """1 when the answer has the syntax the task asks for; with ``think`` the mean of that and a
    well-formed ``<think>/<answer>`` wrapper."""
    parts = split_think(completion)
    ans = parts.answer.strip()
    if task == "grounding":
        ok = "<box>" in ans and bool(parse_boxes(ans))
    elif task == "mcq":
        m = _LETTER.fullmatch(ans)
        valid = {k.upper() for k in options} if options else set("ABCDEFGHIJ")
        ok = bool(m) and m.group(1).upper() in valid
    elif task == "closed_vqa":
        ok = normalize_text(ans) in ("yes", "no") or 0 < len(normalize_text(ans).split()) <= 3
    elif task == "report":
        ok = "findings:" in ans.lower() and "impression:" in ans.lower()
    else:
        ok = bool(ans)
    score = float(ok)
    return (score + float(parts.well_formed)) / 2 if think else score


# ------------------------------------------------------------------------------------- combining


def normalize_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """Reward weights by canonical name (``giou`` -> ``box``); unknown names raise naming valid ones."""
    out = dict(DEFAULT_WEIGHTS)
    for name, w in (weights or {}).items():
        key = ALIASES.get(name, name)
        if key not in REWARDS:
            raise ValueError(f"unknown reward {name!r} in reward weights; valid: {', '.join(REWARDS)} (or giou)")
        out[key] = float(w)
    return out


def score(name: str, task: str, completion: str, gold: Mapping[str, Any]) -> float | None:
    """One reward for one completion, or ``None`` when that reward does not apply to ``task``."""
    if name not in TASK_REWARDS.get(task, ()):
        return None
    if name == "box":
        return box_reward(completion, gold.get("boxes") or [])
    if name == "accuracy":
        return accuracy_reward(task, completion, str(gold.get("answer", "")), gold.get("options"))
    if name == "factuality":
        return factuality_reward(completion, str(gold.get("answer", "")))
    return format_reward(task, completion, bool(gold.get("think")), gold.get("options"))


def compute_rewards(
    task: str, completion: Any, gold: Mapping[str, Any], weights: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Every reward that applies to ``task`` plus ``total``, their weighted sum.

    Args:
        task: the sample's task (:data:`medmo.records.TASKS`).
        completion: model output (text or TRL conversational list).
        gold: :func:`gold_for` output (``answer``, ``options``, ``boxes`` on the 0-1000 grid, ``think``).
        weights: reward name -> weight (recipe ``grpo.reward_weights``); missing names use
            :data:`DEFAULT_WEIGHTS`.

    Raises:
        ValueError: unknown task or reward name.
    """
    if task not in TASK_REWARDS:
        raise ValueError(f"no rewards defined for task {task!r}; known tasks: {', '.join(TASK_REWARDS)}")
    w = normalize_weights(weights)
    text = completion_text(completion)
    out = {name: score(name, task, text, gold) for name in TASK_REWARDS[task]}
    out["total"] = sum(w[name] * v for name, v in out.items())
    return out


def _gold_of(column: Any) -> dict[str, Any]:
    return json.loads(column) if isinstance(column, str) else dict(column or {})


def trl_reward_funcs(names: Sequence[str] = REWARDS) -> list[Callable[..., list[float | None]]]:
    """TRL ``GRPOTrainer`` reward callables, one per reward (``<name>_reward`` in TRL's logs).

    Each has TRL's signature ``(prompts, completions, **kwargs) -> list[float | None]`` and reads the
    dataset columns ``task`` and ``gold`` (a :func:`gold_for` dict, or its JSON) from ``kwargs``; it
    returns ``None`` for samples whose task it does not apply to, which TRL skips when summing
    (weights go to ``GRPOConfig.reward_weights`` in the same order).
    """
    funcs = []
    for raw in names:
        name = ALIASES.get(raw, raw)
        if name not in REWARDS:
            raise ValueError(f"unknown reward {raw!r}; valid: {', '.join(REWARDS)}")

        def reward(prompts: list, completions: list, _name: str = name, **kwargs: Any) -> list[float | None]:
            tasks, golds = kwargs["task"], kwargs["gold"]
            return [
                score(_name, t, completion_text(c), _gold_of(g)) for c, t, g in zip(completions, tasks, golds)
            ]

        reward.__name__ = reward.__qualname__ = f"{name}_reward"
        funcs.append(reward)
    return funcs
