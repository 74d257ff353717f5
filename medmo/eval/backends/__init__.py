"""Generation backends for the evaluation runner.

A backend turns :class:`Request` objects (a chat in transformers' multimodal format with
``{"type": "image"}`` placeholders, plus the image files those placeholders stand for) into answer
texts. Three ship with MedMO:

- :class:`medmo.eval.backends.hf.HFBackend`: a local transformers model through
  :func:`medmo.model.generate.generate` (batched, left-padded, greedy);
- :class:`medmo.eval.backends.openai.OpenAIBackend`: any OpenAI-compatible endpoint (vLLM,
  ``medmo serve``) with bounded concurrency and retries;
- :class:`medmo.eval.backends.baseline.BaselineBackend`: majority training answers and the mean box,
  the "chance" row of a table.

Anything with a ``name`` attribute, an ``info()`` method and ``generate(requests, batch_size=...)`` is a
backend (scripted fakes in tests, for instance).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from medmo.eval.backends.base import Backend, BackendError, Request, load_pil

__all__ = ["Backend", "BackendError", "Request", "load_pil", "make_backend"]


def make_backend(kind: str, model: str, *, base_url: str | None = None, **kw: Any) -> Backend:
    """Build a backend by kind: ``hf`` (a local model folder or hub id), ``openai`` (needs ``base_url``) or
    ``baseline`` (``model`` is a training records file; answers without the image)."""
    # Each backend module is imported when chosen: the hf one loads torch, the openai one needs none.
    if kind == "hf":
        return importlib.import_module("medmo.eval.backends.hf").HFBackend.from_pretrained(model, **kw)
    if kind == "openai":
        if not base_url:
            raise ValueError("the openai backend needs --base-url, e.g. http://127.0.0.1:8000/v1")
        kw.setdefault("api_key", os.environ.get("MEDMO_API_KEY"))  # for servers started with an API key
        return importlib.import_module("medmo.eval.backends.openai").OpenAIBackend(model, base_url, **kw)
    if kind == "baseline":
        return importlib.import_module("medmo.eval.backends.baseline").BaselineBackend.from_records(model)
    raise ValueError(f"unknown backend {kind!r}; use hf, openai or baseline")
