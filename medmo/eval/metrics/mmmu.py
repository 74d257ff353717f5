"""MMMU's official answer parsing as MedEvalKit runs it for MMMU-Med (``utils/MMMU/eval_utils.py`` and
``eval_val.py`` at 9b12e3b, from MMMU-Benchmark/MMMU).

* Pre-processing: the ``<answer>`` text if the tag occurs, **then** the last ``\\boxed{}`` content if any.
* Multiple choice (``parse_multi_choice_response``): strip, strip ``, . ! ? ; : '`` at both ends, pad with
  spaces; candidates are letters written ``(X)``, else `` X ``, else (answers of more than five words only)
  option texts contained in the answer; several candidates -> the one occurring last; none -> a random
  letter. The draw comes from Python's global RNG, which MedEvalKit's eval.py seeds with ``--seed``
  (default 42) before each benchmark: :func:`score_mmmu` replays it with ``random.Random(seed)`` over the
  samples in the given order, which equals MedEvalKit's draws when the samples come in its order (subjects
  Basic_Medical_Science, Clinical_Medicine, Diagnostics_and_Laboratory_Medicine, Pharmacy, Public_Health;
  rows as released) and nothing else drew from that RNG meanwhile. Guessed samples are flagged.
* Multiple choice vs open follows the item's ``question_type`` (an "open" item keeps its options but is
  scored as open), with options and answer as released (:func:`medmo.eval.metrics.medevalkit_bench.mmmu_case`).
  A multiple-choice item whose answer is not one letter of its options makes MedEvalKit's
  ``construct_prompt`` raise (``ord()`` of a longer string, or an index past the options).
* Open questions (validation path): the answer string is passed where a list of parsed answers is expected,
  so ``eval_open`` compares the normalised gold with each *character*: a gold of two or more characters, or
  any number, is never matched. This is reproduced as is.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from medmo.eval.metrics.medevalkit import boxed_content, tag_text

MMMU_VERSION = "mmmu-medevalkit-2 (MedEvalKit@9b12e3b, MMMU eval_utils)"
SUBJECT_ORDER = ("Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine", "Pharmacy",
                 "Public_Health")


def preprocess(response: str) -> str:
    response = response or ""
    if "<answer>" in response:
        response = tag_text(response)
    if boxed_content(response) != "None":
        response = boxed_content(response)
    return response


def mc_candidates(response: str, index2ans: dict[str, str]) -> tuple[list[str], bool, bool, str]:
    """Candidate letters, whether they are letters (not option texts), whether bracketed, padded text."""
    r = response.strip()
    for ch in [",", ".", "!", "?", ";", ":", "'"]:
        r = r.strip(ch)
    r = " " + r + " "
    letters = list(index2ans)
    cands = [c for c in letters if f"({c})" in r]
    if cands:
        return cands, True, True, r
    cands = [c for c in letters if f" {c} " in r]
    if cands or len(r.split()) <= 5:
        return cands, True, False, r
    return [k for k, a in index2ans.items() if a.lower() in r.lower()], False, False, r


def parse_mc(response: str, index2ans: dict[str, str], rng: random.Random) -> tuple[str, bool]:
    """The predicted letter and whether it was drawn at random."""
    cands, is_letter, bracket, r = mc_candidates(response, index2ans)
    if not cands:
        return rng.choice(list(index2ans)), True
    if len(cands) == 1:
        return cands[0], False
    if is_letter:
        pos = [r.rfind(f"({c})") if bracket else r.rfind(f" {c} ") for c in cands]
    else:
        pos = [r.lower().rfind(index2ans[c].lower()) for c in cands]
    return cands[pos.index(max(pos))], False


def _normalize(s: str) -> list:
    s = s.strip()
    try:
        return [round(float(s.replace(",", "")), 2)]
    except ValueError:
        s = s.lower()
        return [" " + s, s + " "] if len(s) == 1 else [s]


def eval_open(gold: str, response: str) -> bool:
    """MMMU ``eval_open`` as MedEvalKit's validation path calls it: over the characters of the answer."""
    golds = _normalize(gold)
    return any(isinstance(g, str) and g in ch for ch in response for g in golds)


def score_mmmu(
    predictions: Sequence[str],
    golds: Sequence[str],
    options: Sequence[dict[str, str] | None],
    *,
    seed: int = 42,
    crashes: Sequence[str | None] | None = None,
) -> list[dict]:
    """Per-sample ``{"kind", "correct", "parsed", "random_guess"}`` in the given (MedEvalKit) order.

    ``options`` is ``index2ans`` for a multiple-choice item and None for an open one; ``crashes`` names, per
    item, the exception MedEvalKit raises building its prompt (the item is scored wrong, flagged
    ``mek_crash``, and draws nothing from the RNG).
    """
    rng = random.Random(seed)
    rows: list[dict] = []
    crashes = list(crashes) if crashes is not None else [None] * len(predictions)
    for pred, gold, opts, crash in zip(predictions, golds, options, crashes):
        r = preprocess(pred)
        if crash:
            rows.append({"kind": "mcq", "correct": 0.0, "parsed": None, "random_guess": False, "mek_crash": crash})
        elif opts:
            letter, guessed = parse_mc(r, dict(opts), rng)
            rows.append({"kind": "mcq", "correct": float(letter == gold), "parsed": letter, "random_guess": guessed})
        else:
            rows.append({"kind": "open", "correct": float(eval_open(str(gold), r)), "parsed": r})
    return rows
