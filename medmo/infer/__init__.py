"""Inference: the :class:`MedMO` Python API, the ``medmo ask / ground / report`` commands, box drawing.

Imports are lazy so ``import medmo.infer`` loads neither torch nor transformers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Completion", "GroundedBox", "HFEngine", "MedMO", "ScriptedEngine", "draw_boxes"]

_WHERE = {
    "MedMO": "medmo.infer.api",
    "GroundedBox": "medmo.infer.api",
    "Completion": "medmo.infer.engine",
    "HFEngine": "medmo.infer.engine",
    "ScriptedEngine": "medmo.infer.engine",
    "draw_boxes": "medmo.infer.draw",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'medmo.infer' has no attribute {name!r}")
