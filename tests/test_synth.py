"""The nano synthetic dataset: determinism, disjoint splits, every task, valid boxes on drawn findings."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmo.data import synth
from medmo.data.io import read_records
from medmo.records import TASKS, Sample


def _read(path: Path) -> list[Sample]:
    return [Sample.from_dict(json.loads(line)) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def nano(tmp_path_factory):
    out = tmp_path_factory.mktemp("nano")
    paths = synth.build_nano(out, n_train=60, n_val=10, n_test=40, seed=3)
    return out, paths, {k: _read(p) for k, p in paths.items()}


def test_writes_three_splits_with_valid_records(nano):
    out, paths, recs = nano
    assert set(paths) == {"train", "validation", "test"}
    for split, records in recs.items():
        assert records, split
        for r in records:
            r.validate()
            assert r.split == split
            for ref in r.images:
                assert not Path(ref.path).is_absolute()
                with Image.open(out / ref.path) as im:
                    assert im.size == (ref.width, ref.height) == (128, 128)


def test_every_task_but_retrieval_and_several_modalities(nano):
    _, _, recs = nano
    tasks = {r.task for r in recs["train"]}
    assert tasks == set(TASKS) - {"retrieval"}
    assert len({r.modality for r in recs["train"] if r.images}) >= 5


def test_same_seed_same_bytes_other_seed_differs(tmp_path, nano):
    a = synth.build_nano(tmp_path / "a", n_train=6, n_val=2, n_test=2, seed=3)
    b = synth.build_nano(tmp_path / "b", n_train=6, n_val=2, n_test=2, seed=3)
    c = synth.build_nano(tmp_path / "c", n_train=6, n_val=2, n_test=2, seed=4)
    assert a["train"].read_bytes() == b["train"].read_bytes()
    img = "images/train/train-000000.png"
    assert (tmp_path / "a" / img).read_bytes() == (tmp_path / "b" / img).read_bytes()
    assert (tmp_path / "a" / img).read_bytes() != (tmp_path / "c" / img).read_bytes()
    # the first images of a bigger build are the same as a smaller build's (each image has its own stream)
    out, _, recs = nano
    assert (tmp_path / "a" / img).read_bytes() == (out / img).read_bytes()


def test_splits_share_no_image_or_id(nano):
    out, _, recs = nano
    digests = {}
    for split, records in recs.items():
        paths = {r.images[0].path for r in records if r.images}
        digests[split] = {(out / p).read_bytes() for p in paths}
    assert not digests["train"] & digests["test"]
    assert not digests["train"] & digests["validation"]
    ids = [r.id for rs in recs.values() for r in rs]
    assert len(ids) == len(set(ids))


def test_text_qa_holds_out_the_wording_not_the_fact(nano):
    """Test questions ask facts the training split teaches, in a wording it never uses, so n-gram
    decontamination keeps the training copies."""
    from medmo.data.decontam import build_index

    _, _, recs = nano
    train = [r for r in recs["train"] if r.task == "text_qa"]
    test = [r for r in recs["test"] if r.task == "text_qa"]
    assert train and test
    assert not {r.question for r in train} & {r.question for r in test}
    wordings = dict(synth.TEXT_FACTS)
    assert all(r.question in wordings[r.answer][:2] for r in train)  # the facts' training wordings
    assert all(r.question == wordings[r.answer][2] for r in test)  # the same facts, held-out wording
    index = build_index([("test", test)], hasher=lambda path: path)
    assert not any(index.text_overlap(r.question) for r in train)
    assert all(len(set(w)) == 3 for w in wordings.values())


def test_flat_backgrounds_are_flagged_and_recorded(tmp_path):
    rng = np.random.default_rng(1)
    spread = {True: [], False: []}
    for _ in range(40):
        _, bg, _, _, flat = synth.render(rng, 128)
        spread[flat].append(float(bg.std(axis=(0, 1)).max()))
    assert spread[True] and spread[False]
    assert max(spread[True]) < 0.02  # flat: +-0.02 around one colour plus 0.01 noise
    assert np.median(spread[False]) > 2 * np.median(spread[True])  # textured: the source image's range
    recs = synth.build_nano(tmp_path, n_train=30, n_val=2, n_test=2)
    rows = [r for r in read_records(recs["train"]) if r.images]
    assert {r.meta["background"] for r in rows} == {"flat", "textured"}
    assert all(r.meta["n_findings"] == len(r.meta["findings"]) for r in rows)
    assert all(len(r.boxes) == r.meta["n_findings"] for r in rows if r.task == "grounding" and r.meta["n_findings"] == 1)


def test_boxes_cover_the_drawn_finding():
    rng = np.random.default_rng(0)
    seen = 0
    for _ in range(30):
        img, bg, _, findings, _ = synth.render(rng, 128)
        diff = np.abs(img.astype(np.float32) / 255 - bg).max(axis=2)
        outside = np.ones_like(diff, dtype=bool)
        for f in findings:
            x1, y1, x2, y2 = (int(v) for v in f.box)
            assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 128
            inside = diff[y1:y2, x1:x2]
            assert (inside > 0.15).mean() > 0.4, f  # most of the box is the finding, not background
            outside[max(0, y1 - 1) : y2 + 1, max(0, x1 - 1) : x2 + 1] = False
            seen += 1
        assert diff[outside].max() < 0.01  # nothing was painted outside the boxes
    assert seen > 20


def test_answers_are_balanced_and_baselines_are_weak(nano):
    _, _, recs = nano
    closed = Counter(r.answer for r in recs["train"] if r.task == "closed_vqa")
    assert set(closed) == {"yes", "no"} and min(closed.values()) / sum(closed.values()) > 0.3
    letters = Counter(r.answer for r in recs["train"] if r.task == "mcq")
    assert len(letters) >= 4  # options in a fixed order per question type: letters A-G
    base = synth.baselines(recs["train"], recs["test"])
    assert 0.3 < base["closed_vqa_majority_acc"] < 0.7
    assert base["mcq_majority_acc"] < 0.45
    assert base["open_vqa_majority_acc"] < 0.3
    assert 0 <= base["grounding_mean_box_iou"] < 0.2


def test_reports_negate_absent_findings(nano):
    _, _, recs = nano
    for r in recs["train"]:
        if r.task == "report":
            present = {f[0] for f in r.meta["findings"]}
            for c in synth.CLASSES:
                assert (f"No {c}." in r.findings) == (c not in present)


def test_report_findings_are_read_by_the_factuality_labeller(nano):
    findings = pytest.importorskip("medmo.findings")
    name = {"lesion": "lung lesion"}
    _, _, recs = nano
    reports = [r for r in recs["train"] if r.task == "report"]
    for r in reports:
        positive = {k for k, v in findings.extract_findings(r.answer).items() if v}
        assert positive == {name.get(f[0], f[0]) for f in r.meta["findings"]}, r.answer


@pytest.mark.parametrize("size", [32, 64])
def test_small_images_hold_findings_drawn_to_scale(tmp_path, size):
    """bench/eval_batch_bench.py builds 64 px data; 64 px used to fail in place_findings (high - low < 0)."""
    paths = synth.build_nano(tmp_path, n_train=40, n_val=0, n_test=4, image_size=size, seed=1)
    recs = _read(paths["train"])
    boxes = [b.box for r in recs if r.task == "grounding" for b in r.boxes]
    assert len(boxes) > 10
    for x1, y1, x2, y2 in boxes:
        assert 0 <= x1 < x2 <= size and 0 <= y1 < y2 <= size
    # findings cover the same share of the image as at 128 px (2-8%), not four or sixteen times more
    share = np.median([(x2 - x1) * (y2 - y1) / size**2 for x1, y1, x2, y2 in boxes])
    assert 0.02 < share < 0.08
    with Image.open(tmp_path / recs[0].images[0].path) as im:
        assert im.size == (size, size)


def test_too_small_images_are_refused_with_the_smallest_size():
    with pytest.raises(ValueError, match="image_size must be at least 32 px .*got 31"):
        synth.build_nano("/nonexistent", n_train=1, n_val=1, n_test=1, image_size=31)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_worker_count_does_not_change_a_byte(tmp_path):
    """Images and JSONL from 2 worker processes (through the CLI) and from every CPU equal one process's."""
    from medmo.cli import main

    sizes = dict(n_train=9, n_val=2, n_test=3, image_size=32, seed=5)
    synth.build_nano(tmp_path / "one", workers=1, **sizes)
    assert main(["data", "synth", "--out", str(tmp_path / "two"), "--n-train", "9", "--n-val", "2", "--n-test", "3",
                 "--image-size", "32", "--seed", "5", "--workers", "2"]) == 0  # fmt: skip
    synth.build_nano(tmp_path / "all", workers=None, **sizes)
    one = _files(tmp_path / "one")
    assert len([k for k in one if k.endswith(".png")]) == 14
    for other in ("two", "all"):
        files = _files(tmp_path / other)
        assert files.keys() == one.keys()
        assert [k for k in one if one[k] != files[k]] == [], other
    train = _read(tmp_path / "two" / "train.jsonl")
    assert [r.images[0].path for r in train if r.task == "caption"] == [
        f"images/train/train-{i:06d}.png" for i in range(9)
    ]  # records in image order


def test_workers_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="workers must be at least 1"):
        synth.build_nano(tmp_path, n_train=1, n_val=1, n_test=1, workers=0)


def test_training_images_with_two_kinds_of_finding_are_asked_for_each(nano):
    _, _, recs = nano
    for split, records in recs.items():
        asked: dict[str, list[Sample]] = {}
        for r in records:
            if r.task == "grounding":
                asked.setdefault(r.images[0].path, []).append(r)
        kinds = {p: {f[0] for f in rs[0].meta["findings"]} for p, rs in asked.items()}
        if split == "train":  # every kind in the image, each with its own boxes only
            assert any(len(k) == 2 for k in kinds.values())
            for path, rs in asked.items():
                assert sorted(r.answer for r in rs) == sorted(kinds[path])
                for r in rs:
                    gold = [f[1:] for f in r.meta["findings"] if f[0] == r.answer]
                    assert [b.label for b in r.boxes] == [r.answer] * len(gold)
                    assert sorted(b.box for b in r.boxes) == sorted(gold)
        else:  # held out: one question per image
            assert all(len(rs) == 1 for rs in asked.values())
