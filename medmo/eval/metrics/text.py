"""Text-generation metrics for captions and reports: CIDEr(-D), BLEU-1..4 and ROUGE-L (two variants).

Each metric reproduces a reference implementation exactly, on the same tokenized text, so numbers are
comparable with published tables:

* ``cider`` / ``cider_d`` / ``cider_plain``: see :mod:`medmo.eval.metrics.cider`;
* ``bleu``: ``pycocoevalcap.bleu.Bleu`` (Papineni et al. 2002 as coco-caption computes it): corpus BLEU
  from summed clipped counts, the reference length *closest* to each hypothesis (ties -> the shorter),
  and its ``tiny=1e-15`` / ``small=1e-9`` smoothing; per-sample values use its per-sentence formula;
* ``rougeL``: ROUGE-L F-measure (beta 1, max over references) of Google's ``rouge-score`` package, with
  its tokenizer (lowercase, non ``[a-z0-9]`` -> space, no stemming);
* ``rougeL_coco``: ``pycocoevalcap.rouge.Rouge``: beta 1.2, precision and recall maxed separately over
  references, tokens split on single spaces.

BLEU, CIDEr and ``rougeL_coco`` read text through :func:`~medmo.eval.metrics._ngrams.ptb_lite` unless
``tokenize=False`` (then they split on whitespace, like pycocoevalcap on pre-tokenized input).
LCS lengths use the bit-parallel algorithm of Crochemore et al., "A fast and practical bit-vector
algorithm for the longest common subsequence problem" (IPL 2001), on Python integers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from medmo.eval.metrics._ngrams import NgramTable, lookup, ptb_lite
from medmo.eval.metrics.cider import CIDER_VERSION, as_ref_lists, cider, cider_scores

TEXT_VERSION = f"text-1+{CIDER_VERSION}"
__all__ = ["bleu", "cider", "cider_scores", "lcs_length", "ptb_lite", "rouge_l", "rouge_score_tokenize"]

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _tokenized(predictions, references, tokenize: bool):
    tok = ptb_lite if tokenize else str.split
    refs = as_ref_lists(references)
    if len(refs) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions but {len(refs)} references")
    return [tok(p or "") for p in predictions], [[tok(r) for r in rs] for rs in refs]


# ------------------------------------------------------------------------------------------- BLEU


def _bleu_counts(hyps, refs, n):
    """Clipped n-gram matches and guesses per (sample, order), and the closest reference length."""
    N = len(hyps)
    n_refs = np.array([len(r) for r in refs], dtype=np.int64)
    table = NgramTable.build(list(hyps) + [r for rs in refs for r in rs], n=n)
    sample_of = np.concatenate([np.arange(N), np.repeat(np.arange(N), n_refs)])
    G = max(table.n_grams, 1)
    is_ref = table.sent >= N
    # max count of each n-gram over a sample's references
    rkey, inv = np.unique(sample_of[table.sent[is_ref]] * G + table.gram[is_ref], return_inverse=True)
    rmax = np.zeros(len(rkey))
    np.maximum.at(rmax, inv.reshape(-1), table.count[is_ref])
    hkey = table.sent[~is_ref] * G + table.gram[~is_ref]
    clip = lookup(rkey, rmax, hkey)
    correct = np.bincount(
        table.sent[~is_ref] * n + table.order[table.gram[~is_ref]],
        weights=np.minimum(table.count[~is_ref], clip),
        minlength=N * n,
    ).reshape(N, n)
    testlen = table.lengths[:N]
    guess = np.maximum(testlen[:, None] - np.arange(n)[None, :], 0).astype(np.float64)
    reflen = np.empty(N, dtype=np.int64)
    ref_lengths = np.split(table.lengths[N:], np.cumsum(n_refs)[:-1])
    for i, ls in enumerate(ref_lengths):  # "closest": min over (|l - testlen|, l)
        reflen[i] = min((abs(int(n_tok) - int(testlen[i])), int(n_tok)) for n_tok in ls)[1]
    return correct, guess, testlen, reflen


def _bleu_from(correct, guess, testlen, reflen, n):
    tiny, small = 1e-15, 1e-9
    ratio = (testlen + tiny) / (reflen + small)
    scores, bleu = [], 1.0
    for k in range(n):
        bleu *= (correct[k] + tiny) / (guess[k] + small)
        scores.append(bleu ** (1.0 / (k + 1)))
    if ratio < 1:
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores


def bleu(
    predictions: Sequence[str], references: Sequence[str | Sequence[str]], *, n: int = 4, tokenize: bool = True
) -> dict:
    """Corpus BLEU-1..n as ``pycocoevalcap.bleu.Bleu`` computes it (see module docstring).

    Returns:
        ``{"aggregate": {"bleu1": ..., "bleu4": ...}, "per_sample": [{"bleu1": ...}], "version": ...}``.
    """
    hyps, refs = _tokenized(predictions, references, tokenize)
    names = [f"bleu{k + 1}" for k in range(n)]
    if not hyps:
        return {"aggregate": dict.fromkeys(names, 0.0), "per_sample": [], "version": TEXT_VERSION}
    correct, guess, testlen, reflen = _bleu_counts(hyps, refs, n)
    corpus = _bleu_from(correct.sum(0), guess.sum(0), int(testlen.sum()), int(reflen.sum()), n)
    per = [_bleu_from(correct[i], guess[i], int(testlen[i]), int(reflen[i]), n) for i in range(len(hyps))]
    return {
        "aggregate": dict(zip(names, map(float, corpus))),
        "per_sample": [dict(zip(names, map(float, p))) for p in per],
        "version": TEXT_VERSION,
    }


# ---------------------------------------------------------------------------------------- ROUGE-L


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (bit-parallel, O(len(b) * len(a)/64))."""
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - bin(v).count("1")


def rouge_score_tokenize(text: str) -> list[str]:
    """The ``rouge-score`` package's default tokenizer (no stemming): lowercase, non-alphanumerics -> space."""
    return [t for t in _NON_ALNUM.sub(" ", str(text).lower()).split() if t]


def _rouge_l_f1(pred: list[str], refs: list[list[str]]) -> float:
    best = 0.0
    for ref in refs:
        if not pred or not ref:
            continue
        lcs = lcs_length(ref, pred)
        p, r = lcs / len(pred), lcs / len(ref)
        best = max(best, 2 * p * r / (p + r) if p + r > 0 else 0.0)
    return best


def _rouge_l_coco(pred: list[str], refs: list[list[str]], beta: float = 1.2) -> float:
    # pycocoevalcap splits the joined text on single spaces: an empty text is one empty token.
    pred = pred or [""]
    precs, recs = [], []
    for ref in refs:
        ref = ref or [""]
        lcs = lcs_length(ref, pred)
        precs.append(lcs / len(pred))
        recs.append(lcs / len(ref))
    p, r = max(precs), max(recs)
    return (1 + beta**2) * p * r / (r + beta**2 * p) if p != 0 and r != 0 else 0.0


def rouge_l(
    predictions: Sequence[str],
    references: Sequence[str | Sequence[str]],
    *,
    variant: str = "rouge_score",
    tokenize: bool = True,
) -> dict:
    """Mean ROUGE-L: ``variant="rouge_score"`` -> name ``rougeL``; ``variant="coco"`` -> ``rougeL_coco``.

    ``tokenize`` applies to the coco variant only (the rouge-score variant always uses that package's
    tokenizer, as the package does).
    """
    if variant not in ("rouge_score", "coco"):
        raise ValueError(f"variant must be 'rouge_score' or 'coco', got {variant!r}")
    refs = as_ref_lists(references)
    if variant == "rouge_score":
        name = "rougeL"
        scores = [
            _rouge_l_f1(rouge_score_tokenize(p or ""), [rouge_score_tokenize(r) for r in rs])
            for p, rs in zip(predictions, refs)
        ]
    else:
        name = "rougeL_coco"
        hyps, toks = _tokenized(predictions, refs, tokenize)
        scores = [_rouge_l_coco(h, rs) for h, rs in zip(hyps, toks)]
    return {
        "aggregate": {name: float(np.mean(scores)) if scores else 0.0},
        "per_sample": [{name: float(s)} for s in scores],
        "version": TEXT_VERSION,
    }
