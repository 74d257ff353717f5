"""Server limits: API key, request and image size, image sources, queue (503), timeout (504), batching."""

from __future__ import annotations

import base64
import io
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from medmo.infer.engine import ScriptedEngine, last_user_text
from medmo.serve.app import create_app

LOCAL = "http://localhost"  # the server answers the localhost names by default (Host check)


class GatedEngine(ScriptedEngine):
    """Echoes the question, but each generate call waits until ``gate`` is set (to hold the model busy)."""

    def __init__(self):
        super().__init__(lambda conv: "echo: " + last_user_text(conv))
        self.gate = threading.Event()
        self.entered = threading.Event()

    def generate(self, conversations, images, **gen):
        self.entered.set()
        assert self.gate.wait(20), "test never opened the gate"
        return super().generate(conversations, images, **gen)


def png_url(w: int, h: int, noise: bool = False) -> str:
    arr = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8) if noise else np.zeros((h, w, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def chat(text: str, image: str | None = None) -> dict:
    parts = [{"type": "image_url", "image_url": {"url": image}}] if image else []
    return {"messages": [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}]}


def wait_for(predicate, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.01)


def post_in_thread(client: TestClient, body: dict, results: dict, key: str) -> threading.Thread:
    t = threading.Thread(target=lambda: results.__setitem__(key, client.post("/v1/chat/completions", json=body)))
    t.start()
    return t


def test_api_key_guards_the_api_but_not_the_page():
    with TestClient(base_url=LOCAL, app=create_app(ScriptedEngine("hi"), api_key="s3cret")) as c:
        r = c.get("/v1/models")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert "API key" in r.json()["error"]["message"]
        assert c.post("/v1/chat/completions", json=chat("q"), headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = c.post("/v1/chat/completions", json=chat("q"), headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "hi"
        assert c.get("/health").status_code == 200 and c.get("/").status_code == 200


def test_request_and_image_size_limits_are_413():
    with TestClient(base_url=LOCAL, app=create_app(ScriptedEngine("hi"), max_request_bytes=3000, max_image_pixels=400)) as c:
        big = chat("q", png_url(64, 64, noise=True))
        r = c.post("/v1/chat/completions", json=big)
        assert r.status_code == 413 and "limit of 3000" in r.json()["error"]["message"]
        chunked = c.post("/v1/chat/completions", content=iter([b'{"messages": "', b"x" * 4000, b'"}']),
                         headers={"Content-Type": "application/json"})
        assert chunked.status_code == 413  # no Content-Length: counted while reading
        r = c.post("/v1/chat/completions", json=chat("q", png_url(30, 30)))
        assert r.status_code == 413 and "30x30 = 900 pixels" in r.json()["error"]["message"]
        assert c.post("/v1/chat/completions", json=chat("q", png_url(20, 20))).status_code == 200


def test_local_and_remote_images_need_flags(tmp_path):
    allowed = tmp_path / "images"
    allowed.mkdir()
    Image.new("RGB", (6, 4)).save(allowed / "a.png")
    Image.new("RGB", (6, 4)).save(tmp_path / "private.png")
    with TestClient(base_url=LOCAL, app=create_app(ScriptedEngine("hi"))) as c:
        r = c.post("/v1/chat/completions", json=chat("q", str(allowed / "a.png")))
        assert r.status_code == 403 and "--allow-local-files" in r.json()["error"]["message"]
        r = c.post("/v1/chat/completions", json=chat("q", "http://127.0.0.1:9/x.png"))
        assert r.status_code == 403 and "--allow-remote-images" in r.json()["error"]["message"]
    with TestClient(base_url=LOCAL, app=create_app(ScriptedEngine("hi"), allow_local_files=allowed)) as c:
        assert c.post("/v1/chat/completions", json=chat("q", f"file://{allowed}/a.png")).status_code == 200
        assert c.post("/v1/chat/completions", json=chat("q", str(tmp_path / "private.png"))).status_code == 403


def test_full_queue_is_503_and_loop_stays_responsive():
    engine = GatedEngine()
    app = create_app(engine, max_batch=1, max_queue=1)
    results: dict = {}
    with TestClient(base_url=LOCAL, app=app) as c:
        first = post_in_thread(c, chat("one"), results, "one")
        assert engine.entered.wait(10)
        second = post_in_thread(c, chat("two"), results, "two")
        wait_for(lambda: c.get("/health").json() == {"status": "ok", "model": "scripted", "queued": 1, "running": 1})
        r = c.post("/v1/chat/completions", json=chat("three"))
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and "busy" in r.json()["error"]["message"]
        engine.gate.set()
        first.join(10), second.join(10)
    assert [results[k].json()["choices"][0]["message"]["content"] for k in ("one", "two")] == ["echo: one", "echo: two"]


def test_timeout_is_504_and_withdraws_the_request():
    engine = GatedEngine()
    with TestClient(base_url=LOCAL, app=create_app(engine, timeout_s=0.3, max_batch=1)) as c:
        results: dict = {}
        busy = post_in_thread(c, chat("busy"), results, "busy")
        assert engine.entered.wait(10)
        t0 = time.monotonic()
        r = c.post("/v1/chat/completions", json=chat("late"))
        assert r.status_code == 504 and "0.3 s" in r.json()["error"]["message"] and time.monotonic() - t0 < 5
        r = c.post("/v1/chat/completions", json={**chat("late stream"), "stream": True})
        assert r.status_code == 504 and "0.3 s" in r.json()["error"]["message"]  # before the stream starts
        engine.gate.set()
        busy.join(10)
        assert c.get("/health").json()["queued"] == 0
    # the timed-out requests were withdrawn: the model only ever ran the first one
    assert engine.calls == [1]


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer():
    engine = GatedEngine()
    app = create_app(engine, max_batch=4, max_queue=16)
    results: dict = {}
    with TestClient(base_url=LOCAL, app=app) as c:
        threads = [post_in_thread(c, chat("q0"), results, "q0")]
        assert engine.entered.wait(10)
        threads += [post_in_thread(c, chat(f"q{i}"), results, f"q{i}") for i in range(1, 7)]
        wait_for(lambda: app.state.scheduler.queued == 6)
        engine.gate.set()
        for t in threads:
            t.join(10)
    assert {k: r.json()["choices"][0]["message"]["content"] for k, r in results.items()} == {
        f"q{i}": f"echo: q{i}" for i in range(7)
    }
    assert list(app.state.scheduler.batches) == [1, 4, 2]


def test_engine_failure_is_a_clean_500():
    class Broken(ScriptedEngine):
        def generate(self, *a, **k):
            raise RuntimeError("CUDA out of memory")

    with TestClient(base_url=LOCAL, app=create_app(Broken())) as c:
        r = c.post("/v1/chat/completions", json=chat("q"))
        assert r.status_code == 500 and "RuntimeError" in r.json()["error"]["message"]
        assert c.get("/health").status_code == 200


def test_unknown_settings_are_refused():
    with pytest.raises(TypeError, match="max_batchez"):
        create_app(ScriptedEngine("x"), max_batchez=3)


def test_abandoned_requests_free_their_queue_slot():
    from medmo.serve.scheduler import QueueFull, Scheduler

    engine = GatedEngine()
    scheduler = Scheduler(engine, max_batch=1, max_queue=1)
    conv = [{"role": "user", "content": [{"type": "text", "text": "q"}]}]
    try:
        running = scheduler.submit(conv, [])
        assert engine.entered.wait(10)
        abandoned = scheduler.submit(conv, [])
        with pytest.raises(QueueFull):
            scheduler.submit(conv, [])
        abandoned.cancel()
        accepted = scheduler.submit(conv, [])  # the cancelled request no longer counts
        engine.gate.set()
        assert running.result(10).text == accepted.result(10).text == "echo: q"
        assert list(scheduler.batches) == [1, 1]  # the abandoned one never reached the model
    finally:
        engine.gate.set()
        scheduler.close()


def test_a_request_that_breaks_its_batch_fails_alone():
    """When a batched call fails as a whole, each request is run again alone: only the culprit fails."""

    class Poisoned(GatedEngine):
        def generate(self, conversations, images, **gen):
            if any("poison" in last_user_text(c) for c in conversations):
                raise RuntimeError("the batch cannot be generated")
            return super().generate(conversations, images, **gen)

    engine = Poisoned()
    app = create_app(engine, max_batch=4)
    results: dict = {}
    with TestClient(base_url=LOCAL, app=app) as c:
        threads = [post_in_thread(c, chat("first"), results, "first")]
        assert engine.entered.wait(10)
        threads += [post_in_thread(c, chat(q), results, q) for q in ("a", "poison", "b")]
        wait_for(lambda: app.state.scheduler.queued == 3)
        engine.gate.set()
        for t in threads:
            t.join(10)
    assert {k: r.status_code for k, r in results.items()} == {"first": 200, "a": 200, "poison": 500, "b": 200}
    assert results["a"].json()["choices"][0]["message"]["content"] == "echo: a"
    assert list(app.state.scheduler.batches) == [1, 3]


def test_a_timeout_sets_the_stop_of_a_running_request():
    import asyncio

    from medmo.infer.engine import Completion
    from medmo.serve.scheduler import Scheduler

    class Endless(ScriptedEngine):
        def __init__(self):
            super().__init__()
            self.stopped = threading.Event()

        def complete(self, conversations, images, *, stops=None, **gen):
            while not all(s.is_set() for s in stops):  # generates until its callers give up
                time.sleep(0.01)
            self.stopped.set()
            return [Completion("", 0, 0)] * len(conversations)

    engine = Endless()
    scheduler = Scheduler(engine)
    try:
        conv = [{"role": "user", "content": [{"type": "text", "text": "q"}]}]
        with pytest.raises(asyncio.TimeoutError):
            asyncio.run(scheduler.run(conv, [], timeout_s=0.2, max_new_tokens=5))
        assert engine.stopped.wait(2)
    finally:
        scheduler.close()


def test_slow_remote_images_do_not_delay_other_requests():
    """Issue: 8 fetches from a 1 byte/s server held the decoding threads; an unrelated request waited 13.7 s."""
    import asyncio
    import dataclasses
    import socket
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx
    import uvicorn

    class Trickle(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass

    slow = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    slow.daemon_threads = True
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    app = create_app(ScriptedEngine("hi"), allow_remote_images=True, remote_timeout_s=3.0)
    app.state.policy = dataclasses.replace(app.state.policy, remote_allow=lambda ip: True)  # loopback stands in
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)

    async def drive():
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        async with httpx.AsyncClient(timeout=30) as http:
            remote = f"http://127.0.0.1:{slow.server_address[1]}/x.png"
            fetches = [asyncio.create_task(http.post(url, json=chat("q", remote))) for _ in range(8)]
            await asyncio.sleep(0.3)
            t0 = time.monotonic()
            other = await http.post(url, json=chat("unrelated", png_url(4, 4)))
            waited = time.monotonic() - t0
            t1 = time.monotonic()
            slow_results = await asyncio.gather(*fetches)
            return other, waited, slow_results, time.monotonic() - t1

    try:
        other, waited, slow_results, rest = asyncio.run(drive())
    finally:
        server.should_exit = True
        thread.join(10)
        slow.shutdown()
    assert other.status_code == 200 and waited < 1.5
    assert {r.status_code for r in slow_results} == {400} and rest < 4.5  # one 3 s deadline for each whole fetch
    assert "could not be fetched" in slow_results[0].json()["error"]["message"]
