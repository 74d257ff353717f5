"""HFEngine on the shared tiny model: per-request checks, token counts, stops, early image shrinking."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from medmo.infer.engine import Completion, HFEngine, ScriptedEngine
from medmo.infer.errors import InputError


def user(text: str, images: int = 0) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}] * images + [{"type": "text", "text": text}]}]


def noise(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.fixture
def engine(tiny_model):
    model, processor = tiny_model
    return HFEngine(model, processor, name="tiny")


@pytest.fixture
def no_eos(tiny_model, monkeypatch):
    """Generation runs to max_new_tokens (a random model may end early)."""
    monkeypatch.setattr(tiny_model[0].generation_config, "eos_token_id", None)


def test_a_request_the_model_cannot_take_fails_alone(engine):
    thin = Image.new("RGB", (1, 5000))
    convs = [user("first", 1), user("thin", 1), user("word " * 5000), user("third", 1)]
    images = [[noise(40, 30)], [thin], [], [noise(50, 20, 1)]]
    results = engine.complete(convs, images, max_new_tokens=4)
    assert isinstance(results[1], InputError) and "aspect ratio" in str(results[1])
    assert isinstance(results[2], InputError) and "context of 4096 tokens" in str(results[2])
    alone = [engine.complete([convs[i]], [images[i]], max_new_tokens=4)[0] for i in (0, 3)]
    assert [results[0].text, results[3].text] == [a.text for a in alone]
    with pytest.raises(InputError, match="aspect ratio"):
        engine.generate([convs[1]], [images[1]])


def test_usage_counts_the_model_tokens(engine, tiny_model, no_eos):
    _, processor = tiny_model
    image = noise(40, 30)
    done = engine.complete([user("how many tokens?", 1)], [[image]], max_new_tokens=5)[0]
    prompt = processor.apply_chat_template(user("how many tokens?", 1), add_generation_prompt=True, tokenize=False)
    expected = processor(text=[prompt], images=[image], return_tensors="pt")["input_ids"].shape[1]
    assert isinstance(done, Completion)
    assert (done.prompt_tokens, done.completion_tokens, done.finish_reason) == (expected, 5, "length")
    assert done.usage == {"prompt_tokens": expected, "completion_tokens": 5, "total_tokens": expected + 5}
    pieces, it = [], engine.stream(user("how many tokens?", 1), [image], max_new_tokens=5)
    while True:
        try:
            pieces.append(next(it))
        except StopIteration as end:
            streamed = end.value
            break
    assert "".join(pieces) == done.text and streamed.usage == done.usage


def test_stop_events_end_generation(engine):
    """A caller that went away (its stop set) ends its row at the next token; a batch of such rows ends at once."""
    import time

    stops = [threading.Event(), threading.Event()]
    for e in stops:
        e.set()
    t0 = time.monotonic()
    stopped = engine.complete([user("a"), user("b")], [[], []], stops=stops, max_new_tokens=2000)
    assert all(s.completion_tokens <= 2 for s in stopped), stopped  # one token, then padding
    assert time.monotonic() - t0 < 5


def test_images_are_shrunk_early_to_exactly_what_the_processor_makes(engine, tiny_model):
    _, processor = tiny_model
    big = noise(517, 301)
    small = engine.prepare_image(big)
    assert small.size != big.size and small.width * small.height <= processor.pixel_range[1]
    a = processor.image_processor(images=[big], return_tensors="pt")
    b = processor.image_processor(images=[small], return_tensors="pt")
    assert a["image_grid_thw"].tolist() == b["image_grid_thw"].tolist()
    assert a["pixel_values"].equal(b["pixel_values"])
    with pytest.raises(InputError, match="1x5000"):
        engine.prepare_image(Image.new("RGB", (1, 5000)))


def test_engines_without_a_tokenizer_count_words():
    done = ScriptedEngine("two words").complete([user("three little words")], [[]], max_new_tokens=2)[0]
    assert done.usage == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert done.finish_reason == "length"


def test_plain_objects_with_generate_still_serve():
    from medmo.infer.engine import complete

    class Plain:
        name = "plain"

        def generate(self, conversations, images, *, max_new_tokens=256, do_sample=False, temperature=1.0):
            return ["ok"] * len(conversations)

    done = complete(Plain(), [user("q")], [[]], stops=[None], max_new_tokens=4, do_sample=False, temperature=None,
                    top_p=None, top_k=None)
    assert [d.text for d in done] == ["ok"] and done[0].usage["completion_tokens"] == 1
