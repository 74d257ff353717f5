"""verl custom reward function: verl's call signature, its parquet row layout, fixed metric keys."""

from __future__ import annotations

import json

import pytest

from medmo.gold import gold_json
from medmo.records import Box, ImageRef, Sample
from medmo.train.verl_score import compute_score

KEYS = {"score", "accuracy", "box", "factuality", "format"}


def _row(sample: Sample) -> dict:
    """A row as MedMO's verl exporter lays it out (prompt and images omitted: scoring does not read them)."""
    return {
        "data_source": sample.source,
        "ability": sample.task,
        "reward_model": {"style": "rule", "ground_truth": gold_json(sample)},
        "extra_info": {"task": sample.task, "id": sample.id},
    }


def _score(row: dict, response: str) -> dict:
    # verl's reward manager passes these four keyword arguments
    return compute_score(
        data_source=row["data_source"],
        solution_str=response,
        ground_truth=row["reward_model"]["ground_truth"],
        extra_info=row["extra_info"],
    )


def test_grounding_row_scores_giou_and_format():
    s = Sample("g", "grounding", "nano_synth", "train", answer="cyst",
               boxes=[Box("cyst", [32, 32, 64, 64])], images=[ImageRef("x.png", 128, 128)])  # fmt: skip
    row = _row(s)
    assert json.loads(row["reward_model"]["ground_truth"])["boxes"] == [[250, 250, 500, 500]]
    good = _score(row, "cyst <box>[[250, 250, 500, 500]]</box>")
    bad = _score(row, "cyst <box>[[600, 600, 900, 900]]</box>")
    none = _score(row, "I cannot tell.")
    assert set(good) == set(bad) == set(none) == KEYS
    assert good["box"] == pytest.approx(1.0) and good["score"] == pytest.approx(1.5)  # box 1 + 0.5 x format 1
    assert 0 < bad["box"] < good["box"]
    assert none["score"] == 0.0 and none["accuracy"] == 0.0


def test_mcq_and_closed_rows():
    mcq = Sample("m", "mcq", "nano_synth", "test", question="Which?", options={"A": "CT", "B": "MRI"}, answer="B",
                 images=[ImageRef("x.png", 8, 8)])  # fmt: skip
    assert _score(_row(mcq), "B")["accuracy"] == 1.0
    assert _score(_row(mcq), "A")["accuracy"] == 0.0
    closed = Sample("c", "closed_vqa", "nano_synth", "test", question="Is?", answer="no",
                    images=[ImageRef("x.png", 8, 8)])  # fmt: skip
    assert _score(_row(closed), "No.")["score"] == pytest.approx(1.5)


def test_plain_string_ground_truth_from_other_pipelines():
    assert compute_score("vqa_rad", "yes", "yes")["accuracy"] == 1.0  # task inferred: closed
    assert compute_score("vqa_rad", "left lung", "left lung", {"task": "open_vqa"})["accuracy"] == 1.0
    weighted = compute_score("x", "yes", "yes", {"reward_weights": {"accuracy": 2.0, "format": 0.0}})
    assert weighted["score"] == pytest.approx(2.0)
    assert compute_score("x", None, "yes")["score"] == 0.0


def test_the_readme_verl_path_scores_an_exported_row_as_verls_reward_manager_calls_it(tmp_path):
    """`medmo data export --format verl` rows, scored the way verl's NaiveRewardManager calls a custom reward
    function (verl/workers/reward_manager/naive.py at 10a6180: keyword arguments, ``reward_model.ground_truth``,
    ``extra_info`` with ``num_turns`` added, a dict result whose ``score`` is the reward)."""
    import pyarrow.parquet as pq

    from medmo.cli import main
    from medmo.data.synth import build_nano

    train = build_nano(tmp_path / "nano", n_train=2, n_val=1, n_test=1, image_size=64)["train"]
    out = tmp_path / "grpo.parquet"
    assert main(["data", "export", str(train), "--format", "verl", "--out", str(out)]) == 0
    rows = pq.read_table(out).to_pylist()
    grounding = next(r for r in rows if r["ability"] == "grounding")
    gold = json.loads(grounding["reward_model"]["ground_truth"])

    def verl_call(row, response):
        extra = dict(row.get("extra_info") or {})
        extra["num_turns"] = None
        return compute_score(data_source=row["data_source"], solution_str=response,
                             ground_truth=row["reward_model"]["ground_truth"], extra_info=extra)  # fmt: skip

    right, wrong = verl_call(grounding, _answer_with_boxes(gold)), verl_call(grounding, "no idea")
    assert set(right) == set(wrong) == KEYS and isinstance(right["score"], float)
    assert right["score"] > wrong["score"] and right["box"] > 0.9
    assert all(set(verl_call(r, "yes")) == KEYS for r in rows)  # the same keys for every row (verl needs that)


def _answer_with_boxes(gold: dict) -> str:
    boxes = [b["box"] if isinstance(b, dict) else b for b in gold["boxes"]]
    return json.dumps([{"bbox_2d": [round(v) for v in box]} for box in boxes])
