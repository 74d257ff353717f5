"""PathVQA, PMC-VQA, OmniMedVQA, MMMU (medical) and MedXpertQA loaders on hand-made files in their formats."""

from __future__ import annotations

import io
import pickle

import pytest
from source_helpers import write_image

from medmo.data.sources import SourceStats, load_source
from medmo.data.sources.mmmu_med import parse_options
from medmo.records import RecordError


# ------------------------------------------------------------------------------------------ PathVQA
def _pvqa(tmp_path, rows):
    qa = tmp_path / "pvqa" / "qas" / "train"
    qa.mkdir(parents=True)
    (qa / "train_qa.pkl").write_bytes(pickle.dumps(rows))
    write_image(tmp_path / "pvqa" / "images" / "train" / "train_0422.jpg", (30, 30))
    return tmp_path / "pvqa"


def test_pathvqa_pickle_dedupes_and_classifies(tmp_path):
    row = {
        "image": "train_0422",
        "question": "Where are liver stem cells (oval cells) located?",
        "answer": "in the canals of hering",
    }
    root = _pvqa(tmp_path, [row, dict(row), {"image": "train_0422", "question": "Is this liver?", "answer": "Yes"}])
    got = list(load_source("pathvqa", root))
    assert [(s.task, s.answer, s.split) for s in got] == [
        ("open_vqa", "in the canals of hering", "train"),
        ("closed_vqa", "yes", "train"),
    ]
    assert got[0].modality == "pathology" and got[0].images[0].width == 30
    assert len(list(load_source("pathvqa", root, dedupe=False))) == 3


def test_pathvqa_refuses_pickles_with_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    root = _pvqa(tmp_path, [Evil()])
    with pytest.raises(RecordError, match="refusing to load builtins.print"):
        list(load_source("pathvqa", root))


# ------------------------------------------------------------------------------------------ PMC-VQA
def test_pmc_vqa_misspelt_header_and_letter_prefixes(dataset_root):
    root = dataset_root("pmc_vqa", {"images/PMC1064097_F1.jpg": (20, 20), "images/PMC2000000_F2.jpg": (20, 20)})
    stats = SourceStats()
    train = list(load_source("pmc_vqa", root, split="train", stats=stats))
    assert train[0].options == {
        "A": "Diffuse uptake pattern",
        "B": "Focal uptake pattern",
        "C": "No uptake pattern",
        "D": "Cannot determine from the information given",
    }
    assert train[0].answer == "B" and train[0].meta["answer_text"] == "Focal uptake pattern"
    assert train[1].options["A"] == "1:2" and train[1].options["B"] == "2:1"  # only the letter prefix goes
    assert stats.skipped == 1 and "PMC3000000_F3.jpg" in stats.problems[0].reason
    clean = list(load_source("pmc_vqa", root, split="test_clean"))
    assert clean[0].options["B"] == "CT" and clean[0].answer == "B"  # no Answer_label: matched by text


# --------------------------------------------------------------------------------------- OmniMedVQA
def test_omnimedvqa_maps_text_answers_to_letters(dataset_root):
    root = dataset_root(
        "omnimedvqa", {"Images/ACRIMA/Im002_ACRIMA.png": (16, 16), "Images/Chest CT Scan/test/000108.png": (16, 16)}
    )
    stats = SourceStats()
    got = {s.meta["question_id"]: s for s in load_source("omnimedvqa", root, stats=stats)}
    assert set(got) == {"ACRIMA_0088", "ACRIMA_0089", "ACRIMA_0090", "Chest CT Scan_0001"}  # restricted not read
    assert got["ACRIMA_0088"].answer == "A" and list(got["ACRIMA_0088"].options) == ["A", "B", "C"]
    # the released cells MedEvalKit reads (its empty option_D included) are kept beside the cleaned options
    assert got["ACRIMA_0088"].meta["options_raw"] == {"A": "glaucoma", "B": "normal", "C": "cataract", "D": ""}
    assert got["ACRIMA_0089"].answer == "A" and got["ACRIMA_0088"].modality == "fundus"
    assert got["Chest CT Scan_0001"].modality == "ct" and got["Chest CT Scan_0001"].split == "test"
    # a gold that is none of the options is kept as a closed question against the released text
    odd = got["ACRIMA_0090"]
    assert (odd.task, odd.answer, odd.options) == ("closed_vqa", "c", {"A": "a", "B": "b"})
    assert odd.meta["gold_not_in_options"] is True and odd.meta["gt_answer"] == "c"
    assert stats.skipped == 0


# --------------------------------------------------------------------------------------------- MMMU
def _png(size=(8, 6)):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": "x.png"}


def test_mmmu_parquet_options_literal_and_open_items(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [
        {
            "id": "validation_Clinical_Medicine_2",
            "question": "<image 1> What is shown?",
            "answer": "D",
            "options": "['first degree atrioventricular block', 'third degree atrioventricular block', "
            "'Second degree type II atrioventricular block', \"atrial flutter\"]",
            "question_type": "multiple-choice",
            "image_1": _png(),
            "image_2": _png((4, 4)),
            "img_type": "['ECG']",
        },
        {
            "id": "validation_Clinical_Medicine_10",
            "question": "<image 1> Which?",
            "answer": "C",
            "options": "['a', 'b', 'c']",
            "question_type": "open",
            "image_1": _png(),
            "image_2": None,
            "img_type": "",
        },
        {
            "id": "validation_Clinical_Medicine_14",
            "question": "<image 1> Name the process.",
            "answer": "Transformation",
            "options": "[]",
            "question_type": "open",
            "image_1": _png(),
            "image_2": None,
            "img_type": "['Microscopic Images']",
        },
        {
            "id": "validation_Clinical_Medicine_15",
            "question": "<image 1> broken",
            "answer": "A",
            "options": "['a', 'b'",
            "question_type": "multiple-choice",
            "image_1": _png(),
            "image_2": None,
            "img_type": "",
        },
    ]
    (tmp_path / "mmmu" / "Clinical_Medicine").mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist(rows), tmp_path / "mmmu" / "Clinical_Medicine" / "validation-00000-of-00001.parquet"
    )
    stats = SourceStats()
    got = list(load_source("mmmu_med", tmp_path / "mmmu", image_dir=tmp_path / "img", stats=stats))
    assert [(s.task, s.answer) for s in got] == [("mcq", "D"), ("mcq", "C"), ("open_vqa", "Transformation")]
    assert got[0].options["D"] == "atrial flutter" and len(got[0].images) == 2
    assert got[0].images[1].width == 4 and got[2].modality == "microscopy"
    assert stats.skipped == 1 and "literal" in stats.problems[0].reason


def test_mmmu_options_parser_never_evaluates_code():
    with pytest.raises(RecordError):
        parse_options("__import__('os').system('echo hi')")
    assert parse_options("['A text', 'B text']") == ["A text", "B text"]


# ---------------------------------------------------------------------------------------- MedXpertQA
def test_medxpertqa_github_eval_files(dataset_root):
    root = dataset_root("medxpertqa", {"eval/images/MM-0-a.jpeg": (20, 10), "eval/images/MM-0-b.JPG": (10, 20)})
    stats = SourceStats()
    got = {s.meta["medxpertqa_id"]: s for s in load_source("medxpertqa", root / "eval", stats=stats)}
    mm, text = got["MM-0"], got["Text-1717"]
    assert mm.question.endswith("rotatory stability?") and "Answer Choices" not in mm.question
    assert mm.answer == "A" and len(mm.options) == 5 and [i.width for i in mm.images] == [20, 10]
    assert text.answer == "C" and len(text.options) == 10 and not text.images
    assert stats.skipped == 1 and "exactly one letter" in stats.problems[0].reason
    only_text = list(load_source("medxpertqa", root / "eval", subset="text"))
    assert [s.meta["subset"] for s in only_text] == ["Text"]


def test_medxpertqa_hf_layout(dataset_root):
    root = dataset_root("medxpertqa", {"hf/MM/images/MM-1388-a.jpeg": (8, 8)})
    (s,) = load_source("medxpertqa", root / "hf", keep_choices=True)
    assert s.answer == "B" and s.options["E"] == "Lichen planus" and "Answer Choices" in s.question
