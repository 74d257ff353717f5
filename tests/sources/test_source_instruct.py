"""Instruction-tuning text sources in their published layouts (fixtures written here, a few rows each)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmo.data.sources import SourceStats, load_source
from medmo.prompts import question_text, target_text


def write_json(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def ids(records) -> set[str]:
    return {s.id for s in records}


def test_medical_meadow_sets_in_medalpaca_json_and_lavita_parquet(tmp_path):
    flash = [{"instruction": "Answer this question truthfully", "input": f"What is sign {i}?", "output": f"Sign {i}."}
             for i in range(4)]  # fmt: skip
    write_json(tmp_path / "flash" / "medical_meadow_wikidoc_medical_flashcards.json", flash)
    got = list(load_source("medical_meadow_flashcards", tmp_path / "flash", holdout=1))
    assert [s.split for s in got] == ["train"] * 3 + ["validation"]
    assert got[0].question == "##Instruction:  Answer this question truthfully\n\nQuestion: What is sign 0?"
    assert got[0].task == "text_qa" and got[0].answer == "Sign 0."
    assert len(list(load_source("medical_meadow_flashcards", tmp_path / "flash", split="validation", holdout=1))) == 1

    mmlu = [{"instruction": "Given your knowledge of anatomy, answer the question.",
             "input": "Which bone is in the arm? A: Femur B: Humerus C: Tibia D: Fibula", "output": "B: Humerus"},
            {"instruction": "Answer.", "input": "No options here", "output": "Free text"}]  # fmt: skip
    write_parquet(tmp_path / "medical_meadow_mmmlu" / "train-00000-of-00001-abc.parquet", mmlu)
    a, b = load_source("medical_meadow_mmmlu", tmp_path / "medical_meadow_mmmlu")
    assert a.task == "mcq" and a.answer == "B" and a.options == {"A": "Femur", "B": "Humerus", "C": "Tibia", "D": "Fibula"}
    assert "Question: Which bone is in the arm?" in a.question and b.task == "text_qa"

    causal = [{"instruction": "x", "input": "Smoking raises risk.", "output": "This is a causative relationship"}]
    (c,) = load_source("medical_meadow_pubmed_causal", write_json(tmp_path / "causal.json", causal))
    assert c.task == "mcq" and c.answer == "C" and c.question.startswith("##Subject: Smoking raises risk.")

    medqa = [{"instruction": "Please answer with one of the option in the bracket",
              "input": "Q:A 4-year-old ...?, {'A': 'Iron', 'B': 'Zinc', 'C': 'Lead'},", "output": "C: Lead"}]
    (m,) = load_source("medical_meadow_medqa", write_json(tmp_path / "medqa.json", medqa))
    assert (m.task, m.answer, m.options["C"]) == ("mcq", "C", "Lead")


def test_chatdoctor_healthcaremagic_and_icliniq(tmp_path):
    hcm = [{"instruction": "If you are a doctor, please answer.", "input": f"I have a cough {i}.", "output": f"Rest {i}."}
           for i in range(20)]  # fmt: skip
    write_parquet(tmp_path / "chatdoctor_healthcaremagic" / "train-00000-of-00001-x.parquet", hcm)
    got = list(load_source("chatdoctor_healthcaremagic", tmp_path / "chatdoctor_healthcaremagic"))
    assert sum(s.split == "validation" for s in got) == 1  # 5% of 20
    assert got[0].question == "##Instruction: If you are a doctor, please answer.\n\n##Context: I have a cough 0."
    ic = [{"input": "Fever for two days", "answer_icliniq": "Doctor", "answer_chatgpt": "GPT", "answer_chatdoctor": "CD"}]
    (s,) = load_source("chatdoctor_icliniq", write_json(tmp_path / "icliniq.json", ic), holdout_fraction=0)
    assert s.answer == "CD" and s.question.endswith("##Patient Query: Fever for two days")
    (t,) = load_source("chatdoctor_icliniq", tmp_path / "icliniq.json", holdout_fraction=0, answer="answer_icliniq")
    assert t.answer == "Doctor" and t.id == s.id
    with pytest.raises(ValueError, match="answer must be one of"):
        list(load_source("chatdoctor_icliniq", tmp_path / "icliniq.json", answer="doctor"))


def test_medical_o1_sft_verifiable_and_r1_distill(tmp_path):
    sft = [{"Question": f"Why {i}?", "Complex_CoT": "Because.", "Response": f"Answer {i}."} for i in range(3)]
    write_json(tmp_path / "o1" / "medical_o1_sft_mix.json", sft)
    got = list(load_source("medical_o1_sft", tmp_path / "o1", holdout=1))
    assert got[0].question == "##Question: Why 0?" and got[0].answer == "Answer 0." and got[-1].split == "validation"
    (think,) = load_source("medical_o1_sft", tmp_path / "o1", split="validation", holdout=1, reasoning="think")
    assert think.answer == "<think>\nBecause.\n</think>\nAnswer 2."
    with pytest.raises(FileNotFoundError, match="medical_o1_sft.json not found"):
        list(load_source("medical_o1_sft", tmp_path / "o1", file="medical_o1_sft.json"))
    ver = [{"Open-ended Verifiable Question": "Dose?", "Ground-True Answer": "5 mg"}]
    (v,) = load_source("medical_o1_verifiable", write_json(tmp_path / "v" / "medical_o1_verifiable_problem.json", ver))
    assert (v.question, v.answer) == ("##Question: Dose?", "5 mg")
    r1 = [{"question": "Q?", "reasoning (reasoning_content)": "think", "response (content)": "R."}]
    (r,) = load_source("medical_r1_distill", write_json(tmp_path / "r1" / "medical_r1_distill_sft.json", r1))
    assert (r.question, r.answer) == ("##Question: Q?", "R.")


def test_medreason_matches_the_answer_to_an_option_or_keeps_it_as_text(tmp_path):
    rows = [{"dataset_name": "medqa", "id_in_dataset": 1, "question": "Best drug?",
             "options": "A. Aspirin\nB. Nitrofurantoin\nC. Ceftriaxone",
             "answer": "Nitrofurantoin. Explanation: safe in pregnancy", "reasoning": "KG path"},
            {"dataset_name": "hle", "id_in_dataset": 2, "question": "Open?", "options": "", "answer": "Yes, because.",
             "reasoning": "R"}]  # fmt: skip
    path = tmp_path / "ours_quality_33000.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n", encoding="utf-8")
    stats = SourceStats()
    a, b = load_source("medreason", tmp_path, stats=stats)
    assert a.task == "mcq" and a.answer == "B" and a.options["B"] == "Nitrofurantoin"
    assert b.task == "text_qa" and b.answer == "Yes, because." and b.meta["dataset_name"] == "hle"
    assert stats.skipped == 1 and "ours_quality_33000.jsonl:3" in str(stats.problems[0])


def test_medquad_xml_pairs_without_answers_are_left_out(tmp_path):
    doc = ('<?xml version="1.0"?><Document id="0000001" source="GARD" url="u"><Focus>Gaucher disease</Focus>'
           '<QAPairs><QAPair pid="1"><Question qid="0000001-1" qtype="information">What is Gaucher disease?'
           '</Question><Answer>A rare genetic disorder.</Answer></QAPair><QAPair pid="2"><Question qid="0000001-2" '
           'qtype="treatment">How is it treated?</Question><Answer></Answer></QAPair></QAPairs></Document>')  # fmt: skip
    (tmp_path / "2_GARD_QA").mkdir()
    (tmp_path / "2_GARD_QA" / "0000001.xml").write_text(doc, encoding="utf-8")
    stats = SourceStats()
    (s,) = load_source("medquad", tmp_path, stats=stats, n_holdout=0)
    assert (s.question, s.answer, s.meta["qtype"], s.meta["focus"]) == (
        "What is Gaucher disease?", "A rare genetic disorder.", "information", "Gaucher disease")
    assert stats.filtered == 1 and stats.skipped == 0


def test_alpacare_pmc_llama_and_mimic_ext_bhc(tmp_path):
    alp = [{"instruction": f"Explain {i}.", "input": "<noinput>" if i else "context", "output": f"Out {i}."} for i in range(3)]
    write_parquet(tmp_path / "alp" / "train-00000-of-00001-297892d5d4e8a0ac.parquet", alp)
    got = list(load_source("alpacare", tmp_path / "alp", train_rows=2))
    assert [s.split for s in got] == ["train", "train", "validation"]
    assert got[0].question == "##Instruction: Explain 0.\n\n##Input: context" and got[1].question == "##Instruction: Explain 1."

    pmc = [{"instruction": "You're a doctor.\nAnswer with the best option directly.", "source": "medqa_train", "sample_id": 0,
            "input": "###Question: Best treatment?\n###Options:\nA. Ampicillin\nB. Ceftriaxone\nC. Doxycycline\nD. Nitrofurantoin\n",
            "output": "###Answer: OPTION D IS CORRECT."},
           {"instruction": "Describe.", "input": "UMLS term X", "output": "X is ...", "source": "umls", "sample_id": None}]
    a, b = load_source("pmc_llama_instructions", write_json(tmp_path / "pmc" / "release.json", pmc))
    assert a.task == "mcq" and a.answer == "D" and a.options["A"] == "Ampicillin" and "##Question:\nBest treatment?" in a.question
    assert "D. Nitrofurantoin" in question_text(a) and b.task == "text_qa" and b.meta["source"] == "umls"

    bhc = tmp_path / "bhc" / "mimic-iv-bhc.csv"
    bhc.parent.mkdir()
    bhc.write_text('note_id,input,target,input_tokens,target_tokens\n10000032-DS-21,"Admitted with pain.\nTreated.",'
                   'Pain resolved.,7,3\n', encoding="utf-8")  # fmt: skip
    (n,) = load_source("mimic_ext_bhc", bhc.parent, n_holdout=0)
    assert n.question.endswith("##Input: Admitted with pain.\nTreated.") and target_text(n) == "Pain resolved."
    assert "10000032" not in json.dumps(n.to_dict())  # the note id (it embeds the subject id) is not copied
