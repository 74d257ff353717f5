"""Load Qwen3-VL / MedMO checkpoints (local folders or hub ids) with MedMO's image-only processor."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from medmo.model.attention import PACKED_SDPA, register
from medmo.model.processor import MAX_PIXELS_CAP, load_processor

# Files a checkpoint folder needs besides the weights; fetched from the hub for hub ids.
CHECKPOINT_FILES = ("config.json", "processor_config.json", "preprocessor_config.json", "tokenizer.json",
                    "tokenizer_config.json", "chat_template.jinja", "chat_template.json", "generation_config.json",
                    "vocab.json", "merges.txt")


def resolve_checkpoint(path_or_id: str | Path) -> Path:
    """A local folder as is; otherwise a hub id (``MBZUAI/MedMO-8B``) resolved through the local hub cache or a download.

    Raises:
        FileNotFoundError: The path is neither a folder nor a reachable hub repository.
    """
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} has no config.json; point to a saved model folder (medmo model build).")
        return path
    text = str(path_or_id)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise FileNotFoundError(f"No model folder at {text!r} (and it is not a hub id like 'MBZUAI/MedMO-8B').")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(text, allow_patterns=[*CHECKPOINT_FILES, "*.safetensors", "*.json"]))
    except Exception as e:  # offline, unknown repo, gated: say which and what to do
        raise FileNotFoundError(
            f"Could not fetch {text!r} from the Hugging Face hub ({type(e).__name__}: {e}). Download it with "
            f"`hf download {text} --local-dir DIR` (the command huggingface_hub installs) and pass DIR."
        ) from e


SUPPORTED_MODEL_TYPES = ("qwen3_vl", "qwen3_vl_moe")


def check_model_type(folder: Path) -> str:
    """The checkpoint's ``model_type``, refusing architectures the processor and recipes don't cover."""
    model_type = json.loads((folder / "config.json").read_text()).get("model_type", "")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"{folder} holds a {model_type or 'unknown'!r} model; MedMO loads Qwen3-VL checkpoints "
            f"({', '.join(SUPPORTED_MODEL_TYPES)}) such as MBZUAI/MedMO-8B or Qwen/Qwen3-VL-8B-Instruct."
        )
    return model_type


def check_attn_implementation(name: str | None) -> None:
    """Fail early with a clear message when an attention backend is not installed; register MedMO's own."""
    if name == PACKED_SDPA:
        register()
    if name == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise ValueError(
            "attn_implementation='flash_attention_2' needs the flash-attn package (GPU only): "
            "`pip install flash-attn`, or use attn_implementation='sdpa'."
        )


def load(
    path_or_hub_id: str | Path,
    *,
    dtype: Any = "auto",
    device_map: Any = None,
    attn_implementation: str | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    max_pixels_cap: int | None = MAX_PIXELS_CAP,
    chat_template: str | None = None,
) -> tuple[Any, Any]:
    """Load a Qwen3-VL model and its :class:`~medmo.model.processor.MedMOProcessor`.

    Works for folders written by :func:`medmo.model.save` and for released checkpoints
    (``MBZUAI/MedMO-4B``, ``MBZUAI/MedMO-8B``, ``Qwen/Qwen3-VL-8B-Instruct``, Qwen3-VL MoE...). Hub ids
    are only tried when no local folder has that name. The processor is always MedMO's image-only
    one, never ``AutoProcessor`` (which returns a bare tokenizer for Qwen3-VL without torchvision).

    Args:
        path_or_hub_id: A checkpoint folder or a hub id.
        dtype: Weight dtype (``"auto"`` keeps the checkpoint's, or ``torch.bfloat16``, ``"float32"``...).
        device_map: Passed to ``from_pretrained`` (``"auto"`` spreads a large model over the GPUs).
        attn_implementation: ``"sdpa"``, ``"eager"``, ``"flash_attention_2"`` (needs flash-attn) or
            ``"sdpa_packed"`` (``sdpa`` that computes only each sample's block of packed training rows, CPU;
            :mod:`medmo.model.attention`).
        min_pixels: Smallest image size in pixels; default the checkpoint's own (its preprocessor config).
        max_pixels: Largest image size in pixels; default the checkpoint's own, capped at ``max_pixels_cap``.
        max_pixels_cap: Memory cap on the checkpoint's own maximum (default
            :data:`~medmo.model.processor.MAX_PIXELS_CAP`, 16,384 visual tokens, Qwen3-VL's shipped maximum;
            ``None``: none). An explicit ``max_pixels`` is not capped.
        chat_template: ``None`` for MedMO's template (same text as Qwen3-VL's, with generation tags),
            ``"checkpoint"`` for the folder's own, or a Jinja string.

    Sampling settings are the checkpoint's: transformers reads ``generation_config.json`` into
    ``model.generation_config``, and :func:`medmo.model.generate.generate` passes only the values a caller sets.

    Returns:
        ``(model, processor)``, the model in eval mode.
    """
    from transformers import AutoModelForImageTextToText

    check_attn_implementation(attn_implementation)
    folder = resolve_checkpoint(path_or_hub_id)
    check_model_type(folder)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    # The auto class picks Qwen3VLForConditionalGeneration or its MoE sibling from config.json.
    model = AutoModelForImageTextToText.from_pretrained(str(folder), **kwargs).eval()
    processor = load_processor(folder, min_pixels=min_pixels, max_pixels=max_pixels, max_pixels_cap=max_pixels_cap,
                               chat_template=chat_template)
    return model, processor
