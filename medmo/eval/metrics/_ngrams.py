"""Shared pieces of the text metrics: the PTB-lite tokenizer and a vectorized n-gram count table.

The coco-caption metrics (``pycocoevalcap``) tokenize with Stanford's Java PTBTokenizer
(``-preserveLines -lowerCase``) and then drop punctuation tokens. Java is not part of this project's
runtime, so :func:`ptb_lite` reimplements the parts that matter for report and caption text:

* lowercase;
* words keep inner hyphens, slashes, apostrophes and decimal points (``x-ray``, ``and/or``, ``3.5``);
* clitics split like PTB (``isn't`` -> ``is n't``, ``patient's`` -> ``patient 's``);
* punctuation tokens that coco-caption removes after PTB (``. , : ; ? ! - -- ... ' ` "``, brackets) are
  dropped; other symbols (``%``, ``+``, ``=``...) stay as their own tokens, as PTB leaves them.

Counting n-grams is where the reference implementations spend their time (a Python dict per
sentence per comparison). :class:`NgramTable` instead maps words to integers, encodes each n-gram as one
int64 and counts all sentences at once with ``np.unique``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_TOKEN = re.compile(r"\w+(?:[-/.'’]\w+)*|[^\w\s]", re.UNICODE)
_CLITIC = re.compile(r"^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$")
# Tokens pycocoevalcap's PTBTokenizer wrapper removes (its PUNCTUATIONS list), plus the bracket and
# quote characters PTB would first have rewritten into -LRB-, ``, '' and so on.
PTB_PUNCT = frozenset(
    ["''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";", '"', "(", ")", "[", "]", "{", "}", "’", "‘"]
)


def ptb_lite(text: str) -> list[str]:
    """Tokenize like coco-caption's PTB pipeline, without Java (see module docstring for the rules)."""
    out: list[str] = []
    for tok in _TOKEN.findall(str(text).lower().replace("’", "'")):
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
        """Count the 1..n-grams of already tokenized sentences."""
        vocab: dict[str, int] = {}
        words = np.fromiter(
            (vocab.setdefault(w, len(vocab)) for toks in sentences for w in toks), dtype=np.int64
        )
        lengths = np.fromiter((len(t) for t in sentences), dtype=np.int64, count=len(sentences))
        sent_of = np.repeat(np.arange(len(sentences), dtype=np.int64), lengths)
        W = max(len(vocab), 1)
        sents, grams, orders, offset = [], [], [], 0
        for k in range(1, n + 1):
            start = np.arange(max(len(words) - k + 1, 0))
            start = start[sent_of[start] == sent_of[start + k - 1]] if len(start) else start
            if W ** k < 2**62:  # one int64 code per n-gram: base-W digits
                code = np.zeros(len(start), dtype=np.int64)
                for j in range(k):
                    code = code * W + words[start + j]
                uniq, inv = np.unique(code, return_inverse=True)
            else:  # huge vocabularies: compare the k columns directly
                cols = np.stack([words[start + j] for j in range(k)], axis=1)
                uniq, inv = np.unique(cols, axis=0, return_inverse=True)
            sents.append(sent_of[start])
            grams.append(offset + inv.reshape(-1))
            orders.append(np.full(len(uniq), k - 1, dtype=np.int64))
            offset += len(uniq)
        G = max(offset, 1)
        key, count = np.unique(np.concatenate(sents) * G + np.concatenate(grams), return_counts=True)
        return cls(key // G, key % G, count.astype(np.float64), np.concatenate(orders), lengths, offset)
