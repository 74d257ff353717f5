"""Evaluation metrics behind a lazy registry: importing this package loads no metric module.

Every metric is a function ``metric(predictions, references, **options) -> dict`` returning
``{"aggregate": {name: value}, "per_sample": [{name: value}], "version": str}``. :func:`get_metric`
imports the module that holds it only when asked (the idea of RadEval's lazy metric registry), so model-
based plugins and their heavy dependencies never load unless used.

Names (tables print these, so each says which rule it uses):

* ``cider``: CIDEr-D as coco-caption reports it (alias of ``cider_d``); ``cider_plain``: original CIDEr;
* ``bleu``: BLEU-1..4, pycocoevalcap's corpus BLEU ("closest" reference length);
* ``rougeL``: ROUGE-L F1 of the ``rouge-score`` package; ``rougeL_coco``: pycocoevalcap's (beta 1.2);
* ``vqa`` (alias ``vqa_standard``): closed / open / mcq accuracy under the standard rules; ``vqa_medevalkit``:
  MedEvalKit's generic rules; ``qa_medevalkit`` / ``report_medevalkit``: MedEvalKit per benchmark
  (:mod:`.medevalkit_bench`, :mod:`.medevalkit_report`), what ``--preset medevalkit`` swaps in
  (``MetricSpec.medevalkit``);
* ``grounding``: first / best / matched IoU, Acc@0.3/0.5/0.7(first), F1@0.5(matched);
* ``finding_f1``: rule-based finding factuality F1 (:mod:`medmo.findings`, shared with the RL reward);
* ``ratescore``, ``semb_score`` (alias ``sembscore``), ``radgraph_f1``: model-based plugins that need
  local weights (:mod:`.plugins`);
The LLM judge (:mod:`.judge`, off unless an endpoint is given) is not a metric: it re-decides the verdicts
of a scored benchmark, as MedEvalKit's judge mode does.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

_PKG = "medmo.eval.metrics"


@dataclass(frozen=True)
class MetricSpec:
    """Where a metric lives and what it is."""

    name: str
    module: str
    function: str
    kind: str  # text | vqa | grounding | report | model | judge | medevalkit_qa | medevalkit_report
    description: str
    options: dict = field(default_factory=dict)
    medevalkit: str = ""  # the metric that replaces this one under --preset medevalkit


_SPECS = [
    MetricSpec("cider", "cider", "cider", "text", "CIDEr-D (pycocoevalcap 'CIDEr'), corpus-level", {"variant": "d"},
               "report_medevalkit"),
    MetricSpec("cider_d", "cider", "cider", "text", "CIDEr-D, pycocoevalcap Cider", {"variant": "d"}),
    MetricSpec("cider_plain", "cider", "cider", "text", "original CIDEr, vrama91/cider", {"variant": "plain"}),
    MetricSpec("bleu", "text", "bleu", "text", "BLEU-1..4, pycocoevalcap Bleu (closest ref length)", {},
               "report_medevalkit"),
    MetricSpec("rougeL", "text", "rouge_l", "text", "ROUGE-L F1, rouge-score package", {"variant": "rouge_score"},
               "report_medevalkit"),
    MetricSpec("rougeL_coco", "text", "rouge_l", "text", "ROUGE-L beta=1.2, pycocoevalcap Rouge", {"variant": "coco"}),
    MetricSpec("vqa", "vqa", "vqa", "vqa", "closed / open / multiple-choice accuracy, 'standard' rules",
               {"preset": "standard"}, "qa_medevalkit"),
    MetricSpec("vqa_standard", "vqa", "vqa", "vqa", "VQA preset 'standard'", {"preset": "standard"}),
    MetricSpec(
        "vqa_medevalkit", "vqa", "vqa", "vqa", "VQA preset 'medevalkit' (MedEvalKit rules)", {"preset": "medevalkit"}
    ),
    MetricSpec("qa_medevalkit", "medevalkit_bench", "score", "medevalkit_qa",
               "MedEvalKit's verdicts, per benchmark as its YAML medevalkit block declares"),
    MetricSpec("report_medevalkit", "medevalkit_report", "report_medevalkit", "medevalkit_report",
               "MedEvalKit's report BLEU/ROUGE (sentence-averaged) and plain CIDEr with COCO document frequencies"),
    MetricSpec("grounding", "grounding", "grounding", "grounding", "IoU first/best/matched, Acc@t(first), F1@0.5"),
    MetricSpec("finding_f1", "medmo.findings", "findings_metric", "report", "rule-based finding factuality F1"),
    MetricSpec("ratescore", "plugins", "ratescore", "model", "RaTEScore (needs local weights)"),
    MetricSpec("semb_score", "plugins", "semb_score", "model", "SembScore, CheXbert embeddings (needs local weights)"),
    MetricSpec("sembscore", "plugins", "semb_score", "model", "alias of semb_score"),
    MetricSpec("radgraph_f1", "plugins", "radgraph_f1", "model", "RadGraph F1 (needs local weights)"),
]
REGISTRY: dict[str, MetricSpec] = {s.name: s for s in _SPECS}


def list_metrics(kind: str | None = None) -> list[str]:
    """Registered metric names, optionally of one kind (text, vqa, grounding, report, model, judge)."""
    return [s.name for s in _SPECS if kind is None or s.kind == kind]


def get_metric(name: str) -> Callable[..., dict]:
    """The metric function for ``name`` (its module is imported now, not before).

    Raises:
        KeyError: unknown name; the message lists the registered ones.
    """
    if name not in REGISTRY:
        raise KeyError(f"unknown metric {name!r}; registered metrics: {', '.join(list_metrics())}")
    spec = REGISTRY[name]
    module = spec.module if spec.module.startswith("medmo.") else f"{_PKG}.{spec.module}"
    fn = getattr(importlib.import_module(module), spec.function)
    return functools.partial(fn, **spec.options) if spec.options else fn


__all__ = ["REGISTRY", "MetricSpec", "get_metric", "list_metrics"]
