"""Optional LLM judge for open answers, through any OpenAI-compatible ``/v1/chat/completions`` endpoint.

Off by default: nothing is sent anywhere unless a caller passes an endpoint (``base_url`` + ``model``) or
sets ``MEDMO_JUDGE_URL`` and ``MEDMO_JUDGE_MODEL`` (key, if the server needs one: ``MEDMO_JUDGE_API_KEY``).
Results carry ``"judged": True`` and the judge model and prompt version, so a table never passes judged
accuracy off as rule-based accuracy. The prompt follows the open-answer judging idea of MedEvalKit's
``get_compare_messages`` (same meaning or an accepted interpretation of the gold counts as correct), with a
one-word verdict. A failed request marks that sample's verdict ``None`` with the error, never aborting a run.
Uses only the standard library (``urllib``).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

JUDGE_VERSION = "judge-prompt-1"
PROMPT = (
    "You grade answers to medical questions. Decide whether the model's answer is correct given the "
    "reference answer: it is correct if it states the same meaning as the reference or an accepted "
    "interpretation of it, even with different wording; otherwise it is incorrect.\n\n"
    "Question: {question}\nReference answer: {gold}\nModel answer: {prediction}\n\n"
    "Reply with exactly one word: CORRECT or INCORRECT."
)
_VERDICT = re.compile(r"\b(incorrect|correct)\b", re.I)


@dataclass
class JudgeConfig:
    """Where the judge lives. ``base_url`` is the server root, e.g. ``http://127.0.0.1:8000/v1``."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout: float = 60.0
    max_tokens: int = 8

    @classmethod
    def from_env(cls) -> JudgeConfig:
        url, model = os.environ.get("MEDMO_JUDGE_URL"), os.environ.get("MEDMO_JUDGE_MODEL")
        if not url or not model:
            raise ValueError(
                "the LLM judge is off by default; pass base_url= and model= or set MEDMO_JUDGE_URL and "
                "MEDMO_JUDGE_MODEL to an OpenAI-compatible endpoint"
            )
        return cls(url, model, os.environ.get("MEDMO_JUDGE_API_KEY"))


def parse_verdict(text: str) -> bool | None:
    """``True`` for CORRECT, ``False`` for INCORRECT (the last one said wins), ``None`` otherwise."""
    found = _VERDICT.findall(text or "")
    return None if not found else found[-1].lower() == "correct"


def _chat(config: JudgeConfig, content: str) -> str:
    body = {
        "model": config.model,
        "messages": [{"role": "user", "content": content}],
        "temperature": 0,
        "max_tokens": config.max_tokens,
    }
    headers = {"Content-Type": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    req = urllib.request.Request(
        config.base_url.rstrip("/") + "/chat/completions", data=json.dumps(body).encode(), headers=headers
    )
    with urllib.request.urlopen(req, timeout=config.timeout) as resp:
        return json.loads(resp.read().decode())["choices"][0]["message"]["content"] or ""


class LLMJudge:
    """A judge object for the eval runner: ``judge(question, gold, answer) -> bool`` and ``info()``.

    A failed request or an unreadable verdict counts as incorrect here (the runner needs a bool); use
    :func:`judge` to see failures separately.
    """

    def __init__(self, config: JudgeConfig | None = None, **kwargs) -> None:
        self.config = config or (JudgeConfig(**kwargs) if kwargs else JudgeConfig.from_env())

    def verdict(self, question: str, gold: str, answer: str) -> bool | None:
        prompt = PROMPT.format(question=question or "(not given)", gold=gold, prediction=answer)
        return parse_verdict(_chat(self.config, prompt))

    def judge(self, question: str, gold: str, answer: str) -> bool:
        try:
            return bool(self.verdict(question, gold, answer))
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError):
            return False

    def info(self) -> dict:
        c = self.config
        return {"name": "llm_judge", "model": c.model, "base_url": c.base_url, "version": JUDGE_VERSION}


def judge(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    questions: Sequence[str] | None = None,
    config: JudgeConfig | None = None,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
) -> dict:
    """Ask the judge about every (question, gold, prediction); aggregate ``judge_acc`` over answered ones.

    Returns:
        ``{"aggregate": {"judge_acc", "judge_answered", "judge_failed"}, "per_sample": [{"judge_correct",
        "judge_raw" | "judge_error"}], "version", "judged": True, "judge_model"}``.
    """
    if config is None:
        config = JudgeConfig(base_url, model, api_key) if base_url and model else JudgeConfig.from_env()
    qs = list(questions) if questions is not None else [""] * len(predictions)
    rows = []
    for pred, gold, q in zip(predictions, references, qs):
        try:
            raw = _chat(config, PROMPT.format(question=q or "(not given)", gold=gold, prediction=pred))
            verdict = parse_verdict(raw)
            rows.append({"judge_correct": None if verdict is None else float(verdict), "judge_raw": raw})
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError) as e:
            rows.append({"judge_correct": None, "judge_error": f"{type(e).__name__}: {e}"})
    answered = [r["judge_correct"] for r in rows if r["judge_correct"] is not None]
    agg = {
        "judge_acc": sum(answered) / len(answered) if answered else 0.0,
        "judge_answered": float(len(answered)),
        "judge_failed": float(len(rows) - len(answered)),
    }
    return {"aggregate": agg, "per_sample": rows, "version": JUDGE_VERSION, "judged": True, "judge_model": config.model}
