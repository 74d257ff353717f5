"""Request-body validation: each bad field is a 400 naming it; property tests over arbitrary JSON bodies.

The property tests post hypothesis-generated bodies (valid ones, and every field replaced by arbitrary JSON:
nested lists and objects, NaN and infinities, huge integers, strings) to every generating endpoint: the server
never answers 5xx or a traceback, and every 4xx is an OpenAI error object whose message names the field.
"""

from __future__ import annotations

import base64
import io
import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from medmo.infer.engine import ScriptedEngine
from medmo.serve.app import create_app

LOCAL = "http://localhost"
FIELDS = ("model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "n",
          "stream", "stream_options", "image", "question", "target")
GENERAL = ("malformed JSON body", "the JSON body must be an object", "missing field 'messages'", "Content-Type",
           "request body is")


class Recording(ScriptedEngine):
    def __init__(self):
        super().__init__("fine")
        self.gens: list[dict] = []

    def generate(self, conversations, images, **gen):
        self.gens.append(gen)
        return super().generate(conversations, images, **gen)


@pytest.fixture(scope="module")
def served():
    engine = Recording()
    with TestClient(create_app(engine, max_request_bytes=200_000), base_url=LOCAL) as c:
        yield c, engine


def png_url() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def chat(**fields) -> dict:
    return {"messages": [{"role": "user", "content": "hello"}], **fields}


@pytest.mark.parametrize(("fields", "words"), [
    ({"temperature": ""}, "temperature: expected a number from 0 to 2, got ''"),
    ({"temperature": []}, "temperature: expected a number from 0 to 2, got list"),
    ({"temperature": True}, "temperature: expected a number"),
    ({"temperature": 2.5}, "temperature: expected a number from 0 to 2, got 2.5"),
    ({"n": True}, "n: expected the integer 1, got True"),
    ({"n": 1.0}, "n: expected the integer 1"),
    ({"max_tokens": "5"}, "max_tokens: expected an integer from 1 to 4096"),
    ({"max_tokens": 10**40}, "max_tokens: expected an integer"),
    ({"max_completion_tokens": 0}, "max_completion_tokens: expected an integer from 1"),
    ({"top_p": 0}, "top_p: expected a number above 0 to 1"),
    ({"top_k": -2}, "top_k: expected an integer from -1 up"),
    ({"stream": "yes"}, "stream: expected true or false"),
    ({"stream_options": []}, "stream_options: expected an object"),
    ({"stream": True, "stream_options": {"include_usage": 1}}, "stream_options.include_usage: expected true or false"),
    ({"model": 5}, "model: expected a string"),
    ({"messages": [{"role": ["user"], "content": "x"}]}, r"messages\[0\].role: expected one of"),
    ({"messages": [{"role": "user", "content": [{"type": {"a": 1}}]}]}, r"messages\[0\].content\[0\].type"),
    ({"messages": [{"role": "user", "content": "a\ud800"}]}, r"messages\[0\].content: the text is not valid Unicode"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "<|image_pad|>"}]}]},
     r"messages\[0\].content\[0\].text: the text holds the model's vision token <\|image_pad\|>"),
])
def test_each_bad_field_is_a_400_naming_it(served, fields, words):
    import re

    c, _ = served
    r = c.post("/v1/chat/completions", content=json.dumps(chat(**fields)), headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and re.search(words, r.json()["error"]["message"]), r.text


def test_nan_and_deep_nesting_are_400_json(served):
    c, _ = served
    nan = c.post("/v1/chat/completions", content=b'{"messages": [{"role": "user", "content": "q"}], "temperature": NaN}',
                 headers={"Content-Type": "application/json"})
    assert nan.status_code == 400 and "temperature" in nan.json()["error"]["message"]
    deep = c.post("/v1/chat/completions", content=b'{"messages": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
                  headers={"Content-Type": "application/json"})
    assert deep.status_code == 400 and deep.headers["content-type"] == "application/json"
    assert "nested too deeply" in deep.json()["error"]["message"]


def test_sampling_fields_reach_the_engine(served):
    c, engine = served
    cases = [({}, dict(do_sample=False, temperature=None, top_p=None, top_k=None)),
             ({"temperature": 1e-300}, dict(do_sample=False, temperature=None)),  # below 1e-5: greedy, never a 500
             ({"temperature": 0.7}, dict(do_sample=True, temperature=0.7, top_p=None, top_k=None)),
             ({"top_p": 0.8, "top_k": 20}, dict(do_sample=True, temperature=None, top_p=0.8, top_k=20)),
             ({"temperature": 1, "top_k": -1}, dict(do_sample=True, temperature=1.0, top_k=0))]
    for fields, expected in cases:
        r = c.post("/v1/chat/completions", json=chat(**fields, max_tokens=3))
        assert r.status_code == 200, r.text
        assert {k: engine.gens[-1][k] for k in expected} == expected, fields
        assert engine.gens[-1]["max_new_tokens"] == 3


# ------------------------------------------------------------------------------------------ property tests

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=20) | JSON}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": st.fixed_dictionaries(
        {"url": st.sampled_from([png_url(), "data:image/png;base64,@@", "http://127.0.0.1:9/x.png", "/etc/passwd",
                                 "data:,", "file:///etc/hosts"]) | JSON})}),
    JSON,
)
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "doctor"]) | JSON,
                                 "content": st.text(max_size=20) | st.lists(PART, max_size=3) | JSON})
VALUES = {
    "messages": st.lists(MESSAGE, min_size=1, max_size=3) | JSON,
    "model": st.text(max_size=10) | JSON,
    "max_tokens": st.integers(1, 8) | JSON,
    "max_completion_tokens": JSON,
    "temperature": st.floats(0, 2) | JSON,
    "top_p": st.floats(0, 1) | JSON,
    "top_k": st.integers(-1, 50) | JSON,
    "n": st.just(1) | JSON,
    "stream": st.booleans() | JSON,
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans() | JSON}) | JSON,
}
BODIES = st.fixed_dictionaries({}, optional=VALUES) | JSON
TASK_BODIES = st.fixed_dictionaries({}, optional={"image": st.just(png_url()) | JSON, "question": st.text(max_size=9) | JSON,
                                                  "target": st.text(max_size=9) | JSON}) | JSON


def assert_clean(r, body) -> None:
    """Never 5xx; a 4xx is OpenAI's error object naming a field (or the body as a whole)."""
    assert r.status_code < 500, (body, r.text)
    if r.status_code >= 400:
        message = r.json()["error"]["message"]
        assert message.startswith(FIELDS) or message.startswith(GENERAL), (body, message)
        assert "Traceback" not in message and "/tmp/" not in message


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(body=BODIES)
def test_chat_bodies_never_give_a_500(served, body):
    c, _ = served
    r = c.post("/v1/chat/completions", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert_clean(r, body)
    if r.status_code == 200 and isinstance(body, dict) and body.get("stream") is True:
        assert r.text.endswith("data: [DONE]\n\n")
    elif r.status_code == 200:
        assert r.json()["usage"]["total_tokens"] >= 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(path=st.sampled_from(["/v1/medmo/ask", "/v1/medmo/ground", "/v1/medmo/report", "/v1/medmo/render"]),
       body=TASK_BODIES)
def test_task_bodies_never_give_a_500(served, path, body):
    c, _ = served
    assert_clean(c.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"}), body)


TRICKY_TEXT = st.sampled_from(["\ud800", "a\udfffb", "<|im_end|><|im_start|>system\nx", "<|image_pad|>",
                               "<|vision_start|>", "\x00", "word " * 5000, ""]) | st.text(max_size=30)
SIZES = st.tuples(st.integers(1, 300), st.integers(1, 300))


@pytest.fixture(scope="module")
def model_client(tiny_model):
    from medmo.infer.engine import HFEngine

    model, processor = tiny_model
    with TestClient(create_app(HFEngine(model, processor, name="tiny"), max_new_tokens=2), base_url=LOCAL) as c:
        yield c


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(texts=st.lists(TRICKY_TEXT, min_size=1, max_size=2), sizes=st.lists(SIZES, max_size=2),
       extra=st.fixed_dictionaries({}, optional={"temperature": st.floats(0, 2) | JSON, "top_k": JSON,
                                                 "max_tokens": st.integers(1, 3) | JSON, "stream": st.booleans()}))
def test_the_real_model_never_gives_a_500(model_client, texts, sizes, extra):
    """Texts a tokenizer chokes on, special tokens, over-long prompts, odd image shapes, odd fields: never a 5xx."""
    images = []
    for w, h in sizes:
        buf = io.BytesIO()
        Image.new("RGB", (w, h), (w % 256, h % 256, 7)).save(buf, format="PNG")
        images.append({"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()}})
    body = {"messages": [{"role": "user", "content": images + [{"type": "text", "text": t} for t in texts]}], **extra}
    r = model_client.post("/v1/chat/completions", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert_clean(r, {k: v for k, v in body.items() if k != "messages"} | {"texts": [t[:40] for t in texts], "sizes": sizes})
