"""The lazy metric registry and the model-based plugins' missing-weights errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from medmo.eval.metrics import REGISTRY, get_metric, list_metrics
from medmo.eval.metrics.plugins import (
    PLUGINS,
    MissingPackageError,
    MissingWeightsError,
    PluginUnavailable,
    resolve,
)

HEAVY = ("RaTEScore", "f1chexbert", "radgraph", "torch", "transformers", "scipy", "pycocoevalcap", "rouge_score")


def test_importing_metrics_loads_nothing_heavy():
    code = (
        "import sys, medmo, medmo.eval.metrics as m; m.list_metrics();"
        "mods = [k for k in sys.modules if k.split('.')[0] in %r or k.startswith('medmo.eval.metrics.')];"
        "print(mods)" % (HEAVY,)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_registry_lists_and_loads_lazily():
    names = list_metrics()
    for n in ("cider", "cider_d", "cider_plain", "bleu", "rougeL", "rougeL_coco", "vqa_standard",
              "vqa_medevalkit", "grounding", "finding_f1", "ratescore", "semb_score", "radgraph_f1", "llm_judge"):
        assert n in names
    assert list_metrics("model") == ["ratescore", "semb_score", "sembscore", "radgraph_f1"]
    res = get_metric("rougeL_coco")(["a b c"], ["a b d"])
    assert res["aggregate"]["rougeL_coco"] > 0
    assert get_metric("cider_plain")(["a b"], ["a b"])["aggregate"] == {"cider_plain": 0.0}  # 1 doc: idf 0
    with pytest.raises(KeyError, match="registered metrics: cider"):
        get_metric("meteor")
    assert all(spec.description for spec in REGISTRY.values())


@pytest.mark.parametrize("name", ["ratescore", "semb_score", "radgraph_f1"])
def test_plugin_without_weights_names_them(name, monkeypatch):
    env = PLUGINS[name].env
    monkeypatch.delenv(env, raising=False)
    with pytest.raises(MissingWeightsError) as e:
        get_metric(name)(["No effusion."], ["No effusion."])
    msg = str(e.value)
    assert name in msg and env in msg and "huggingface.co" in msg
    assert isinstance(e.value, PluginUnavailable) and isinstance(e.value, ImportError)


def test_plugin_weight_folder_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDMO_RATESCORE_WEIGHTS", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="RaTE-NER-Deberta"):
        resolve("ratescore")
    (tmp_path / "RaTE-NER-Deberta").mkdir()
    (tmp_path / "BioLORD-2023-C").mkdir()
    try:
        import RaTEScore  # noqa: F401  (installed: the folder check passed, so resolve succeeds)

        assert resolve("ratescore") == tmp_path
    except ImportError:
        with pytest.raises(MissingPackageError, match="pip install RaTEScore"):
            resolve("ratescore")
    with pytest.raises(MissingWeightsError, match="missing"):
        resolve("semb_score", weights_dir=tmp_path / "nope")
    with pytest.raises(KeyError, match="unknown model-based metric"):
        resolve("bertscore")
