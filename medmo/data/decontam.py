"""Decontamination: which evaluation sets a training record overlaps, by image content or by question text.

Two tests, as ``medmo data build`` applies them to every training record:

* **image**: the sha1 of an image file's bytes equals that of an image of an evaluation record (so a copy
  under another name or in another dataset's folder is caught);
* **text**, for records without images (text-only sets): the record's question shares a word n-gram with
  the question of a text-only evaluation record, after normalisation (Unicode NFKC, lower case, words of
  letters and digits; each CJK character is a word). ``n`` is 13 by default, the span GPT-3's contamination
  study used (Brown et al., 2020, appendix C); a question shorter than ``n`` words (but at least
  ``MIN_WORDS``) is one n-gram of all its words, so it matches only the same short question.

:class:`EvalIndex` holds the hashes of every evaluation set (a sorted array of 64-bit n-gram hashes, not a
Python set, so millions of n-grams stay small and the index can be sent to worker processes) and answers,
for one record, *which* evaluation sets it overlaps: the build counts overlaps per (training source,
evaluation set) pair.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from medmo.records import Sample

MIN_WORDS = 5
_CJK = "\u3400-\u9fff\uf900-\ufaff"
_WORD = re.compile(rf"[{_CJK}]|[^\W\d_{_CJK}]+|\d+")


def words(text: str) -> list[str]:
    """Normalised words of ``text``: NFKC, lower case, letter or digit runs, one word per CJK character."""
    return _WORD.findall(unicodedata.normalize("NFKC", text or "").lower())


def ngram_hashes(text: str, n: int) -> np.ndarray:
    """64-bit hashes of the word n-grams of ``text`` (one for a text of ``MIN_WORDS`` to ``n`` words; none shorter)."""
    w = words(text)
    if len(w) < MIN_WORDS:
        return np.zeros(0, np.uint64)
    spans = [w] if len(w) <= n else [w[i : i + n] for i in range(len(w) - n + 1)]
    return np.fromiter((_h64(" ".join(s)) for s in spans), np.uint64, len(spans))


def _h64(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little")


@dataclass
class EvalIndex:
    """Image hashes and question n-grams of the evaluation sets, by set (``labels[i]``)."""

    labels: list[str] = field(default_factory=list)
    ngram: int = 13
    images: dict[str, list[int]] = field(default_factory=dict)
    gram_keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    gram_sets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    counts: list[dict[str, int]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.labels)

    def image_overlap(self, hashes: Iterable[str]) -> set[int]:
        """Indices of the evaluation sets sharing one of these image hashes."""
        return {i for h in hashes for i in self.images.get(h, ())}

    def text_overlap(self, question: str) -> set[int]:
        """Indices of the evaluation sets with a question sharing an n-gram with ``question``."""
        if not len(self.gram_keys):
            return set()
        g = ngram_hashes(question, self.ngram)
        if not len(g):
            return set()
        lo = np.searchsorted(self.gram_keys, g, "left")
        hi = np.searchsorted(self.gram_keys, g, "right")
        hit = hi > lo
        if not hit.any():
            return set()
        return {int(self.gram_sets[j]) for a, b in zip(lo[hit], hi[hit]) for j in range(a, b)}

    def overlap(self, sample: Sample, hashes: list[str]) -> tuple[set[int], set[int]]:
        """``(sets overlapped by an image, sets overlapped by the question)``; text only for records without images."""
        return self.image_overlap(hashes), (set() if sample.images else self.text_overlap(sample.question))


def build_index(sets: Iterable[tuple[str, Iterable[Sample]]], hasher: Callable[[str], str], ngram: int = 13,
                warn: Callable[[str], None] | None = None) -> EvalIndex:  # fmt: skip
    """An :class:`EvalIndex` of ``(label, records)`` evaluation sets; ``hasher`` gives an image file's hash.

    A missing evaluation image cannot be matched: ``warn`` is told (once per set) and the image skipped.
    """
    index = EvalIndex(ngram=ngram)
    keys, owners = [], []
    for i, (label, records) in enumerate(sets):
        index.labels.append(label)
        n = {"records": 0, "images": 0, "ngrams": 0, "missing_images": 0}
        for s in records:
            n["records"] += 1
            for ref in s.images:
                try:
                    h = hasher(ref.path)
                except OSError:
                    n["missing_images"] += 1
                    continue
                sets_of = index.images.setdefault(h, [])
                if i not in sets_of:
                    sets_of.append(i)
                n["images"] += 1
            if not s.images and s.question:
                g = ngram_hashes(s.question, ngram)
                keys.append(g)
                owners.append(np.full(len(g), i, np.int32))
                n["ngrams"] += len(g)
        if n["missing_images"] and warn is not None:
            warn(f"decontamination: {n['missing_images']} images of {label} are missing; they cannot be matched")
        index.counts.append(n)
    if keys:
        k, o = np.concatenate(keys), np.concatenate(owners)
        order = np.lexsort((o, k))
        k, o = k[order], o[order]
        keep = np.ones(len(k), bool)
        keep[1:] = (k[1:] != k[:-1]) | (o[1:] != o[:-1])
        index.gram_keys, index.gram_sets = k[keep], o[keep]
    return index
