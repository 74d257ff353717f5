"""Small pure functions per benchmark: sample -> request (prompt), sample -> gold text and boxes.

Prompts come from :mod:`medmo.prompts` (the wording the model was trained on) or, with
``prompts="medevalkit"``, from :mod:`medmo.eval.prompts_medevalkit`; answers are read by
:mod:`medmo.answers`. Scoring is :mod:`medmo.eval.scoring`.
"""

from __future__ import annotations

from medmo.answers import parse_boxes, split_think
from medmo.boxes import convention_of
from medmo.data.images import image_size as read_size
from medmo.eval import prompts_medevalkit
from medmo.eval.backends.base import Request
from medmo.eval.registry import Benchmark
from medmo.prompts import PROMPT_VERSION, messages, question_text, target_text
from medmo.records import Sample

IOU_NOTE = (
    "iou_matched: Hungarian one-to-one matching, summed IoU / max(#pred, #gold); iou_first: first predicted vs "
    "first gold box (MedSG-Bench); iou_best: best pair; acc@t(first): share of samples with iou_first >= t"
)


# ------------------------------------------------------------------------------------- prompts


def uses_medevalkit_prompts(bench: Benchmark, prompts: str) -> bool:
    """Whether ``prompts`` asks for MedEvalKit's wording and this benchmark has one."""
    if prompts not in prompts_medevalkit.PRESETS:
        raise ValueError(f"unknown prompts {prompts!r}; use one of {', '.join(prompts_medevalkit.PRESETS)}")
    return prompts != "ours" and bool(bench.medevalkit.get("prompt"))


def prompt_version(bench: Benchmark, prompts: str = "ours") -> str:
    """The prompt version a request of ``bench`` is built with (also part of the prediction cache key)."""
    if uses_medevalkit_prompts(bench, prompts):
        return f"{prompts_medevalkit.PROMPTS_VERSION} {prompts}"
    return bench.prompt_version if bench.prompt_version else PROMPT_VERSION


def to_request(sample: Sample, bench: Benchmark, prompts: str = "ours") -> Request:
    """The generation request for a sample: the chat prompt without the answer, plus its images.

    ``prompts="ours"``: MedMO's documented prompts (:mod:`medmo.prompts`); ``"medevalkit"`` /
    ``"medevalkit_reasoning"``: MedEvalKit's (:mod:`medmo.eval.prompts_medevalkit`) where the benchmark
    declares one.
    """
    if uses_medevalkit_prompts(bench, prompts):
        msgs, images = prompts_medevalkit.messages(sample, bench, reasoning=prompts.endswith("reasoning"))
    else:
        msgs, images = messages(sample, with_answer=False, think=bench.think), list(sample.images)
    return Request(id=sample.id, messages=msgs, images=images, max_new_tokens=bench.max_new_tokens, task=sample.task)


def length_hint(sample: Sample) -> int:
    """A cheap stand-in for the prompt's token count, for length-sorted batches."""
    return len(question_text(sample)) // 4 + 256 * len(sample.images)


def final_answer(prediction: str, bench: Benchmark) -> str:
    """The answer part of a prediction (the text inside ``<answer>`` for thinking prompts)."""
    if not bench.think:
        return prediction

    return split_think(prediction).answer


# ---------------------------------------------------------------------------------------- gold


def gold_text(sample: Sample) -> str | list[str]:
    """The reference text: the answer (letter for mcq), the report's findings + impression, or a caption set
    (``meta.references``)."""
    refs = sample.meta.get("references") if isinstance(sample.meta, dict) else None
    if refs:
        return list(refs)
    return sample.answer if sample.task != "report" else target_text(sample)


def image_size(sample: Sample, index: int = 0) -> tuple[int, int]:
    """``(width, height)`` of one of the sample's images, read from the file when the record lacks it."""
    ref = sample.images[index]
    if ref.width and ref.height:
        return int(ref.width), int(ref.height)

    return read_size(ref.path)


def gold_boxes(sample: Sample) -> list[list[float]]:
    """The sample's gold boxes in pixels ``[x1, y1, x2, y2]``."""
    return [list(map(float, b.box)) for b in sample.boxes]


def predicted_boxes(prediction: str, sample: Sample) -> list[list[float]]:
    """Boxes read from model text, in the record's box convention, mapped to pixels of the gold boxes' image."""
    w, h = image_size(sample, sample.boxes[0].image if sample.boxes else 0)
    conv = convention_of(sample.meta)
    return [conv.from_target(pb.box, w, h) for pb in parse_boxes(prediction) if len(pb.box) == 4]


def box_image(sample: Sample) -> str | None:
    """Path of the image the gold boxes are drawn on (None without images)."""
    if not sample.images:
        return None
    return sample.images[sample.boxes[0].image if sample.boxes else 0].path
