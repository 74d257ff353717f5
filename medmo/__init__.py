"""MedMO: data, training, evaluation and serving for medical vision-language models on Qwen3-VL.

For research only. MedMO's outputs are not medical advice and must not be used for clinical decisions.

``import medmo`` stays light: torch, transformers and every optional dependency load only when a
function that needs them is called.

Example::

    from medmo import MedMO

    model = MedMO.from_pretrained("MBZUAI/MedMO-8B")
    model.ground("chest.dcm", "pleural effusion")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["MedMO", "GroundedBox", "Sample", "__version__"]

_LAZY = {"MedMO": "medmo.infer.api", "GroundedBox": "medmo.infer.api", "Sample": "medmo.records"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medmo' has no attribute {name!r}")
