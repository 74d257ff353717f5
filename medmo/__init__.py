"""MedMO: data, training, evaluation and serving for medical vision-language models on Qwen3-VL.

For research only. MedMO's outputs are not medical advice and must not be used for clinical decisions.

``import medmo`` stays light: torch, transformers and every optional dependency load only when a
function that needs them is called.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
