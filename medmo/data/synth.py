"""The nano dataset: procedural, seeded, multi-modality synthetic medical images with known findings.

The ``nano`` recipe trains a few-million-parameter Qwen3-VL from scratch on a CPU in minutes, so its data
must be small, learnable and still exercise every task MedMO trains on. Each image is a background of one
modality with 0, 1 or 2 inserted findings of a known class and box:

* backgrounds come from real images shipped inside installed packages (scikit-image's fundus photograph,
  immunohistochemistry slide and cell micrograph; pydicom's ``CT_small.dcm`` / ``MR_small.dcm``; nibabel's
  ``anatomical.nii``) or are procedural (a chest-radiograph-like field, an ultrasound speckle fan), with
  random crops, flips and intensity jitter; their range is compressed to mid-grey so that findings stay
  salient on every background, and half of them are blurred flat (:data:`FLAT_FRACTION`);
* findings: ``nodule`` (small bright disk), ``mass`` (large bright irregular blob), ``calcification``
  (a bright rim around a dark centre, like rim calcification), ``lesion`` (dark irregular blob); a
  finding's box is the tight box of its mask. The class names are terms of the report factuality
  vocabulary (:mod:`medmo.findings`), so report rewards and metrics see them.

Every image yields one record per task (grounding when it has findings, closed VQA, multiple choice, open
VQA, caption, report; a training image with findings of two kinds is asked to ground each kind), and each
split gets a few text-only QA records. Answers are balanced (yes/no drawn first, multiple-choice answers
spread over the options) so that trivial baselines (:func:`baselines`) score clearly below a trained model.
Every image draws from its own random stream, keyed by the seed, its split and its index
(:func:`image_rng`), so splits share no image, a bigger build starts with a smaller one's images, and
worker processes (``workers=``) render any share of the images in any order with byte-identical output.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from medmo.boxes import match_boxes, to_grid
from medmo.data.images import load_image
from medmo.data.io import write_jsonl
from medmo.records import Box, ImageRef, Sample, options_from_list, stable_id

SOURCE = "nano_synth"
SYNTH_VERSION = "nano-synth-7"
CLASSES = ("nodule", "mass", "calcification", "lesion")
BACKGROUNDS = ("fundus", "pathology", "microscopy", "ct", "mri", "x-ray", "ultrasound")
QUADRANTS = ("upper left", "upper right", "lower left", "lower right")
COUNT_WORDS = ("zero", "one", "two")
SPLITS = ("train", "validation", "test")
# Per-split keys keep the three splits' random streams (and so the images) disjoint.
_SPLIT_SALT = {"train": 0, "validation": 1_000_003, "test": 2_000_003}
# The stream kinds within a split: one stream per image, one for the text-only records.
_IMAGE_STREAM, _TEXT_STREAM = 0, 1
# Images per worker job: a split of n images is cut into jobs of ceil(n / _MIN_JOBS) images, at most
# _MAX_CHUNK. Many jobs let workers that finish early pick up more (render time varies with the modality);
# the cap bounds the records a job sends back to the parent in one message.
_MIN_JOBS, _MAX_CHUNK = 32, 64
# Share of images whose background is blurred flat. A from-scratch nano model learns where a finding is
# only once attention from the answer singles out the finding's visual token; with textured backgrounds
# alone that attention did not form within the speedrun's budget (single findings, 600 grounding steps:
# held-out IoU 0.11, the mean-box level), while on flat backgrounds it forms (0.41-0.61) and carries over.
FLAT_FRACTION = 0.5
# Probability of 0, 1 and 2 findings per image. Two findings of different classes make grounding a
# two-step problem (match the named class, then read its position) that the nano model learns last.
FINDING_COUNTS = (0.2, 0.65, 0.15)

# Text-only QA: each fact with three wordings. Training records use the first two, validation and test
# the third, so the nano text QA benchmark asks a known fact in words the model has not trained on. (With
# one wording per fact the test questions were the training questions, and decontamination rightly
# dropped every training copy: the benchmark scored 0 on every seed.) The wordings share no run of 13
# words, the n-gram :mod:`medmo.data.decontam` matches on.
TEXT_FACTS = (
    ("MRI", ("Which imaging modality uses strong magnetic fields and radio waves?",
             "Which scanner images the body with a strong magnet and radio-frequency pulses?",
             "What modality relies on magnetic fields and radio waves to image the body?")),
    ("CT", ("Which imaging modality uses ionizing radiation to make cross-sectional images?",
            "Which modality reconstructs cross-sectional slices from rotating X-ray beams?",
            "What modality makes cross-sectional images with ionizing radiation?")),
    ("ultrasound", ("Which imaging modality uses high-frequency sound waves?",
                    "Which modality forms images from echoes of sound waves?",
                    "What modality images the body with high-frequency sound?")),
    ("cyst", ("What is a fluid-filled sac called?",
              "What do we call a closed sac that holds fluid?",
              "What is the name of a sac filled with fluid?")),
    ("nodule", ("What is a small round opacity in the lung, under 3 cm, called?",
                "What is a round lung opacity smaller than 3 cm called?",
                "What do we call a small round lung opacity under 3 cm?")),
    ("mass", ("What is a lung opacity larger than 3 cm called?",
              "What is a lung opacity over 3 cm across called?",
              "What do we call a lung opacity bigger than 3 cm?")),
    ("retina", ("Which part of the eye does a fundus photograph show?",
                "Which layer of the eye is seen on a fundus photograph?",
                "What part of the eye is imaged in a fundus photograph?")),
    ("immunohistochemistry", ("Which stain highlights specific proteins in tissue sections with antibodies?",
                              "Which staining method uses antibodies to mark proteins in tissue?",
                              "What stain marks specific tissue proteins with antibodies?")),
    ("Hounsfield unit", ("What unit expresses X-ray attenuation on CT?",
                         "In what unit is CT attenuation measured?",
                         "What unit is used for attenuation values on CT?")),
    ("posteroanterior", ("Which view is the standard frontal chest radiograph?",
                         "Which projection is the usual frontal chest X-ray?",
                         "What view is the standard frontal chest X-ray?")),
)
# Wordings of each fact per split: training two, the held-out splits the third.
_TEXT_WORDINGS = {"train": (0, 1), "validation": (2,), "test": (2,)}


@dataclass
class Finding:
    """One inserted finding: its class and tight pixel box ``[x1, y1, x2, y2]`` (x2/y2 exclusive)."""

    label: str
    box: list[float]


# ------------------------------------------------------------------------------------- backgrounds


@lru_cache(maxsize=None)
def _source_image(kind: str) -> np.ndarray:
    """A packaged real image as float32 in [0, 1], H x W x C (C = 1 or 3); loaded once per process."""
    if kind == "fundus":
        from skimage import data, transform

        return transform.resize(data.retina(), (384, 384), anti_aliasing=True).astype(np.float32)
    if kind == "pathology":
        from skimage import data

        return data.immunohistochemistry().astype(np.float32) / 255.0
    if kind == "microscopy":
        from skimage import data

        return (data.cell().astype(np.float32) / 255.0)[..., None]
    if kind in ("ct", "mri"):
        return _dicom("CT_small.dcm" if kind == "ct" else "MR_small.dcm")
    if kind == "nifti":
        import nibabel

        path = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
        vol = np.asarray(nibabel.load(str(path)).get_fdata(), dtype=np.float32)
        return _unit(vol)
    raise ValueError(f"no packaged image for {kind!r}")


def _dicom(name: str) -> np.ndarray:
    """Render a pydicom test file through :func:`medmo.data.images.load_image` when present."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    try:
        arr = np.asarray(load_image(path).convert("L"), dtype=np.float32) / 255.0
    except ImportError:  # the image loader is optional here: plain pydicom pixels, min-max scaled
        import pydicom

        arr = _unit(pydicom.dcmread(path).pixel_array.astype(np.float32))
    return arr[..., None]


def _unit(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo if hi > lo else 1.0)


def _resize(a: np.ndarray, size: int) -> np.ndarray:
    from skimage.transform import resize

    return resize(a, (size, size, a.shape[2]), order=1, anti_aliasing=True).astype(np.float32)


def _crop(rng: np.random.Generator, img: np.ndarray, size: int, min_frac: float = 0.5) -> np.ndarray:
    """A random square crop covering ``min_frac``-1 of the shorter side, resized to ``size``."""
    h, w = img.shape[:2]
    side = int(min(h, w) * rng.uniform(min_frac, 1.0))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    return _resize(img[y : y + side, x : x + side], size)


def _xray(rng: np.random.Generator, n: int) -> np.ndarray:
    """A chest-radiograph-like field: bright mediastinum and ribs, two dark lung fields, soft gradient."""
    yy, xx = np.mgrid[0:n, 0:n] / n
    img = 0.55 + 0.25 * yy
    for cx in (0.3, 0.7):
        cx += rng.uniform(-0.04, 0.04)
        lung = ((xx - cx) / 0.17) ** 2 + ((yy - 0.48) / 0.33) ** 2
        img -= 0.4 * np.clip(1.2 - lung, 0, 1)
    img += 0.06 * np.sin(2 * np.pi * (yy * rng.uniform(7, 10) + 0.5 * (xx - 0.5) ** 2))
    img += 0.3 * np.exp(-(((xx - 0.5) / 0.07) ** 2))
    return _unit(img + rng.normal(0, 0.02, img.shape)).astype(np.float32)[..., None]


def _ultrasound(rng: np.random.Generator, n: int) -> np.ndarray:
    """An ultrasound-like sector: Rayleigh speckle inside a fan, attenuating with depth."""
    yy, xx = np.mgrid[0:n, 0:n] / n
    ang = np.arctan2(xx - 0.5, yy + 0.1)
    r = np.hypot(xx - 0.5, yy + 0.1)
    fan = (np.abs(ang) < rng.uniform(0.55, 0.7)) & (r < 1.05)
    speckle = rng.rayleigh(0.35, (n, n))
    from scipy.ndimage import gaussian_filter

    img = gaussian_filter(speckle, 0.8) * np.exp(-1.2 * r) * fan
    return _unit(img).astype(np.float32)[..., None]


def background(rng: np.random.Generator, modality: str, size: int) -> tuple[np.ndarray, bool]:
    """A ``size`` x ``size`` x 3 float background in [0, 1] for one modality, range-compressed to mid-grey,
    and whether it was blurred flat (:data:`FLAT_FRACTION`).

    ``mri`` draws from either the MR DICOM or a slice of the NIfTI volume.
    """
    if modality == "x-ray":
        img = _xray(rng, size)
    elif modality == "ultrasound":
        img = _ultrasound(rng, size)
    elif modality == "mri" and rng.random() < 0.5:
        vol = _source_image("nifti")
        axis = int(rng.integers(0, 3))
        k = int(rng.integers(vol.shape[axis] // 4, 3 * vol.shape[axis] // 4))
        img = _resize(np.take(vol, k, axis=axis)[..., None], size)
    else:
        src = _source_image(modality)
        img = _crop(rng, src, size, 0.6 if modality in ("ct", "mri") else 0.3)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    img = np.clip(img, 0, 1) ** rng.uniform(0.7, 1.4)  # gamma jitter
    flat = bool(rng.random() < FLAT_FRACTION)
    if flat:
        # A flat variant (see FLAT_FRACTION): texture blurred away and its contrast cut to +-0.02 around
        # the image's own mean colour, which keeps a modality cue (fundus red, stained slides brown and
        # blue, dark ultrasound fans) while the finding stays the only edge in the image.
        from scipy.ndimage import gaussian_filter

        mean = img.mean(axis=(0, 1))
        img = gaussian_filter(img, sigma=(size / 10, size / 10, 0), mode="nearest")
        centre = np.clip(0.5 + 0.6 * (mean - 0.5), 0.3, 0.7)
        img = centre + 0.04 * (img - img.mean(axis=(0, 1)))
    else:
        half = rng.uniform(0.08, 0.14)  # well clear of the findings' intensities (< 0.06 or > 0.9)
        img = 0.5 - half + 2 * half * img
    img = img + rng.normal(0, 0.01, img.shape)
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.clip(img, 0, 1).astype(np.float32), flat


# ---------------------------------------------------------------------------------------- findings

# Finding radii in pixels at FINDING_SIZE px; smaller images scale them down (larger ones keep them, so a
# 128 px build is byte-identical to earlier versions). MIN_IMAGE_SIZE is one Qwen3-VL visual token (16 px
# patches merged 2x2): below it an image holds less than one token, and the processor resizes it anyway.
_RADIUS = {"nodule": (10, 13), "mass": (16, 22), "calcification": (11, 15), "lesion": (12, 16)}
FINDING_SIZE = 128
MIN_IMAGE_SIZE = 32


def _scale(n: int) -> float:
    """Finding geometry of an ``n`` px image relative to :data:`FINDING_SIZE` (1 at and above it)."""
    return min(1.0, n / FINDING_SIZE)


def _blob_mask(rng: np.random.Generator, n: int, cx: float, cy: float, r: float, irregular: bool) -> np.ndarray:
    """Soft mask of a disk (or an irregular star-shaped blob) with one-pixel anti-aliased edges."""
    yy, xx = np.mgrid[0:n, 0:n] + 0.5
    d, theta = np.hypot(xx - cx, yy - cy), np.arctan2(yy - cy, xx - cx)
    radius = np.full_like(d, r)
    if irregular:
        for k in (2, 3, 5):
            radius = radius * (1 + rng.uniform(0.08, 0.2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)))
    return np.clip(radius - d + 0.5, 0, 1)


def _box_of(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask >= 0.5)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def draw_finding(rng: np.random.Generator, img: np.ndarray, label: str, cx: float, cy: float) -> Finding:
    """Paint one finding of class ``label`` centred at ``(cx, cy)`` into ``img`` (in place)."""
    n = img.shape[0]
    lo, hi = _RADIUS[label]
    r = rng.uniform(lo * _scale(n), hi * _scale(n))
    mask = _blob_mask(rng, n, cx, cy, r, irregular=label in ("mass", "lesion"))
    if label == "calcification":
        inner = _blob_mask(rng, n, cx, cy, r - max(1.0, 2.5 * _scale(n)), irregular=False)  # a rim of 1+ px
        img[:] = img * (1 - mask[..., None]) + rng.uniform(0.9, 1.0) * mask[..., None]
        img[:] = img * (1 - inner[..., None]) + rng.uniform(0.0, 0.06) * inner[..., None]
    else:
        value = rng.uniform(0.9, 1.0) if label in ("nodule", "mass") else rng.uniform(0.0, 0.06)
        img[:] = img * (1 - mask[..., None]) + value * mask[..., None]
    return Finding(label, _box_of(mask))


def place_findings(rng: np.random.Generator, img: np.ndarray, labels: list[str]) -> list[Finding]:
    """Draw ``labels`` at random non-overlapping positions well inside the image."""
    n, placed, out = img.shape[0], [], []
    for label in labels:
        rmax = (_RADIUS[label][1] * 1.5 + 2) * _scale(n)
        for _ in range(100):
            cx, cy = rng.uniform(rmax, n - rmax, size=2)
            if all(math.hypot(cx - px, cy - py) > rmax + pr for px, py, pr in placed):
                break
        placed.append((cx, cy, rmax))
        out.append(draw_finding(rng, img, label, cx, cy))
    return out


def quadrant(box: list[float], size: int) -> str:
    """Which image quadrant holds the box centre (viewer's orientation)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return QUADRANTS[2 * int(cy >= size / 2) + int(cx >= size / 2)]


# ----------------------------------------------------------------------------------------- records

_MODALITY_NAMES = {
    "fundus": "fundus photograph",
    "pathology": "histopathology",
    "microscopy": "microscopy",
    "ct": "CT",
    "mri": "MRI",
    "x-ray": "X-ray",
    "ultrasound": "ultrasound",
}


def _pick(rng: np.random.Generator, items: list) -> object:
    return items[int(rng.integers(len(items)))]


def _article(word: str) -> str:
    return f"an {word}" if word[0] in "aeiouAEIOU" or word in ("X-ray", "MRI") else f"a {word}"


def _closed(rng: np.random.Generator, modality: str, findings: list[Finding], size: int) -> tuple[str, str, str]:
    """A yes/no question; "yes" is drawn on abnormal images with the odds that make answers ~50/50 overall."""
    labels = [f.label for f in findings]
    cands = [(f"Is there {_article(c)} in this image?", "yes" if c in labels else "no", "presence") for c in CLASSES]
    cands.append(("Does this image show any abnormality?", "yes" if findings else "no", "abnormal"))
    other = _pick(rng, [m for m in BACKGROUNDS if m != modality])
    for m in (modality, other):
        cands.append((f"Is the imaging modality {_MODALITY_NAMES[m]}?", "yes" if m == modality else "no", "modality"))
    for f in findings:
        if labels.count(f.label) == 1:
            left = (f.box[0] + f.box[2]) / 2 < size / 2
            q = f"Is the {f.label} in the left half of the image?"
            cands.append((q, "yes" if left else "no", "left_half"))
    want = "yes" if findings and rng.random() < 0.5 / (1 - FINDING_COUNTS[0]) else "no"
    return _pick(rng, [c for c in cands if c[1] == want] or cands)


def _mcq(
    rng: np.random.Generator, modality: str, findings: list[Finding], size: int
) -> tuple[str, list[str], str, str]:
    """(question, options, gold text, type) for a modality, finding-class or quadrant question.

    Each question type lists its options in one fixed order (every modality; every finding class plus
    "no abnormality"; the four quadrants), as exam banks with fixed answer lists do. The letter then
    depends on the image alone, which a few-million-parameter model learns within the CPU budget;
    shuffled options would also demand matching the answer to its position in the prompt.
    """
    kinds = ["modality"]
    if len({f.label for f in findings}) <= 1:
        kinds.append("finding")
    if len(findings) == 1:
        kinds.append("quadrant")
    kind = _pick(rng, kinds)
    if kind == "modality":
        gold, opts = _MODALITY_NAMES[modality], list(_MODALITY_NAMES.values())
        q = "Which imaging modality is this?"
    elif kind == "finding":
        gold = findings[0].label if findings else "no abnormality"
        opts = [*CLASSES, "no abnormality"]
        q = "Which finding is shown in this image?"
    else:
        gold, opts = quadrant(findings[0].box, size), list(QUADRANTS)
        q = f"In which quadrant of the image is the {findings[0].label}?"
    return q, opts, gold, kind


def _open(rng: np.random.Generator, modality: str, findings: list[Finding]) -> tuple[str, str, str]:
    labels = sorted({f.label for f in findings})
    return _pick(
        rng,
        [
            ("What abnormality is shown in this image?", " and ".join(labels) or "none", "abnormality"),
            ("How many findings are there in this image?", COUNT_WORDS[len(findings)], "count"),
            ("What imaging modality is this?", _MODALITY_NAMES[modality], "modality"),
        ],
    )


def _describe(findings: list[Finding], size: int) -> list[str]:
    return [f"{_article(f.label)} in the {quadrant(f.box, size)}" for f in findings]


def _report(findings: list[Finding], size: int) -> tuple[str, str]:
    """Findings / impression generated from the ground truth, with explicit negations of absent classes."""
    present = {f.label for f in findings}
    sents = [f"There is {d}." for d in _describe(findings, size)]
    sents += [f"No {c}." for c in CLASSES if c not in present]
    if findings:
        impression = " ".join(d[0].upper() + d[1:] + "." for d in _describe(findings, size))
    else:
        impression = "No acute abnormality."
    return " ".join(sents), impression


def image_records(
    rng: np.random.Generator, split: str, key: str, ref: ImageRef, modality: str, findings: list[Finding],
    flat: bool,
) -> list[Sample]:
    """One record per task for an image (grounding only when it has findings; in the training split, one
    grounding record per kind of finding).

    Every record's ``meta`` names the generator, the findings (label and box), their count and the
    background (``flat`` or ``textured``), so mixtures can select the easy images (``where:`` in
    :mod:`medmo.data.mixture_config`) and reports can break results down by them.
    """
    size = int(ref.width)
    meta = {"generator": SYNTH_VERSION, "findings": [[f.label, *f.box] for f in findings],
            "n_findings": len(findings), "background": "flat" if flat else "textured"}

    def sample(task: str, *id_parts: str, **kw) -> Sample:
        return Sample(stable_id(SOURCE, split, key, task, *id_parts), task, SOURCE, split, images=[ref],
                      modality=modality, meta=dict(meta, **kw.pop("meta", {})), **kw)  # fmt: skip

    def boxes_of(label: str) -> list[Box]:
        return [Box(f.label, list(f.box)) for f in findings if f.label == label]

    out = []
    if findings:
        target = _pick(rng, sorted({f.label for f in findings}))
        out.append(sample("grounding", answer=target, boxes=boxes_of(target)))
    q, a, kind = _closed(rng, modality, findings, size)
    out.append(sample("closed_vqa", question=q, answer=a, meta={"question_type": kind}))
    q, opts, gold, kind = _mcq(rng, modality, findings, size)
    options = options_from_list(opts)
    letter = next(k for k, v in options.items() if v == gold)
    out.append(sample("mcq", question=q, options=options, answer=letter, meta={"question_type": kind}))
    q, a, kind = _open(rng, modality, findings)
    out.append(sample("open_vqa", question=q, answer=a, meta={"question_type": kind}))
    desc = _describe(findings, size)
    cap = f"{_MODALITY_NAMES[modality]} image with " + (" and ".join(desc) if desc else "no visible abnormality")
    out.append(sample("caption", answer=cap[0].upper() + cap[1:] + "."))
    fnd, imp = _report(findings, size)
    out.append(sample("report", answer=f"Findings: {fnd}\nImpression: {imp}", findings=fnd, impression=imp))
    if findings and split == "train":
        # A training image with findings of two kinds is asked for each of them, so that only the question
        # tells which box is right: asked once per image, the nano model learned to box the more salient
        # finding (a part of the mass beside a nodule). These records draw nothing from the image's stream,
        # so every other record, and the held-out splits (one question per image), stay as they were.
        for label in sorted({f.label for f in findings} - {target}):
            out.append(sample("grounding", label, answer=label, boxes=boxes_of(label)))
    return out


def text_records(rng: np.random.Generator, split: str, seed: int, n: int) -> list[Sample]:
    """``n`` text-only QA records drawn from a few medical facts, in the split's wordings of them."""
    out, wordings = [], _TEXT_WORDINGS[split]
    for i in range(n):
        a, questions = TEXT_FACTS[int(rng.integers(len(TEXT_FACTS)))]
        q = questions[wordings[int(rng.integers(len(wordings)))]]
        sid = stable_id(SOURCE, split, seed, "text", i)
        out.append(Sample(sid, "text_qa", SOURCE, split, question=q, answer=a, meta={"generator": SYNTH_VERSION}))
    return out


# -------------------------------------------------------------------------------------------- build


def render(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, str, list[Finding], bool]:
    """One synthetic image: ``(uint8 image, float background, modality, findings, flat background)``."""
    modality = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    bg, flat = background(rng, modality, size)
    img = bg.copy()
    n = int(rng.choice(len(FINDING_COUNTS), p=FINDING_COUNTS))
    labels = [CLASSES[int(i)] for i in rng.integers(0, len(CLASSES), size=n)]
    findings = place_findings(rng, img, labels)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), bg, modality, findings, flat


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of image ``index`` of ``split``: its pixels and its records depend on nothing else."""
    return np.random.default_rng([seed, _SPLIT_SALT[split], _IMAGE_STREAM, index])


def text_rng(seed: int, split: str) -> np.random.Generator:
    """The random stream of a split's text-only records, apart from every image's stream."""
    return np.random.default_rng([seed, _SPLIT_SALT[split], _TEXT_STREAM])


def build_image(out_dir: Path, split: str, index: int, image_size: int, seed: int) -> list[Sample]:
    """Render image ``index`` of ``split``, save it under ``out_dir`` and return its validated records."""
    from PIL import Image

    rng = image_rng(seed, split, index)
    pixels, _, modality, findings, flat = render(rng, image_size)
    rel = f"images/{split}/{split}-{index:06d}.png"
    # zlib level 1: a quarter of the default level's encode time (1 ms vs 3.5 ms per image), files ~10%
    # larger; the pixels are the same.
    Image.fromarray(pixels).save(out_dir / rel, optimize=False, compress_level=1)
    ref = ImageRef(rel, image_size, image_size)
    return [r.validate() for r in image_records(rng, split, f"{seed}-{index}", ref, modality, findings, flat)]


def _build_chunk(job: tuple[Path, str, range, int, int]) -> list[Sample]:
    """One worker job: the images of one index range, in order (a single argument, for ``Executor.map``)."""
    out_dir, split, indices, image_size, seed = job
    return [r for i in indices for r in build_image(out_dir, split, i, image_size, seed)]


def _chunks(n_images: int) -> list[range]:
    size = max(1, min(_MAX_CHUNK, math.ceil(n_images / _MIN_JOBS)))
    return [range(a, min(a + size, n_images)) for a in range(0, n_images, size)]


def build_split(
    out_dir: Path, split: str, n_images: int, image_size: int, seed: int, pool: Executor | None = None
) -> list[Sample]:
    """Render ``n_images`` images of one split under ``out_dir/images/<split>`` and return their records.

    Args:
        out_dir: the dataset folder.
        split: one of :data:`SPLITS`.
        n_images: images to render.
        image_size: image side in pixels.
        seed: dataset seed.
        pool: render on these worker processes (records come back in image order); None renders here.
    """
    (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
    jobs = [(out_dir, split, chunk, image_size, seed) for chunk in _chunks(n_images)]
    chunks = pool.map(_build_chunk, jobs) if pool is not None else map(_build_chunk, jobs)
    records = [r for chunk in chunks for r in chunk]
    records.extend(r.validate() for r in text_records(text_rng(seed, split), split, seed, max(2, n_images // 10)))
    return records


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextmanager
def _worker_pool(workers: int, n_images: int) -> Iterator[Executor | None]:
    """Forked worker processes for ``n_images`` images, or None when one process is enough."""
    workers = min(workers, n_images)
    if workers <= 1:
        yield None
        return
    # Load the packaged background images once here, so forked workers share them instead of each
    # reading and resizing its own copy.
    for kind in ("fundus", "pathology", "microscopy", "ct", "mri", "nifti"):
        _source_image(kind)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        yield pool


def build_nano(
    out_dir: str | Path,
    *,
    n_train: int,
    n_val: int,
    n_test: int,
    image_size: int = 128,
    seed: int = 0,
    workers: int | None = 1,
) -> dict[str, Path]:
    """Write the nano dataset: images and ``train.jsonl`` / ``validation.jsonl`` / ``test.jsonl``.

    Args:
        out_dir: destination folder (created); image paths in the records are relative to it.
        n_train: number of training *images* (each yields ~6 records, plus ~n/10 text-only QA records).
        n_val: number of validation images.
        n_test: number of test images.
        image_size: side of the square images in pixels, at least :data:`MIN_IMAGE_SIZE` (128 px = 16 visual
            tokens for Qwen3-VL; below :data:`FINDING_SIZE` findings shrink with the image).
        seed: the same seed gives byte-identical images and records.
        workers: processes rendering images (None: one per available CPU, :func:`available_cpus`); the
            files are byte-identical for every count.

    Returns:
        ``{"train": path, "validation": path, "test": path}`` of the JSONL files.
    """
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"image_size must be at least {MIN_IMAGE_SIZE} px (one Qwen3-VL visual token), got {image_size}; "
            f"findings are drawn to scale below {FINDING_SIZE} px"
        )
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1 (or None for every available CPU), got {workers}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = dict(zip(SPLITS, (int(n_train), int(n_val), int(n_test))))
    paths: dict[str, Path] = {}
    # One pool for the three splits: workers fork once and keep their loaded backgrounds.
    with _worker_pool(workers or available_cpus(), sum(counts.values())) as pool:
        for split, n in counts.items():
            paths[split] = write_jsonl(build_split(out, split, n, image_size, seed, pool), out / f"{split}.jsonl")
    return paths


# ---------------------------------------------------------------------------------------- baselines


def baselines(train_records: Iterable[Sample], test_records: Iterable[Sample]) -> dict[str, float]:
    """Trivial baselines for the speedrun table: what a model that ignores the image scores.

    * ``<task>_majority_acc`` for closed VQA, multiple choice and open VQA: always answer the most
      frequent training answer (normalized lower-case);
    * ``grounding_mean_box_iou`` / ``grounding_mean_box_acc50``: always predict the mean training box
      (on the 0-1000 grid), scored by Hungarian-matched IoU against each test record's gold boxes,
      divided by the larger of the two box counts (:func:`medmo.boxes.match_boxes`).
    """
    train, test = list(train_records), list(test_records)
    out: dict[str, float] = {}
    for task in ("closed_vqa", "mcq", "open_vqa"):
        answers = Counter(s.answer.strip().lower() for s in train if s.task == task)
        gold = [s.answer.strip().lower() for s in test if s.task == task]
        if answers and gold:
            top = answers.most_common(1)[0][0]
            out[f"{task}_majority_acc"] = sum(g == top for g in gold) / len(gold)

    def grid(s: Sample) -> list[list[int]]:
        return [to_grid(b.box, s.images[b.image].width, s.images[b.image].height) for b in s.boxes]

    train_boxes = [b for s in train if s.task == "grounding" for b in grid(s)]
    tests = [grid(s) for s in test if s.task == "grounding"]
    if train_boxes and tests:
        mean_box = np.mean(np.asarray(train_boxes, dtype=np.float64), axis=0).tolist()
        ious, hits = [], []
        for gold in tests:
            m = match_boxes([mean_box], gold, metric="iou")
            ious.append(sum(m.scores) / max(1, len(gold)))
            hits.append(sum(s >= 0.5 for s in m.scores) / max(1, len(gold)))
        out["grounding_mean_box_iou"] = float(np.mean(ious))
        out["grounding_mean_box_acc50"] = float(np.mean(hits))
    return out
