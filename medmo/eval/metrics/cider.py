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

from medmo.eval.metrics._ngrams import NgramTable, ptb_lite

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
    G = max(table.n_grams, 1)
    is_ref = table.sent >= N

    # document frequency: in how many samples' reference sets each n-gram appears
    doc_keys = np.unique(sample_of[table.sent[is_ref]] * G + table.gram[is_ref])
    df = np.bincount(doc_keys % G, minlength=G).astype(np.float64)
    idf = np.log(float(N)) - np.log(np.maximum(1.0, df))
    vec = table.count * idf[table.gram]
    order = table.order[table.gram]
    n_sent = N + len(ref_sample)
    norm = np.sqrt(np.bincount(table.sent * n + order, weights=vec * vec, minlength=n_sent * n)).reshape(n_sent, n)

    # similarity of each reference with its sample's hypothesis, over the reference's n-grams
    hyp_keys = table.sent[~is_ref] * G + table.gram[~is_ref]
    hyp_vec = vec[~is_ref]
    r_sent, r_vec = table.sent[is_ref], vec[is_ref]
    look = sample_of[r_sent] * G + table.gram[is_ref]
    pos = np.minimum(np.searchsorted(hyp_keys, look), max(len(hyp_keys) - 1, 0))
    h_vec = np.where((len(hyp_keys) > 0) & (hyp_keys[pos] == look), hyp_vec[pos] if len(hyp_vec) else 0.0, 0.0)
    contrib = (np.minimum(h_vec, r_vec) if variant == "d" else h_vec) * r_vec
    R = len(ref_sample)
    dot = np.bincount((r_sent - N) * n + order[is_ref], weights=contrib, minlength=R * n).reshape(R, n)
    denom = norm[ref_sample] * norm[N:]
    val = np.divide(dot, denom, out=dot.copy(), where=denom != 0)
    if variant == "d":
        bigrams = np.maximum(table.lengths - 1, 0) if n >= 2 else np.zeros_like(table.lengths)
        delta = (bigrams[:N][ref_sample] - bigrams[N:]).astype(np.float64)
        val = val * np.exp(-(delta**2) / (2 * sigma**2))[:, None]
    per_sample = np.bincount(ref_sample, weights=val.mean(axis=1), minlength=N)
    return per_sample / n_refs * 10.0


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
