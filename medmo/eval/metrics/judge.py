"""LLM-judge mode as MedEvalKit runs it, through any OpenAI-compatible ``/v1/chat/completions`` endpoint.

Off by default: nothing is sent anywhere unless a caller passes an endpoint (``--judge-url`` and
``--judge-model``, or ``MEDMO_JUDGE_URL`` / ``MEDMO_JUDGE_MODEL``; key: ``MEDMO_JUDGE_API_KEY``).

Source: MedEvalKit 9b12e3b, ``utils/utils.py`` (``get_compare_messages``, ``openai_llm``) and the
``cal_metrics`` of VQA-RAD, SLAKE and PathVQA. The prompt is MedEvalKit's, word for word (:data:`PROMPT`),
one user message, temperature 0; the verdict is the text between ``<judge>`` and ``</judge>`` (all such
tags joined by spaces; the whole reply when there is none) and counts as correct iff it is exactly ``0``.
A request that fails is a wrong verdict, as in MedEvalKit (its client returns ``None``).

Which samples are judged, and what the prompt shows, follow the benchmark's ``medevalkit.judge`` block:
``send: open`` (VQA-RAD, PathVQA: open questions; the answer lower-cased and stripped) or ``send: all``
(SLAKE: every question, the answer as extracted, the gold as released). Other QA benchmarks judge their
open answers. The judge's verdict **replaces** the rule's for every judged sample; the rule's verdict is
kept beside it (``rule_correct``) and the results report judge-vs-rule agreement. MedEvalKit's printed
totals have two quirks kept under ``medevalkit_printed``: PathVQA resets the closed count to 0 and SLAKE adds
the judged closed answers to the rule's closed count (``closed_right``: ``zero`` / ``add`` / ``keep``).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from medmo.eval.metrics.medevalkit import tag_text

JUDGE_VERSION = "judge-medevalkit-1 (MedEvalKit@9b12e3b get_compare_messages)"
PROMPT = (
    "\nYour task is to determine whether the user's answer is correct based on the provided questions and standard "
    "answers (for example, if the user expresses a similar meaning to the standard answer, or another "
    "interpretation of the standard answer, it is considered correct.)\n\nThe question is: {question}\n\n"
    "The standard answer: {answer}\n\nThe user's answer: {response}\n\nPlease strictly follow the following format "
    "for output(0 represents correct, 1 represents incorrect):\n<think>{{your concise think step}}</think>\n"
    "<judge>{{0/1}}</judge>\n\nfor example:\n<think>The standard answer is right, and the user's answer is right "
    "frontal lobe, they express the same meaning, so it is correct.</think>\n<judge>0</judge>\n    "
)


@dataclass
class JudgeConfig:
    """Where the judge lives. ``base_url`` is the server root, e.g. ``http://127.0.0.1:8000/v1``."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout: float = 180.0
    max_tokens: int = 4096
    concurrency: int = 8

    @classmethod
    def from_env(cls) -> JudgeConfig:
        url, model = os.environ.get("MEDMO_JUDGE_URL"), os.environ.get("MEDMO_JUDGE_MODEL")
        if not url or not model:
            raise ValueError("the LLM judge is off by default; pass --judge-url and --judge-model (or set "
                             "MEDMO_JUDGE_URL and MEDMO_JUDGE_MODEL) to an OpenAI-compatible endpoint")
        return cls(url, model, os.environ.get("MEDMO_JUDGE_API_KEY"))


def judge_prompt(question: str, answer: str, response: str) -> str:
    """MedEvalKit's ``get_compare_messages`` text."""
    return PROMPT.format(question=question, answer=answer, response=response)


def verdict(reply: str | None) -> bool:
    """``extract(reply, "judge") == "0"`` (module docstring)."""
    return tag_text(reply, "judge") == "0"


def chat(config: JudgeConfig, content: str) -> str | None:
    """One judge call; ``None`` when it fails (MedEvalKit's client gives up the same way)."""
    body = {"model": config.model, "messages": [{"role": "user", "content": content}], "temperature": 0, "n": 1,
            "max_tokens": config.max_tokens}
    headers = {"Content-Type": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    req = urllib.request.Request(config.base_url.rstrip("/") + "/chat/completions", data=json.dumps(body).encode(),
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=config.timeout) as resp:
            return json.loads(resp.read().decode())["choices"][0]["message"]["content"]
    except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def judge_info(config: JudgeConfig | None) -> dict[str, Any] | None:
    """What the results file says about the judge (None = rule-based scoring only)."""
    if config is None:
        return None
    return {"model": config.model, "base_url": config.base_url, "version": JUDGE_VERSION}


def _targets(bench, samples, rows) -> list[int]:
    send = (bench.medevalkit.get("judge") or {}).get("send", "open")
    return [i for i, r in enumerate(rows) if send == "all" or r.get("kind") == "open"]


def apply_judge(config: JudgeConfig, bench, samples, scored, *, preset: str = "standard") -> dict[str, Any]:
    """Judge the benchmark's eligible samples; the verdict replaces the rule (module docstring)."""
    rows = scored.rows
    idx = _targets(bench, samples, rows)
    prompts = [judge_prompt(samples[i].question, str(rows[i].get("judge_gold", samples[i].answer)),
                            str(rows[i].get("judge_response", rows[i].get("prediction", "")))) for i in idx]
    with ThreadPoolExecutor(max_workers=max(1, config.concurrency)) as pool:
        replies = list(pool.map(lambda p: chat(config, p), prompts))
    agree = 0
    for i, reply in zip(idx, replies):
        rule = float(rows[i].get("correct", 0.0))
        v = float(verdict(reply))
        rows[i].update({"rule_correct": rule, "judge_correct": v, "judge_reply": reply, "correct": v})
        agree += int(rule == v)
    _recount(scored.metrics, rows)
    printed = _printed(bench, rows, idx)
    return {**(judge_info(config) or {}), "judged": len(idx), "failed_requests": sum(r is None for r in replies),
            "agreement": agree / len(idx) if idx else None, "medevalkit_printed": printed}


def _recount(metrics: dict, rows: list[dict]) -> None:
    if rows and "correct" in rows[0]:
        metrics["overall_acc"] = sum(r["correct"] for r in rows) / len(rows)
    for kind in ("closed", "open", "mcq"):
        sub = [r for r in rows if r.get("kind") == kind]
        if sub:
            metrics[f"{kind}_acc"] = sum(r["correct"] for r in sub) / len(sub)


def _printed(bench, rows: list[dict], judged: list[int]) -> dict[str, float] | None:
    """MedEvalKit's printed totals in judge mode (VQA-RAD / SLAKE / PathVQA quirks)."""
    how = (bench.medevalkit.get("judge") or {}).get("closed_right")
    if not how or not rows:
        return None
    closed = [r for r in rows if r.get("kind") == "closed"]
    rule_closed = sum(r.get("rule_correct", r["correct"]) for r in closed)
    judged_closed = sum(rows[i]["correct"] for i in judged if rows[i].get("kind") == "closed")
    judged_open = sum(rows[i]["correct"] for i in judged if rows[i].get("kind") == "open")
    closed_right = {"keep": rule_closed, "zero": 0.0, "add": rule_closed + judged_closed}[how]
    total_right = (rule_closed if how != "zero" else 0.0) + judged_open + (judged_closed if how == "add" else 0.0)
    out = {"overall_acc": total_right / len(rows)}
    if closed:
        out["closed_acc"] = closed_right / len(closed)
    return out
