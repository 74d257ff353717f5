"""Tests for medmo.data.cells: masks -> instances -> boxes -> tiles -> grounding / counting samples."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from medmo.data.cells import (
    CellBox,
    CellOptions,
    boxes_from_labels,
    boxes_in_tile,
    build_cells,
    instances_from_mask,
    paired_files,
    tile_samples,
    tile_windows,
)
from medmo.data.io import read_records
from medmo.records import ImageRef


def _disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_instance_mask_boxes_are_exact():
    lab = np.zeros((40, 60), np.int32)
    lab[5:10, 2:12] = 1
    lab[20:35, 30:41] = 7
    got = boxes_from_labels(lab)
    assert [(c.label, c.box, c.area) for c in got] == [(1, [2, 5, 12, 10], 50), (7, [30, 20, 41, 35], 165)]
    assert instances_from_mask(lab) is not None and instances_from_mask(lab).max() == 7


def test_binary_mask_components_and_watershed():
    fg = _disc((60, 90), 30, 25, 14) | _disc((60, 90), 30, 50, 14)  # two touching cells
    fg |= _disc((60, 90), 10, 80, 5)
    assert len(boxes_from_labels(instances_from_mask(fg.astype(np.uint8) * 255))) == 2
    split = boxes_from_labels(instances_from_mask(fg, watershed=True, min_distance=8))
    assert len(split) == 3
    xs = sorted(c.box[0] for c in split)
    assert xs[0] == 11 and 35 <= xs[1] <= 38  # the touching pair is cut near x = 37


def test_colour_coded_mask():
    m = np.zeros((10, 10, 3), np.uint8)
    m[1:3, 1:3] = (255, 0, 0)
    m[5:9, 5:9] = (0, 255, 0)
    assert sorted(c.area for c in boxes_from_labels(instances_from_mask(m))) == [4, 16]


@pytest.mark.parametrize("w,h,tile,ov", [(512, 512, 256, 48), (660, 550, 200, 32), (100, 80, 256, 16), (1000, 300, 300, 0)])
def test_tile_windows_cover_with_overlap(w, h, tile, ov):
    wins = tile_windows(w, h, tile, ov)
    covered = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in wins:
        assert x1 - x0 == min(tile, w) and y1 - y0 == min(tile, h)
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    xs = sorted({x0 for x0, *_ in wins})
    assert all(b - a <= tile - ov for a, b in zip(xs, xs[1:]))


def test_boxes_cut_by_tile_border_are_dropped_image_border_kept():
    opts = CellOptions(min_area=10, min_side=2)
    cells = [
        CellBox(1, [0, 10, 20, 30], 300),  # touches the image border: kept
        CellBox(2, [90, 10, 110, 30], 300),  # crosses the tile's right border at x=100: dropped
        CellBox(3, [40, 40, 43, 43], 5),  # too small: dropped
        CellBox(4, [150, 150, 160, 160], 80),  # another tile
    ]
    kept, dropped = boxes_in_tile(cells, (0, 0, 100, 100), (200, 200), opts)
    assert [c.label for c in kept] == [1] and dropped == 2
    kept, _ = boxes_in_tile(cells, (80, 0, 180, 100), (200, 200), opts)
    assert [c.box for c in kept] == [[10, 10, 30, 30]]  # in tile coordinates


def test_tile_samples_largest_and_counts():
    ref = ImageRef("t.png", 100, 100)
    cells = [CellBox(1, [0, 0, 10, 10], 100), CellBox(2, [50, 50, 80, 80], 900), CellBox(3, [20, 20, 30, 30], 100)]
    samples = {s.meta["kind"]: s for s in tile_samples(ref, cells, 0, "k", CellOptions(), random.Random(0))}
    assert set(samples) == {"all_cells", "largest_cell", "count", "count_compare"}
    assert len(samples["all_cells"].boxes) == 3 and samples["largest_cell"].boxes[0].box == [50, 50, 80, 80]
    assert samples["count"].answer == "3"
    k = samples["count_compare"].meta["k"]
    assert samples["count_compare"].answer == ("yes" if 3 > k else "no") and f"more than {k}" in samples["count_compare"].question
    for s in samples.values():
        s.validate()
    # With a cut cell the count is ambiguous: no counting or largest questions.
    kinds = {s.meta["kind"] for s in tile_samples(ref, cells, 1, "k", CellOptions(), random.Random(0))}
    assert kinds == {"all_cells"}
    # Two similar largest cells: no "largest" question.
    close = [CellBox(1, [0, 0, 10, 10], 100), CellBox(2, [20, 20, 30, 30], 95)]
    assert "largest_cell" not in {s.meta["kind"] for s in tile_samples(ref, close, 0, "k", CellOptions(), random.Random(0))}


def test_build_from_user_folders(tmp_path):
    imgs, masks = tmp_path / "img", tmp_path / "msk"
    imgs.mkdir(), masks.mkdir()
    rng = np.random.default_rng(0)
    lab = np.zeros((300, 300), np.uint16)
    centres = [(40 + 70 * i, 40 + 70 * j) for i in range(4) for j in range(4)]
    for n, (cy, cx) in enumerate(centres, start=1):
        lab[_disc(lab.shape, cy, cx, 12)] = n
    Image.fromarray((rng.random((300, 300)) * 50 + (lab > 0) * 150).astype(np.uint8)).save(imgs / "a.png")
    Image.fromarray(lab).save(masks / "a_mask.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(imgs / "lonely.png")
    assert [(i.name, m.name) for i, m in paired_files(imgs, masks)[0]] == [("a.png", "a_mask.png")]
    report = build_cells(tmp_path / "out", images_dir=imgs, masks_dir=masks,
                         options=CellOptions(tile_size=160, overlap=40))  # fmt: skip
    assert report["cells"] == 16 and report["skipped"] == ["lonely.png: no mask with the same stem in " + str(masks)]
    records = list(read_records(report["records"], strict=True, check_images=True))
    assert len(records) == report["samples"] > 0
    alls = [s for s in records if s.meta["kind"] == "all_cells"]
    # Every cell appears whole in at least one tile (cells are 25 px, overlap is 40 px).
    assert sum(len(s.boxes) for s in alls) >= 16
    for s in alls:
        for b in s.boxes:
            assert b.box[2] - b.box[0] == 25 and b.box[3] - b.box[1] == 25


def test_build_bundled_default(tmp_path):
    report = build_cells(tmp_path, options=CellOptions(tile_size=256, overlap=48))
    assert report["cells"] > 100 and report["boxes"] > 100 and not report["skipped"]
    records = list(read_records(tmp_path / "cells.jsonl", strict=True, check_images=True))
    assert {s.task for s in records} >= {"grounding"} and all(s.modality == "microscopy" for s in records)
    assert len({s.id for s in records}) == len(records)


def _ctc_and_bacteria(root):
    import tifffile

    ds = root / "ctc" / "Fluo-N2DH-SIM+"
    (ds / "01").mkdir(parents=True)
    (ds / "01_GT" / "SEG").mkdir(parents=True)
    tifffile.imwrite(ds / "01" / "t000.tif", np.full((100, 200), 900, np.uint16))
    mask = np.zeros((100, 200), np.uint16)
    for i in range(12):  # 12 cells of 8 x 10 px in a row
        mask[10:20, 5 + 15 * i : 13 + 15 * i] = i + 1
    mask[50:90, 100:104] = 13  # one elongated cell
    tifffile.imwrite(ds / "01_GT" / "SEG" / "man_seg000.tif", mask)
    (root / "bac" / "images").mkdir(parents=True)
    (root / "bac" / "labels").mkdir()
    Image.new("RGB", (640, 640)).save(root / "bac" / "images" / "a.jpg")
    (root / "bac" / "labels" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n0 0.52 0.5 0.1 0.1\n")


def test_cell_set_from_published_releases_reports_size_shape_and_density(tmp_path, capsys):
    from medmo.cli import main
    from medmo.data.cell_stats import cell_stats
    from medmo.data.cells import build_cell_set

    _ctc_and_bacteria(tmp_path)
    report = build_cell_set(tmp_path / "out", [("ctc", tmp_path / "ctc"), ("bacteria", tmp_path / "bac")], max_boxes=100)
    recs = list(read_records(report["records"]))
    assert sorted(s.source for s in recs) == ["bacteria", "ctc"] and all(s.task == "grounding" for s in recs)
    ctc = next(s for s in recs if s.source == "ctc")
    assert len(ctc.boxes) == 13 and ctc.meta["box_convention"] == "pixel@768x768"  # every cell in one record
    st = report["stats"]["by_source"]["ctc"]
    assert st["cells"] == 13 and st["cells_per_image"]["median"] == 13 and st["cells_per_image_histogram"]["11-30"] == 1
    assert st["box_width_px"]["median"] == 8 and st["box_height_px"]["median"] == 10 and st["small_box_share"] == round(12 / 13, 4)
    assert st["elongated_share"] == round(1 / 13, 4) and st["cells_per_megapixel"]["median"] == 650.0  # 13 / 0.02 MP
    assert report["stats"]["by_source"]["bacteria"]["overlapping_box_share"] == 1.0  # its two boxes overlap
    assert report["stats"]["all"]["images"] == 2 and (tmp_path / "out" / "cells_stats.json").is_file()
    assert cell_stats(recs) == report["stats"]

    assert main(["data", "cells", "--from", f"ctc={tmp_path / 'ctc'}", "--out", str(tmp_path / "o2"), "--max-boxes", "10"]) == 0
    out = capsys.readouterr().out
    assert "0 records, 1 images left out" in out and "ctc:" in out
    assert main(["data", "cells", "--stats", report["records"]]) == 0
    out = capsys.readouterr().out
    assert "ctc: 1 images, 13 cells; cells/image median 13" in out and "cells/MP" in out
    assert main(["data", "cells", "--from", "ctc", "--out", str(tmp_path / "o3")]) == 2
