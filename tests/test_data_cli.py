"""Tests for ``medmo data ...`` through the real ``medmo`` entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from medmo.cli import main
from medmo.data.io import read_records, write_jsonl
from medmo.records import ImageRef, Sample


def _records(tmp_path, n=4):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "i.png")
    samples = [Sample(f"s{i}", "open_vqa", "t", "train", question=f"q{i}?", answer="a", images=[ImageRef("i.png", 8, 8)])
               for i in range(n)]  # fmt: skip
    return write_jsonl(samples, tmp_path / "r.jsonl")


def test_validate_good_and_bad(tmp_path, capsys):
    good = _records(tmp_path)
    assert main(["data", "validate", str(good), "--check-images"]) == 0
    assert "4 records read, none skipped" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + "{oops\n")
    assert main(["data", "validate", str(bad)]) == 1
    assert "malformed_json: 1" in capsys.readouterr().out
    assert main(["data", "validate", str(bad), "--strict"]) == 1
    assert "bad.jsonl:5: malformed_json" in capsys.readouterr().out
    assert main(["data", "validate", str(tmp_path / "missing.jsonl")]) == 2


def test_build_and_export(tmp_path, capsys):
    _records(tmp_path, n=6)
    (tmp_path / "mix.yaml").write_text("seed: 0\nsources:\n  - records: r.jsonl\n    max_samples: 5\n")
    assert main(["data", "build", str(tmp_path / "mix.yaml"), "--out", str(tmp_path / "mix")]) == 0
    out = capsys.readouterr().out
    assert "5 records in 1 shards" in out and "selected 5" in out
    assert len(list(read_records(tmp_path / "mix"))) == 5
    assert main(["data", "export", str(tmp_path / "mix"), "--format", "swift", "--out", str(tmp_path / "s.jsonl")]) == 0
    rows = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and rows[0]["messages"][1]["content"] == "a"


def test_a_source_left_empty_by_deduplication_is_a_note_not_an_error(tmp_path, capsys):
    _records(tmp_path, n=3)
    (tmp_path / "mix.yaml").write_text("seed: 0\nsources:\n  - records: r.jsonl\n  - records: r.jsonl\n")
    assert main(["data", "build", str(tmp_path / "mix.yaml"), "--out", str(tmp_path / "mix")]) == 0
    out = capsys.readouterr().out
    assert "duplicate of an earlier source or contaminated (3 duplicates" in out and "image paths" not in out
    assert len(list(read_records(tmp_path / "mix"))) == 3
    # a source whose every record points at a missing image is still an error naming the likely cause
    (tmp_path / "i.png").unlink()
    (tmp_path / "mix2.yaml").write_text("seed: 0\nsources:\n  - records: r.jsonl\n")
    assert main(["data", "build", str(tmp_path / "mix2.yaml"), "--out", str(tmp_path / "mix2")]) == 2
    err = capsys.readouterr().err
    assert "lost all 3 records ({'missing_image': 3})" in err and "image paths resolve" in err


def test_cells_from_folders(tmp_path, capsys):
    (tmp_path / "im").mkdir(), (tmp_path / "mk").mkdir()
    lab = np.zeros((64, 64), np.uint8)
    lab[5:15, 5:15], lab[30:50, 30:45] = 1, 2
    Image.fromarray((lab > 0).astype(np.uint8) * 200).save(tmp_path / "im" / "x.png")
    Image.fromarray(lab).save(tmp_path / "mk" / "x.png")
    argv = ["data", "cells", "--images", str(tmp_path / "im"), "--masks", str(tmp_path / "mk"), "--out", str(tmp_path / "c")]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cells"] == 2 and report["boxes"] == 2
    assert main(["data", "cells", "--images", str(tmp_path / "im"), "--out", str(tmp_path / "c2")]) == 2


def test_sources_lists_registry(capsys):
    pytest.importorskip("medmo.data.sources")
    from medmo.data.sources import describe

    assert main(["data", "sources"]) == 0
    out = capsys.readouterr().out
    assert all(r["name"] in out for r in describe())
    assert main(["data", "sources", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(describe()))


def test_synth_small(tmp_path, capsys):
    pytest.importorskip("medmo.data.synth")
    argv = ["data", "synth", "--out", str(tmp_path), "--n-train", "2", "--n-val", "1", "--n-test", "1"]
    assert main(argv) == 0
    assert "train:" in capsys.readouterr().out
    assert len(list(read_records(tmp_path / "train.jsonl", strict=True, check_images=True))) > 0


def test_data_without_subcommand_prints_help(capsys):
    assert main(["data"]) == 2
    assert "validate" in capsys.readouterr().out


BAD_TYPES = {
    "answer": 5, "images": "i.png", "label": 7, "option": 1, "frame": "0", "box": ["1", "2", "3", "4"],
    "inf": [0, 0, float("inf"), 4], "negative": [-5, 0, 3, 4], "index": -1,
}  # fmt: skip


def _bad_type_record(kind: str, value) -> dict:
    d = {"id": f"bad-{kind}", "task": "grounding", "source": "t", "split": "train", "answer": "c",
         "boxes": [{"label": "c", "box": [1, 1, 4, 4], "image": 0}], "images": [{"path": "i.png"}]}  # fmt: skip
    if kind in ("answer", "images"):
        d[kind] = value
    elif kind == "label":
        d["boxes"][0]["label"] = value
    elif kind == "option":
        d.update(task="mcq", answer="A", options={"A": value, "B": "b"}, boxes=[])
    elif kind == "frame":
        d["images"][0]["frame"] = value
    elif kind == "index":
        d["boxes"][0]["image"] = value
    else:
        d["boxes"][0]["box"] = value
    return d


def test_wrong_field_types_fail_alone_in_validate_and_build(tmp_path, capsys):
    """Each wrong type is one reported record (file and line, field named); the build writes the good ones."""
    good = _records(tmp_path, n=3)
    f = tmp_path / "mixed.jsonl"
    lines = good.read_text().splitlines() + [json.dumps(_bad_type_record(k, v)) for k, v in BAD_TYPES.items()]
    lines.append(lines[0])  # a duplicate id
    f.write_text("\n".join(lines) + "\n")
    assert main(["data", "validate", str(f)]) == 1
    out = capsys.readouterr().out
    assert f"3 records read, {len(BAD_TYPES) + 1} skipped" in out and "Traceback" not in out
    assert f"{f} line 4: invalid_record: field 'answer' must be a string, got an integer 5" in out
    assert f"{f} line 5: malformed_record: field 'images' must be a list, got a string" in out
    assert main(["data", "validate", str(f), "--strict"]) == 1
    assert f"{f}:4: invalid_record: field 'answer'" in capsys.readouterr().out
    (tmp_path / "mix.yaml").write_text("sources:\n  - records: mixed.jsonl\n")
    assert main(["data", "build", str(tmp_path / "mix.yaml"), "--out", str(tmp_path / "mix")]) == 0
    assert "read 3, skipped 10" in capsys.readouterr().out
    assert sorted(s.id for s in read_records(tmp_path / "mix")) == ["s0", "s1", "s2"]
    report = json.loads((tmp_path / "mix" / "mixture_report.json").read_text())
    assert report["sources"][0]["skip_reasons"] == {"invalid_record": 8, "malformed_record": 1, "duplicate_id": 1}


def test_check_images_reports_a_truncated_image(tmp_path, capsys):
    good = _records(tmp_path)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / "i.png")
    data = (tmp_path / "i.png").read_bytes()
    (tmp_path / "i.png").write_bytes(data[: len(data) // 2])
    assert main(["data", "validate", str(good)]) == 0
    capsys.readouterr()
    assert main(["data", "validate", str(good), "--check-images"]) == 1
    out = capsys.readouterr().out
    assert "0 records read, 4 skipped (unreadable_image: 4)" in out and "i.png (OSError: image file is truncated)" in out


def _with_faults(tmp_path):
    """r.jsonl's four good records, then a record of the wrong type (line 5) and a repeated id (line 6)."""
    good = _records(tmp_path)
    lines = good.read_text().splitlines()
    repeat = json.dumps({**json.loads(lines[1]), "question": "another question?"})
    f = tmp_path / "faults.jsonl"
    f.write_text("\n".join(lines + [json.dumps(_bad_type_record("answer", 5)), repeat]) + "\n")
    return f


def test_validate_names_each_repeated_id_with_where_it_was_first_used(tmp_path, capsys):
    f = _with_faults(tmp_path)
    assert main(["data", "validate", str(f)]) == 1
    out = capsys.readouterr().out
    assert "4 records read, 2 skipped (invalid_record: 1, duplicate_id: 1)" in out
    assert f"{f} line 6: duplicate_id: id 's1' is already used by an earlier record (line 2)" in out
    lines = f.read_text().splitlines()
    f.write_text("\n".join([lines[0], lines[5], lines[1]]) + "\n")  # the repeat comes first now
    assert main(["data", "validate", str(f), "--strict"]) == 1
    assert f"invalid record: {f}:3: duplicate_id: id 's1' is already used by an earlier record (line 2)" in capsys.readouterr().out


@pytest.mark.parametrize("workers", ["1", "2"])
def test_build_strict_stops_at_the_first_bad_record_and_keeps_the_previous_build(tmp_path, capsys, workers):
    f = _with_faults(tmp_path)
    (tmp_path / "mix.yaml").write_text("sources:\n  - records: faults.jsonl\n")
    build = ["data", "build", str(tmp_path / "mix.yaml"), "--out", str(tmp_path / "mix"), "--workers", workers]
    assert main(build) == 0  # by default: each bad record reported with file and line, the good ones built
    out = capsys.readouterr().out
    assert "faults.jsonl: read 4, skipped 2" in out
    assert f"    {f} line 5: invalid_record: field 'answer' must be a string" in out
    assert f"    {f} line 6: duplicate_id: id 's1' is already used by an earlier record (line 2)" in out
    report = json.loads((tmp_path / "mix" / "mixture_report.json").read_text())
    assert [p.split(": ")[0] for p in report["sources"][0]["problems"]] == [f"{f} line 5", f"{f} line 6"]
    before = sorted(s.id for s in read_records(tmp_path / "mix"))
    assert main([*build, "--strict"]) == 1
    err = capsys.readouterr().err
    assert f"invalid record: {f}:5: invalid_record: field 'answer' must be a string, got an integer 5" in err
    assert f"{tmp_path / 'mix'} is left as it was" in err and "Traceback" not in err
    assert sorted(s.id for s in read_records(tmp_path / "mix")) == before
    assert json.loads((tmp_path / "mix" / "mixture_report.json").read_text()) == report
    assert not list(tmp_path.glob(".mix.building-*"))  # the unfinished build is gone
    assert main([*build[:4], str(tmp_path / "new"), "--strict", "--workers", workers]) == 1
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".new.*"))  # no half-written new folder either
