"""Local transformers backend: batched greedy generation with :func:`medmo.model.generate.generate`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import medmo.model  # load() resolves on first call: importing this module loads no transformers
from medmo.eval.backends.base import Request, load_pil
from medmo.model.generate import generate


def checkpoint_fingerprint(folder: Path) -> str:
    """Names, sizes and modification times of a checkpoint's weight and config files, hashed (cheap for 8B)."""
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".json") and p.is_file())
    blob = "|".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def processor_facts(processor: Any) -> dict[str, Any]:
    """The processor settings that change answers: chat-template hash and pixel budget (for the run manifest)."""
    template = getattr(processor, "chat_template", None) or getattr(getattr(processor, "tokenizer", None),
                                                                     "chat_template", None)
    lo_hi = getattr(processor, "pixel_range", None)  # MedMO's processor: (min_pixels, max_pixels)
    pixels = {"min_pixels": int(lo_hi[0]), "max_pixels": int(lo_hi[1])} if lo_hi else None
    return {"chat_template_sha1": hashlib.sha1(str(template).encode()).hexdigest()[:12] if template else None,
            "pixel_budget": pixels}


class HFBackend:
    """Generate with an already loaded model and processor (e.g. the speedrun's nano model).

    Args:
        model: a transformers Qwen3-VL model (or any model :func:`medmo.model.generate.generate` accepts).
        processor: its processor.
        name: the model name written into results and cache paths.
    """

    def __init__(self, model: Any, processor: Any, name: str = "model", fingerprint: str | None = None):
        self.model, self.processor, self.name, self.fingerprint = model, processor, name, fingerprint

    @classmethod
    def from_pretrained(cls, path_or_id: str, **load_kw: Any) -> HFBackend:
        """Load with :func:`medmo.model.load`; the name is the folder's name or the hub id."""
        model, processor = medmo.model.load(path_or_id, **load_kw)
        p = Path(path_or_id)
        name = p.name if p.exists() else str(path_or_id)
        weights = checkpoint_fingerprint(p) if p.is_dir() else str(path_or_id)
        # the pixel budget and chat template change answers too: a rerun with others regenerates
        facts = json.dumps(processor_facts(processor), sort_keys=True)
        return cls(model, processor, name=name, fingerprint=f"{weights}|{hashlib.sha1(facts.encode()).hexdigest()[:8]}")

    def info(self) -> dict[str, Any]:
        cfg = getattr(self.model, "config", None)
        n_params = sum(p.numel() for p in self.model.parameters()) if hasattr(self.model, "parameters") else None
        return {"kind": "hf", "name": self.name, "model_type": getattr(cfg, "model_type", None), "n_params": n_params,
                "fingerprint": self.fingerprint, **processor_facts(self.processor)}

    def generate(self, requests: list[Request], *, batch_size: int = 8) -> list[str]:
        """Answer ``requests`` in order; requests with different budgets are generated separately."""
        out: list[str | None] = [None] * len(requests)
        for budget in sorted({r.max_new_tokens for r in requests}):
            idx = [i for i, r in enumerate(requests) if r.max_new_tokens == budget]
            texts = generate(
                self.model,
                self.processor,
                [requests[i].messages for i in idx],
                [[load_pil(ref) for ref in requests[i].images] for i in idx],
                max_new_tokens=budget,
                batch_size=batch_size,
            )
            for i, t in zip(idx, texts):
                out[i] = t
        return [t or "" for t in out]
