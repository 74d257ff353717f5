"""Host, Origin and Content-Type checks: DNS rebinding and cross-site requests are refused before any route runs."""

from __future__ import annotations

import base64
import json
import shutil

import pytest
from fastapi.testclient import TestClient

from medmo.infer.engine import ScriptedEngine
from medmo.serve.app import create_app
from medmo.serve.guard import default_allowed_hosts, host_name

LOCAL = "http://localhost"
BODY = {"messages": [{"role": "user", "content": "q"}]}


@pytest.fixture
def served(tmp_path):
    import pydicom.data

    shutil.copy(pydicom.data.get_testdata_file("CT_small.dcm"), tmp_path / "ct.dcm")
    engine = ScriptedEngine("hi")
    with TestClient(create_app(engine, allow_local_files=tmp_path), base_url="http://127.0.0.1:8000") as c:
        yield c, engine, str(tmp_path / "ct.dcm")


def error(r) -> str:
    return r.json()["error"]["message"]


def test_default_hosts_follow_the_bound_address():
    assert default_allowed_hosts("127.0.0.1") == ("127.0.0.1", "localhost", "::1")
    assert default_allowed_hosts("::1") == ("::1", "localhost", "127.0.0.1")
    assert default_allowed_hosts("medmo.lab.example") == ("medmo.lab.example",)
    assert default_allowed_hosts("0.0.0.0") == ("*",)
    assert [host_name(h) for h in ("LocalHost:8000", "[::1]:80", "example.org.", "10.0.0.1")] == [
        "localhost", "::1", "example.org", "10.0.0.1"]


def test_other_host_names_are_refused_everywhere(served):
    c, engine, dcm = served
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", ""):
        r = c.get("/v1/models", headers={"Host": host})
        assert r.status_code == 400 and "--allowed-hosts" in error(r), host
    assert c.get("/health", headers={"Host": "evil.example"}).status_code == 400
    for host in ("127.0.0.1:8000", "localhost", "LOCALHOST:1234", "[::1]:8000"):
        assert c.get("/v1/models", headers={"Host": host}).status_code == 200, host
    with TestClient(create_app(engine, allowed_hosts=("*",)), base_url="http://anything.example") as any_host:
        assert any_host.get("/v1/models").status_code == 200


def test_a_dns_rebinding_request_cannot_read_a_local_file(served):
    c, engine, dcm = served
    rebound = {"Host": "rebind.evil.example:8000", "Origin": "http://rebind.evil.example:8000"}
    r = c.post("/v1/medmo/render", json={"image": dcm}, headers=rebound)
    assert r.status_code == 400 and "image" not in r.json()
    ok = c.post("/v1/medmo/render", json={"image": dcm}, headers={"Origin": "http://127.0.0.1:8000"})
    assert ok.status_code == 200 and ok.json()["image"].startswith("data:image/png;base64,")  # the page's own origin


def test_cross_site_posts_are_refused_and_never_reach_the_model(served):
    c, engine, _ = served
    text_plain = c.post("/v1/chat/completions", content=json.dumps(BODY), headers={"Content-Type": "text/plain"})
    assert text_plain.status_code == 415 and "application/json" in error(text_plain)
    form = c.post("/v1/chat/completions", data={"messages": "q"})
    assert form.status_code == 415
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": "http://127.0.0.1:9999"}, {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "cross-site"}):
        r = c.post("/v1/chat/completions", json=BODY, headers=headers)
        assert r.status_code == 403, headers
    assert engine.calls == []
    same = c.post("/v1/chat/completions", json=BODY, headers={"Origin": "http://127.0.0.1:8000",
                                                               "Sec-Fetch-Site": "same-origin"})
    no_origin = c.post("/v1/chat/completions", json=BODY, headers={"Content-Type": "application/json; charset=utf-8"})
    assert same.status_code == no_origin.status_code == 200 and engine.calls == [1, 1]


def test_allowed_origins_and_api_key(served):
    _, engine, _ = served
    app = create_app(engine, allowed_origins=("https://app.example/",), api_key="k")
    with TestClient(app, base_url=LOCAL) as c:
        auth = {"Authorization": "Bearer k"}
        assert c.post("/v1/chat/completions", json=BODY, headers={"Origin": "https://app.example", **auth}).status_code == 200
        assert c.post("/v1/chat/completions", json=BODY, headers={"Origin": "https://other.example", **auth}).status_code == 403
        assert c.post("/v1/chat/completions", json=BODY).status_code == 401
        assert c.get("/health").status_code == 200
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
        ok = c.options("/v1/chat/completions", headers={"Origin": "https://app.example", **preflight})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example"
        other = c.options("/v1/chat/completions", headers={"Origin": "https://other.example", **preflight})
        assert "access-control-allow-origin" not in other.headers


def test_oversized_bodies_are_413_whatever_their_type(served):
    c, _, _ = served
    png = base64.b64encode(b"\0" * (21 * 2**20)).decode()
    r = c.post("/v1/chat/completions", content=png, headers={"Content-Type": "text/plain"})
    assert r.status_code == 413 and "limit" in error(r)
