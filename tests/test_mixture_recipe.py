"""The shipped data mixture recipe parses and names only registered sources."""

from __future__ import annotations

from pathlib import Path

from medmo import recipes
from medmo.data.mixture import load_config
from medmo.data.sources import SOURCES

RECIPE = recipes.path("data/mixture")


def test_shipped_mixture_recipe_is_valid():
    assert RECIPE.read_text().startswith("# medmo data build")
    cfg = load_config(RECIPE)
    names = [s.name for s in cfg.sources if s.name]
    assert names and all(n in SOURCES for n in names), names
    assert cfg.decontaminate_against


MEDMO = recipes.path("data/medmo")
BENCHMARKS = Path(__file__).resolve().parents[1] / "medmo" / "eval" / "benchmarks"


def _loader_keywords(name: str) -> set[str]:
    import inspect

    from medmo.data.sources.catalog import registry

    info = registry()[0][name]
    return set(inspect.signature(info.loader).parameters) - {"root", "split", "ctx"}


def test_medmo_recipe_has_one_mixture_per_stage_over_registered_sources():
    from medmo.data.mixture_config import stage_names

    assert MEDMO.read_text().startswith("# medmo data build data/medmo")
    assert stage_names(MEDMO) == ["general_sft", "grounding", "instruction", "grpo"]
    sizes = {}
    for stage in stage_names(MEDMO):
        cfg = load_config(MEDMO, stage)
        sizes[stage] = cfg.expected_records
        assert cfg.missing == "skip" and cfg.sources
        for s in cfg.sources:
            assert s.name in SOURCES, s.name
            assert set(s.options) <= _loader_keywords(s.name), (stage, s.name, s.options)
            assert s.note or not s.allow_contamination, (stage, s.label)  # kept contamination says why
        labels = [s.label for s in cfg.sources]
        assert len(labels) == len(set(labels)), labels  # the report names every entry apart
    assert sizes == {"general_sft": 18_500_000, "grounding": 3_000_000, "instruction": 4_300_000, "grpo": None}
    grpo = {s.name for s in load_config(MEDMO, "grpo").sources}
    assert grpo == {"nih_chestxray14", "deeplesion", "bacteria", "ctc", "grazpedwri_dx", "medsg_bench",
                    "mimic_cxr_vqa", "tissuenet"}  # fmt: skip
    sft = {s.label: s for s in load_config(MEDMO, "general_sft").sources}
    assert sft["iu_xray:test"].allow_contamination and sft["chexpert_plus:validation"].allow_contamination
    assert sft["bacteria"].options == {"style": "medmo-sft", "max_boxes": 100}


def test_medmo_recipe_decontaminates_against_every_benchmark_split():
    import yaml

    cfg = load_config(MEDMO, "instruction", data_dir="/d")
    checked = {(e.name, e.split) for e in cfg.decontaminate_against if e.name}
    records = {(Path(str(e.records)).name, e.split) for e in cfg.decontaminate_against if e.records}
    for path in sorted(BENCHMARKS.glob("[!_]*.yaml")):
        ds = yaml.safe_load(path.read_text())["dataset"]
        if ds.get("data") == "nano":
            continue  # the synthetic smoke-test set, never trained on
        if "source" in ds:
            assert (ds["source"], ds.get("split", "test")) in checked, path.name
        else:
            assert (Path(ds["records"]).name, ds["filters"]["split"]) in records, path.name
    for name in ("medframeqa", "medqa_mcmle", "cmb", "cmb_clin", "cmexam", "cmmlu"):
        assert (name, "test") in checked


def _image(path: Path, shade: int, size: tuple[int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, shade).save(path)


def test_medmo_recipe_report_shows_its_training_on_evaluation_splits(tmp_path, capsys):
    """IU X-Ray test and every NIH box are in MedMO's SFT list: kept, and counted per evaluation set."""
    import json
    import shutil

    from medmo.cli import main

    studies = {"train": ["CXR1_IM-1", "CXR2_IM-2"], "val": [], "test": ["CXR3_IM-3"]}
    rows = {k: [{"id": i, "report": f"Report {i}: the lungs are clear.", "image_path": [f"{i}/0.png"], "split": k}
                for i in ids] for k, ids in studies.items()}  # fmt: skip
    (tmp_path / "iu_xray").mkdir()
    (tmp_path / "iu_xray" / "annotation.json").write_text(json.dumps(rows))
    for shade, i in enumerate(i for ids in studies.values() for i in ids):
        _image(tmp_path / "iu_xray" / "images" / i / "0.png", 10 + shade, (16, 16))
    shutil.copytree(Path(__file__).parent / "sources" / "fixtures" / "nih", tmp_path / "nih_chestxray14")
    for shade, n in enumerate(("00013118_008.png", "00010575_002.png", "00026920_000.png")):
        _image(tmp_path / "nih_chestxray14" / "images" / n, 100 + shade, (1024, 1024))
    out = tmp_path / "out"
    args = ["data", "build", str(MEDMO), "--stage", "general_sft", "--out", str(out), "--data-dir", str(tmp_path)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "mixture_report.json").read_text())
    pairs = {(p["train"], p["eval"]): (p["image"], p["text"], p["kept"]) for p in report["contamination"]["pairs"]}
    assert pairs[("iu_xray:test", "iu_xray:test")] == (1, 0, True)
    assert ("iu_xray", "iu_xray:test") not in pairs  # the train studies are other images
    nih_image, _, nih_kept = pairs[("nih_chestxray14:all", "nih_chestxray14:test")]
    assert nih_image > 0 and nih_kept
    trained_on = {t["source"] for t in report["contamination"]["trained_on_evaluation_data"]}
    assert trained_on == {"iu_xray:test", "nih_chestxray14:all"}
    assert "IU_XRAY_test" in printed and "medtrinity_25m: missing, left out" in printed
    assert "overlap iu_xray:test x iu_xray:test: 1 by image, 0 by text (kept)" in printed
