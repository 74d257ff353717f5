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
              "vqa_medevalkit", "grounding", "finding_f1", "ratescore", "semb_score", "radgraph_f1"):
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


def _fake_module(monkeypatch, name, **attrs):
    import importlib.machinery
    import types

    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
    for k, v in attrs.items():
        setattr(mod, k, v)
    monkeypatch.setitem(sys.modules, name, mod)
    return mod


def test_plugin_glue_with_stand_in_packages(tmp_path, monkeypatch):
    """The wiring around each package (paths, arguments, result shape), with stand-in packages."""
    seen = {}

    class FakeRaTE:
        def __init__(self, **kw):
            seen["rate"] = kw

        def compute_score(self, cands, refs):
            return [float(c == r) for c, r in zip(cands, refs)]

    class FakeRadGraph:
        def __init__(self, **kw):
            seen["radgraph"] = kw

        def __call__(self, hyps, refs):
            per = [0.25 * len(h) / max(len(r), 1) for h, r in zip(hyps, refs)]
            return sum(per) / len(per), per, [], []

    class FakeCheXbert:
        def __init__(self, **kw):
            seen["chexbert"] = kw

        def get_embeddings(self, texts):
            return [[1.0, float(len(t))] for t in texts]

    _fake_module(monkeypatch, "RaTEScore", RaTEScore=FakeRaTE)
    _fake_module(monkeypatch, "radgraph", F1RadGraph=FakeRadGraph)
    _fake_module(monkeypatch, "f1chexbert", F1CheXbert=FakeCheXbert)
    for sub in ("RaTE-NER-Deberta", "BioLORD-2023-C"):
        (tmp_path / sub).mkdir()
    (tmp_path / "chexbert.pth").write_bytes(b"")

    res = get_metric("ratescore")(["a", "b"], ["a", ["c"]], weights_dir=tmp_path)
    assert [r["ratescore"] for r in res["per_sample"]] == [1.0, 0.0] and res["aggregate"]["ratescore"] == 0.5
    assert seen["rate"]["bert_model"] == str(tmp_path / "RaTE-NER-Deberta")
    res = get_metric("radgraph_f1")(["ab"], ["abcd"], weights_dir=tmp_path)
    assert res["aggregate"]["radgraph_f1"] == pytest.approx(0.125)
    assert seen["radgraph"]["model_cache_dir"] == str(tmp_path)
    res = get_metric("sembscore")(["ab", "x"], ["ab", "xyz"], weights_dir=tmp_path)
    assert res["per_sample"][0]["semb_score"] == pytest.approx(1.0) and res["per_sample"][1]["semb_score"] < 1.0
    assert seen["chexbert"]["model_path"] == str(tmp_path / "chexbert.pth")
