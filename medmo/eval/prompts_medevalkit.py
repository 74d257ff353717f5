"""MedEvalKit's prompts (``--prompts medevalkit``), per benchmark as its YAML ``medevalkit.prompt`` names them.

Source: MedEvalKit 9b12e3b, ``utils/question_formats.py``, the dataset classes' ``construct_messages`` and
``utils/MMMU/data_utils.py``; ``models/Qwen2_5_VL/*`` for the message layout: no system prompt, the image(s)
before the text, and with several images a ``"<image_{i}>: "`` text part before each one.
``medevalkit_reasoning`` uses the classes' ``REASONING=True`` instructions (answer in ``\\boxed{}``).

Kinds: ``mcq`` (``"\\nQuestion: {q}\\nOptions: \\n{choices}\\n{instruction}"``, choice strings as the class
builds them), ``mcq_with_context`` (PubMedQA: ``"Context: ..."`` first), ``yes_no_or_open`` (VQA-RAD,
PathVQA: the yes/no instruction for a yes/no gold, else the open one), ``closed_or_open`` (SLAKE: the
single-word instruction for closed questions, Chinese wording for Chinese ones), ``mmmu``, ``report`` and
``report_mimic`` (MIMIC-CXR's indented copy of the report instruction).

Choices and question are the cells the class reads when the loader kept them (``meta.options_raw``,
``meta.question_raw``; :func:`medmo.eval.metrics.medevalkit_bench.choice_strings`); MMMU's layout follows
the item's ``question_type`` (:func:`~medmo.eval.metrics.medevalkit_bench.mmmu_case`).

Deviations: MMLU's class crashes building its prompt (an undefined ``context``); we use the layout it
builds before the crash (``A.text`` lines, no context line). IU-Xray's class calls a misspelled function;
we use the report prompt it means. MMMU's class crashes on a multiple-choice item whose answer is not one
letter of its options; we use its multiple-choice layout. PubMedQA contexts come from ``meta.contexts``
when the record has them, else from the record's question with our loader's section labels removed.
"""

from __future__ import annotations

import re
from typing import Any

from medmo.eval.metrics.medevalkit_bench import choice_strings, mmmu_case
from medmo.eval.registry import Benchmark
from medmo.records import Sample

PROMPTS_VERSION = "prompts-medevalkit-2 (MedEvalKit@9b12e3b)"
PRESETS = ("ours", "medevalkit", "medevalkit_reasoning")
INSTRUCTIONS = {  # (plain, reasoning) per builder and language
    ("mcq", "en"): ("Answer with the option's letter from the given choices directly.",
                    'Answer with the option\'s letter from the given choices and put the letter in one "\\boxed{}".'),
    ("mcq", "zh"): ("请直接使用给定选项中的选项字母来回答该问题。", '请直接使用给定选项中的选项字母来回答该问题,并将答案包裹在"\\boxed{}"里'),
    ("judgement", "en"): ("Please output 'yes' or 'no'(no extra output).",
                          'Please output "yes" or "no" and put the answer in one "\\boxed{}".'),
    ("close", "en"): ("Answer the question using a single word or phrase.",
                      'Answer the question using a single word or phrase and put the answer in one "\\boxed{}".'),
    ("close", "zh"): ("请用一个单词或者短语回答该问题。", "请用一个单词或者短语回答该问题，并将答案放在一个'\\boxed{}'中。"),
    ("open", "en"): ("Please answer the question concisely.",
                     'Please answer the question concisely and put the answer in one "\\boxed{}".'),
    ("open", "zh"): ("请简要回答该问题。", "请简要回答该问题，并将答案放在一个'\\boxed{}'中。"),
}
REPORT = ("You are a helpful assistant. Please generate a report for the given images, including both findings "
          "and impressions. Return the report in the following format: Findings: {} Impression: {}.")


def _instr(kind: str, lang: str, reasoning: bool) -> str:
    return INSTRUCTIONS.get((kind, lang), INSTRUCTIONS[(kind, "en")])[int(reasoning)]


def mcq_prompt(question: str, choices: list[str], reasoning: bool, lang: str = "en") -> str:
    head = f"\nQuestion: {question}\nOptions: \n" if lang != "zh" else f"\n问题： {question}\n选项： \n"
    return head + "\n".join(choices) + "\n" + _instr("mcq", lang, reasoning)


def _pubmedqa_context(sample: Sample) -> tuple[str, str]:
    ctx = sample.meta.get("contexts") if isinstance(sample.meta, dict) else None
    q = sample.meta.get("question_raw") or sample.question
    m = re.match(r"(?s)^Context:\n(.*)\n\nQuestion: (.*)$", q)
    if m:
        q = m.group(2)
        if ctx is None:
            ctx = [re.sub(r"^[A-Z][A-Z /&-]*: ", "", line) for line in m.group(1).split("\n")]
    return "\n".join(ctx or []), q


def prompt_text(sample: Sample, bench: Benchmark, reasoning: bool = False) -> str:
    """The text MedEvalKit puts after the image(s) for this sample."""
    mek = bench.medevalkit
    kind, lang = mek.get("prompt", "mcq"), (sample.language or "en")
    choices = choice_strings(sample, mek, prompt=True)
    meta = sample.meta if isinstance(sample.meta, dict) else {}
    question = str(meta.get("question_raw") or sample.question)
    if kind == "mcq":
        return mcq_prompt(question, choices, reasoning)
    if kind == "mcq_with_context":
        ctx, q = _pubmedqa_context(sample)
        return f"Context: {ctx}\n" + mcq_prompt(q, choices, reasoning)
    if kind == "yes_no_or_open":  # the class tests the released gold, lower-cased but not stripped
        raw = sample.meta.get("answer_raw") if isinstance(sample.meta, dict) else None
        yn = str(raw or sample.answer).lower() in ("yes", "no")
        return sample.question + "\n" + _instr("judgement" if yn else "open", "en", reasoning)
    if kind == "closed_or_open":
        closed = str(sample.meta.get("answer_type", "")).upper() != "OPEN" if sample.meta.get("answer_type") \
            else sample.task == "closed_vqa"
        return sample.question + "\n" + _instr("close" if closed else "open", lang, reasoning)
    if kind == "mmmu":
        _, index2ans, _ = mmmu_case(sample)
        if index2ans is not None:
            example = "".join(f"({k}) {v}\n" for k, v in index2ans.items())
            return f"\n{question}\n\n{example}\n\n        " + _instr("mcq", "en", reasoning)
        return f"\n{question}\n\n        " + _instr("close", "en", reasoning)
    if kind == "report":
        return REPORT
    if kind == "report_mimic":
        return f"\n        {REPORT}\n        "
    raise ValueError(f"{bench.path}: unknown medevalkit prompt kind {kind!r}")


def messages(sample: Sample, bench: Benchmark, reasoning: bool = False) -> tuple[list[dict[str, Any]], list]:
    """MedEvalKit's chat for a sample and the images it sends: no system turn; image(s) first (each labelled
    ``<image_i>:`` when several), then the text. MMMU sends its first image only, as MedEvalKit does."""
    images = list(sample.images[:1]) if bench.medevalkit.get("prompt") == "mmmu" else list(sample.images)
    content: list[dict[str, Any]] = []
    if len(images) == 1:
        content.append({"type": "image"})
    else:
        for i in range(len(images)):
            content += [{"type": "text", "text": f"<image_{i + 1}>: "}, {"type": "image"}]
    content.append({"type": "text", "text": prompt_text(sample, bench, reasoning)})
    return [{"role": "user", "content": content}], images
