"""Reading model outputs: boxes, option letters, yes/no, ``<think>``/``<answer>`` and text normalization.

One parser for every evaluation, reward and serving path, so a benchmark score and a training reward
never disagree about what a model said. Every function here takes arbitrary text and never raises on
malformed input: it returns "nothing parsed" (``[]``, ``None``, or an empty answer) instead.

Box syntaxes read by :func:`parse_boxes` (coordinates are returned as emitted, usually 0-1000 grid
units; :func:`medmo.boxes.from_grid` maps them to pixels):

* MedMO: ``Label <box>[[x1, y1, x2, y2], ...]</box>`` (several labelled segments per text);
* Qwen3-VL JSON: ``[{"bbox_2d": [x1, y1, x2, y2], "label": "..."}]``, bare, in a ```json fence, a
  single dict, or truncated mid-array (each complete ``{...}`` object is read on its own);
* Qwen2-VL: ``<|object_ref_start|>label<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>``
  (the closing token may be missing or mistyped as a second ``<|box_start|>``, as in MedSG-Bench's prompt);
* bare lists ``[x1, y1, x2, y2]`` / ``[[...], [...]]`` and ``(x1,y1),(x2,y2)`` pairs, read only when none
  of the tagged syntaxes above is present.

Bump :data:`PARSER_VERSION` whenever a rule changes: it is written into every results file.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass

PARSER_VERSION = "medmo-answers-1"

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_SEP = r"\s*[,;]?\s*"
_QUAD = re.compile(rf"[\[(]\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*[\])]")
_PAIR2 = re.compile(rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\){_SEP}\(\s*({_NUM})\s*,\s*({_NUM})\s*\)")
_MEDMO = re.compile(r"<box>(.*?)(?:</box>|(?=<box>)|$)", re.S)
_QWEN2 = re.compile(
    r"(?:<\|object_ref_start\|>(?P<label>[^<]*)<\|object_ref_end\|>\s*)?"
    rf"<\|box_start\|>\s*(?P<body>\(\s*{_NUM}\s*,\s*{_NUM}\s*\){_SEP}\(\s*{_NUM}\s*,\s*{_NUM}\s*\))",
    re.S,
)
_JSON_OBJ = re.compile(r"\{[^{}]*\}")
_JSON_BOX = re.compile(
    rf"\"(?:bbox_2d|bbox|box_2d|box)\"\s*:\s*\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]"
)
_JSON_LABEL = re.compile(r"\"(?:label|name|category)\"\s*:\s*\"((?:[^\"\\]|\\.)*)\"")


@dataclass
class ParsedBox:
    """A box read from model text: its label (if the text gave one) and ``[x1, y1, x2, y2]`` as emitted."""

    label: str | None
    box: list[float]


@dataclass
class ThinkAnswer:
    """A reasoning output split into its parts.

    Attributes:
        think: the reasoning inside ``<think>...</think>`` (``None`` if there is none).
        answer: the final answer (inside ``<answer>`` if present, else the text after ``</think>``,
            else the whole text), stripped.
        well_formed: exactly ``<think>...</think><answer>...</answer>`` and nothing else around them.
    """

    think: str | None
    answer: str
    well_formed: bool


def _text(text: object) -> str:
    if text is None:
        return ""
    return text if isinstance(text, str) else str(text)


# ------------------------------------------------------------------------------------------ boxes


def _floats(groups: tuple[str, ...]) -> list[float] | None:
    try:
        vals = [float(g) for g in groups]
    except (TypeError, ValueError):
        return None
    return vals if all(abs(v) < 1e12 for v in vals) else None


def _clean_label(raw: str | None) -> str | None:
    if raw is None:
        return None
    label = re.sub(r"<\|?[a-z_/]+\|?>", " ", raw)  # stray special tokens
    label = label.strip().strip("*#-:=>\"'`").strip()
    return label or None


def _medmo_boxes(text: str) -> list[tuple[int, ParsedBox]]:
    out, prev_end = [], 0
    for m in _MEDMO.finditer(text):
        before = text[prev_end : m.start()]
        label = _clean_label(re.split(r"[\n.;]|</box>", before)[-1])
        quads = [_floats(q.groups()) for q in _QUAD.finditer(m.group(1))]
        if not quads:  # <box>(x1,y1),(x2,y2)</box> or <box>x1, y1, x2, y2</box>
            quads = [_floats(q.groups()) for q in _PAIR2.finditer(m.group(1))]
            nums = re.findall(_NUM, m.group(1))
            if not quads and len(nums) == 4:
                quads = [_floats(tuple(nums))]
        out.extend((m.start(), ParsedBox(label, q)) for q in quads if q)
        prev_end = m.end()
    return out


def _qwen2_boxes(text: str) -> list[tuple[int, ParsedBox]]:
    out, label = [], None
    for m in _QWEN2.finditer(text):
        if m.group("label") is not None:
            label = _clean_label(m.group("label"))
        pair = _PAIR2.search(m.group("body"))
        vals = _floats(pair.groups()) if pair else None
        if vals:
            out.append((m.start(), ParsedBox(label, vals)))
    return out


def _json_boxes(text: str) -> list[tuple[int, ParsedBox]]:
    out = []
    for m in _JSON_OBJ.finditer(text):
        b = _JSON_BOX.search(m.group(0))
        vals = _floats(b.groups()) if b else None
        if not vals:
            continue
        lab = _JSON_LABEL.search(m.group(0))
        label = None
        if lab:
            try:
                label = json.loads(f'"{lab.group(1)}"')
            except ValueError:
                label = lab.group(1)
        out.append((m.start(), ParsedBox(_clean_label(label), vals)))
    return out


def parse_boxes(text: str) -> list[ParsedBox]:
    """Every box in a model output, in order of appearance, with labels where the text gives them.

    Tagged syntaxes (MedMO ``<box>``, Qwen3-VL ``bbox_2d`` JSON, Qwen2-VL box tokens) are read together;
    bare ``[x1, y1, x2, y2]`` lists and ``(x1,y1),(x2,y2)`` pairs only when no tagged box is present
    (so a list inside a ``<box>`` is not counted twice). Malformed text yields ``[]``.
    """
    text = _text(text)
    try:
        found = _medmo_boxes(text) + _qwen2_boxes(text) + _json_boxes(text)
        if not found:
            found = [(m.start(), ParsedBox(None, _floats(m.groups()))) for m in _QUAD.finditer(text)]
            if not found:
                found = [(m.start(), ParsedBox(None, _floats(m.groups()))) for m in _PAIR2.finditer(text)]
        found.sort(key=lambda t: t[0])
        return [pb for _, pb in found if pb.box]
    except (RecursionError, MemoryError):  # pathological input: nothing parsed
        return []


# ---------------------------------------------------------------------------------- think / answer


_THINK_FULL = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.S)


def split_think(text: str) -> ThinkAnswer:
    """Split ``<think>...</think><answer>...</answer>`` (DeepSeek-R1 / GRPO format) into its parts.

    Tolerates a missing opening ``<think>`` (chat templates that put it in the prompt), a missing
    ``<answer>`` (the answer is then the text after ``</think>``) and a truncated ``<answer>``.
    """
    text = _text(text)
    full = _THINK_FULL.fullmatch(text)
    if full and text.count("<think>") == 1 and text.count("<answer>") == 1:
        return ThinkAnswer(full.group(1).strip(), full.group(2).strip(), True)
    think, rest = None, text
    if "</think>" in text:
        head, _, rest = text.rpartition("</think>")
        think = head.rsplit("<think>", 1)[-1].strip()
    elif "<think>" in text:  # unterminated reasoning: no answer was given
        think, rest = text.split("<think>", 1)[1].strip(), ""
    if "<answer>" in rest:
        rest = rest.rsplit("<answer>", 1)[1]
        rest = rest.split("</answer>", 1)[0]
    answer = re.sub(r"</?(?:think|answer)>", " ", rest).strip()
    return ThinkAnswer(think, answer, False)


# ------------------------------------------------------------------------------- normalization


_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def normalize_text(text: str) -> str:
    """Lowercase, punctuation -> space, drop articles (a/an/the), collapse whitespace.

    After SQuAD's ``normalize_answer`` (Rajpurkar et al. 2016), except that punctuation becomes a space
    instead of vanishing, so "left/right" stays two words. Punctuation is any Unicode ``P*`` or ``S*``
    character, so CJK punctuation is removed too.
    """
    text = unicodedata.normalize("NFKC", _text(text)).lower()
    text = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


# ------------------------------------------------------------------------------ multiple choice

DEFAULT_LETTERS = "ABCDEFGHIJ"
_BOXED = re.compile(r"\\boxed\{\s*(?:\\text(?:bf)?\{)?\s*\(?([A-Za-z])\b")
_STATED = re.compile(
    r"(?:answer|option|choice)(?:\s+(?:is|would be|should be|will be))?\s*(?:[:：=-]|\bis\b)?\s*"
    r"(?:option\s+|choice\s+)?[*_\[(]*([A-Za-z])(?=[)\].:,*_]|\s*$|\s)",
    re.I,
)
_ALONE = re.compile(r"[\s*_\[(]*(?:option\s+)?([A-Za-z])[)\].:]?[\s*_]*", re.I)
_LEADING = re.compile(r"[\s*_]*(?:option\s+)?\(?([A-Za-z])\s*[).:\]]\s*\S", re.I)
_PAREN = re.compile(r"\(([A-Z])\)")
_TOKEN = re.compile(r"(?<![\w'’-])([A-Z])(?![\w'’-])(\s+[a-z])?")


def _letters(options: dict[str, str] | None) -> str:
    if options:
        return "".join(str(k).strip().upper() for k in options if str(k).strip())
    return DEFAULT_LETTERS


def _stated_letter(ans: str, valid: str) -> str | None:
    """The last "answer is C" / "Answer: (C)" / "option C"; a lowercase letter only before a delimiter."""
    hit = None
    for m in _STATED.finditer(ans):
        letter = m.group(1)
        after = ans[m.end(1) : m.end(1) + 1]
        if letter.islower() and after not in (")", ".", ":", "]", ""):  # "the answer is a tumor"
            continue
        if letter == "I" and re.match(r"\s+[a-z]", ans[m.end(1) :]):  # "the choice I would make"
            continue
        if letter.upper() in valid:
            hit = letter.upper()
    return hit


def _option_text_letter(ans: str, options: dict[str, str]) -> str | None:
    """The option whose text the answer is (or uniquely contains), after :func:`normalize_text`."""
    norm = normalize_text(ans)
    texts = {str(k).upper(): normalize_text(v) for k, v in options.items() if normalize_text(v)}
    exact = [k for k, v in texts.items() if v == norm]
    if len(exact) == 1:
        return exact[0]
    inside = [k for k, v in texts.items() if re.search(rf"(?<!\w){re.escape(v)}(?!\w)", norm)]
    # "viral pneumonia" contains "pneumonia": keep only the most specific matches.
    inside = [k for k in inside if not any(texts[k] != texts[o] and texts[k] in texts[o] for o in inside)]
    return inside[0] if len(inside) == 1 else None


def _lone_letter(ans: str, valid: str) -> str | None:
    """A single distinct capital option letter standing alone ("I'd pick C here"); "A"/"I" followed by
    a lowercase word are read as the article / pronoun, not as options."""
    found = set()
    for m in _TOKEN.finditer(ans):
        letter, next_word = m.group(1), m.group(2)
        if letter in "AI" and next_word:
            continue
        if letter in valid:
            found.add(letter)
    return found.pop() if len(found) == 1 else None


def extract_choice(text: str, options: dict[str, str] | None = None) -> str | None:
    """The option letter a model chose, or ``None`` if it did not clearly choose one.

    Rules, first hit wins: ``\\boxed{C}``; the last explicit statement ("The answer is C",
    "Answer: (C)", "correct option: C"); the whole answer is a letter ("C", "(C)", "C."); the answer
    starts with a letter and a delimiter ("C. Pneumonia", "(C) text"); exactly one distinct ``(C)``;
    the text of exactly one option (when ``options`` are given); exactly one standalone capital letter
    that is not the article "A" / pronoun "I". The reasoning of a ``<think>`` output is ignored.

    Args:
        text: model output.
        options: ``{letter: option text}``; restricts valid letters and enables option-text matching.
            Without it, letters A-J are valid.
    """
    try:
        ans = split_think(text).answer
        valid = _letters(options)
        checks = (
            lambda: (m := _BOXED.search(ans)) and m.group(1).upper(),
            lambda: _stated_letter(ans, valid),
            lambda: (m := _ALONE.fullmatch(ans)) and m.group(1).upper(),
            lambda: (m := _LEADING.match(ans)) and m.group(1).upper(),
            lambda: (len(s := set(_PAREN.findall(ans)) & set(valid)) == 1) and s.pop(),
            lambda: options and _option_text_letter(ans, options),
            lambda: _lone_letter(ans, valid),
        )
        for check in checks:
            letter = check()
            if letter and letter in valid:
                return letter
        return None
    except (RecursionError, MemoryError):
        return None


# ------------------------------------------------------------------------------------------ yes/no

_YES = ("yes", "true", "correct", "yeah", "yep", "affirmative", "positive")
_NO = ("no", "false", "incorrect", "nope", "negative")
_ZH_NO = ("不是", "否", "没有", "不存在", "无", "不对", "错误", "不")
_ZH_YES = ("是", "对", "有", "存在", "正确")
_STATED_YN = re.compile(r"answer\s*(?:is|:|would be|should be)?\s*[:\-]?\s*[*_\"']*(yes|no|true|false)\b", re.I)


def yes_no(text: str) -> str | None:
    """Normalize a closed answer to ``"yes"`` / ``"no"``, or ``None`` if it is neither.

    Reads, in order: the first word ("Yes.", "No, there is...", "True", "false"; Chinese 是/否/有/没有/
    不是 at the start); an explicit "the answer is yes"; otherwise exactly one of the words yes / no
    anywhere in the answer. ``<think>`` reasoning is ignored.
    """
    ans = split_think(text).answer
    norm = normalize_text(ans)
    if not norm:
        return None
    first = norm.split()[0]
    if first in _YES:
        return "yes"
    if first in _NO:
        return "no"
    if norm.startswith(_ZH_NO):  # check the negatives first: 不是 starts with 不, not 是
        return "no"
    if norm.startswith(_ZH_YES):
        return "yes"
    stated = _STATED_YN.findall(ans)
    if stated:
        return "yes" if stated[-1].lower() in ("yes", "true") else "no"
    words = set(norm.split())
    has_yes, has_no = "yes" in words, "no" in words
    if has_yes != has_no:
        return "yes" if has_yes else "no"
    return None
