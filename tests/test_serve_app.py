"""The HTTP server's protocol: OpenAI chat completions (plain and streamed), /v1/models, /health, page endpoints."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from medmo.infer.engine import ScriptedEngine, last_user_text
from medmo.serve.app import create_app

LOCAL = "http://localhost"  # the server answers the localhost names by default (Host check)

BOX_REPLY = "nodule <box>[[100, 200, 300, 400]]</box>"


def data_url(w: int = 200, h: int = 100) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (90, 90, 90)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def user(text: str, image: str | None = None) -> list[dict]:
    parts = [{"type": "image_url", "image_url": {"url": image}}] if image else []
    return [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}]


@pytest.fixture(scope="module")
def client():
    engine = ScriptedEngine(lambda conv: BOX_REPLY if "Locate" in last_user_text(conv) else "echo: " + last_user_text(conv))
    with TestClient(base_url=LOCAL, app=create_app(engine, model_name="medmo-test")) as c:
        yield c


def sse_events(text: str) -> list[str]:
    return [line[len("data: "):] for line in text.split("\n\n") if line.startswith("data: ")]


def test_health_models_and_docs(client):
    assert client.get("/health").json() == {"status": "ok", "model": "medmo-test", "queued": 0, "running": 0}
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["medmo-test"]
    assert "Research use only" in client.get("/openapi.json").json()["info"]["description"]


def test_chat_completion_with_image(client):
    r = client.post("/v1/chat/completions", json={"model": "x", "messages": user("What is shown?", data_url())},
                    headers={"X-Request-ID": "req-42"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "req-42"
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-") and body["model"] == "medmo-test"
    assert body["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "echo: What is shown?"}, "finish_reason": "stop"}
    ]


def test_streaming_follows_openai_chunks_and_ends_with_done(client):
    r = client.post("/v1/chat/completions", json={"stream": True, "messages": user("a b c d e f g h i j k l m n o p")})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["choices"][0]["delta"] == {}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "echo: a b c d e f g h i j k l m n o p" and len(chunks) > 3


def test_page_endpoints_ground_ask_report_render(client):
    r = client.post("/v1/medmo/ground", json={"image": data_url(200, 100), "target": "nodule"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["boxes"] == [
        {"label": "nodule", "box": [20.0, 20.0, 60.0, 40.0], "grid_box": [100.0, 200.0, 300.0, 400.0], "convention": "grid"}
    ]
    assert (body["width"], body["height"], body["text"]) == (200, 100, BOX_REPLY)
    assert client.post("/v1/medmo/ask", json={"image": data_url(), "question": "Q?"}).json()["answer"] == "echo: Q?"
    report = client.post("/v1/medmo/report", json={"image": data_url()}).json()["report"]
    assert report.startswith("echo: Write the findings")
    r = client.post("/v1/medmo/ground", json={"image": data_url(), "target": "  "})
    assert r.status_code == 400 and "target" in r.json()["error"]["message"]


def test_render_converts_dicom_for_display(client):
    import pydicom.data

    raw = open(pydicom.data.get_testdata_file("CT_small.dcm"), "rb").read()
    r = client.post("/v1/medmo/render", json={"image": "data:application/dicom;base64," + base64.b64encode(raw).decode()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"]) == (128, 128)
    png = Image.open(io.BytesIO(base64.b64decode(body["image"].split(",", 1)[1])))
    assert png.format == "PNG" and png.size == (128, 128) and len(np.unique(np.asarray(png.convert("L")))) > 10


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "malformed JSON body"),
        (b"[1, 2]", "must be an object"),
        (b'{"model": "m"}', "missing field 'messages'"),
        (b'{"messages": [{"role": "robot", "content": "hi"}]}', r"messages[0].role"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}', "max_tokens"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}', "temperature"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "n": 2}', "n: expected the integer 1"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}', "stream"),
        (b'\xff\xfe', "malformed JSON body"),
    ],
)
def test_malformed_requests_get_400_naming_the_problem(client, body, words):
    r = client.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert words in error["message"] and error["type"] == "invalid_request_error"


def test_real_tiny_model_through_the_server(tiny_model_dir):
    image = Image.fromarray((np.random.default_rng(2).random((40, 56)) * 255).astype("uint8"))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    with TestClient(base_url=LOCAL, app=create_app(tiny_model_dir, max_new_tokens=4)) as c:
        assert c.get("/v1/models").json()["data"][0]["id"] == tiny_model_dir.name
        r = c.post("/v1/chat/completions", json={"messages": user("Which organ?", url), "max_tokens": 4})
        assert r.status_code == 200, r.text
        plain = r.json()["choices"][0]["message"]["content"]
        assert isinstance(plain, str) and r.json()["choices"][0]["finish_reason"] in ("stop", "length")
        r = c.post("/v1/chat/completions", json={"messages": user("Which organ?", url), "max_tokens": 4, "stream": True})
        chunks = [json.loads(e) for e in sse_events(r.text)[:-1]]
        assert "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks) == plain  # greedy both ways
        r = c.post("/v1/medmo/ground", json={"image": url, "target": "nodule"})
        assert r.status_code == 200 and isinstance(r.json()["boxes"], list) and r.json()["width"] == 56
