"""The benchmark registry: every shipped YAML loads and names a real source, names resolve, filters work."""

from __future__ import annotations

import pytest

from medmo.eval import registry
from medmo.eval.data import matches, parse_data_args
from medmo.eval.registry import UnknownBenchmarkError
from medmo.records import ImageRef, Sample

MEDMO_TABLES = [
    "mmmu_med", "vqa_rad", "slake", "pathvqa", "pmc_vqa", "omnimedvqa",
    "medxpertqa_mm", "mmlu_med", "pubmedqa", "medmcqa", "medqa", "medbullets_op4", "medbullets_op5",
    "medxpertqa_text", "supergpqa_med", "mimic_cxr", "chexpert_plus", "iu_xray", "medtrinity",
    "nih_chestxray14", "deeplesion", "cell", "medsg_multi_view", "medsg_object_tracking", "medsg_referring",
    "nano_closed", "nano_mcq", "nano_open", "nano_grounding", "nano_report",
]


def test_every_benchmark_of_the_tables_is_registered():
    assert set(MEDMO_TABLES) <= set(registry.names())


@pytest.mark.parametrize("bench", registry.benchmarks(), ids=lambda b: b.name)
def test_shipped_config_is_complete(bench):
    from medmo.data.sources import SOURCES, canonical_split
    from medmo.eval.metrics import REGISTRY

    assert bench.headline and bench.metrics and set(bench.metrics) <= set(REGISTRY), bench.path
    assert bench.max_new_tokens > 0 and bench.generation.get("greedy") is True
    assert open(bench.path).readline().startswith(f"# medmo eval run MODEL --bench {bench.name}")
    if "source" in bench.dataset:
        import inspect

        info = SOURCES[bench.dataset["source"]]
        assert canonical_split(bench.dataset["split"]) in info.splits
        params = inspect.signature(info.loader).parameters  # loaders take **kw: a typo would pass silently
        assert all(k in params for k in bench.dataset.get("kwargs") or {}), bench.dataset["kwargs"]
    else:
        assert "{data}" in bench.dataset["records"] and bench.where  # says how to build the folder


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownBenchmarkError) as e:
        registry.get("vqarad_closed")
    assert "vqa_rad" in str(e.value).split("Registered")[0] and "medmo eval list" in str(e.value)


def test_resolve_names_and_groups():
    assert [b.name for b in registry.resolve("slake, vqa_rad")] == ["slake", "vqa_rad"]
    nano = registry.resolve("nano")
    assert {"nano_closed", "nano_grounding", "nano_report"} <= {b.name for b in nano}
    assert [b.name for b in registry.benchmarks("vqa")][:2] == ["mmmu_med", "vqa_rad"]  # tables.yaml order
    with pytest.raises(UnknownBenchmarkError):
        registry.resolve(",")


def test_include_merges_defaults_and_rejects_bad_files(tmp_path):
    (tmp_path / "_base.yaml").write_text("version: '3'\nmetrics: [vqa]\ngeneration: {max_new_tokens: 8, greedy: true}\n")
    (tmp_path / "b.yaml").write_text(
        "include: _base.yaml\nname: b\ngroup: vqa\nheadline: overall_acc\ngeneration: {max_new_tokens: 4}\n"
        "dataset: {source: vqa_rad, split: test}\n"
    )
    b = registry.load_benchmark_file(tmp_path / "b.yaml")
    assert b.version == "3" and b.generation == {"max_new_tokens": 4, "greedy": True} and b.headline == ("overall_acc",)
    (tmp_path / "c.yaml").write_text("name: c\nversion: 1\ngroup: tables\nmetrics: [vqa]\ndataset: {source: x}\n")
    with pytest.raises(ValueError, match="group"):
        registry.load_benchmark_file(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text((tmp_path / "b.yaml").read_text().replace("{max_new_tokens: 4}", "{greedy: false}"))
    with pytest.raises(ValueError, match="greedy"):
        registry.load_benchmark_file(tmp_path / "d.yaml")


def test_filters_read_fields_and_meta_ignoring_case():
    s = Sample("a", "closed_vqa", "slake", "test", question="q", answer="yes", language="en",
               images=[ImageRef("x.png")], meta={"answer_type": "CLOSED", "n": 4})
    assert matches(s, {"task": "closed_vqa", "language": "EN", "meta.answer_type": "closed"})
    assert matches(s, {"meta.n": 4, "has_image": True, "task": ["open_vqa", "closed_vqa"]})
    assert not matches(s, {"language": "zh"}) and not matches(s, {"meta.missing": "x"})
    assert not matches(s, {"has_image": False})


def test_data_arguments_parse_and_reject_malformed():
    assert parse_data_args(["vqa_rad=/d/rad", "nano = /n"]) == {"vqa_rad": "/d/rad", "nano": "/n"}
    with pytest.raises(ValueError, match="NAME=PATH"):
        parse_data_args(["vqa_rad"])


def test_cli_list_shows_every_benchmark(capsys):
    from medmo.cli import main

    assert main(["eval", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in registry.names()) and "--data vqa_rad=PATH" in out
    assert main(["eval", "list", "--group", "grounding"]) == 0
    out = capsys.readouterr().out
    assert "medsg_referring" in out and "vqa_rad" not in out


def test_tables_yaml_lists_registered_benchmarks_in_medmo_order():
    layout = registry.table_layout()
    names = set(registry.names())
    assert all(c["bench"] in names for t in layout.values() for c in t["columns"])
    vqa = [(c["bench"], c["metric"][0]) for c in layout["vqa"]["columns"]]
    assert vqa[:5] == [("mmmu_med", "overall_acc"), ("vqa_rad", "closed_acc"), ("vqa_rad", "overall_acc"),
                       ("slake", "closed_acc"), ("slake", "overall_acc")] and len(vqa) == 9
    assert [b.name for b in registry.benchmarks("text_qa")][4:6] == ["medbullets_op4", "medbullets_op5"]
    assert all("order" not in open(b.path).read() for b in registry.benchmarks())


def test_medevalkit_preset_reads_the_data_medevalkit_reads():
    changed = {b.name: b.for_preset("medevalkit").dataset for b in registry.benchmarks()
               if b.for_preset("medevalkit").dataset != b.dataset}
    # only PMC-VQA: MedEvalKit evaluates test_2.csv (loader version 2); the rest of the block is kept
    assert changed == {"pmc_vqa": {"source": "pmc_vqa", "split": "test", "kwargs": {"version": 2}}}
    pmc = registry.get("pmc_vqa")
    assert pmc.for_preset("standard") is pmc and pmc.for_preset("medevalkit").medevalkit == pmc.medevalkit
