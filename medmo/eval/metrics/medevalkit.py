"""MedEvalKit's answer-judging rules, reimplemented to give its verdict on every sample.

Source: alibaba-damo-academy/MedEvalKit at commit 9b12e3b ("update mmmu eval"), ``utils/utils.py``
(``parse_response``, ``judge_judgement``, ``judge_close_end_vqa``, ``judge_open_end_vqa``,
``calculate_f1``, ``judge_multi_choice``, ``extract``) with ``mathruler.grader.extract_boxed_content``.
What each benchmark passes to these functions (choice strings, raw or lower-cased golds, stripping) is
declared per benchmark in its YAML ``medevalkit:`` block and applied by
:mod:`medmo.eval.metrics.medevalkit_bench`. The golden fixtures under ``tests/fixtures/medevalkit/`` hold
MedEvalKit's own verdicts on 1,300+ outputs; ``tests/test_metrics_medevalkit.py`` reproduces every one.

Rules, per sample:

* ``parse_response``: lower-case; the last ``\\boxed{}`` if the substring ``boxed`` occurs (``"None"``
  when there is no closed box), else the ``<answer>`` text; then for each marker in ``**answer**:``,
  ``**answer**``, ``*answer*:``, ``**answer:**``, ``answer is``, ``answer:``, ``答案:``, ``final answer``,
  ``final answer is`` (in this order) the text after its last occurrence.
* yes/no (``judge_judgement``): after parsing, without newlines and periods, correct iff exactly one of the
  *substrings* ``yes`` / ``no`` occurs and the gold is a substring ("normal", "not", "know" contain "no").
* other closed (``judge_close_end_vqa``): exact equality after the same steps.
* open (``judge_open_end_vqa``): exact match of the parsed answer; token-set precision / recall / F1
  (MedEvalKit prints them under shifted names, kept here as ``printed_*``); BLEU-1..4 and ROUGE-1/2/L per
  answer (:mod:`medmo.eval.metrics.medevalkit_text`). Where MedEvalKit raises (an answer that is empty or
  only periods: ``Hypothesis is empty``; whitespace only: a failed unpacking in ``calculate_f1``) the
  sample is scored wrong with zero scores and the would-be crash is recorded (``mek_crash``).
* multiple choice (``judge_multi_choice``): first/last paragraph letter shortcut, parse, text before the
  first period after the last colon; exact, letter, or choice-string match; else the choice most similar to
  the whole answer (``difflib.SequenceMatcher(None, choice, answer).ratio()``, first maximum, index 0 when
  every ratio is 0) decides.
"""

from __future__ import annotations

import difflib

from medmo.eval.metrics.medevalkit_text import answer_bleu, answer_rouge

MEDEVALKIT_VERSION = "vqa-medevalkit-3 (MedEvalKit@9b12e3b)"
HYPOTHESIS_EMPTY = "ValueError: Hypothesis is empty."
UNPACK_ERROR = "TypeError: cannot unpack non-iterable int object"

_MARKERS = (
    "**answer**:",
    "**answer**",
    "*answer*:",
    "**answer:**",
    "answer is",
    "answer:",
    "答案:",
    "final answer",
    "final answer is",
)


def boxed_content(text: str) -> str:
    """Content of the last ``\\boxed{...}`` (brace-balanced, stripped), or ``"None"`` as mathruler returns."""
    start = text.rfind("\\boxed{")
    if start == -1:
        return "None"
    depth, body = 0, text[start + len("\\boxed{") :]
    for i, ch in enumerate(body):
        depth += (ch == "{") - (ch == "}")
        if depth == -1:
            return body[:i].strip()
    return "None"


def tag_text(text: str | None, tag: str = "answer") -> str:
    """MedEvalKit's ``extract``: every closed ``<tag>...</tag>`` joined by spaces; the whole text if none."""
    if not text:
        return ""
    open_t, close_t, parts, i = f"<{tag}>", f"</{tag}>", [], text.find(f"<{tag}>")
    while i != -1:
        j = text.find(close_t, i + len(open_t))
        if j == -1:
            break
        parts.append(text[i + len(open_t) : j])
        i = text.find(open_t, j + len(close_t))
    joined = " ".join(parts).strip()
    return joined if joined else text


def box_or_answer(response: str) -> str:
    """The VQA classes' first step: boxed content if any, else ``<answer>`` text, else the response."""
    if boxed_content(response) != "None":
        return boxed_content(response)
    return tag_text(response) if "<answer>" in response else response


def parse_response(response: str) -> str:
    """MedEvalKit's ``parse_response`` (see module docstring)."""
    response = response.lower()
    if "boxed" in response:
        response = boxed_content(response)
    elif "<answer>" in response:
        response = tag_text(response)
    for marker in _MARKERS:
        if marker in response:
            response = response.split(marker)[-1]
    return response


def judge_yes_no(gold: str, response: str) -> bool:
    """``judge_judgement``: exactly one of the substrings yes/no, and the gold among them."""
    r = parse_response(response).replace("\n", "").replace(".", "")
    return (("yes" in r) != ("no" in r)) and gold.lower() in r


def judge_closed(gold: str, response: str) -> bool:
    """``judge_close_end_vqa``: exact equality after parsing, newlines and periods removed."""
    return parse_response(response).replace("\n", "").replace(".", "") == gold.lower()


def open_crash(parsed: str, gold: str) -> str | None:
    """The exception MedEvalKit's open-answer path raises on this answer, or None."""
    if not parsed.replace(".", ""):
        return HYPOTHESIS_EMPTY  # rouge: no sentence left after splitting on "."
    if not gold.replace(".", ""):
        return "ValueError: Reference is empty."
    if not parsed.split() or not gold.split():
        return UNPACK_ERROR  # calculate_f1 returns 0 instead of a triple
    return None


def open_scores(gold: str, response: str) -> dict:
    """``judge_open_end_vqa`` on an already pre-processed response; ``gold`` as the class passes it."""
    gold = gold.lower()
    parsed = parse_response(response)
    row: dict = {"em": float(parsed == gold)}
    crash = open_crash(parsed, gold)
    if crash:
        zeros = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge1", "rouge2", "rougel", "precision", "recall", "f1")
        return {**row, **dict.fromkeys(zeros, 0.0), "printed_precision": 0.0, "printed_recall": 0.0,
                "printed_f1": 0.0, "mek_crash": crash}
    row.update({f"bleu{n}": answer_bleu(parsed, gold, n) for n in (1, 2, 3, 4)})
    r = answer_rouge(parsed, gold)
    row.update({"rouge1": r["rouge-1"], "rouge2": r["rouge-2"], "rougel": r["rouge-l"]})
    p_set, g_set = set(parsed.split()), set(gold.split())
    common = len(p_set & g_set)
    precision, recall = common / len(p_set), common / len(g_set)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    # calculate_f1 returns (f1, precision, recall); the caller unpacks precision, recall, f1.
    row.update({"precision": precision, "recall": recall, "f1": f1,
                "printed_precision": f1, "printed_recall": precision, "printed_f1": recall})
    return row


def judge_mcq(choices: list[str], gold: str, response: str) -> bool:
    """``judge_multi_choice`` with ``choices`` exactly as the benchmark's class builds them."""
    alphas = [chr(ord("a") + i) for i in range(len(choices))]
    response = response.lower()
    paras = response.split("\n\n")
    if paras[0] in alphas:
        response = paras[0]
    elif paras[-1].split(".")[0] in alphas:
        response = paras[-1].split(".")[0]
    response = parse_response(response).strip().lower().replace("\n", "")
    split = response.split(".")[0].split(":")[-1]
    choices = [c.lower() for c in choices]
    gold = gold.strip().lower()
    if split == gold:
        return True
    if split in alphas:
        return choices[ord(split) - ord("a")] == gold
    if split in choices:
        return gold in alphas and split == choices[ord(gold) - ord("a")]
    best, best_sim = 0, 0.0
    for i, c in enumerate(choices):  # MedEvalKit's find_most_similar_index: strictly greater wins
        sim = difflib.SequenceMatcher(None, c, response).ratio()
        if sim > best_sim:
            best, best_sim = i, sim
    return bool(choices) and (alphas[best] == gold or choices[best] == gold)


def score_medevalkit(
    prediction: str, gold: str, options: dict[str, str] | None = None, kind: str | None = None
) -> dict:
    """One sample under MedEvalKit's rules when no benchmark says how its class calls them (generic use):
    VQA-RAD's pre-processing (boxed / answer text, lower-cased, stripped) and ``"A. text"`` choice strings.
    Benchmarks use :mod:`medmo.eval.metrics.medevalkit_bench` with their own declared shapes."""
    from_kind = kind or ("mcq" if options else ("closed" if str(gold).strip().lower() in ("yes", "no") else "open"))
    if from_kind == "mcq":
        choices = [f"{k}. {v}" for k, v in (options or {}).items()]
        return {"kind": "mcq", "correct": float(bool(choices) and judge_mcq(choices, str(gold), tag_text(prediction)))}
    response = box_or_answer(prediction or "").lower().strip()
    g = str(gold).lower().strip()
    if from_kind == "closed":
        ok = judge_yes_no(g, response) if g in ("yes", "no") else judge_closed(g, response)
        return {"kind": "closed", "correct": float(ok)}
    s = open_scores(g, response)
    return {"kind": "open", "correct": s["em"], **s}
