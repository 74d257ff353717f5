"""MedMO's detection prompts and box conventions, as its own training data used them.

The authors' loaders (``MAXNORM8650/MedMO``, ``examples/scripts/medmo_loader_1.py``, commit e096daf) ask
for boxes in *pixel* coordinates, not Qwen3-VL's 0-1000 grid:

* SFT stages (``*_bbox_resize``, ``nih_bbox``, ``deeplesion_bbox``): pixels of the image resized to
  768 x 768, each axis scaled on its own (NIH boxes scaled 1024 -> 768, DeepLesion 512 -> 768);
  answer ``Cell: [ [x1, y1, x2, y2], ... ]`` (``Bacteria:``, the finding name for NIH and wrist);
* GRPO stage (``*_bbox_grpo``): pixels of the original image, boxes inside ``<box> ... </box>``.

A loader option ``style`` picks one: ``"qwen"`` (the 0-1000 grid and this toolkit's own grounding prompt,
the question left empty), ``"medmo-sft"`` (``pixel@768x768``) or ``"medmo-grpo"`` (``pixel``). The record
keeps original-image pixels and names the convention in ``meta["box_convention"]``
(:func:`medmo.boxes.convention_of`), so training targets, rewards, benchmarks and ``MedMO.ground`` all
read it alike. The prompt of a record is chosen by the md5 of its id (MedMO used md5 for most sets and
Python's per-run salted ``hash()`` for the Cell sets; md5 keeps our records reproducible). Each bank keeps
a few of the source's prompts, worded as there.
"""

from __future__ import annotations

import hashlib
from typing import Any

from medmo.boxes import CONVENTION_KEY

STYLES = ("qwen", "medmo-sft", "medmo-grpo")
CONVENTIONS = {"qwen": "grid", "medmo-sft": "pixel@768x768", "medmo-grpo": "pixel"}

_CELL_SFT = (
    (
        "You are an expert in cell microscopy image analysis. Examine this microscopy image and identify all "
        "visible cells. For each cell detected, provide its bounding box coordinates in the format: Cell: [ "
        "[x_min, y_min, x_max, y_max] ]. If multiple cells are present, list all bounding boxes as: Cell: [ "
        "[x1_min, y1_min, x1_max, y1_max], [x2_min, y2_min, x2_max, y2_max], ... ]. Use precise pixel "
        "coordinates."
    ),
    (
        "Analyze this cell microscopy image to detect and localize all cells present. Return the bounding box "
        "coordinates for each detected cell using the format: Cell: [ [x_min, y_min, x_max, y_max] ]. When "
        "multiple cells are visible, provide all bounding boxes in a single list: Cell: [ [x1_min, y1_min, "
        "x1_max, y1_max], [x2_min, y2_min, x2_max, y2_max], ... ]. Provide accurate pixel-level coordinates."
    ),
    (
        "Perform cell detection on this microscopy image. Locate each cell and specify its bounding box using [ "
        "x_min, y_min, x_max, y_max ] format. Output format: Cell: [ [x_min, y_min, x_max, y_max] ] for single "
        "detection, or Cell: [ [x1_min, y1_min, x1_max, y1_max], [x2_min, y2_min, x2_max, y2_max], ... ] for "
        "multiple detections. Report all visible cells with precise pixel coordinates."
    ),
)
_CELL_GRPO = (
    (
        "You are a microscopy expert. Detect and localize all cells. For each finding, provide the format must: "
        "Cell: <box> [ x_min, y_min, x_max, y_max ], [ x_min, y_min, x_max, y_max ], ... </box>, in pixel values."
    ),
    (
        "Identify and localize every cell. Respond as the format must: Cell: <box> [ x_min, y_min, x_max, y_max "
        "] ... </box>, in pixel values."
    ),
    (
        "Locate all visible cells and return the format must: Cell: <box> [ x_min, y_min, x_max, y_max ] ... "
        "</box>, in pixel values."
    ),
)
_BACTERIA_SFT = (
    (
        "You are an expert in microscopy image analysis. Examine this microscopy image carefully and identify "
        "all visible bacteria cells. For each bacterial cell detected, provide its bounding box coordinates in "
        "the format: Bacteria: [ [x_min, y_min, x_max, y_max] ]. If multiple cells are present, list all "
        "bounding boxes as: Bacteria: [ [x1_min, y1_min, x1_max, y1_max], [x2_min, y2_min, x2_max, y2_max], ... "
        "]. Ensure all coordinates are in pixel values."
    ),
    (
        "Analyze this microscopy image to detect and localize all bacterial cells present. Return the bounding "
        "box coordinates for each detected bacterium using the format: Bacteria: [ [x_min, y_min, x_max, y_max] "
        "]. When multiple bacteria are visible, provide all bounding boxes in a single list: Bacteria: [ "
        "[x1_min, y1_min, x1_max, y1_max], [x2_min, y2_min, x2_max, y2_max], ... ]. Use precise pixel "
        "coordinates."
    ),
)
_BACTERIA_GRPO = (
    (
        "You are a microscopy expert. Detect and localize all bacterial cells. For each cell, provide: <box> [ "
        "x_min, y_min, x_max, y_max ], [ x_min, y_min, x_max, y_max ],... </box> in pixel values."
    ),
)
_WRIST_SFT = (
    (
        "Examine this wrist X-ray and identify all fractures or abnormalities. For each finding, provide "
        "bounding box coordinates as: Finding: [ [x_min, y_min, x_max, y_max] ]. Multiple findings: Finding: [ "
        "[x1, y1, x2, y2], [x3, y3, x4, y4], ... ]."
    ),
    (
        "Analyze this wrist radiograph. Detect all fractures, dislocations, or abnormal regions. Return "
        "coordinates: Finding: [ [x_min, y_min, x_max, y_max] ] for single detection, or Finding: [ [x1, y1, x2, "
        "y2], ... ] for multiple findings."
    ),
    (
        "Detect fractures and abnormalities in this wrist image. Provide bounding boxes: Finding: [ [x_min, "
        "y_min, x_max, y_max] ]. List all findings as: Finding: [ [x1, y1, x2, y2], ... ]."
    ),
)
_WRIST_GRPO = (
    (
        "Examine this wrist X-ray and identify all fractures or abnormalities. For each finding, provide "
        "bounding box coordinates as: <box> [x_min, y_min, x_max, y_max] </box> in pixel values."
    ),
    (
        "Detect fractures and abnormalities in this wrist image. Provide bounding boxes: <box> [x_min, y_min, "
        "x_max, y_max] </box> for each finding."
    ),
)
_NIH_SFT = (
    (
        "You are a medical imaging expert. Detect any visible diseases or abnormalities in this X-ray image. For "
        "each detected finding, provide: the disease name/names, and bounding box coordinates as: [ [x_min, "
        "y_min, x_max, y_max] ] in pixel values."
    ),
)
_NIH_GRPO = (
    (
        "You are a medical imaging expert. Detect any visible diseases or abnormalities in this X-ray image. For "
        "each detected finding, provide: the disease name/names, and bounding box coordinates as: <box> [x_min, "
        "y_min, x_max, y_max] </box> in pixel values."
    ),
)
_LESION = (
    "Identify the lesion in the image and provide its location using [ x_min, y_min, x_max, y_max ].",
    "Mark the region of abnormality in this scan in [ x_min, y_min, x_max, y_max ] format.",
    "Locate the visible lesion and respond with bounding box [ x_min, y_min, x_max, y_max ].",
)
BANKS: dict[tuple[str, str], tuple[str, ...]] = {
    ("cell", "medmo-sft"): _CELL_SFT,
    ("cell", "medmo-grpo"): _CELL_GRPO,
    ("bacteria", "medmo-sft"): _BACTERIA_SFT,
    ("bacteria", "medmo-grpo"): _BACTERIA_GRPO,
    ("wrist", "medmo-sft"): _WRIST_SFT,
    ("wrist", "medmo-grpo"): _WRIST_GRPO,
    ("nih", "medmo-sft"): _NIH_SFT,
    ("nih", "medmo-grpo"): _NIH_GRPO,
    ("lesion", "medmo-sft"): _LESION,
    ("lesion", "medmo-grpo"): _LESION,
}


def check_style(style: str) -> str:
    """``style`` if it is one of :data:`STYLES`, else a ValueError listing them."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    return style


def pick(bank: tuple[str, ...], key: str) -> str:
    """A prompt of ``bank`` chosen by the md5 of ``key`` (the same record always gets the same prompt)."""
    return bank[int(hashlib.md5(key.encode("utf-8")).hexdigest(), 16) % len(bank)]


def styled(kind: str, style: str, key: str, meta: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """``(question, meta)`` of a grounding record of ``kind`` (cell, bacteria, wrist, nih, lesion) in ``style``.

    ``qwen`` leaves the question empty (the toolkit's grid prompt is used) and the meta unchanged.
    """
    out = dict(meta or {})
    if check_style(style) == "qwen":
        return "", out
    out[CONVENTION_KEY] = CONVENTIONS[style]
    return pick(BANKS[(kind, style)], key), out


# Captions (ROCO, ROCOv2: MedMO picks by the first byte of sha256(image_id)) and reports (MIMIC-CXR, IU X-Ray,
# MedPix: md5), as in its ``roco_report`` / ``mimiccxr_report`` loaders.
CAPTION_PROMPTS = (
    "Provide a detailed clinical interpretation of the medical image.",
    "Describe all visible anatomical structures and any abnormalities present in the image.",
    "Summarize the relevant medical findings shown in this image.",
    "Generate a comprehensive report based on the content of the medical image.",
    "Identify the anatomical region and discuss any pathological signs present.",
    "Write a detailed medical description highlighting both normal and abnormal observations.",
    "What are the key diagnostic features visible in this image?",
    "Based on this image, what can you infer about the patient's condition?",
    "List and describe any clinical observations supported by the image.",
    "Explain what this image reveals about the underlying disease or treatment status.",
)
REPORT_PROMPTS = (
    (
        "Give a detailed medical description of the image. Identify the imaging modality and describe the "
        "anatomical region visible."
    ),
    "Based on the image, identify the modality and provide a comprehensive analysis of what is visible.",
    "Generate a detailed radiology report based on the given medical image.",
    (
        "Analyze the medical image and provide a structured report describing any findings, abnormalities, and "
        "impressions."
    ),
    (
        "Write a comprehensive medical report, including anatomical observations and pathological findings "
        "visible in the image."
    ),
    "Please describe everything clinically relevant visible in this scan, including abnormal signals or lesions.",
    "Write a detailed radiology report based on this scan.",
)


def caption_prompt(key: str) -> str:
    """MedMO's caption prompt for an image id (sha256's first byte modulo the bank, as its ROCO loaders)."""
    return CAPTION_PROMPTS[hashlib.sha256(key.encode("utf-8")).digest()[0] % len(CAPTION_PROMPTS)]


def report_prompt(key: str) -> str:
    """MedMO's report prompt for a record key (md5, as its MIMIC-CXR loader)."""
    return pick(REPORT_PROMPTS, key)
