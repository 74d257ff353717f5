"""The source registry: names, describe(), error messages, and a light import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from medmo.data.sources import SOURCES, describe, get_source, load_source
from medmo.records import MODALITIES, TASKS

EXPECTED = {
    "vqa_rad",
    "slake",
    "pathvqa",
    "pmc_vqa",
    "omnimedvqa",
    "mmmu_med",
    "medxpertqa",
    "medqa",
    "pubmedqa",
    "medmcqa",
    "mmlu_med",
    "medbullets",
    "supergpqa",
    "iu_xray",
    "mimic_cxr",
    "chexpert_plus",
    "medtrinity_25m",
    "nih_chestxray14",
    "deeplesion",
    "medsg_bench",
}


def test_every_dataset_is_registered_with_valid_metadata():
    assert set(SOURCES) == EXPECTED
    rows = describe()
    assert [r["name"] for r in rows] == sorted(EXPECTED)
    for r in rows:
        assert set(r["tasks"]) <= set(TASKS), r["name"]
        assert r["modality"] in MODALITIES
        assert r["splits"] and r["layout"] and r["licence"]
        assert callable(SOURCES[r["name"]].loader)


def test_unknown_name_lists_sources_and_suggests_close_matches():
    with pytest.raises(KeyError) as e:
        get_source("vqa-rdd")
    msg = str(e.value)
    assert "'vqa_rad'" in msg.split("Registered")[0] and "medqa" in msg
    assert get_source("MMLU-Medical").name == "mmlu_med"


def test_missing_folder_error_names_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="(?s)does not exist.*Expected layout:.*data_RAD"):
        load_source("vqa_rad", tmp_path / "nope")


def test_wrong_layout_error_names_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="Expected layout"):
        list(load_source("medqa", tmp_path))


def test_unknown_split_is_refused(tmp_path):
    with pytest.raises(ValueError, match="splits"):
        load_source("vqa_rad", tmp_path, split="validation")


def test_import_is_light():
    code = (
        "import sys, medmo.data.sources as s; s.describe(); "
        "bad = [m for m in ('datasets', 'pandas', 'pyarrow', 'torch', 'numpy') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_loader_option_is_an_error(tmp_path):
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['langs'\].*'lang'"):
        load_source("slake", tmp_path, langs="en")
