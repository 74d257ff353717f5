"""Tests for medmo.data.mixture (weights, caps, dedup, decontamination, shuffle) and medmo.data.export."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from medmo.data import mixture
from medmo.data.export import export
from medmo.data.io import read_records, write_jsonl
from medmo.data.mixture import ImageHasher, build_mixture, load_config
from medmo.prompts import target_text
from medmo.records import Box, ImageRef, Sample


@pytest.fixture()
def data(tmp_path):
    """Ten distinct images, source A (100 VQA records), source B (10 grounding + 3 exact duplicates), eval E."""
    (tmp_path / "img").mkdir()
    for i in range(10):
        Image.fromarray(np.full((20, 30), i * 20, np.uint8)).save(tmp_path / "img" / f"{i}.png")
    # A byte-identical copy of image 3 under another name: decontamination is by content.
    (tmp_path / "img" / "copy_of_3.png").write_bytes((tmp_path / "img" / "3.png").read_bytes())
    a = [Sample(f"a{i}", "open_vqa", "A", "train", question=f"q{i}", answer="x",
                images=[ImageRef(f"img/{i % 10}.png", 30, 20)]) for i in range(100)]  # fmt: skip
    b = [Sample(f"b{i}", "grounding", "B", "train", answer="c", boxes=[Box("c", [1, 1, 5, 5])],
                images=[ImageRef(f"img/{i}.png", 30, 20)]) for i in range(10)]  # fmt: skip
    dup = [Sample(f"b{i}-again", "grounding", "B", "train", answer="c", boxes=[Box("c", [1, 1, 5, 5])],
                  images=[ImageRef(f"img/{i}.png", 30, 20)]) for i in range(3)]  # fmt: skip
    e = [Sample("e0", "open_vqa", "E", "test", question="?", answer="y", images=[ImageRef("img/copy_of_3.png", 30, 20)])]
    write_jsonl(a, tmp_path / "a.jsonl")
    write_jsonl(b + dup, tmp_path / "b.jsonl")
    write_jsonl(e, tmp_path / "e.jsonl")
    return tmp_path


def _cfg(d, **kw):
    cfg = {"seed": 1, "shard_size": 20, "decontaminate_against": [str(d / "e.jsonl")],
           "sources": [{"records": str(d / "a.jsonl"), "weight": 0.5}, {"records": str(d / "b.jsonl"), "weight": 2.0}]}  # fmt: skip
    cfg.update(kw)
    return cfg


def test_weights_dedup_decontamination(data):
    report = build_mixture(_cfg(data), data / "out")
    a, b = report["sources"]
    assert (a["read"], a["contaminated"], a["available"], a["selected"]) == (100, 10, 90, 45)
    assert (b["read"], b["duplicates"], b["contaminated"], b["available"], b["selected"]) == (13, 3, 1, 9, 18)
    got = list(read_records(data / "out"))
    assert len(got) == report["written"] == 63 and len(report["shards"]) == 4
    assert len({s.id for s in got}) == 63  # repeats are renamed
    assert Counter(s.source for s in got) == {"A": 45, "B": 18}
    assert not any(s.images[0].path.endswith("/3.png") for s in got)
    listed = {x["id"] for x in report["contamination"]["samples"]}
    assert listed == {f"a{i}" for i in range(3, 100, 10)} | {"b3"}
    on_disk = json.loads((data / "out" / "mixture_report.json").read_text())
    assert on_disk["contamination"]["count"] == 11 and on_disk["contamination"]["mode"] == "dropped"
    assert not (data / "out" / ".build").exists()


def test_report_only_and_caps(data):
    cfg = _cfg(data, report_only_contamination=False)
    cfg["sources"][0] = {"records": str(data / "a.jsonl"), "max_samples": 7}
    report = build_mixture(cfg, data / "out", report_only_contamination=True)
    a, b = report["sources"]
    assert a["selected"] == 7 and a["contaminated"] == 10 and a["available"] == 100
    assert b["selected"] == 20 and report["contamination"]["mode"] == "reported"
    got = list(read_records(data / "out"))
    assert sum(s.images[0].path.endswith("/3.png") for s in got) >= 2  # b3 and its repeat are kept


def test_shuffle_is_seeded_and_mixes_sources(data):
    def order(seed):
        cfg = _cfg(data, seed=seed)
        cfg["sources"][0]["weight"] = 1.0  # whole sources, so only the order can differ
        return [s.id for s in read_records(build_mixture(cfg, data / f"o{seed}")["out_dir"])]

    first, again, other = order(1), order(1), order(2)
    assert first == again and first != other and sorted(first) == sorted(other)
    # Sources are interleaved, not concatenated: B records are spread over the stream.
    positions = [i for i, x in enumerate(first) if x.startswith("b")]
    assert positions[0] < 40 and positions[-1] > 60


def test_selection_is_exact_and_uniform(tmp_path):
    spill = tmp_path / "s.jsonl"
    counts = Counter()
    for trial in range(300):
        spill.write_text("".join(json.dumps({"id": f"r{i}"}) + "\n" for i in range(10)))
        picked = list(mixture._pick(spill, 10, 4, random.Random(trial)))
        assert len(picked) == 4 and len(set(picked)) == 4
        counts.update(json.loads(x)["id"] for x in picked)
    assert all(90 <= c <= 150 for c in counts.values())  # expected 120 each
    spill.write_text("".join(json.dumps({"id": f"r{i}"}) + "\n" for i in range(4)))
    ids = [json.loads(x)["id"] for x in mixture._pick(spill, 4, 10, random.Random(0))]
    assert len(ids) == 10 and len(set(ids)) == 10 and sum("-r2" in i for i in ids) == 2


def test_yaml_config_relative_paths_and_errors(data):
    (data / "mix.yaml").write_text("seed: 3\nsources:\n  - records: a.jsonl\n    max_samples: 5\n")
    cfg = load_config(data / "mix.yaml")
    assert cfg.sources[0].records == str(data / "a.jsonl") and cfg.seed == 3
    assert build_mixture(data / "mix.yaml", data / "out")["written"] == 5
    with pytest.raises(ValueError, match="unknown keys"):
        load_config({"sources": [{"records": "a.jsonl", "wieght": 2}]})
    with pytest.raises(ValueError, match="either 'name'"):
        load_config({"sources": [{"records": "a.jsonl", "name": "slake", "root": "x"}]})
    with pytest.raises(ValueError, match="no sources"):
        load_config({"seed": 1})


def test_yaml_named_relative_to_the_working_directory_keeps_images_loadable(data, monkeypatch):
    """`medmo data build mix.yaml` run in the YAML's own folder: the built records' images still load."""
    (data / "mix.yaml").write_text("seed: 3\nsources:\n  - records: a.jsonl\n    max_samples: 5\n")
    monkeypatch.chdir(data)
    build_mixture("mix.yaml", "out")
    monkeypatch.chdir(data.parent)  # read from elsewhere, as a training stage may
    got = list(read_records(data / "out"))
    assert len(got) == 5
    for s in got:
        path = s.images[0].path
        assert (data / "out" / path if not path.startswith("/") else Path(path)).resolve().is_file(), path


def test_registry_source_through_load_source(data, monkeypatch):
    import medmo.data.mixture as mixture

    def fake_load_source(name, root, split=None, **kw):
        assert (name, split, kw.get("lang"), kw.get("shard")) == ("fake", "train", "en", (0, 1))
        for i, s in enumerate(read_records(data / "a.jsonl")):
            yield ((i, 0), s) if kw.get("with_positions") else s

    monkeypatch.setattr(mixture, "load_source", fake_load_source)
    cfg = {"sources": [{"name": "fake", "root": str(data), "max_samples": 12, "options": {"lang": "en"}}]}
    report = build_mixture(cfg, data / "out")
    assert report["written"] == 12 and report["sources"][0]["source"] == "fake"


def test_image_hash_cache_follows_file_changes(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"one")
    h = ImageHasher(tmp_path / "cache.sqlite")
    first = h(str(p))
    p.write_bytes(b"two!")
    assert h(str(p)) != first
    h.close()
    again = ImageHasher(tmp_path / "cache.sqlite")
    assert again(str(p)) == h.__class__(tmp_path / "other.sqlite")(str(p))
    with pytest.raises(OSError):
        again(str(tmp_path / "missing.png"))


def test_export_formats(data):
    recs = data / "b.jsonl"
    lf = export(recs, data / "exp" / "train.jsonl", "llamafactory")
    rows = [json.loads(x) for x in (data / "exp" / "train.jsonl").read_text().splitlines()]
    first = next(read_records(recs))
    assert lf["written"] == len(rows) == 13
    assert rows[0]["messages"][0]["content"].count("<image>") == len(rows[0]["images"]) == 1
    assert rows[0]["messages"][1]["content"] == target_text(first) and "<box>[[" in rows[0]["messages"][1]["content"]
    assert rows[0]["images"][0] == first.images[0].path
    info = json.loads((data / "exp" / "dataset_info.json").read_text())
    assert info["train"]["formatting"] == "sharegpt" and info["train"]["file_name"] == "train.jsonl"
    export(recs, data / "exp" / "swift.jsonl", "swift")
    assert json.loads((data / "exp" / "swift.jsonl").read_text().splitlines()[0])["messages"] == rows[0]["messages"]


def test_export_verl_scores_gold_answer(data):
    from medmo.train.verl_score import compute_score

    export(data / "b.jsonl", data / "v.parquet", "verl", think=False)
    rows = pq.read_table(data / "v.parquet").to_pylist()
    r = rows[0]
    assert r["ability"] == "grounding" and r["reward_model"]["style"] == "rule"
    assert r["prompt"][0]["role"] == "user" and r["prompt"][0]["content"].startswith("<image>")
    assert r["images"] == [{"image": str(data / "img" / "0.png")}]
    gold = compute_score(r["data_source"], r["extra_info"]["answer"], r["reward_model"]["ground_truth"], r["extra_info"])
    wrong = compute_score(r["data_source"], "c <box>[[900, 900, 999, 999]]</box>", r["reward_model"]["ground_truth"],
                          r["extra_info"])  # fmt: skip
    assert gold["score"] > wrong["score"] and gold["box"] == pytest.approx(1.0)


def test_export_renders_dicom_and_embeds(tmp_path):
    pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    s = Sample("d", "open_vqa", "t", "train", question="organ?", answer="head",
               images=[ImageRef(get_testdata_file("rtdose.dcm"), 10, 10, frame=2)])  # fmt: skip
    r = export([s], tmp_path / "lf.jsonl", "llamafactory")
    path = json.loads((tmp_path / "lf.jsonl").read_text())["images"][0]
    assert r["rendered_images"] == 1 and path.endswith(".png") and Image.open(path).size == (10, 10)
    export([s], tmp_path / "v.parquet", "verl", embed_images=True)
    img = pq.read_table(tmp_path / "v.parquet").to_pylist()[0]["images"][0]
    assert img["bytes"][:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="unknown export format"):
        export([s], tmp_path / "x", "alpaca")


def test_unknown_registered_source_is_a_config_error(data):
    pytest.importorskip("medmo.data.sources")
    with pytest.raises(ValueError, match="unknown dataset source"):
        build_mixture({"sources": [{"name": "no_such_dataset", "root": str(data)}]}, data / "out")


def test_image_level_dedup_across_sources(data):
    cfg = _cfg(data, dedup="image", decontaminate_against=[])
    report = build_mixture(cfg, data / "out")
    a, b = report["sources"]
    # Every B image (0-9) already appeared in A: all of B is dropped; A keeps its many questions per image.
    assert a["duplicates"] == 0 and a["available"] == 100
    assert b["duplicates"] == 13 and b["selected"] == 0
    with pytest.raises(ValueError, match="dedup must be"):
        load_config({"sources": [{"records": "a.jsonl"}], "dedup": "pixels"})


def test_where_keeps_records_whose_fields_match(tmp_path):
    (tmp_path / "img").mkdir()
    recs = []
    for i in range(12):
        Image.fromarray(np.full((8, 8), i * 20, np.uint8)).save(tmp_path / "img" / f"{i}.png")
        recs.append(Sample(f"r{i}", "grounding" if i % 2 else "caption", "S", "train", answer="c",
                           boxes=[Box("c", [1, 1, 5, 5])] if i % 2 else [], modality=["ct", "mri", "x-ray"][i % 3],
                           images=[ImageRef(f"img/{i}.png", 8, 8)], meta={"background": "flat" if i < 6 else "textured"}))  # fmt: skip
    write_jsonl(recs, tmp_path / "r.jsonl")
    src = {"records": str(tmp_path / "r.jsonl"), "tasks": ["grounding"],
           "where": {"meta.background": "flat", "modality": ["ct", "x-ray"]}}  # fmt: skip
    build_mixture({"seed": 0, "sources": [src]}, tmp_path / "out")
    got = {s.id for s in read_records(tmp_path / "out")}
    assert got == {"r3", "r5"}  # odd (grounding), below 6 (flat), not MRI (i % 3 == 1 is r1)
    for bad, message in [({"where": "flat"}, "where must map"), ({"where": {"meta.": 1}}, "cannot filter"),
                         ({"where": {"boxes": 1}}, "cannot filter"), ({"where": {"modality": [{}]}}, "value or a list")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            build_mixture({"seed": 0, "sources": [{**src, **bad}]}, tmp_path / "bad")
