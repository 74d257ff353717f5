"""The append-only prediction cache: durable lines, torn writes, keys that separate prompt versions."""

from __future__ import annotations

from medmo.eval.cache import PredictionCache, cache_key, slug


def test_predictions_survive_reopening_and_keys_separate_versions(tmp_path):
    k1 = cache_key("1", "prompts-1", {"max_new_tokens": 8})
    k2 = cache_key("1", "prompts-2", {"max_new_tokens": 8})
    assert k1 != k2 and k1 == cache_key("1", "prompts-1", {"max_new_tokens": 8})
    c = PredictionCache(tmp_path, "org/Model-4B", "vqa_rad", k1)
    c.add([("a", "yes"), ("b", "ünïcode\nanswer")])
    again = PredictionCache(tmp_path, "org/Model-4B", "vqa_rad", k1)
    assert len(again) == 2 and again.get("b") == "ünïcode\nanswer" and "a" in again
    assert len(PredictionCache(tmp_path, "org/Model-4B", "vqa_rad", k2)) == 0
    assert again.path.parent.name == "org__Model-4B"


def test_torn_last_line_is_skipped_and_fenced_off(tmp_path):
    c = PredictionCache(tmp_path, "m", "b", "k")
    c.add([("a", "1")])
    with open(c.path, "a") as f:
        f.write('{"id": "b", "key": "k", "predic')
    c2 = PredictionCache(tmp_path, "m", "b", "k")
    assert len(c2) == 1 and c2.skipped_lines == 1
    c2.add([("c", "3")])
    c3 = PredictionCache(tmp_path, "m", "b", "k")
    assert c3.get("c") == "3" and c3.get("a") == "1" and "b" not in c3


def test_slug_is_file_safe():
    assert slug("runs/nano/model/") == "runs__nano__model"
    assert slug("a b:c") == "a__b__c" and slug("") == "model"


def test_checkpoint_fingerprint_changes_with_the_weights(tmp_path):
    import os

    from medmo.eval.backends.hf import checkpoint_fingerprint

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"x" * 10)
    before = checkpoint_fingerprint(tmp_path)
    (tmp_path / "notes.txt").write_text("not a weight file")
    assert checkpoint_fingerprint(tmp_path) == before
    (tmp_path / "model.safetensors").write_bytes(b"y" * 11)
    os.utime(tmp_path / "model.safetensors", ns=(1, 1))
    assert checkpoint_fingerprint(tmp_path) != before
