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
    # MedMO's training sources (issue 18)
    "roco", "rocov2", "medpix", "mimic_cxr_vqa",
    "grazpedwri_dx", "ctc", "tissuenet", "bacteria",
    "medical_o1_sft", "medical_o1_verifiable", "medreason", "medical_r1_distill", "medquad", "alpacare",
    "pmc_llama_instructions", "mimic_ext_bhc", "chatdoctor_healthcaremagic", "chatdoctor_icliniq",
    "medical_meadow_flashcards", "medical_meadow_wikidoc", "medical_meadow_wikidoc_patient_information",
    "medical_meadow_mediqa", "medical_meadow_cord19", "medical_meadow_pubmed_causal", "medical_meadow_mmmlu",
    "medical_meadow_medqa",
    # evaluation-only sets MedMO's scripts score
    "medframeqa", "medqa_mcmle", "cmb", "cmb_clin", "cmexam", "cmmlu",
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


def test_declarations_are_read_without_import_and_match_the_modules():
    """The registry reads each module's SOURCE from the file; importing the module gives the same object."""
    import importlib

    for info in SOURCES.values():
        module = importlib.import_module(f"medmo.data.sources.{info.module}")
        declared = getattr(module, "SOURCES", None) or (module.SOURCE,)
        same = [d for d in declared if d.name == info.name]
        assert len(same) == 1 and same[0].to_dict() == info.to_dict(), info.name
        assert callable(module.load)


def test_a_declaration_that_is_not_literal_is_refused(tmp_path):
    from medmo.data.sources.catalog import DeclarationError, declarations

    f = tmp_path / "bad.py"
    f.write_text('LAYOUT = "x"\nSOURCE = SourceInfo(name="bad", tasks=("mcq",), modality="other", splits=("test",),\n'
                 '                    layout=LAYOUT, licence="none")\n')  # fmt: skip
    with pytest.raises(DeclarationError, match=r"bad.py:2: SourceInfo layout= must be a literal"):
        declarations(f)
    f.write_text('SOURCE = SourceInfo(name="ok", tasks=["mcq"], modality="other", splits=("test",), layout="l", licence="c")\n')
    (info,) = declarations(f)
    assert info.name == "ok" and info.tasks == ("mcq",) and info.module == "bad"


def test_samples_get_their_source_and_a_stable_id_from_the_context():
    from medmo.data.sources._base import Context
    from medmo.records import stable_id

    s = Context(source="vqa_rad").sample("q1", task="text_qa", split="test", answer="a")
    assert (s.source, s.id) == ("vqa_rad", stable_id("vqa_rad", "q1"))
