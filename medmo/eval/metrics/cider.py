"""Corpus-level CIDEr-D and plain CIDEr, vectorized.

CIDEr: Vedantam, Zitnick and Parikh, "CIDEr: Consensus-based Image Description Evaluation", CVPR 2015.
The numbers equal the reference implementations on the same tokenized text (to ~1e-12):

* ``variant="d"`` (CIDEr-D) = ``pycocoevalcap.cider.Cider`` (what coco-caption and most report-generation
  papers print as "CIDEr"): tf-idf over 1-4-grams, hypothesis weights clipped to the reference's,
  Gaussian length penalty with sigma 6, mean over n, averaged over references, times 10;
* ``variant="plain"`` = ``vrama91/cider``'s ``pyciderevalcap.cider`` (no clipping, no length penalty, also x10).

Both are corpus metrics: document frequencies come from the references of the **whole** set, so scores
must be computed once over all samples, never per shard and averaged. Quirk kept for equality: the
"length" in the penalty is the reference code's count of *bigrams* (``max(words - 1, 0)``), not words.

The reference code rebuilds Python dicts for every (hypothesis, reference) comparison; here all n-grams are
counted once (:class:`~medmo.eval.metrics._ngrams.NgramTable`) and every similarity is a ``bincount``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medmo.eval.metrics._ngrams import NgramTable, lookup, ptb_lite, unique_sorted

CIDER_VERSION = "cider-1"


def as_ref_lists(references: Sequence[str | Sequence[str]]) -> list[list[str]]:
    """Each reference entry as a list of strings (a caption set) - a bare string is a single reference."""
    out = []
    for i, r in enumerate(references):
        refs = [r] if isinstance(r, str) else [str(x) for x in (r or [])]
        if not refs:
            raise ValueError(f"sample {i} has no reference text; every sample needs at least one reference")
        out.append(refs)
    return out


def cider_scores(
    hyps: Sequence[Sequence[str]],
    refs: Sequence[Sequence[Sequence[str]]],
    *,
    variant: str = "d",
    n: int = 4,
    sigma: float = 6.0,
) -> np.ndarray:
    """Per-sample CIDEr(-D) of tokenized hypotheses against tokenized reference sets.

    Args:
        hyps: one token list per sample.
        refs: one list of token lists (its references) per sample.
        variant: ``"d"`` (CIDEr-D, pycocoevalcap) or ``"plain"`` (original CIDEr).
        n: largest n-gram order.
        sigma: standard deviation of CIDEr-D's Gaussian length penalty.

    Returns:
        Per-sample scores; their mean is the corpus score.
    """
    if variant not in ("d", "plain"):
        raise ValueError(f"variant must be 'd' or 'plain', got {variant!r}")
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} reference sets")
    N = len(hyps)
    if N == 0:
        return np.zeros(0)
    n_refs = np.fromiter((len(r) for r in refs), dtype=np.int64, count=N)
    if (n_refs == 0).any():
        raise ValueError(f"sample {int(np.argmin(n_refs))} has no reference; every sample needs one")
    ref_sample = np.repeat(np.arange(N), n_refs)  # sample of each flattened reference
    table = NgramTable.build(list(hyps) + [r for rs in refs for r in rs], n=n)
    sample_of = np.concatenate([np.arange(N), ref_sample])  # sample of every sentence
    vec, norm = _tfidf(table, sample_of, N, n)
    val = _cosines(table, vec, norm, sample_of, N, n, clip=variant == "d")
    if variant == "d":  # Gaussian length penalty, "length" = bigram count as in the reference code
        bigrams = np.maximum(table.lengths - 1, 0) if n >= 2 else np.zeros_like(table.lengths)
        delta = (bigrams[:N][ref_sample] - bigrams[N:]).astype(np.float64)
        val = val * np.exp(-(delta**2) / (2 * sigma**2))[:, None]
    per_sample = np.bincount(ref_sample, weights=val.mean(axis=1), minlength=N)
    return per_sample / n_refs * 10.0


def _tfidf(table: NgramTable, sample_of: np.ndarray, N: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """tf-idf weight of every table row, and each sentence's per-order vector norms (sentences x n).

    Document frequency = in how many samples' reference *sets* an n-gram appears; idf uses log(#samples).
    """
    G = max(table.n_grams, 1)
    is_ref = table.sent >= N
    doc_keys = unique_sorted(sample_of[table.sent[is_ref]] * G + table.gram[is_ref])
    df = np.bincount(doc_keys % G, minlength=G).astype(np.float64)
    idf = np.log(float(N)) - np.log(np.maximum(1.0, df))
    vec = table.count * idf[table.gram]
    n_sent = len(table.lengths)
    sq = np.bincount(table.sent * n + table.order[table.gram], weights=vec * vec, minlength=n_sent * n)
    return vec, np.sqrt(sq).reshape(n_sent, n)


def _cosines(table, vec, norm, sample_of, N: int, n: int, clip: bool) -> np.ndarray:
    """Per-order cosine of each reference with its sample's hypothesis (references x n).

    Only n-grams of the reference can contribute, so the sum runs over reference rows, each looking up
    the hypothesis weight of the same n-gram; CIDEr-D clips it to the reference weight first.
    """
    G = max(table.n_grams, 1)
    is_ref = table.sent >= N
    r_sent, r_vec = table.sent[is_ref], vec[is_ref]
    hyp_keys = table.sent[~is_ref] * G + table.gram[~is_ref]
    h_vec = lookup(hyp_keys, vec[~is_ref], sample_of[r_sent] * G + table.gram[is_ref])
    contrib = (np.minimum(h_vec, r_vec) if clip else h_vec) * r_vec
    R = len(table.lengths) - N
    order = table.order[table.gram[is_ref]]
    dot = np.bincount((r_sent - N) * n + order, weights=contrib, minlength=R * n).reshape(R, n)
    denom = norm[sample_of[N:]] * norm[N:]
    return np.divide(dot, denom, out=dot.copy(), where=denom != 0)


def cider(
    predictions: Sequence[str],
    references: Sequence[str | Sequence[str]],
    *,
    variant: str = "d",
    tokenize: bool = True,
) -> dict:
    """Corpus CIDEr-D (default) or plain CIDEr of predictions against one or more references each.

    Args:
        predictions: one generated text per sample.
        references: per sample, a reference string or a list of reference strings.
        variant: ``"d"`` or ``"plain"`` (see module docstring).
        tokenize: apply :func:`~medmo.eval.metrics._ngrams.ptb_lite`; ``False`` splits on whitespace
            (for text that is already tokenized, as pycocoevalcap expects).

    Returns:
        ``{"aggregate": {name: corpus score}, "per_sample": [{name: score}], "version": ...}`` with
        name ``cider_d`` or ``cider_plain``.
    """
    tok = ptb_lite if tokenize else str.split
    refs = as_ref_lists(references)
    scores = cider_scores([tok(p or "") for p in predictions], [[tok(r) for r in rs] for rs in refs], variant=variant)
    name = "cider_d" if variant == "d" else "cider_plain"
    return {
        "aggregate": {name: float(scores.mean()) if len(scores) else 0.0},
        "per_sample": [{name: float(s)} for s in scores],
        "version": CIDER_VERSION,
    }
