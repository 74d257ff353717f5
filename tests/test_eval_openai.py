"""The OpenAI-compatible backend: against a minimal stdlib server (retries, concurrency, images) and
against MedMO's own server (``medmo.serve.app.create_app``) run by uvicorn on a free local port."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from medmo.eval.backends import BackendError, Request
from medmo.eval.backends.openai import OpenAIBackend
from medmo.records import ImageRef


class FakeServer:
    """``/v1/chat/completions`` that answers with the image sizes it got; fails the first ``fail`` calls."""

    def __init__(self, fail: int = 0, status: int = 503, delay: float = 0.0):
        self.fail, self.status, self.delay = fail, status, delay
        self.calls, self.active, self.max_active = 0, 0, 0
        self.lock = threading.Lock()
        self.bodies: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.calls += 1
                    n = server.calls
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                    server.bodies.append(body)
                time.sleep(server.delay)
                with server.lock:
                    server.active -= 1
                if n <= server.fail:
                    self.send_response(server.status)
                    self.end_headers()
                    self.wfile.write(b"busy")
                    return
                sizes = []
                for part in body["messages"][0]["content"]:
                    if part["type"] == "image_url":
                        raw = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
                        sizes.append("x".join(map(str, Image.open(io.BytesIO(raw)).size)))
                text = next(p["text"] for p in body["messages"][0]["content"] if p["type"] == "text")
                reply = {"choices": [{"message": {"role": "assistant", "content": f"{','.join(sizes)}|{text}"}}]}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def image(tmp_path):
    Image.new("RGB", (40, 30), (10, 200, 10)).save(tmp_path / "i.png")
    return ImageRef(str(tmp_path / "i.png"), 40, 30)


def req(i: int, images=()) -> Request:
    content = [{"type": "image"} for _ in images] + [{"type": "text", "text": f"q{i}"}]
    return Request(str(i), [{"role": "user", "content": content}], list(images), max_new_tokens=5)


def test_images_travel_as_data_urls_and_order_is_kept(image):
    srv = FakeServer(delay=0.02)
    try:
        out = OpenAIBackend("m", srv.url, concurrency=3).generate([req(i, [image] * (i % 2)) for i in range(8)])
    finally:
        srv.close()
    assert out == [("40x30" if i % 2 else "") + f"|q{i}" for i in range(8)]
    assert 1 < srv.max_active <= 3  # concurrent, but never more than asked
    assert srv.bodies[0]["max_tokens"] == 5 and srv.bodies[0]["temperature"] == 0.0


def test_requests_spread_over_several_endpoints_in_order():
    a, b = FakeServer(), FakeServer()
    try:
        backend = OpenAIBackend("m", f"{a.url}, {b.url}", concurrency=2)
        out = backend.generate([req(i) for i in range(6)])
    finally:
        a.close()
        b.close()
    assert out == [f"|q{i}" for i in range(6)] and len(a.bodies) == 3 and len(b.bodies) == 3
    assert backend.info()["base_url"] == f"{a.url},{b.url}" and backend.concurrency == 4


def test_transient_errors_are_retried_with_backoff():
    srv = FakeServer(fail=2, status=503)
    try:
        t0 = time.perf_counter()
        out = OpenAIBackend("m", srv.url, concurrency=1, retries=3, backoff=0.05).generate([req(1)])
        waited = time.perf_counter() - t0
    finally:
        srv.close()
    assert out == ["|q1"] and srv.calls == 3 and waited >= 0.05 + 0.1  # two backoffs: 0.05, 0.1


def test_client_errors_fail_at_once_and_say_what_to_do():
    srv = FakeServer(fail=10, status=400)
    try:
        with pytest.raises(BackendError, match="HTTP 400.*rerun to resume"):
            OpenAIBackend("m", srv.url, retries=3, backoff=0.01).generate([req(1)])
    finally:
        srv.close()
    assert srv.calls == 1


def test_unreachable_server_raises_backend_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BackendError, match="is the server running"):
        OpenAIBackend("m", f"http://127.0.0.1:{port}/v1", retries=1, backoff=0.01, timeout=2).generate([req(1)])


def _serve(app):
    """Run a FastAPI app with uvicorn in a background thread on a free port; returns (server, base_url)."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    return server, f"http://127.0.0.1:{port}/v1"


def test_evaluate_through_medmo_serve_matches_hand_scores(tmp_path):
    pytest.importorskip("uvicorn")
    from medmo.eval.runner import evaluate
    from medmo.infer.engine import ScriptedEngine, last_user_text
    from medmo.records import Sample
    from medmo.serve.app import create_app

    samples = [
        Sample("a", "closed_vqa", "t", "test", question="Is there a nodule?", answer="yes", images=[]),
        Sample("b", "closed_vqa", "t", "test", question="Is there a mass?", answer="no", images=[]),
        Sample("c", "closed_vqa", "t", "test", question="Is there a cyst?", answer="no", images=[]),
    ]
    Image.new("RGB", (64, 48), (90, 90, 90)).save(tmp_path / "x.png")
    with open(tmp_path / "test.jsonl", "w") as f:
        for s in samples:
            s.images = [ImageRef("x.png", 64, 48)]
            f.write(json.dumps(s.to_dict()) + "\n")
    seen: list = []

    class Recording(ScriptedEngine):
        def generate(self, conversations, images, **kw):
            seen.extend(im.size for ims in images for im in ims)
            return super().generate(conversations, images, **kw)

    engine = Recording(lambda conv: "Yes." if "nodule" in last_user_text(conv) or "cyst" in last_user_text(conv)
                       else "No.", name="scripted-medmo")
    server, url = _serve(create_app(engine, model_name="scripted-medmo"))
    try:
        backend = OpenAIBackend("scripted-medmo", url, concurrency=2)
        res = evaluate(backend, "nano_closed", out_dir=tmp_path / "out", data={"nano": tmp_path})
    finally:
        server.should_exit = True
    assert res["benchmarks"]["nano_closed"]["metrics"]["closed_acc"] == pytest.approx(2 / 3)  # c is wrong
    assert seen == [(64, 48)] * 3 and res["backend"]["kind"] == "openai"


def test_tiny_model_behind_medmo_serve(tiny_model_dir, tmp_path):
    pytest.importorskip("uvicorn")
    from dataclasses import replace

    from medmo.data.synth import build_nano
    from medmo.eval.registry import get
    from medmo.eval.runner import evaluate
    from medmo.serve.app import create_app

    build_nano(tmp_path / "nano", n_train=0, n_val=0, n_test=2, image_size=64)
    server, url = _serve(create_app(str(tiny_model_dir), model_name="tiny"))
    try:
        bench = replace(get("nano_open"), generation={"max_new_tokens": 4, "greedy": True})
        res = evaluate(OpenAIBackend("tiny", url), [bench], out_dir=tmp_path / "o", data={"nano": tmp_path / "nano"})
    finally:
        server.should_exit = True
    entry = res["benchmarks"]["nano_open"]
    rows = [json.loads(x) for x in open(entry["predictions_file"])]
    assert entry["n"] == 2 and entry["n_generated"] == 2 and all(isinstance(r["prediction"], str) for r in rows)
    assert 0.0 <= entry["metrics"]["overall_acc"] <= 1.0


def test_llm_judge_replaces_the_rule_through_a_served_model(tmp_path):
    pytest.importorskip("uvicorn")
    import re

    from medmo.eval.metrics.judge import JudgeConfig
    from medmo.eval.runner import evaluate
    from medmo.infer.engine import ScriptedEngine, last_user_text
    from medmo.records import Sample
    from medmo.serve.app import create_app

    Image.new("RGB", (32, 32)).save(tmp_path / "x.png")
    rows = [("o1", "Where?", "upper right", "right upper"), ("o2", "Where?", "left", "right")]
    with open(tmp_path / "test.jsonl", "w") as f:
        for sid, q, gold, _ in rows:
            s = Sample(sid, "open_vqa", "t", "test", question=q, answer=gold, images=[ImageRef("x.png", 32, 32)])
            f.write(json.dumps(s.to_dict()) + "\n")

    def verdict(conv):  # the judge: same words in any order count as correct
        text = last_user_text(conv)
        ref = re.search(r"The standard answer: (.*)", text).group(1)
        ans = re.search(r"The user's answer: (.*)", text).group(1)
        return "<judge>0</judge>" if sorted(ref.split()) == sorted(ans.split()) else "<judge>1</judge>"

    server, url = _serve(create_app(ScriptedEngine(verdict), model_name="judge"))
    answers = {sid: ans for sid, _, _, ans in rows}

    class Fixed:
        name = "fixed"

        def info(self):
            return {"kind": "fixed"}

        def generate(self, requests, *, batch_size=8):
            return [answers[r.id] for r in requests]

    try:
        res = evaluate(Fixed(), "nano_open", out_dir=tmp_path / "o", data={"nano": tmp_path},
                       judge=JudgeConfig(url, "judge"))
    finally:
        server.should_exit = True
    entry = res["benchmarks"]["nano_open"]
    assert entry["metrics"]["open_acc"] == pytest.approx(0.5)  # the judge's verdict replaces exact match (0)
    assert entry["judge"]["agreement"] == pytest.approx(0.5) and entry["judge"]["judged"] == 2
    assert res["judge"]["model"] == "judge" and res["manifest"]["judge"]["version"].startswith("judge-medevalkit")
