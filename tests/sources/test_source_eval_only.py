"""Evaluation-only sets MedMO's scripts score: MedQA-MCMLE, CMB, CMExam, CMMLU, MedFrameQA (fixtures written here)."""

from __future__ import annotations

import io
import json

import pytest

from medmo.data.sources import SourceStats, load_source
from medmo.prompts import question_text


def test_medqa_mcmle_mainland_jsonl(tmp_path):
    rows = [{"question": "下列哪项是正确的？", "options": {"A": "甲", "B": "乙", "C": "丙", "D": "丁", "E": "戊"},
             "answer": "乙", "answer_idx": "B", "meta_info": "卫生法规"},
            {"question": "错？", "options": {"A": "甲", "B": "乙"}, "answer": "甲", "answer_idx": "B"}]  # fmt: skip
    (tmp_path / "Mainland").mkdir()
    (tmp_path / "Mainland" / "test.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), "utf-8")
    stats = SourceStats()
    (s,) = load_source("medqa_mcmle", tmp_path, split="test", stats=stats)
    assert (s.answer, s.language, len(s.options), s.split) == ("B", "zh", 5, "test")
    assert stats.skipped == 1 and "answer_idx B is '乙' but answer is '甲'" in str(stats.problems[0])
    with pytest.raises(FileNotFoundError, match="Mainland"):
        list(load_source("medqa_mcmle", tmp_path, split="train"))


def test_cmb_exam_keeps_single_choice_and_cmb_clin_asks_with_the_case(tmp_path):
    rows = [{"exam_type": "医师考试", "exam_class": "执业医师", "question_type": "单项选择题", "question": "首选药物是？",
             "option": [{"key": "A", "value": "甲"}, {"key": "B", "value": "乙"}], "answer": "B"},
            {"question_type": "多项选择题", "question": "哪些正确？", "option": {"A": "甲", "B": "乙", "C": "丙"}, "answer": "AC"}]
    (tmp_path / "exam.json").write_text(json.dumps(rows, ensure_ascii=False), "utf-8")
    (s,) = load_source("cmb", tmp_path / "exam.json")
    assert (s.task, s.answer, s.options, s.meta["exam_type"]) == ("mcq", "B", {"A": "甲", "B": "乙"}, "医师考试")
    both = list(load_source("cmb", tmp_path / "exam.json", single_choice=False))
    assert [b.task for b in both] == ["mcq", "text_qa"] and both[1].answer == "AC" and "C. 丙" in both[1].question
    clin = [{"id": 0, "title": "案例1", "description": "男，45岁，胸痛。", "QA_pairs": [
        {"question": "诊断？", "answer": "心梗"}, {"question": "治疗？", "answer": "溶栓"}]}]  # fmt: skip
    (tmp_path / "CMB-Clin-qa.json").write_text(json.dumps(clin, ensure_ascii=False), "utf-8")
    a, b = load_source("cmb_clin", tmp_path)
    assert a.question.startswith("案例1\n男，45岁，胸痛。") and a.question.endswith("诊断？") and b.answer == "溶栓"
    assert a.id != b.id


def test_cmexam_csv_options_text_and_multi_answer(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "test.csv").write_text(
        "Question,Options,Answer,Explanation\n"
        '肝硬化最常见的病因是？,"A 酒精\nB 病毒性肝炎\nC 药物",B,我国以乙肝为主\n'
        '哪些属于？,"A 甲\nB 乙\nC 丙",AC,\n', "utf-8")  # fmt: skip
    a, b = load_source("cmexam", tmp_path, split="test")
    assert (a.task, a.answer, a.options["B"], a.meta["explanation"]) == ("mcq", "B", "病毒性肝炎", "我国以乙肝为主")
    assert b.task == "text_qa" and b.answer == "AC" and "C. 丙" in b.question
    assert not list(load_source("cmexam", tmp_path, split="train"))


def test_cmmlu_medical_subjects_by_default(tmp_path):
    for subject in ("anatomy", "high_school_physics"):
        (tmp_path / "test").mkdir(exist_ok=True)
        (tmp_path / "test" / f"{subject}.csv").write_text(f",Question,A,B,C,D,Answer\n0,{subject}问题？,甲,乙,丙,丁,C\n", "utf-8")
    (s,) = load_source("cmmlu", tmp_path)
    assert (s.meta["subject"], s.answer, s.split) == ("anatomy", "C", "test")
    assert len(list(load_source("cmmlu", tmp_path, subjects=()))) == 2
    with pytest.raises(FileNotFoundError, match="no CMMLU"):
        list(load_source("cmmlu", tmp_path, subjects=("virology",)))


def test_medframeqa_parquet_with_embedded_frames(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    def png(color: int) -> dict:
        buf = io.BytesIO()
        Image.new("RGB", (8, 6), (color, 0, 0)).save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": None}

    rows = [{"question_id": "q1", "question": "Which frame shows the lesion first?", "options": ["one", "two", "three"],
             "correct_answer": "B", "image_1": png(10), "image_2": png(20), "image_3": None, "image_4": None,
             "image_5": None, "video_id": "abc"}]  # fmt: skip
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data" / "test-00000-of-00001.parquet")
    (s,) = load_source("medframeqa", tmp_path, image_dir=tmp_path / "frames")
    assert (s.answer, len(s.images), s.options["B"], s.meta["video_id"]) == ("B", 2, "two", "abc")
    assert all((tmp_path / "frames").joinpath(p.split("/")[-1]).is_file() for p in [i.path for i in s.images])
    assert (s.images[0].width, s.images[0].height) == (8, 6) and "B. two" in question_text(s)
