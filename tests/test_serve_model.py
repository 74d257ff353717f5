"""The server in front of the real (tiny) model: concurrency, a bad request in a batch, context, timeouts, usage."""

from __future__ import annotations

import base64
import io
import threading
import time

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from medmo.infer.engine import HFEngine
from medmo.serve.app import create_app

LOCAL = "http://localhost"


def png_url(w: int, h: int, seed: int = 0) -> str:
    arr = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def chat(text: str, image: str | None = None, **fields) -> dict:
    parts = [{"type": "image_url", "image_url": {"url": image}}] if image else []
    return {"messages": [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}], **fields}


class OwnedLock:
    """The engine's lock, remembering which thread holds it."""

    def __init__(self):
        self._lock, self.owner = threading.Lock(), None

    def __enter__(self):
        self._lock.acquire()
        self.owner = threading.get_ident()
        return self

    def __exit__(self, *exc):
        self.owner = None
        self._lock.release()


def post_all(c: TestClient, bodies: list[dict]) -> list:
    results: list = [None] * len(bodies)

    def one(i: int) -> None:
        results[i] = c.post("/v1/chat/completions", json=bodies[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_concurrent_requests_use_the_tokenizer_only_under_the_engine_lock(tiny_model, monkeypatch):
    """Issue: counting tokens on the event loop raced the worker's padded encode on the same fast tokenizer."""
    model, processor = tiny_model
    engine = HFEngine(model, processor, name="tiny")
    engine._lock = OwnedLock()
    outside: list[str] = []
    real = processor.tokenizer._encode_plus

    def guarded(*args, **kwargs):
        if engine._lock.owner != threading.get_ident():
            outside.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(processor.tokenizer, "_encode_plus", guarded)
    bodies = [chat(f"question {i} " + "word " * (i % 9), png_url(32 + i % 3 * 16, 32, i), max_tokens=3)
              for i in range(32)]
    with TestClient(create_app(engine, max_batch=8), base_url=LOCAL) as c:
        results = post_all(c, bodies)
    assert [r.status_code for r in results] == [200] * len(bodies), [r.text for r in results if r.status_code != 200]
    assert all(r.json()["usage"]["prompt_tokens"] > 0 and 1 <= r.json()["usage"]["completion_tokens"] <= 3
               for r in results)
    assert outside == [], f"tokenizer used outside the engine lock from {set(outside)}"


class HeldEngine(HFEngine):
    """Holds its first call until ``gate`` opens (so a batch forms); skips early shrinking so bad images reach it."""

    def __init__(self, model, processor):
        super().__init__(model, processor, name="tiny")
        self.gate, self.entered, self.first = threading.Event(), threading.Event(), True

    def prepare_image(self, image):
        return image

    def complete(self, *args, **kwargs):
        if self.first:
            self.first = False
            self.entered.set()
            assert self.gate.wait(30)
        return super().complete(*args, **kwargs)


def test_a_bad_request_in_a_batch_fails_alone(tiny_model):
    """Issue: one 1x5000 PNG made every request batched with it fail with 500."""
    model, processor = tiny_model
    engine = HeldEngine(model, processor)
    app = create_app(engine, max_batch=8)
    bad = png_url(1, 5000)
    with TestClient(app, base_url=LOCAL) as c:
        holder = threading.Thread(target=lambda: c.post("/v1/chat/completions", json=chat("hold", max_tokens=2)))
        holder.start()
        assert engine.entered.wait(30)
        bodies = [chat(f"normal {i}", png_url(40, 30, i), max_tokens=3) for i in range(7)]
        bodies.insert(3, chat("bad", bad, max_tokens=3))
        out: list = []
        waiter = threading.Thread(target=lambda: out.extend(post_all(c, bodies)))
        waiter.start()
        end = time.monotonic() + 30
        while app.state.scheduler.queued < 8:
            assert time.monotonic() < end, "the batch did not form"
            time.sleep(0.01)
        engine.gate.set()
        waiter.join(60), holder.join(60)
    assert list(app.state.scheduler.batches)[:2] == [1, 8]
    assert out[3].status_code == 400 and "aspect ratio" in out[3].json()["error"]["message"]
    assert [r.status_code for i, r in enumerate(out) if i != 3] == [200] * 7


def test_requests_the_model_cannot_take_are_400(tiny_model):
    model, processor = tiny_model
    app = create_app(HFEngine(model, processor, name="tiny"))
    with TestClient(app, base_url=LOCAL) as c:
        r = c.post("/v1/chat/completions", json=chat("thin", png_url(1, 5000)))
        assert r.status_code == 400 and "1x5000" in r.json()["error"]["message"]  # refused before it is queued
        assert list(app.state.scheduler.batches) == []
        r = c.post("/v1/chat/completions", json=chat("word " * 5000, max_tokens=2))
        assert r.status_code == 400 and "context of 4096 tokens" in r.json()["error"]["message"]
        r = c.post("/v1/chat/completions", json=chat("short", max_tokens=4090))
        assert r.status_code == 400 and "lower max_tokens" in r.json()["error"]["message"]
        r = c.post("/v1/chat/completions", json=chat("word " * 5000, max_tokens=2, stream=True))
        assert r.status_code == 400 and "context" in r.json()["error"]["message"]  # before the stream starts


def test_a_timeout_stops_a_generation_that_has_started(tiny_model, monkeypatch):
    """Issue: after a 504 the model went on generating the abandoned answer."""
    model, processor = tiny_model
    monkeypatch.setattr(model.generation_config, "eos_token_id", [10**9])  # never ends by itself
    engine = HFEngine(model, processor, name="tiny")
    done: list = []
    real = engine.complete
    monkeypatch.setattr(engine, "complete", lambda *a, **k: done.extend(real(*a, **k)) or done[-1:])
    app = create_app(engine, timeout_s=0.5)
    with TestClient(app, base_url=LOCAL) as c:
        t0 = time.monotonic()
        r = c.post("/v1/chat/completions", json=chat("go on", max_tokens=3000))
        assert r.status_code == 504 and time.monotonic() - t0 < 3
        end = time.monotonic() + 5
        while not done or app.state.scheduler.running:
            assert time.monotonic() < end, "generation went on after the 504"
            time.sleep(0.02)
    assert done[0].completion_tokens < 3000


def test_responses_carry_usage(tiny_model, monkeypatch):
    import json

    model, processor = tiny_model
    monkeypatch.setattr(model.generation_config, "eos_token_id", [10**9])
    with TestClient(create_app(HFEngine(model, processor, name="tiny"), max_new_tokens=4), base_url=LOCAL) as c:
        body = c.post("/v1/chat/completions", json=chat("count", png_url(40, 30), max_tokens=4)).json()
        usage = body["usage"]
        assert body["choices"][0]["finish_reason"] == "length" and usage["completion_tokens"] == 4
        assert usage["total_tokens"] == usage["prompt_tokens"] + 4 and usage["prompt_tokens"] > 6
        r = c.post("/v1/chat/completions", json=chat("count", png_url(40, 30), max_tokens=4, stream=True,
                                                     stream_options={"include_usage": True}))
        chunks = [json.loads(x[6:]) for x in r.text.split("\n\n") if x.startswith("data: {")]
        assert chunks[-2]["choices"][0]["finish_reason"] == "length" and chunks[-2]["usage"] == usage
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage
        ask = c.post("/v1/medmo/ask", json={"image": png_url(40, 30), "question": "count"}).json()
        assert ask["usage"]["completion_tokens"] == 4 and ask["usage"]["total_tokens"] == ask["usage"]["prompt_tokens"] + 4
