"""Shared test fixtures: a saved tiny Qwen3-VL model folder, built once per session."""

from __future__ import annotations

import os

import pytest

# The suite runs on small shared CPUs: at most two intra-op threads (read when torch is first imported).
os.environ.setdefault("OMP_NUM_THREADS", str(min(2, os.cpu_count() or 1)))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests never reach the network: hub lookups fail fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A folder holding a random tiny Qwen3-VL + MedMO processor (``medmo.model.build_small``), loadable by
    ``medmo.model.load``. Treat it as read-only: it is shared by the whole session."""
    from medmo.model import build_small

    return build_small(tmp_path_factory.mktemp("tiny_model") / "model")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    """``(model, processor)`` loaded from :func:`tiny_model_dir`; shared, so don't train or modify it."""
    from medmo.model import load

    return load(tiny_model_dir)
