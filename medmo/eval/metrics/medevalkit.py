"""The ``medevalkit`` VQA preset: MedEvalKit's answer-judging rules, reimplemented.

Source: alibaba-damo-academy/MedEvalKit at commit 9b12e3b ("update mmmu eval"), ``utils/utils.py``
(``parse_response``, ``judge_judgement``, ``judge_close_end_vqa``, ``judge_open_end_vqa``,
``calculate_f1``, ``judge_multi_choice``) and the dataset classes that call them
(``utils/VQA_RAD/VQA_RAD.py``, ``utils/SLAKE/SLAKE.py``, ``utils/MedQA_USMLE/MedQA_USMLE.py``).
Boxed-answer extraction follows ``mathruler.grader.extract_boxed_content`` (last ``\\boxed{...}``,
brace-balanced, else the string ``"None"``).

What is implemented, per sample:

1. Pre-processing (dataset classes): if a ``\\boxed{}`` exists its content is the response, else if
   ``<answer>`` occurs the text of every closed ``<answer>...</answer>`` (joined by spaces; the whole
   text if none is closed); then lowercase and strip.
2. ``parse_response``: lowercase; boxed content or ``<answer>`` text again; then for each marker in
   ``**answer**:``, ``**answer**``, ``*answer*:``, ``**answer:**``, ``answer is``, ``answer:``,
   ``答案:``, ``final answer``, ``final answer is`` (in this order) keep the text after its last occurrence.
3. closed yes/no gold (``judge_judgement``): after 2 and removing newlines and periods, correct iff exactly
   one of the *substrings* "yes" / "no" occurs and the gold is a substring. This is MedEvalKit's
   substring check: "normal" contains "no", so "No, it is normal." is read as having only "no".
4. other closed golds (``judge_close_end_vqa``): exact string match after 2 and the same removals.
5. open (``judge_open_end_vqa``): ``correct`` = exact match of the parsed response with the gold;
   token-set precision / recall / F1 over whitespace tokens. MedEvalKit's ``calculate_f1`` returns
   ``(f1, precision, recall)`` but its caller unpacks ``precision, recall, f1``, so its printed
   "precision" is F1, "recall" is precision and "f1" is recall. We return correctly named values and,
   for comparison with its tables, ``reported_f1`` (= recall). MedEvalKit's per-answer BLEU/ROUGE columns
   (nltk ``sentence_bleu`` and the ``rouge`` package) are not reproduced.
6. mcq (``judge_multi_choice``): first paragraph or last paragraph's first sentence if it is a bare
   letter; then 2; the text before the first period, after the last colon; correct if it equals the
   gold, or is a letter whose option equals the gold, or is an option text matching the gold letter;
   otherwise the option most similar to the whole response (``difflib.SequenceMatcher.ratio``) decides.
"""

from __future__ import annotations

import difflib

from medmo.eval.metrics.kinds import infer_kind

MEDEVALKIT_VERSION = "vqa-medevalkit-1 (MedEvalKit@9b12e3b)"

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


def tag_text(text: str, tag: str = "answer") -> str:
    """Every closed ``<tag>...</tag>`` joined by spaces; the whole text if none is closed."""
    open_t, close_t, parts, i = f"<{tag}>", f"</{tag}>", [], text.find(f"<{tag}>")
    while i != -1:
        j = text.find(close_t, i + len(open_t))
        if j == -1:
            break
        parts.append(text[i + len(open_t) : j])
        i = text.find(open_t, j + len(close_t))
    joined = " ".join(parts).strip()
    return joined if joined else text


def preprocess(response: str) -> str:
    """Step 1 (dataset classes): boxed content or ``<answer>`` text, lowercased and stripped."""
    response = "" if response is None else str(response)
    if boxed_content(response) != "None":
        response = boxed_content(response)
    elif "<answer>" in response:
        response = tag_text(response)
    return response.lower().strip()


def parse_response(response: str) -> str:
    """Step 2 (``parse_response``)."""
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
    r = parse_response(response).replace("\n", "").replace(".", "")
    return (("yes" in r) != ("no" in r)) and gold.lower() in r


def judge_closed(gold: str, response: str) -> bool:
    return parse_response(response).replace("\n", "").replace(".", "") == gold.lower()


def open_scores(gold: str, response: str) -> dict[str, float]:
    parsed = parse_response(response)
    p, g = set(parsed.lower().split()), set(gold.lower().split())
    precision = len(p & g) / len(p) if p and g else 0.0
    recall = len(p & g) / len(g) if p and g else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    em = float(parsed == gold.lower())
    return {"em": em, "precision": precision, "recall": recall, "f1": f1, "reported_f1": recall}


def judge_mcq(choices: list[str], gold: str, response: str) -> bool:
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
    if not choices:
        return False
    sims = [difflib.SequenceMatcher(None, c, response).ratio() for c in choices]
    best = sims.index(max(sims))  # first most similar option (index 0 when nothing is similar)
    return alphas[best] == gold or choices[best] == gold


def score_medevalkit(
    prediction: str, gold: str, options: dict[str, str] | None = None, kind: str | None = None
) -> dict:
    """One sample under MedEvalKit's rules (see module docstring); returns ``{"kind", "correct", ...}``."""
    kind = kind or infer_kind(gold, options)
    response = preprocess(prediction)
    gold = str(gold)
    if kind == "mcq":
        return {"kind": kind, "correct": float(judge_mcq(list((options or {}).values()), gold, response))}
    if kind == "closed":
        ok = judge_yes_no(gold, response) if gold.lower().strip() in ("yes", "no") else judge_closed(gold, response)
        return {"kind": kind, "correct": float(ok)}
    s = open_scores(gold.lower().strip(), response)
    return {"kind": "open", "correct": s["em"], **s}
