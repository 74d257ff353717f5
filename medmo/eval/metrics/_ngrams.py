"""Shared pieces of the text metrics: the PTB-lite tokenizer and a vectorized n-gram count table.

The coco-caption metrics (``pycocoevalcap``) tokenize with Stanford's Java PTBTokenizer
(``-preserveLines -lowerCase``) and then drop punctuation tokens. Java is not part of this project's
runtime, so :func:`ptb_lite` reimplements the parts that matter for report and caption text:

* lowercase;
* words keep inner hyphens, slashes, apostrophes and decimal points (``x-ray``, ``and/or``, ``3.5``);
* clitics split like PTB (``isn't`` -> ``is n't``, ``patient's`` -> ``patient 's``);
* punctuation tokens that coco-caption removes after PTB (``. , : ; ? ! - -- ... ' ` "``) are dropped;
  brackets become ``-lrb-`` / ``-rrb-`` (and ``-lsb-``, ``-lcb-``...) tokens, which coco-caption keeps
  because its filter lists them in upper case; other symbols (``%``, ``+``, ``=``...) stay tokens;
* abbreviations keep their period (``e.g.``, ``i.e.``, ``dr.``).

Known difference: PTB splits some number-unit runs (``3.5cm`` -> ``3.5 cm``); ptb_lite keeps them whole.
``tests/test_metrics_text.py`` compares both on report sentences when Java is available.

Counting n-grams is where the reference implementations spend their time (a Python dict per
sentence per comparison). :class:`NgramTable` instead maps words to integers, encodes each n-gram as one
int64 and counts all sentences at once with ``np.unique``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_TOKEN = re.compile(r"(?:[a-z]\.){2,}|\w+(?:[-/.'’]\w+)*\.?|[^\w\s]", re.UNICODE)
_KEEP_DOT = re.compile(r"^(?:(?:[a-z]\.){2,}|(?:dr|mr|mrs|ms|prof|vs)\.)$")  # e.g. i.e. dr. keep their period
# PTB writes brackets as -LRB- etc.; with -lowerCase they come out as "-lrb-", which pycocoevalcap's
# punctuation filter (upper-case "-LRB-") does not remove, so they stay tokens.
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
_CLITIC = re.compile(r"^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$")
# Tokens pycocoevalcap's PTBTokenizer wrapper removes (its PUNCTUATIONS list), plus the bracket and
# quote characters PTB would first have rewritten into -LRB-, ``, '' and so on.
PTB_PUNCT = frozenset(["''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";", '"', "’", "‘"])


def ptb_lite(text: str) -> list[str]:
    """Tokenize like coco-caption's PTB pipeline, without Java (see module docstring for the rules)."""
    out: list[str] = []
    for tok in _TOKEN.findall(str(text).lower().replace("’", "'")):
        if tok.endswith(".") and len(tok) > 1 and not _KEEP_DOT.match(tok):
            tok = tok[:-1]  # sentence-final period: PTB splits it off, coco-caption drops it
        tok = _BRACKETS.get(tok, tok)
        m = _CLITIC.match(tok)
        parts = [m.group(1), m.group(2)] if m else [tok]
        out.extend(p for p in parts if p not in PTB_PUNCT)
    return out


@dataclass
class NgramTable:
    """Sparse n-gram counts of a list of sentences, one row per (sentence, n-gram).

    Attributes:
        sent: sentence index of each row (sorted, then by ``gram``).
        gram: global n-gram id of each row.
        count: how often that n-gram occurs in that sentence.
        order: ``order[g]`` is the n-gram length minus one of id ``g``.
        lengths: number of tokens of each sentence.
        n_grams: number of distinct n-gram ids.
    """

    sent: np.ndarray
    gram: np.ndarray
    count: np.ndarray
    order: np.ndarray
    lengths: np.ndarray
    n_grams: int

    @classmethod
    def build(cls, sentences: Sequence[Sequence[str]], n: int = 4) -> NgramTable:
        """Count the 1..n-grams of already tokenized sentences.

        A k-gram is ranked by the pair (rank of its first k-1 words, its last word), so n-gram ids come out
        ordered by order, then lexicographically by word id, and each order's pairs span only
        ``distinct (k-1)-grams x vocabulary`` codes: repetitive text such as reports ranks every order
        through a presence mask (linear time), anything else through one sort (:func:`_rank`).
        """
        tokens = list(itertools.chain.from_iterable(sentences))
        vocab = {w: i for i, w in enumerate(dict.fromkeys(tokens))}  # C-speed dict passes, no Python loop
        words = np.fromiter(map(vocab.__getitem__, tokens), dtype=np.int64, count=len(tokens))
        lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
        W = max(len(vocab), 1)
        sent_of = np.repeat(np.arange(len(sentences), dtype=np.int64), lengths)
        ends = np.cumsum(lengths)
        sents, grams, orders = [], [], []
        prev, offset = np.zeros(len(words), dtype=np.int64), 0  # rank of the (k-1)-gram at each position
        for k in range(1, n + 1):
            m = len(words) - k + 1
            if m <= 0:
                break
            starts = np.flatnonzero((prev[:m] >= 0) & (ends[sent_of[:m]] >= np.arange(m) + k))
            space = (int(prev.max()) + 1 if k > 1 and len(prev) else 1) * W
            uniq, rank = _rank(prev[starts] * W + words[starts + k - 1], space)
            sents.append(sent_of[starts])
            grams.append(offset + rank)
            orders.append(np.full(len(uniq), k - 1, dtype=np.int64))
            offset += len(uniq)
            prev = np.full(m, -1, dtype=np.int64)
            prev[starts] = rank
        G = max(offset, 1)
        flat = [np.zeros(0, dtype=np.int64)]
        key, count = unique_sorted(np.concatenate(sents + flat) * G + np.concatenate(grams + flat), counts=True)
        return cls(key // G, key % G, count.astype(np.float64), np.concatenate(orders + flat), lengths, offset)

def _rank(codes: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct codes and each code's index among them (``np.unique(..., return_inverse=True)``).

    A presence mask over the code space is linear time and used when the space is not much larger than the
    input; otherwise one sort and a binary search.
    """
    if space <= max(8 * len(codes), 1 << 24) and len(codes) < 2**31:  # mask + int32 ranks: 5 bytes per code
        present = np.zeros(space, dtype=bool)
        present[codes] = True
        rank = np.cumsum(present, dtype=np.int32)
        return np.flatnonzero(present), rank[codes].astype(np.int64) - 1
    uniq = unique_sorted(codes)
    return uniq, np.searchsorted(uniq, codes)


def unique_sorted(a: np.ndarray, counts: bool = False):
    """``np.unique`` for int64 keys by one sort (numpy's hash-based path is much slower on large keys).

    The sort is numpy's stable one (timsort for int64): the keys built here arrive as a few long runs ordered
    by sentence (one per n-gram order), which it merges instead of sorting from scratch; 10k report pairs
    score in 0.30 s instead of 0.50 s (``bench/cider_bench.py``).
    """
    a = np.sort(a, kind="stable")
    first = np.ones(len(a), dtype=bool)
    first[1:] = a[1:] != a[:-1]
    uniq = a[first]
    if not counts:
        return uniq
    starts = np.flatnonzero(first)
    return uniq, np.diff(np.append(starts, len(a)))


def lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``values[i]`` where ``keys[i] == q`` for each query key (``keys`` sorted, unique), else 0."""
    if len(keys) == 0:
        return np.zeros(len(query))
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[pos] == query, values[pos], 0.0)
