"""Streaming over a real socket (uvicorn on loopback): pieces arrive as generated; a client leaving stops generation."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from medmo.infer.engine import ScriptedEngine
from medmo.serve.app import create_app

LOCAL = "http://localhost"  # the server answers the localhost names by default (Host check)


class SteppedEngine(ScriptedEngine):
    """Streams ``first``, then waits for ``gate`` before streaming ``second``; records the ``stop`` event."""

    def __init__(self):
        super().__init__("unused")
        self.gate = threading.Event()
        self.stop: threading.Event | None = None

    def stream(self, conversation, images, *, stop=None, **gen):
        self.stop = stop
        yield "alpha "
        self.gate.wait(10)
        if not stop.is_set():
            yield "beta"


@pytest.fixture
def served():
    import uvicorn

    engine = SteppedEngine()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(engine), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < end and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield engine, f"http://127.0.0.1:{port}/v1/chat/completions"
    engine.gate.set()
    server.should_exit = True
    thread.join(10)


BODY = {"stream": True, "messages": [{"role": "user", "content": "go"}]}


def test_pieces_arrive_before_generation_ends(served):
    engine, url = served
    contents, done = [], False
    with httpx.stream("POST", url, json=BODY, timeout=10) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                continue
            delta = json.loads(line[6:])["choices"][0]["delta"]
            if delta.get("content"):
                contents.append(delta["content"])
                if delta["content"] == "alpha ":
                    assert not engine.gate.is_set()  # received while the engine is still generating
                    engine.gate.set()
    assert contents == ["alpha ", "beta"] and done


def test_client_leaving_stops_generation(served):
    engine, url = served
    with httpx.stream("POST", url, json=BODY, timeout=10) as r:
        for line in r.iter_lines():
            if "alpha" in line:
                break  # leave mid-answer
    end = time.monotonic() + 5
    while not (engine.stop is not None and engine.stop.is_set()):
        assert time.monotonic() < end, "the server did not stop generating after the client left"
        time.sleep(0.02)
