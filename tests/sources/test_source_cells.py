"""MedMO's grounding sets in their published layouts: Bacteria, GRAZPEDWRI-DX, Cell Tracking Challenge, TissueNet."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from source_helpers import write_image

from medmo.data.sources import SourceStats, load_source
from medmo.prompts import target_text


def write_tiff(path: Path, array: np.ndarray) -> Path:
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, array)
    return path


def labels_with_cells(shape: tuple[int, int], cells: list[tuple[int, int, int, int]]) -> np.ndarray:
    """An instance-label mask with one rectangle per cell ``(x1, y1, x2, y2)`` (exclusive ends), ids 1, 2, ..."""
    m = np.zeros(shape, np.uint16)
    for i, (x1, y1, x2, y2) in enumerate(cells, 1):
        m[y1:y2, x1:x2] = i
    return m


def test_bacteria_flat_yolo_layout_tail_split_and_max_boxes(tmp_path):
    for i in range(6):
        write_image(tmp_path / "images" / f"img{i}.jpg", (100, 50))
        n = 3 if i != 5 else 5
        lines = [f"0 {0.1 + 0.15 * k:.3f} 0.5 0.1 0.2" for k in range(n)]
        (tmp_path / "labels").mkdir(exist_ok=True)
        (tmp_path / "labels" / f"img{i}.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "labels" / "img0.txt").write_text("0 0.5 0.5 0.2\n")  # a broken line
    stats = SourceStats()
    got = list(load_source("bacteria", tmp_path, stats=stats, holdout=2, max_boxes=4))
    assert [s.split for s in got] == ["train"] * 3 + ["validation"]  # img5 has 5 boxes > max_boxes
    assert stats.skipped == 1 and "img0.txt:1: expected 'class cx cy w h'" in str(stats.problems[0])
    s = got[0]
    assert s.boxes[0].box == pytest.approx([5.0, 20.0, 15.0, 30.0]) and s.answer == "Bacteria" and len(s.boxes) == 3
    assert s.meta["box_convention"] == "pixel@768x768" and "Bacteria: [ [x_min" in s.question
    assert target_text(s).startswith("Bacteria: [ [38, 307, 115, 461], [")  # x * 7.68, y * 15.36


def test_bacteria_roboflow_export_and_coco_parquet(tmp_path):
    for split in ("train", "valid"):
        write_image(tmp_path / "rf" / split / "images" / "a.jpg", (64, 64))
        (tmp_path / "rf" / split / "labels").mkdir(parents=True)
        (tmp_path / "rf" / split / "labels" / "a.txt").write_text("1 0.5 0.5 0.25 0.25\n")
    got = {s.split: s for s in load_source("bacteria", tmp_path / "rf", style="medmo-grpo")}
    assert set(got) == {"train", "validation"} and got["train"].meta["box_convention"] == "pixel"
    assert target_text(got["train"]) == "Bacteria: [ [24, 24, 40, 40] ]" and "<box>" in got["train"].question

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    Image.new("RGB", (40, 30)).save(buf, format="JPEG")
    row = {"image_id": 7, "image": {"bytes": buf.getvalue(), "path": None}, "width": 40, "height": 30,
           "objects": {"id": [1, 2], "bbox": [[1.0, 2.0, 10.0, 5.0], [20.0, 10.0, 5.0, 5.0]], "category": [1, 1]}}
    (tmp_path / "hf" / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "hf" / "data" / "test-00000-of-00001.parquet")
    (c,) = load_source("bacteria", tmp_path / "hf", image_dir=tmp_path / "img", style="qwen")
    assert c.split == "test" and [b.box for b in c.boxes] == [[1.0, 2.0, 11.0, 7.0], [20.0, 10.0, 25.0, 15.0]]
    assert "box_convention" not in c.meta and c.question == ""


def test_grazpedwri_yolo_and_supervisely_with_patient_split(tmp_path):
    stems = ["0038_0775938745_03_WRI-L2_M014", "0038_0775938746_01_WRI-R1_M014", "1234_0000000001_01_WRI-L1_F009"]
    for stem in stems:
        write_image(tmp_path / "images_part1" / f"{stem}.png", (200, 400))
    y = tmp_path / "folder_structure" / "yolov5"
    (y / "labels").mkdir(parents=True)
    (y / "meta.yaml").write_text("names:\n- boneanomaly\n- bonelesion\n- foreignbody\n- fracture\n- metal\n"
                                 "- periostealreaction\n- pronatorsign\n- softtissue\n- text\n")  # fmt: skip
    (y / "labels" / f"{stems[0]}.txt").write_text("3 0.5 0.5 0.1 0.05\n8 0.1 0.05 0.1 0.05\n")
    (y / "labels" / f"{stems[1]}.txt").write_text("8 0.1 0.05 0.1 0.05\n")
    (y / "labels" / f"{stems[2]}.txt").write_text("")
    stats = SourceStats()
    got = {s.id: s for s in load_source("grazpedwri_dx", tmp_path, stats=stats)}
    assert len(got) == 2 and stats.filtered == 1  # the image without boxes is left out
    first = next(s for s in got.values() if len(s.boxes) == 2)
    assert [b.label for b in first.boxes] == ["fracture", "text"] and first.answer == "fracture, text"
    assert first.boxes[0].box == pytest.approx([90.0, 190.0, 110.0, 210.0]) and first.modality == "x-ray"
    assert len({s.split for s in got.values()}) == 1  # both images of patient 0038 share a split
    assert "Finding: [ [x_min" in first.question and first.meta["box_convention"] == "pixel@768x768"
    assert not list(load_source("grazpedwri_dx", tmp_path, exclude=("axis", "text", "fracture")))

    ann = tmp_path / "sv" / "folder_structure" / "supervisely" / "wrist" / "ann"
    ann.mkdir(parents=True)
    write_image(tmp_path / "sv" / "images" / f"{stems[0]}.png", (200, 400))
    objs = [{"classTitle": "fracture", "points": {"exterior": [[10, 20], [30, 60]]}},
            {"classTitle": "axis", "points": {"exterior": [[0, 0], [5, 5]]}}]  # fmt: skip
    (ann / f"{stems[0]}.json").write_text(json.dumps({"objects": objs}))
    (s,) = load_source("grazpedwri_dx", tmp_path / "sv", style="medmo-grpo")
    assert [(b.label, b.box) for b in s.boxes] == [("fracture", [10.0, 20.0, 30.0, 60.0])]


def test_ctc_gold_and_silver_masks_with_sequence_splits(tmp_path):
    ds = tmp_path / "Fluo-N2DH-GOWT1"
    for seq in ("01", "02"):
        for t in range(2):
            write_tiff(ds / seq / f"t{t:03d}.tif", np.full((40, 60), 1000 * (t + 1), np.uint16))
    write_tiff(ds / "01_GT" / "SEG" / "man_seg001.tif", labels_with_cells((40, 60), [(2, 3, 12, 9), (30, 20, 50, 35)]))
    for t in range(2):
        write_tiff(ds / "01_ST" / "SEG" / f"man_seg{t:03d}.tif", labels_with_cells((40, 60), [(5, 5, 9, 9)]))
    write_tiff(ds / "02_GT" / "SEG" / "man_seg000.tif", labels_with_cells((40, 60), [(1, 1, 20, 20)]))
    write_tiff(ds / "01_GT" / "TRA" / "man_track001.tif", labels_with_cells((40, 60), [(4, 4, 5, 5)]))  # not read
    gold = list(load_source("ctc", tmp_path))
    assert sorted((s.split, s.meta["sequence"], len(s.boxes)) for s in gold) == [("test", "02", 1), ("train", "01", 2)]
    g = next(s for s in gold if s.split == "train")
    assert [b.box for b in g.boxes] == [[2.0, 3.0, 12.0, 9.0], [30.0, 20.0, 50.0, 35.0]]
    assert g.images[0].path.endswith("01/t001.tif") and (g.images[0].width, g.images[0].height) == (60, 40)
    assert g.meta["truth"] == "gold" and g.meta["dataset"] == "Fluo-N2DH-GOWT1" and g.modality == "microscopy"
    both = list(load_source("ctc", ds, split="train", truth="gold+silver"))
    assert sorted((s.images[0].path[-8:], s.meta["truth"]) for s in both) == [("t000.tif", "silver"), ("t001.tif", "gold")]
    assert len(list(load_source("ctc", ds, truth="silver"))) == 2
    with pytest.raises(FileNotFoundError, match="no CTC dataset"):
        list(load_source("ctc", tmp_path / "Fluo-N2DH-GOWT1" / "01_GT"))


def test_tissuenet_npz_items_rendered_and_boxed_per_compartment(tmp_path):
    x = np.random.default_rng(0).random((3, 32, 32, 2)).astype(np.float32)
    y = np.zeros((3, 32, 32, 2), np.int32)
    y[0, 2:10, 3:9, 0] = 1  # whole-cell instances
    y[0, 20:30, 20:25, 0] = 2
    y[0, 4:6, 4:6, 1] = 1  # a nucleus
    y[1, 1:3, 1:3, 0] = 1  # too small for min_area 9
    for i in range(5):
        y[2, i * 5 : i * 5 + 4, 0:4, 0] = i + 1
    np.savez(tmp_path / "tissuenet_v1.1_val.npz", X=x, y=y, tissue_list=np.array(["breast", "colon", "lung"]))
    stats = SourceStats()
    got = list(load_source("tissuenet", tmp_path, image_dir=tmp_path / "png", min_area=9, max_boxes=4, stats=stats))
    assert len(got) == 1 and stats.filtered == 2  # one image without big-enough cells, one with 5 > max_boxes
    (s,) = got
    assert s.split == "validation" and [b.box for b in s.boxes] == [[3.0, 2.0, 9.0, 10.0], [20.0, 20.0, 25.0, 30.0]]
    assert s.meta["tissue"] == "breast" and s.meta["compartment"] == "whole-cell"
    with Image.open(s.images[0].path) as im:
        arr = np.asarray(im)
    assert im.size == (32, 32) and arr[..., 0].max() == 0 and arr[..., 2].max() == 255  # nuclear in blue
    (n,) = load_source("tissuenet", tmp_path, image_dir=tmp_path / "png", compartment="nuclear", min_area=1, max_boxes=4)
    assert [b.box for b in n.boxes] == [[4.0, 4.0, 6.0, 6.0]] and n.images[0].path == s.images[0].path
    np.savez_compressed(tmp_path / "c" / "tissuenet_v1.1_test.npz" if (tmp_path / "c").mkdir() is None else None, X=x, y=y)
    assert len(list(load_source("tissuenet", tmp_path / "c", image_dir=tmp_path / "png", min_area=9, max_boxes=4))) == 1
