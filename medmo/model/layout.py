"""Saving a model folder in the layout Qwen3-VL releases ship, so other tools read it without MedMO code.

A folder written by :func:`save` holds what ``Qwen/Qwen3-VL-4B-Instruct`` holds on the hub:
``config.json``, ``generation_config.json``, safetensors weights, ``tokenizer.json`` with
``tokenizer_config.json``, ``vocab.json`` and ``merges.txt``, ``preprocessor_config.json`` and
``video_preprocessor_config.json`` (both naming ``processor_class: Qwen3VLProcessor``) and
``chat_template.json`` with Qwen3-VL's own chat template. transformers' ``AutoProcessor`` (where torchvision
is installed), vLLM and SGLang load it as a stock Qwen3-VL checkpoint.

MedMO's training template (:data:`medmo.model.tokenizer.CHAT_TEMPLATE`, the same text plus
``{% generation %}`` tags for the assistant-token mask) stays the project's own: :func:`medmo.model.load`
applies it, and it is not written into folders.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
from pathlib import Path
from typing import Any

# The chat template Qwen3-VL-Instruct ships (Qwen3-VL-8B-Instruct's, 5,292 bytes, SHA-256 3636d0f0...).
QWEN3_VL_TEMPLATE_FILE = "templates/qwen3_vl_instruct.jinja"
PROCESSOR_CLASS = "Qwen3VLProcessor"
TOKENIZER_CLASS = "Qwen2Tokenizer"
# Qwen3-VL's video processor settings (video_preprocessor_config.json of the releases); MedMO reads no video,
# but a folder without them is not a Qwen3-VL checkpoint to AutoProcessor, vLLM or SGLang.
VIDEO_PIXELS = (4096, 25165824)
# Files transformers writes that a Qwen3-VL release does not have (MedMO's own processor layout).
NOT_RELEASED = ("processor_config.json", "chat_template.jinja", "special_tokens_map.json")
SAVE_DTYPES = ("bfloat16", "float16", "float32")


def qwen3_vl_chat_template() -> str:
    """Qwen3-VL-Instruct's chat template, as its releases ship it in ``chat_template.json``."""
    return (importlib.resources.files("medmo.model") / QWEN3_VL_TEMPLATE_FILE).read_text(encoding="utf-8")


def image_processor_config(processor: Any) -> dict[str, Any]:
    """``preprocessor_config.json`` with the keys Qwen3-VL releases use (pixel budget as ``size``)."""
    ip = processor.image_processor
    lo, hi = processor.pixel_range
    return {
        "size": {"longest_edge": int(hi), "shortest_edge": int(lo)},
        "patch_size": int(ip.patch_size),
        "temporal_patch_size": int(ip.temporal_patch_size),
        "merge_size": int(ip.merge_size),
        "image_mean": [float(v) for v in ip.image_mean],
        "image_std": [float(v) for v in ip.image_std],
        "processor_class": PROCESSOR_CLASS,
        "image_processor_type": "Qwen2VLImageProcessorFast",
    }


def video_processor_config(processor: Any) -> dict[str, Any]:
    """``video_preprocessor_config.json`` in the releases' keys (Qwen3-VL's video defaults, our patching)."""
    image = image_processor_config(processor)
    return {
        "size": {"longest_edge": VIDEO_PIXELS[1], "shortest_edge": VIDEO_PIXELS[0]},
        **{k: image[k] for k in ("patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std")},
        "processor_class": PROCESSOR_CLASS,
        "video_processor_type": "Qwen3VLVideoProcessor",
    }


def save_processor(processor: Any, path: str | Path) -> Path:
    """Write the tokenizer and processor files of a Qwen3-VL release into ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = processor.tokenizer
    template = qwen3_vl_chat_template()
    ours, tokenizer.chat_template = tokenizer.chat_template, template
    try:
        tokenizer.save_pretrained(str(path))
    finally:
        tokenizer.chat_template = ours
    cfg_file = path / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    cfg.update(tokenizer_class=TOKENIZER_CLASS, processor_class=PROCESSOR_CLASS, chat_template=template)
    _write_json(cfg_file, cfg)
    _write_vocab_and_merges(path)
    _write_json(path / "preprocessor_config.json", image_processor_config(processor))
    _write_json(path / "video_preprocessor_config.json", video_processor_config(processor))
    _write_json(path / "chat_template.json", {"chat_template": template})
    for name in NOT_RELEASED:
        (path / name).unlink(missing_ok=True)
    return path


def save(model: Any, processor: Any, path: str | Path, *, dtype: str = "bfloat16",
         state_dict: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """Save a model and its processor as a standard Qwen3-VL folder that :func:`medmo.model.load` reads.

    Args:
        model: a Qwen3-VL model; a PEFT (LoRA) model is saved with its adapters merged into a copy, so
            the folder loads without PEFT (the model passed in keeps its adapters).
        processor: its :class:`~medmo.model.processor.MedMOProcessor`.
        path: the folder (created).
        dtype: weight dtype on disk, ``bfloat16`` (as Qwen3-VL ships), ``float16`` or ``float32``. The
            model in memory is not changed.
        state_dict: the weights to write, when they are gathered from ZeRO-3 / FSDP shards.
    """
    import torch

    if dtype not in SAVE_DTYPES:
        raise ValueError(f"save dtype must be one of {', '.join(SAVE_DTYPES)}, got {dtype!r}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload"):
        model, state_dict = copy.deepcopy(model).merge_and_unload(), None
    target = getattr(torch, dtype)
    weights = state_dict if state_dict is not None else model.state_dict()
    weights = {k: v.to(target) if v.is_floating_point() else v for k, v in weights.items()}
    kept = model.config.dtype
    try:
        # the names in memory are Qwen3-VL's release names; transformers' revert of load-time renamings would
        # rename them wrongly for a model loaded under DeepSpeed ZeRO-3 (which keeps unused legacy renamings)
        model.save_pretrained(str(path), state_dict=weights, safe_serialization=True, save_original_format=False)
    finally:
        model.config.dtype = kept
    # transformers records the in-memory dtype; config.json must say what the weights on disk are
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    for section in (config, config.get("text_config") or {}):  # where Qwen3-VL releases record it
        section["dtype"] = dtype
    _write_json(path / "config.json", config)
    save_processor(processor, path)
    return path


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_vocab_and_merges(path: Path) -> None:
    """``vocab.json`` and ``merges.txt`` of a byte-level BPE ``tokenizer.json``, as Qwen releases carry them."""
    model = json.loads((path / "tokenizer.json").read_text(encoding="utf-8")).get("model", {})
    if model.get("type") != "BPE":
        return
    _write_json(path / "vocab.json", dict(sorted(model["vocab"].items(), key=lambda kv: kv[1])))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    (path / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{m}\n" for m in merges), encoding="utf-8")
