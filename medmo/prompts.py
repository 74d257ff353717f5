"""Task prompt templates: the question the model is asked and the answer it is taught, per task.

Training (``medmo.train``), evaluation (``medmo.eval``) and inference (``medmo.infer``) all build their
conversations here, so a model is evaluated and served with exactly the wording it was trained on.
The template version is written into every training run and every results file.

Box answers follow MedMO's published output syntax, ``label <box>[[x1, y1, x2, y2]]</box>``, with
coordinates on Qwen3-VL's relative 0-1000 grid (:func:`medmo.boxes.to_grid`). A record whose
``meta["box_convention"]`` is a pixel convention (MedMO's own training sets, :class:`medmo.boxes.BoxConvention`)
is taught in that convention with its source's syntax, ``Label: [ [x1, y1, x2, y2], ... ]``.
"""

from __future__ import annotations

from collections.abc import Sequence

from medmo.boxes import GRID_CONVENTION, BoxConvention, convention_of
from medmo.records import Sample

PROMPT_VERSION = "medmo-prompts-2"  # 2: pixel-convention box answers and prompts

CLOSED_SUFFIX = "Answer with a single word."
MCQ_SUFFIX = "Answer with the option's letter from the given choices directly."
GROUNDING_TEMPLATE = (
    "Locate the {target} in the image. Give each box as {target} <box>[[x1, y1, x2, y2]]</box> "
    "with coordinates on a 0-1000 grid."
)
CAPTION_PROMPT = "Describe this medical image."
REPORT_PROMPT = "Write the findings and impression of the radiology report for this image."
PIXEL_GROUNDING_TEMPLATE = (
    "Locate the {target} in the image. Give the bounding box coordinates as {target}: "
    "[ [x_min, y_min, x_max, y_max] ] in pixel values."
)
THINK_SUFFIX = (
    "First think step by step inside <think></think>, then give the final answer inside <answer></answer>."
)


def format_options(options: dict[str, str]) -> str:
    """``A. text`` lines in the given order."""
    return "\n".join(f"{k}. {v}" for k, v in options.items())


def format_box_answer(label: str, grid_boxes: Sequence[Sequence[int]]) -> str:
    """MedMO's box answer: ``label <box>[[x1, y1, x2, y2], ...]</box>`` (grid coordinates)."""
    inner = ", ".join("[" + ", ".join(str(int(v)) for v in b) + "]" for b in grid_boxes)
    return f"{label} <box>[{inner}]</box>"


def format_pixel_box_answer(label: str, boxes: Sequence[Sequence[int]]) -> str:
    """MedMO's training-data box answer: ``Label: [ [x1, y1, x2, y2], ... ]`` (pixel coordinates)."""
    inner = ", ".join("[" + ", ".join(str(int(v)) for v in b) + "]" for b in boxes)
    return f"{label}: [ {inner} ]"


def grounding_prompt(target: str, convention: str | BoxConvention = GRID_CONVENTION) -> str:
    """The grounding question for ``target``, worded for the box convention the answer should use."""
    grid = BoxConvention.parse(convention).kind == "grid"
    return (GROUNDING_TEMPLATE if grid else PIXEL_GROUNDING_TEMPLATE).format(target=target)


def question_text(sample: Sample, think: bool = False) -> str:
    """The user turn's text for a sample (the image is added by the caller before this text)."""
    t = sample.task
    if t == "grounding":
        q = sample.question or grounding_prompt(sample.answer or sample.boxes[0].label, convention_of(sample.meta))
    elif t == "mcq":
        q = f"{sample.question}\n{format_options(sample.options)}\n{MCQ_SUFFIX}"
    elif t == "closed_vqa":
        q = f"{sample.question}\n{CLOSED_SUFFIX}"
    elif t == "caption":
        q = sample.question or CAPTION_PROMPT
    elif t == "report":
        q = sample.question or REPORT_PROMPT
    else:  # open_vqa, text_qa, retrieval
        q = sample.question or CAPTION_PROMPT
    return f"{q}\n{THINK_SUFFIX}" if think else q


def target_text(sample: Sample) -> str:
    """The assistant answer a sample teaches (grounding: boxes in the record's box convention)."""
    if sample.task == "grounding":
        conv = convention_of(sample.meta)
        by_label: dict[str, list[list[int]]] = {}
        for b in sample.boxes:
            ref = sample.images[b.image]
            by_label.setdefault(b.label, []).append(conv.to_target(b.box, ref.width, ref.height))
        fmt = format_box_answer if conv.kind == "grid" else format_pixel_box_answer
        return "\n".join(fmt(label, boxes) for label, boxes in by_label.items())
    if sample.task == "report" and not sample.answer.strip():
        parts = []
        if sample.findings:
            parts.append(f"Findings: {sample.findings.strip()}")
        if sample.impression:
            parts.append(f"Impression: {sample.impression.strip()}")
        return "\n".join(parts)
    return sample.answer


def messages(sample: Sample, with_answer: bool = True, think: bool = False) -> list[dict]:
    """Chat messages in the transformers multimodal format (``{"type": "image"}`` placeholders)."""
    content: list[dict] = [{"type": "image"} for _ in sample.images]
    content.append({"type": "text", "text": question_text(sample, think=think)})
    msgs = [{"role": "user", "content": content}]
    if with_answer:
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": target_text(sample)}]})
    return msgs
