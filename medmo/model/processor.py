"""An image-only Qwen3-VL processor that needs no torchvision.

transformers' ``Qwen3VLProcessor`` requires a video processor, and video processors need
torchvision, which has no CPU build here; ``AutoProcessor`` then silently falls back to the bare
tokenizer. :class:`MedMOProcessor` keeps the same text/image protocol as ``Qwen3VLProcessor``
(transformers ``models/qwen3_vl/processing_qwen3_vl.py``) with the PIL/numpy image processor
``Qwen2VLImageProcessorPil`` (Qwen3-VL reuses Qwen2-VL's image processing with 16 px patches).
Each ``<|image_pad|>`` becomes ``grid_t * grid_h * grid_w / merge_size**2`` tokens, and calls return
``input_ids, attention_mask, pixel_values, image_grid_thw, mm_token_type_ids``.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transformers import ProcessorMixin

from medmo.model.tokenizer import CHAT_TEMPLATE

# Qwen3-VL sees 16 px patches merged 2x2, so one visual token covers 32x32 pixels.
PATCH_SIZE = 16
MERGE_SIZE = 2
TEMPORAL_PATCH_SIZE = 2
# Pixel budget per image when neither the caller nor the checkpoint folder gives one: Qwen2-VL's
# recommended 256..1280 visual tokens, at Qwen3-VL's 32x32 pixels per token.
DEFAULT_MIN_PIXELS = 256 * 32 * 32
DEFAULT_MAX_PIXELS = 1280 * 32 * 32
# The largest per-image budget a checkpoint's own config is followed up to when loading: 16,384 visual
# tokens, Qwen3-VL's shipped maximum (preprocessor_config.json size.longest_edge = 16,777,216). One such
# image is 16k tokens of prefill and 65k ViT patches; a config asking for more is capped here unless the
# caller raises the cap (``max_pixels_cap``) or sets ``max_pixels`` itself.
MAX_PIXELS_CAP = 16384 * 32 * 32
# Qwen3-VL normalizes with mean = std = 0.5 (its preprocessor_config.json), not CLIP's statistics.
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)
IMAGE_KEYS = ("patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std", "resample",
              "do_rescale", "rescale_factor", "do_normalize", "do_convert_rgb")


def check_processor_hooks(mixin: type = ProcessorMixin) -> None:
    """Fail loudly when transformers' ``ProcessorMixin`` changes the hook :class:`MedMOProcessor` relies on.

    The image-only processor lets ``ProcessorMixin.__call__`` expand each ``<|image_pad|>`` through
    ``replace_image_token(image_inputs, image_idx)`` (transformers 5.24 ``processing_utils.py``).

    Raises:
        ImportError: the hook is gone or takes other arguments; the message names the tested version.
    """
    import transformers

    hook = getattr(mixin, "replace_image_token", None)
    params = list(inspect.signature(hook).parameters)[1:3] if callable(hook) else []
    if params != ["image_inputs", "image_idx"]:
        raise ImportError(f"MedMO's processor expands image tokens through ProcessorMixin.replace_image_token(image_inputs, "
                          f"image_idx), which transformers {transformers.__version__} changed; install the tested "
                          "transformers (`pip install -c constraints-cpu.txt transformers`, see pyproject.toml)")


check_processor_hooks()


class MedMOProcessor(ProcessorMixin):
    """Qwen3-VL text + image processor (no video) over ``Qwen2VLImageProcessorPil`` and a tokenizer."""

    return_mm_token_type_ids = True
    text_kwargs = {"return_token_type_ids": False}

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None,
                 **kwargs: Any):
        self.image_token = "<|image_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.vision_start_token_id = tokenizer.convert_tokens_to_ids("<|vision_start|>")
        self.vision_end_token_id = tokenizer.convert_tokens_to_ids("<|vision_end|>")
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs: Any) -> str:
        merge_length = self.image_processor.merge_size**2
        n = int(image_inputs["image_grid_thw"][image_idx].prod()) // merge_length
        return self.image_token * n

    def num_image_tokens(self, height: int, width: int) -> int:
        """Visual tokens an image of this size becomes (after resizing and merging)."""
        patches = self.image_processor.get_number_of_image_patches(height, width, {})
        return patches // self.image_processor.merge_size**2

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> MedMOProcessor:
        """Load from a local checkpoint folder (see :func:`load_processor`; hub ids go through ``medmo.model.load``)."""
        return load_processor(pretrained_model_name_or_path, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values", "image_grid_thw", "mm_token_type_ids"]

    @property
    def pixel_range(self) -> tuple[int, int]:
        """(min_pixels, max_pixels) images are resized into."""
        size = self.image_processor.size
        return int(size["shortest_edge"]), int(size["longest_edge"])


def build_image_processor(
    *, min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS, **settings: Any
) -> Any:
    """``Qwen2VLImageProcessorPil`` with Qwen3-VL's defaults; ``settings`` override (e.g. a checkpoint's)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    if not 0 < min_pixels <= max_pixels:
        raise ValueError(f"Need 0 < min_pixels <= max_pixels, got min_pixels={min_pixels}, max_pixels={max_pixels}.")
    kw = dict(patch_size=PATCH_SIZE, temporal_patch_size=TEMPORAL_PATCH_SIZE, merge_size=MERGE_SIZE,
              image_mean=list(IMAGE_MEAN), image_std=list(IMAGE_STD))
    kw.update({k: v for k, v in settings.items() if k in IMAGE_KEYS})
    return Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels, **kw)


def build_processor(
    tokenizer: Any,
    *,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    chat_template: str | None = None,
    **image_settings: Any,
) -> MedMOProcessor:
    """The image-only Qwen3-VL processor for ``tokenizer``.

    Args:
        tokenizer: A tokenizer with Qwen3-VL's special tokens (``train_tokenizer`` / ``qwen3_tokenizer`` / a checkpoint's).
        min_pixels: Smallest pixel count an image is resized up to (keeps aspect ratio, multiples of 32 px).
        max_pixels: Largest pixel count an image is resized down to.
        chat_template: Jinja template; default MedMO's Qwen3-VL template with ``{% generation %}`` tags.
            It is also set on the tokenizer, so tokenizer-only callers render the same text.
        image_settings: Overrides for the image processor (patch_size, merge_size, image_mean, ...).
    """
    template = chat_template or CHAT_TEMPLATE
    tokenizer.chat_template = template
    image_processor = build_image_processor(min_pixels=min_pixels, max_pixels=max_pixels, **image_settings)
    return MedMOProcessor(image_processor, tokenizer, chat_template=template)


def image_settings(folder: Path) -> dict[str, Any]:
    """Image-processor settings saved in a checkpoint folder (ours or the stock Qwen3-VL layout)."""
    proc_file, pre_file = folder / "processor_config.json", folder / "preprocessor_config.json"
    cfg: dict[str, Any] = {}
    if proc_file.is_file():
        cfg = json.loads(proc_file.read_text()).get("image_processor", {}) or {}
    if not cfg and pre_file.is_file():
        cfg = json.loads(pre_file.read_text())
    size = cfg.get("size") or {}
    if "min_pixels" in cfg or "shortest_edge" in size:
        cfg["min_pixels"] = cfg.get("min_pixels", size.get("shortest_edge"))
    if "max_pixels" in cfg or "longest_edge" in size:
        cfg["max_pixels"] = cfg.get("max_pixels", size.get("longest_edge"))
    return {k: v for k, v in cfg.items() if k in IMAGE_KEYS or k in ("min_pixels", "max_pixels")}


def load_processor(
    folder: str | Path,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    max_pixels_cap: int | None = MAX_PIXELS_CAP,
    chat_template: str | None = None,
) -> MedMOProcessor:
    """Rebuild the processor saved in a local checkpoint folder (``save`` or a downloaded Qwen3-VL/MedMO).

    Pixel limits default to the folder's own (``preprocessor_config.json``: ``min_pixels`` / ``max_pixels`` or
    ``size.shortest_edge`` / ``size.longest_edge``, as Qwen3-VL ships them), the maximum capped at
    ``max_pixels_cap`` (default :data:`MAX_PIXELS_CAP`; ``None``: no cap); a folder without them gets
    :data:`DEFAULT_MIN_PIXELS` .. :data:`DEFAULT_MAX_PIXELS`. Values given here are used as they are.
    ``chat_template="checkpoint"`` keeps the folder's template instead of MedMO's.
    """
    from transformers import AutoTokenizer

    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    settings = image_settings(folder)
    saved_min, saved_max = settings.pop("min_pixels", None), settings.pop("max_pixels", None)
    if min_pixels is None:
        min_pixels = int(saved_min) if saved_min else DEFAULT_MIN_PIXELS
    if max_pixels is None:
        max_pixels = int(saved_max) if saved_max else DEFAULT_MAX_PIXELS
        if max_pixels_cap is not None:
            max_pixels = min(max_pixels, max_pixels_cap)
        max_pixels = max(max_pixels, min_pixels)
    template = tokenizer.chat_template if chat_template == "checkpoint" else chat_template
    return build_processor(tokenizer, min_pixels=min_pixels, max_pixels=max_pixels, chat_template=template,
                           **settings)


# ----------------------------------------------------------------------------------------------------
# one conversation, directly


def encode_one(processor: Any, text: str, images: Sequence[Any] = ()) -> dict[str, Any]:
    """``processor(text=[text], images=images or None, return_tensors="pt")`` for one conversation.

    Training encodes one sample at a time (packing plans them one by one), and there the processor's
    per-call work (merging keyword arguments, validating typed dicts, a PIL round trip per image) took
    0.7 ms of the 2.3 ms a nano sample needed (on a 2-core AMD EPYC, a nano micro-batch: 28-29 ms with
    it, 19-22 ms without). For :class:`MedMOProcessor` with Qwen3-VL's image processing and 8-bit RGB
    images already at the size the processor would resize them to (``smart_resize`` leaves them unchanged),
    this computes the same tensors directly: the same token string, tokenizer call, per-value rescale and
    normalization (as a lookup table of the values ``Qwen2VLImageProcessorPil`` computes) and patch layout. Anything else
    (another processor, images to resize, other modes or settings) goes through the processor itself.
    Tests hold both paths equal bit for bit.

    Returns:
        ``input_ids``, ``attention_mask``, ``mm_token_type_ids`` (``(1, L)`` int64) and, with images,
        ``pixel_values`` (``(patches, 3 * 2 * 16 * 16)`` float32) and ``image_grid_thw`` (``(n, 3)`` int64).
    """
    import torch

    images = list(images)

    def through_processor() -> dict[str, Any]:
        return dict(processor(text=[text], images=images or None, return_tensors="pt"))

    direct = _direct_pixels(processor, images)
    if direct is None:
        return through_processor()
    parts = text.split(processor.image_token)
    if len(parts) != len(images) + 1:  # the processor names the mismatch
        return through_processor()
    merge = processor.image_processor.merge_size ** 2
    pieces = [parts[0]]
    for (_, grid), rest in zip(direct, parts[1:]):
        pieces += [processor.image_token * (grid[1] * grid[2] // merge), rest]
    ids = torch.tensor([processor.tokenizer("".join(pieces), return_token_type_ids=False)["input_ids"]])
    mm = (ids == processor.image_token_id).long()
    if int(mm.sum()) != sum(grid[1] * grid[2] // merge for _, grid in direct):  # tokenized otherwise
        return through_processor()
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "mm_token_type_ids": mm}
    if direct:
        out["pixel_values"] = torch.from_numpy(np.concatenate([pixels for pixels, _ in direct]))
        out["image_grid_thw"] = torch.tensor([grid for _, grid in direct], dtype=torch.long)
    return out


def _direct_pixels(processor: Any, images: list) -> list[tuple[Any, tuple[int, int, int]]] | None:
    """Each image's ``(patches, grid_thw)`` as Qwen3-VL's image processor computes them, or ``None``
    where :func:`encode_one` must leave the work to the processor."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil, smart_resize

    ip = getattr(processor, "image_processor", None)
    if not isinstance(processor, MedMOProcessor) or type(ip) is not Qwen2VLImageProcessorPil:
        return None
    image_ids = list(getattr(processor, "image_token_ids", [processor.image_token_id]))
    if not (ip.do_resize and ip.do_rescale and ip.do_normalize) or image_ids != [processor.image_token_id]:
        return None
    mean, std = _per_channel(ip.image_mean), _per_channel(ip.image_std)
    if mean is None or std is None:
        return None
    p, m, t = ip.patch_size, ip.merge_size, ip.temporal_patch_size
    lut = _value_table(float(ip.rescale_factor), mean, std)
    out = []
    for image in images:
        if getattr(image, "mode", None) != "RGB":
            return None
        w, h = image.size
        if smart_resize(h, w, factor=p * m, min_pixels=ip.size["shortest_edge"],
                        max_pixels=ip.size["longest_edge"]) != (h, w):
            return None
        channels = np.ascontiguousarray(np.asarray(image).transpose(2, 0, 1))  # (3, H, W) uint8
        x = np.empty(channels.shape, dtype=np.float32)
        for c in range(3):
            np.take(lut[c], channels[c], out=x[c])
        gh, gw = h // p, w // p
        # (gh/m, gw/m, m, m, C, p, p) with the temporal axis repeated, one row per patch: the processor's layout
        x = x.reshape(3, gh // m, m, p, gw // m, m, p).transpose(1, 4, 2, 5, 0, 3, 6)
        patches = np.empty((*x.shape[:5], t, p, p), dtype=np.float32)
        patches[...] = x[:, :, :, :, :, None]
        out.append((patches.reshape(gh * gw, 3 * t * p * p), (1, gh, gw)))
    return out


def _per_channel(value: Any) -> tuple[float, ...] | None:
    """An RGB mean or std as three floats (the processor repeats a single number), or ``None``."""
    values = tuple(float(v) for v in value) if isinstance(value, (list, tuple)) else (float(value),) * 3
    return values if len(values) == 3 else None


@functools.lru_cache(maxsize=8)
def _value_table(factor: float, mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[Any, ...]:
    """Per channel, a ``(256,)`` float32 table of what rescale then normalize make of each 8-bit value,
    with the processor's own arithmetic (a float64 product cast to float32, then float32 ``(x - mean) / std``)."""
    values = (np.arange(256, dtype=np.float64) * factor).astype(np.float32)
    return tuple((values - np.float32(mu)) / np.float32(sigma) for mu, sigma in zip(mean, std))
