"""Tests for medmo.data.io: JSONL / Parquet round trips, per-record problems, atomic shards, privacy."""

from __future__ import annotations

import codecs
import json
import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from medmo.data.io import ReadStats, RecordFileError, read_records, record_files, write_jsonl, write_parquet
from medmo.records import Box, ImageRef, Sample


def _img(folder, name="a.png", size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((size[1], size[0]), np.uint8)).save(folder / name)
    return name


def _samples(n, image="images/a.png"):
    out = []
    for i in range(n):
        ref = ImageRef(image, 40, 30)
        if i % 3 == 0:
            s = Sample(f"g{i}", "grounding", "t", "train", answer="cell", boxes=[Box("cell", [1, 2, 10.5, 20])], images=[ref])
        elif i % 3 == 1:
            s = Sample(f"m{i}", "mcq", "t", "train", question="q?", answer="B", options={"B": "two", "A": "one"}, images=[ref])
        else:
            s = Sample(f"v{i}", "open_vqa", "t", "test", question="what?", answer="lung", images=[ref], meta={"k": [1, 2]})
        out.append(s)
    return out


def _dicts(samples):
    return [s.to_dict() for s in samples]


def test_jsonl_roundtrip_resolves_relative_paths(tmp_path):
    _img(tmp_path / "images")
    src = _samples(6)
    write_jsonl(src, tmp_path / "r.jsonl")
    got = list(read_records(tmp_path / "r.jsonl"))
    assert [s.id for s in got] == [s.id for s in src]
    assert got[0].images[0].path == str(tmp_path / "images" / "a.png")
    assert got[1].options == {"B": "two", "A": "one"} and list(got[1].options) == ["B", "A"]
    assert got[2].meta == {"k": [1, 2]}
    # Absolute paths under the output folder are written relative: the folder can move.
    write_jsonl(got, tmp_path / "again.jsonl")
    line = json.loads((tmp_path / "again.jsonl").read_text().splitlines()[0])
    assert line["images"][0]["path"] == "images/a.png"
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path / "images", moved / "images")
    shutil.copy(tmp_path / "again.jsonl", moved / "again.jsonl")
    assert list(read_records(moved / "again.jsonl", check_images=True))[0].images[0].path.startswith(str(moved))


def test_parquet_shards_roundtrip(tmp_path):
    src = _samples(25)
    shards = write_parquet(src, tmp_path / "pq", shard_size=10)
    assert [p.name for p in shards] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    got = list(read_records(tmp_path / "pq"))
    expect = _dicts(src)
    for d in expect:
        d["images"][0]["path"] = str(tmp_path / "pq" / "images" / "a.png")
    assert _dicts(got) == expect
    assert list(read_records(shards[1]))[0].id == src[10].id
    # Rewriting with fewer records leaves no stale shard behind.
    assert len(write_parquet(src[:5], tmp_path / "pq", shard_size=10)) == 1
    assert len(record_files(tmp_path / "pq")) == 1


def test_parquet_interrupted_build_leaves_only_whole_shards(tmp_path):
    def gen():
        yield from _samples(15)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_parquet(gen(), tmp_path / "pq", shard_size=10)
    files = sorted(p.name for p in (tmp_path / "pq").iterdir())
    assert files == ["part-00000.parquet"]
    assert len(list(read_records(tmp_path / "pq"))) == 10


BAD_LINES = [
    '{"id": "x1", "task": "open_vqa", "source": "t", "split": "train", "answer": "a", "images": [{"path": "i.png"}]}',
    "{not json",
    '{"id": "x2", "task": "open_vqa", "source": "t", "split": "train", "answer": "a", "colour": 1}',
    '{"id": "x3", "task": "open_vqa", "source": "t", "split": "train", "answer": " ", "images": [{"path": "i.png"}]}',
    '{"id": "x4", "task": "mcq", "source": "t", "split": "train", "answer": "E", "options": {"A": "1", "B": "2"}}',
    '{"id": "x5", "task": "grounding", "source": "t", "split": "train", "answer": "c",'
    ' "boxes": [{"label": "c", "box": [0, 0, 50, 5]}], "images": [{"path": "i.png", "width": 40, "height": 30}]}',
    "",
    '{"id": "x6", "task": "open_vqa", "source": "t", "split": "train", "answer": "b", "images": [{"path": "gone.png"}]}',
    "[1, 2]",
]


def test_bad_records_are_counted_with_file_and_line(tmp_path, caplog):
    _img(tmp_path, "i.png")
    f = tmp_path / "bad.jsonl"
    f.write_text("\n".join(BAD_LINES) + "\n")
    stats = ReadStats()
    with caplog.at_level(logging.WARNING):
        got = list(read_records(f, stats=stats, check_images=True))
    assert [s.id for s in got] == ["x1"]
    assert got[0].images[0].width == 40  # filled in from the file
    assert stats.read == 1 and stats.skipped == 7
    assert stats.counts == {
        "malformed_json": 1, "unknown_field": 1, "invalid_record": 3, "missing_image": 1, "malformed_record": 1,
    }  # fmt: skip
    lines = {p.line: p.reason for p in stats.problems}
    assert lines == {2: "malformed_json", 3: "unknown_field", 4: "invalid_record", 5: "invalid_record",
                     6: "invalid_record", 8: "missing_image", 9: "malformed_record"}  # fmt: skip
    assert "outside" in stats.problems[4].message and "bad.jsonl line 6" in str(stats.problems[4])
    assert "7 skipped" in caplog.text and "bad.jsonl" in caplog.text


def test_strict_raises_with_file_and_line(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text("\n".join(BAD_LINES[:3]) + "\n")
    with pytest.raises(RecordFileError, match=r"bad.jsonl:2: malformed_json"):
        list(read_records(f, strict=True))


def test_unreadable_image_and_corrupt_shard(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nxx")
    s = Sample("a", "open_vqa", "t", "train", answer="x", images=[ImageRef("broken.png")])
    write_jsonl([s], tmp_path / "r.jsonl")
    stats = ReadStats()
    assert list(read_records(tmp_path / "r.jsonl", stats=stats, check_images=True)) == []
    assert stats.counts == {"unreadable_image": 1}
    # A truncated shard is one counted problem, and the other shards are still read.
    shards = write_parquet(_samples(12), tmp_path / "pq", shard_size=6)
    shards[0].write_bytes(shards[0].read_bytes()[:100])
    stats = ReadStats()
    assert len(list(read_records(tmp_path / "pq", stats=stats))) == 6
    assert stats.counts == {"unreadable_shard": 1}


def test_image_root_override_and_missing_path(tmp_path):
    write_jsonl(_samples(1), tmp_path / "r.jsonl")
    got = next(read_records(tmp_path / "r.jsonl", image_root=tmp_path / "elsewhere"))
    assert got.images[0].path == str(tmp_path / "elsewhere" / "images" / "a.png")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list(read_records(tmp_path / "nope.jsonl"))


def test_dicom_identifiers_reach_no_record_shard_or_log(tmp_path, caplog):
    """CT_small.dcm's patient name, ID and birth date appear in no output, log or error."""
    pydicom = pytest.importorskip("pydicom")
    import pyarrow.parquet as pq
    from pydicom.data import get_testdata_file

    from medmo.data.images import ImageLoadError, load_image, safe_dicom_meta

    dcm = tmp_path / "scan.dcm"
    shutil.copy(get_testdata_file("CT_small.dcm"), dcm)
    ds = pydicom.dcmread(dcm)
    ds.PatientBirthDate = "19440312"  # the bundled file leaves it empty; give the test something to find
    ds.save_as(dcm)
    secrets = [str(ds.PatientName), str(ds.PatientName).split("^")[0], ds.PatientID, ds.PatientBirthDate,
               ds.InstitutionName, ds.StudyInstanceUID]  # fmt: skip
    assert all(secrets)
    with caplog.at_level(logging.DEBUG):
        im = load_image(dcm)
        s = Sample("ct-1", "open_vqa", "t", "train", question="organ?", answer="lung",
                   images=[ImageRef(str(dcm), *im.size)], modality="ct", meta=safe_dicom_meta(ds))  # fmt: skip
        write_jsonl([s], tmp_path / "out" / "r.jsonl")
        write_parquet([s], tmp_path / "out" / "pq")
        with pytest.raises(ImageLoadError) as err:
            load_image(dcm, frame=3)
        bad = tmp_path / "out" / "bad.jsonl"
        bad.write_text(json.dumps({**s.to_dict(), "answer": ""}) + "\n")
        stats = ReadStats()
        list(read_records(bad, stats=stats, check_images=True))
    assert stats.skipped == 1
    blobs = [str(err.value), caplog.text, repr(stats.problems)]
    blobs += [p.read_bytes().decode("latin-1") for p in (tmp_path / "out").rglob("*") if p.is_file()]
    # Parquet pages are compressed: check the decoded rows too.
    blobs += [str(pq.read_table(p).to_pylist()) for p in (tmp_path / "out" / "pq").glob("*.parquet")]
    assert "MONOCHROME2" in blobs[-1]  # the decoded shard does hold the technical meta
    for secret in secrets:
        for blob in blobs:
            assert secret not in blob
    assert s.meta["modality"] == "CT"


def test_sample_dict_matches_to_dict():
    from medmo.data.io import sample_dict

    for s in _samples(3):
        s.findings, s.meta = "f", {"nested": {"a": [1, {"b": 2}]}}
        assert sample_dict(s) == s.to_dict()
        assert list(sample_dict(s)) == list(s.to_dict())


def _line(**kw) -> str:
    d = {"id": "x", "task": "open_vqa", "source": "t", "split": "train", "answer": "a", "images": [{"path": "i.png"}]}
    return json.dumps({**d, **kw}, ensure_ascii=False)


def test_duplicate_ids_are_reported_and_the_first_is_kept(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text("\n".join([_line(id="a"), _line(id="b"), _line(id="a", answer="other")]) + "\n")
    stats = ReadStats()
    got = list(read_records(f, stats=stats))
    assert [(s.id, s.answer) for s in got] == [("a", "a"), ("b", "a")]
    assert stats.counts == {"duplicate_id": 1} and stats.problems[0].line == 3
    assert "id 'a' is already used by an earlier record (line 1)" in stats.problems[0].message
    with pytest.raises(RecordFileError, match=r"r.jsonl:3: duplicate_id: id 'a' is already used by an earlier "
                       r"record \(line 1\)"):  # fmt: skip
        list(read_records(f, strict=True))
    assert len(list(read_records(f, unique_ids=False))) == 3
    # Across the files of a folder as well: the first use is named by its file.
    (tmp_path / "d").mkdir()
    write_jsonl(got, tmp_path / "d" / "1.jsonl")
    write_jsonl(got[:1], tmp_path / "d" / "2.jsonl")
    stats = ReadStats()
    assert len(list(read_records(tmp_path / "d", stats=stats))) == 2 and stats.counts == {"duplicate_id": 1}
    assert str(stats.problems[0]) == (f"{tmp_path / 'd' / '2.jsonl'} line 1: duplicate_id: id 'a' is already used by "
                                      f"an earlier record ({tmp_path / 'd' / '1.jsonl'} line 1); ids must be unique: "
                                      "rename or drop one of them")  # fmt: skip
    write_parquet(got + got[:1], tmp_path / "p")  # a shard names rows (0-based)
    stats = ReadStats()
    list(read_records(tmp_path / "p", stats=stats))
    assert "part-00000.parquet row 2: duplicate_id: id 'a' is already used by an earlier record (row 0)" in str(stats.problems[0])


def test_report_mode_keeps_records_with_a_repeated_id_and_lists_them(tmp_path):
    """``unique_ids="report"`` (how evaluation sets are read for decontamination): kept, counted, never raised."""
    f = tmp_path / "r.jsonl"
    f.write_text("\n".join([_line(id="a"), _line(id="b"), _line(id="a", answer="other"), _line(id="b")]) + "\n")
    stats = ReadStats()
    got = list(read_records(f, stats=stats, strict=True, unique_ids="report"))
    assert [(s.id, s.answer) for s in got] == [("a", "a"), ("b", "a"), ("a", "other"), ("b", "a")]
    assert (stats.read, stats.skipped, stats.duplicates) == (4, 0, 2) and not stats.counts
    assert [(p.line, p.reason) for p in stats.duplicate_problems] == [(3, "duplicate_id"), (4, "duplicate_id")]
    assert "id 'b' is already used by an earlier record (line 2)" in stats.duplicate_problems[1].message
    assert "2 kept with a repeated id" in stats.summary() and f"{f} line 3: duplicate_id" in stats.summary()
    with pytest.raises(ValueError, match="unique_ids must be True, False or 'report'"):
        list(read_records(f, unique_ids="skip"))


def test_a_record_file_error_survives_pickling():
    """Worker processes of a mixture build hand their errors to the parent by pickling them."""
    import pickle

    e = pickle.loads(pickle.dumps(RecordFileError("r.jsonl:3", "duplicate_id", "id 'a' is already used")))
    assert (e.where, e.reason, e.message, str(e)) == ("r.jsonl:3", "duplicate_id", "id 'a' is already used",
                                                      "r.jsonl:3: duplicate_id: id 'a' is already used")  # fmt: skip


def test_text_that_is_not_utf8_is_a_problem_not_replaced(tmp_path):
    f = tmp_path / "r.jsonl"
    latin1 = _line(id="b", answer="caf\u00e9").encode("latin-1")
    f.write_bytes(codecs.BOM_UTF8 + _line(id="a", answer="caf\u00e9").encode() + b"\n" + latin1 + b"\n")
    stats = ReadStats()
    got = list(read_records(f, stats=stats))
    assert [(s.id, s.answer) for s in got] == [("a", "caf\u00e9")]  # a BOM at the start is fine
    assert stats.counts == {"not_utf8": 1} and stats.problems[0].line == 2
    assert "byte 0xe9" in stats.problems[0].message and "re-save the file as UTF-8" in stats.problems[0].message
    with pytest.raises(RecordFileError, match=r"r.jsonl:2: not_utf8"):
        list(read_records(f, strict=True))


def test_truncated_gzip_keeps_the_lines_before_the_damage(tmp_path):
    import gzip

    f = tmp_path / "r.jsonl.gz"
    with gzip.open(f, "wt", encoding="utf-8") as g:
        for i in range(2000):
            g.write(_line(id=f"r{i}", answer=f"answer {i} " * 5) + "\n")
    f.write_bytes(f.read_bytes()[:-200])
    stats = ReadStats()
    got = list(read_records(f, stats=stats))
    assert 1000 < len(got) < 2000 and stats.counts == {"unreadable_file": 1}
    assert "the rest of this file is lost" in stats.problems[0].message
