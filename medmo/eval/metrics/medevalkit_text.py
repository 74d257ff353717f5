"""The text metrics MedEvalKit reports, each equal to the package it calls (numbers, not a rewrite of code).

Sources (MedEvalKit 9b12e3b ``utils/utils.py`` and ``utils/Metrics_Compute/cal_report_metrics.py``):

* BLEU-n: NLTK 3.9 ``sentence_bleu`` with weights ``(1/n,)*n`` and no smoothing. A zero n-gram precision
  becomes ``sys.float_info.min`` (NLTK's method0), so a sentence without a 4-gram match gets a BLEU-4 near
  1e-78, not 0; no unigram match gives exactly 0; brevity penalty from the closest reference length.
* ROUGE-1/2/L: the ``rouge`` package 1.0.1 (``Rouge().get_scores``): sentences are the ``.``-split pieces,
  n-grams and the summary-level union LCS are *sets* of words, F = 2PR / (P + R + 1e-8). Its LCS
  reconstruction recurses once per step; MedEvalKit crashes (RecursionError) past Python's default depth,
  which :func:`rouge_scores` reports instead of raising.
* Report tokens for BLEU: ``lower().replace(".", " .").split(" ")`` without empty strings (answers: the same
  without dropping empty strings).
"""

from __future__ import annotations

import math
import sys
from collections import Counter

RECURSION_BUDGET = 990  # Python's default limit (1000) less the frames above rouge's recursion


class RougeError(ValueError):
    """Where the ``rouge`` package raises (empty hypothesis or reference, too deep a recursion)."""


def bleu_tokens(text: str, drop_empty: bool) -> list[str]:
    toks = text.lower().replace(".", " .").split(" ")
    return [t for t in toks if t != ""] if drop_empty else toks


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)) if len(tokens) >= n else Counter()


def sentence_bleu(reference: list[str], hypothesis: list[str], n: int) -> float:
    """NLTK ``sentence_bleu([reference], hypothesis, weights=(1/n,)*n)``, no smoothing (method0)."""
    nums, dens = [], []
    for k in range(1, n + 1):
        hyp, ref = _ngrams(hypothesis, k), _ngrams(reference, k)
        nums.append(sum(min(c, ref[g]) for g, c in hyp.items()))
        dens.append(max(1, sum(hyp.values())))
    if nums[0] == 0:
        return 0.0
    hyp_len, ref_len = len(hypothesis), len(reference)
    bp = 1.0 if hyp_len > ref_len else (0.0 if hyp_len == 0 else math.exp(1 - ref_len / hyp_len))
    p = [num / den if num else sys.float_info.min for num, den in zip(nums, dens)]
    return bp * math.exp(math.fsum((1.0 / n) * math.log(x) for x in p))


def answer_bleu(prediction: str, gold: str, n: int) -> float:
    """MedEvalKit's per-answer ``bleu(pred, target, n)`` (open VQA)."""
    return sentence_bleu(bleu_tokens(gold, False), bleu_tokens(prediction, False), n)


def report_bleu(prediction: str, reference: str, n: int) -> float:
    """cal_report_metrics.py's BLEU-n of one report."""
    return sentence_bleu(bleu_tokens(reference.lower(), True), bleu_tokens(prediction.lower(), True), n)


# ------------------------------------------------------------------------------------- ROUGE (rouge 1.0.1)


def _sentences(text: str) -> list[str]:
    return [" ".join(s.split()) for s in text.split(".") if len(s) > 0]


def _words(sentences: list[str]) -> list[str]:
    return [w for s in sentences for w in s.split(" ")]


def _rouge_n(hyp: list[str], ref: list[str], n: int) -> float:
    h = {tuple(w[i : i + n]) for w in [_words(hyp)] for i in range(len(w) - n + 1)}
    r = {tuple(w[i : i + n]) for w in [_words(ref)] for i in range(len(w) - n + 1)}
    overlap = len(h & r)
    p = overlap / len(h) if h else 0.0
    rc = overlap / len(r) if r else 0.0
    return 2.0 * ((p * rc) / (p + rc + 1e-8))


def _lcs_words(x: list[str], y: list[str]) -> tuple[set[str], int]:
    """The words of the LCS rouge's ``_recon_lcs`` reconstructs, and its recursion depth."""
    n, m = len(x), len(y)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        xi, row, prev = x[i - 1], table[i], table[i - 1]
        for j in range(1, m + 1):
            row[j] = prev[j - 1] + 1 if xi == y[j - 1] else max(prev[j], row[j - 1])
    words, i, j, depth = set(), n, m, 1
    while i > 0 and j > 0:  # the package's tie-breaking: up only when strictly better
        depth += 1
        if x[i - 1] == y[j - 1]:
            words.add(x[i - 1])
            i, j = i - 1, j - 1
        elif table[i - 1][j] > table[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return words, depth


def _rouge_l(hyp: list[str], ref: list[str]) -> float:
    m, n = len(set(_words(ref))), len(set(_words(hyp)))
    union: set[str] = set()
    total = 0
    for ref_s in ref:
        before = len(union)
        for hyp_s in hyp:
            words, depth = _lcs_words(ref_s.split(" "), hyp_s.split(" "))
            if depth > RECURSION_BUDGET:
                raise RougeError("RecursionError: maximum recursion depth exceeded in comparison")
            union |= words
        total += len(union) - before
    r, p = total / m, total / n
    return 2.0 * ((p * r) / (p + r + 1e-8))


def rouge_scores(prediction: str, reference: str) -> dict[str, float]:
    """``Rouge().get_scores(prediction, reference)[0][k]["f"]`` for rouge-1, rouge-2, rouge-l.

    Raises:
        RougeError: where the package raises (its message, prefixed by the exception type).
    """
    hyp, ref = _sentences(prediction), _sentences(reference)
    if not hyp:
        raise RougeError("ValueError: Hypothesis is empty.")
    if not ref:
        raise RougeError("ValueError: Reference is empty.")
    return {"rouge-1": _rouge_n(hyp, ref, 1), "rouge-2": _rouge_n(hyp, ref, 2), "rouge-l": _rouge_l(hyp, ref)}


def answer_rouge(prediction: str, gold: str) -> dict[str, float]:
    """MedEvalKit's per-answer ``rouge(pred, target)`` (lower-cased both)."""
    return rouge_scores(prediction.lower(), gold.lower())
