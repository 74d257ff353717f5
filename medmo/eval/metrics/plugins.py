"""Optional model-based report metrics: RaTEScore, SembScore (CheXbert) and RadGraph F1.

They need third-party packages and model weights that are not part of MedMO and are never downloaded
by it. Each plugin takes a local weight folder (``weights_dir=`` or an environment variable); without it,
or without its package, it raises an error that names what is missing and where to get it. Nothing here
imports those packages until a plugin is called, so ``import medmo.eval.metrics`` stays light.

* RaTEScore: Zhao et al., "RaTEScore: A Metric for Radiology Report Generation", EMNLP 2024
  (package ``RaTEScore``). Folder with ``RaTE-NER-Deberta/`` and ``BioLORD-2023-C/`` (Hugging Face
  ``Angelakeke/RaTE-NER-Deberta`` and ``FremyCompany/BioLORD-2023-C``).
* SembScore: cosine similarity of CheXbert embeddings (Smit et al. 2020; Yu et al., "Evaluating
  progress in automatic chest X-ray radiology report generation", Patterns 2023), through the
  ``f1chexbert`` package. Folder with ``chexbert.pth`` (``StanfordAIMI/RRG_scorers`` on Hugging Face).
* RadGraph F1: Jain et al., RadGraph (NeurIPS Datasets 2021), reward as in Delbrouck et al. 2022, through
  the ``radgraph`` package. Folder holding the RadGraph model archive/folder the package expects
  (``StanfordAIMI/RRG_scorers`` / the ``radgraph`` README).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class PluginUnavailable(ImportError):
    """A model-based metric cannot run here. Subclasses ``ImportError`` so callers that treat a plugin
    like any optional dependency (``except ImportError``) skip it cleanly."""


class MissingWeightsError(PluginUnavailable):
    """A model-based metric was called without its local weight folder."""


class MissingPackageError(PluginUnavailable):
    """A model-based metric was called without its Python package installed."""


@dataclass(frozen=True)
class Plugin:
    name: str
    env: str
    package: str  # pip name
    module: str  # import name
    files: tuple[str, ...]  # entries the weight folder must contain
    source: str


PLUGINS = {
    "ratescore": Plugin(
        "ratescore", "MEDMO_RATESCORE_WEIGHTS", "RaTEScore", "RaTEScore", ("RaTE-NER-Deberta", "BioLORD-2023-C"),
        "https://huggingface.co/Angelakeke/RaTE-NER-Deberta and https://huggingface.co/FremyCompany/BioLORD-2023-C",
    ),
    "semb_score": Plugin(
        "semb_score", "MEDMO_CHEXBERT_WEIGHTS", "f1chexbert", "f1chexbert", ("chexbert.pth",),
        "https://huggingface.co/StanfordAIMI/RRG_scorers (file chexbert.pth)",
    ),
    "radgraph_f1": Plugin(
        "radgraph_f1", "MEDMO_RADGRAPH_WEIGHTS", "radgraph", "radgraph", (),
        "https://huggingface.co/StanfordAIMI/RRG_scorers (RadGraph model, see the radgraph package README)",
    ),
}


def resolve(name: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """Check a plugin's weight folder and package; return the folder.

    Raises:
        KeyError: unknown plugin name.
        MissingWeightsError: no folder given / set, or it lacks the expected files.
        MissingPackageError: the plugin's package is not installed.
    """
    if name not in PLUGINS:
        raise KeyError(f"unknown model-based metric {name!r}; available: {sorted(PLUGINS)}")
    p = PLUGINS[name]
    folder = weights_dir or os.environ.get(p.env)
    if not folder:
        raise MissingWeightsError(
            f"{name} needs local model weights: pass weights_dir=/path/to/folder or set {p.env}. "
            f"Get them from {p.source}; MedMO never downloads them."
        )
    path = Path(folder).expanduser()
    missing = [f for f in p.files if not (path / f).exists()] if path.is_dir() else [str(path)]
    if missing:
        raise MissingWeightsError(
            f"{name} weight folder {str(path)!r} is missing {missing}; expected {list(p.files) or 'a folder'} "
            f"(from {p.source}), given via weights_dir= or {p.env}."
        )
    if importlib.util.find_spec(p.module) is None:
        raise MissingPackageError(f"{name} needs the {p.package!r} package: pip install {p.package}")
    return path


def _result(name: str, scores: Sequence[float], version: str) -> dict:
    scores = [float(s) for s in scores]
    return {
        "aggregate": {name: sum(scores) / len(scores) if scores else 0.0},
        "per_sample": [{name: s} for s in scores],
        "version": version,
    }


def _refs(references: Sequence[str | Sequence[str]]) -> list[str]:
    return [r if isinstance(r, str) else (list(r) or [""])[0] for r in references]


def ratescore(predictions: Sequence[str], references, *, weights_dir=None, batch_size: int = 8) -> dict:
    """RaTEScore per sample (package ``RaTEScore``'s ``RaTEScore.compute_score``, local NER + embedding
    models; the package defaults to CUDA, so the device is chosen here)."""
    path = resolve("ratescore", weights_dir)
    import torch
    from RaTEScore import RaTEScore

    scorer = RaTEScore(
        bert_model=str(path / "RaTE-NER-Deberta"),
        eval_model=str(path / "BioLORD-2023-C"),
        batch_size=batch_size,
        use_gpu=torch.cuda.is_available(),
    )
    return _result("ratescore", scorer.compute_score(list(predictions), _refs(references)), "ratescore-plugin-1")


def semb_score(predictions: Sequence[str], references, *, weights_dir=None, device: str = "cpu") -> dict:
    """SembScore: cosine similarity of CheXbert report embeddings (package ``f1chexbert``)."""
    path = resolve("semb_score", weights_dir)
    import numpy as np
    from f1chexbert import F1CheXbert

    try:
        scorer = F1CheXbert(device=device, model_path=str(path / "chexbert.pth"))
    except TypeError as e:  # releases that only download their own checkpoint
        raise MissingPackageError(f"this f1chexbert release cannot load a local checkpoint ({e}); upgrade it") from e
    if not hasattr(scorer, "get_embeddings"):
        raise MissingPackageError("this f1chexbert release has no get_embeddings(); upgrade f1chexbert")
    a = np.asarray(scorer.get_embeddings(list(predictions)), dtype=np.float64)
    b = np.asarray(scorer.get_embeddings(_refs(references)), dtype=np.float64)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return _result("semb_score", cos, "semb-plugin-1")


def radgraph_f1(predictions: Sequence[str], references, *, weights_dir=None, reward_level: str = "partial") -> dict:
    """RadGraph F1 per sample (package ``radgraph``, its ``F1RadGraph``)."""
    path = resolve("radgraph_f1", weights_dir)
    from radgraph import F1RadGraph

    scorer = F1RadGraph(reward_level=reward_level, model_cache_dir=str(path))
    _, per_sample, *_ = scorer(hyps=list(predictions), refs=_refs(references))
    return _result("radgraph_f1", per_sample, "radgraph-plugin-1")
