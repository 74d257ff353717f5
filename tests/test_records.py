"""Tests for medmo.records: field types and invariants of :class:`Sample`, as plain checks and as properties.

The properties (hypothesis) mutate one field of a valid record dict at a time to any JSON value: reading it
either gives a record that every writer accepts and that reads back equal, or a :class:`RecordError` whose
message names the field; never another exception.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medmo.data.io import read_records, write_jsonl, write_parquet
from medmo.records import RecordError, Sample


def _base() -> dict:
    return {"id": "g1", "task": "grounding", "source": "t", "split": "train", "question": "Where?", "answer": "cell",
            "boxes": [{"label": "cell", "box": [1, 2, 10, 20], "image": 0}],
            "images": [{"path": "a.png", "width": 40, "height": 30, "frame": None}],
            "options": {"A": "one", "B": "two"}, "meta": {"k": 1}}  # fmt: skip


def _error(d) -> str:
    with pytest.raises(RecordError) as e:
        Sample.from_dict(d).validate()
    return str(e.value)


def _with(path: tuple, value) -> dict:
    d = _base()
    target = d
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return d


@pytest.mark.parametrize(
    "path, value, expect",
    [
        (("answer",), 5, "field 'answer' must be a string, got an integer"),
        (("images",), "a.png", "field 'images' must be a list, got a string"),
        (("boxes",), {"label": "x"}, "field 'boxes' must be a list"),
        (("boxes", 0, "box"), ["1", "2", "10", "20"], "boxes[0].box[0] must be a finite number, got a string '1'"),
        (("boxes", 0, "label"), 7, "boxes[0].label must be a string, got an integer"),
        (("options", "A"), 1, "options['A'] must be a string, got an integer"),
        (("images", 0, "frame"), "0", "images[0].frame must be an integer, got a string '0'"),
        (("images", 0, "width"), True, "images[0].width must be an integer, got a boolean"),
        (("images", 0, "width"), 2**40, "images[0].width must be an integer from 1 to 2147483647"),
        (("images", 0, "path"), "", "images[0].path is empty"),
        (("boxes", 0, "box"), [0, 0, math.inf, 5], "boxes[0].box[2] must be a finite number, got a number inf"),
        (("boxes", 0, "box"), [0, 0, math.nan, 5], "boxes[0].box[2] must be a finite number"),
        (("boxes", 0, "box"), [1, 2, 3], "boxes[0].box must be a list of 4 numbers"),
        (("boxes", 0, "image"), -1, "boxes[0].image must be an integer from 0"),
        (("boxes", 0, "image"), 1, "boxes[0] ('cell') refers to image 1; the record has 1 image(s)"),
        (("meta",), 5, "field 'meta' must be an object, got an integer"),
        (("meta",), "[1]", "field 'meta' must be an object, got a list"),
        (("meta",), "{oops", "field 'meta' is a string that is not valid JSON"),
        (("question",), "a\ud800b", "field 'question' holds an unpaired surrogate"),
        (("findings",), 3, "field 'findings' must be a string or null"),
    ],
)
def test_wrong_types_name_the_field(path, value, expect):
    assert expect in _error(_with(path, value))


def test_boxes_outside_an_image_of_unknown_size():
    # Without width/height only what is certain can be checked: coordinates are non-negative and finite.
    d = _with(("images", 0), {"path": "a.png"})
    d["boxes"][0]["box"] = [-50, -50, 10, 10]
    assert "boxes[0] ('cell') [-50, -50, 10, 10] has a negative coordinate" in _error(d)
    d["boxes"][0]["box"] = [0, 0, 1e400, 10]  # JSON's 1e400 reads as inf
    assert "must be a finite number" in _error(d)
    d["boxes"][0]["box"] = [0, 0, 1000, 1000]
    assert Sample.from_dict(d).validate().boxes[0].box == [0, 0, 1000, 1000]


def test_record_shape_errors():
    assert "a record is a JSON object, got a list" in _error([1])
    assert "missing required field(s) source, split" in _error({"id": "x", "task": "caption"})
    assert "unknown record fields ['width']" in _error({**_base(), "width": 3})
    assert "images[0] has unknown keys ['size']" in _error(_with(("images", 0, "size"), 3))
    assert "boxes[0] has no box" in _error(_with(("boxes", 0), {"label": "cell"}))
    assert "boxes[0] must be an object" in _error(_with(("boxes", 0), 5))


def test_numpy_numbers_are_normalised_so_writers_accept_them(tmp_path):
    d = _base()
    s = Sample.from_dict(d)
    s.images[0].width, s.images[0].height = np.int64(40), np.int32(30)
    s.boxes[0].box = [np.float32(1), np.int64(2), 10.5, np.float64(20)]
    s.validate()
    assert type(s.images[0].width) is int and [type(v) for v in s.boxes[0].box] == [float] * 4
    write_parquet([s], tmp_path / "pq")
    write_jsonl([s], tmp_path / "r.jsonl")


# ----------------------------------------------------------------------------------------------------
# properties

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=8,
)
# Where a mutation goes, and the names its error may give: the field itself, or the box it puts out of place.
_PATHS = [
    (("id",), ("id",)), (("task",), ("task", " record")), (("source",), ("source",)), (("split",), ("split",)),
    (("question",), ("question",)), (("answer",), ("answer",)), (("modality",), ("modality",)),
    (("language",), ("language",)), (("findings",), ("findings",)), (("impression",), ("impression",)),
    (("options",), ("options",)), (("options", "A"), ("options",)), (("meta",), ("meta",)),
    (("boxes",), ("boxes",)), (("boxes", 0), ("boxes[0]",)), (("boxes", 0, "label"), ("boxes[0]",)),
    (("boxes", 0, "box"), ("boxes[0]",)), (("boxes", 0, "box", 2), ("boxes[0]",)),
    (("boxes", 0, "image"), ("boxes[0]",)), (("images",), ("images",)), (("images", 0), ("images[0]",)),
    (("images", 0, "path"), ("images[0].path",)), (("images", 0, "width"), ("images[0].width", "boxes[0]")),
    (("images", 0, "frame"), ("images[0].frame",)),
]  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(_PATHS), value=_json)
def test_any_mutation_is_a_record_or_an_error_naming_the_field(where, value):
    path, names = where
    try:
        s = Sample.from_dict(_with(path, value)).validate()
    except RecordError as e:
        assert any(name in str(e) for name in names), str(e)
        return
    json.dumps(s.to_dict(), ensure_ascii=False).encode("utf-8")  # every valid record serializes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(_PATHS), value=_json)
def test_valid_records_round_trip_through_both_writers(tmp_path, where, value):
    """What validate accepts, the Parquet schema accepts too: no record passes validation and fails a build."""
    d = _with(where[0], value)
    try:
        s = Sample.from_dict(d).validate()
    except RecordError:
        return
    s.images = [type(r)(str(tmp_path / "a.png"), r.width, r.height, r.frame) for r in s.images]
    write_parquet([s], tmp_path / "pq")
    write_jsonl([s], tmp_path / "r.jsonl")
    for f in (tmp_path / "pq", tmp_path / "r.jsonl"):
        got = list(read_records(f, strict=True))
        assert [g.id for g in got] == [s.id]
        assert got[0].boxes == s.boxes and got[0].options == s.options and got[0].images == s.images
        assert json.dumps(got[0].meta, sort_keys=True) == json.dumps(s.meta, sort_keys=True)  # NaN != NaN


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=st.one_of(_json.map(json.dumps), st.binary(max_size=40), st.sampled_from([_base()]).map(json.dumps)))
def test_reading_any_line_never_raises_but_a_record_error(tmp_path, line):
    f = tmp_path / "r.jsonl"
    f.write_bytes((line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line).replace(b"\n", b" ") + b"\n")
    got = list(read_records(f))  # never raises: a bad line is counted
    assert len(got) <= 1
    try:
        list(read_records(f, strict=True))
    except RecordError as e:
        assert f"{f}:1: " in str(e)
