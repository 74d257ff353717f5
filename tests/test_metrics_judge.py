"""The optional LLM judge against a tiny local OpenAI-compatible server (stdlib http.server)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from medmo.eval.metrics import get_metric
from medmo.eval.metrics.judge import JUDGE_VERSION, JudgeConfig, LLMJudge, judge, parse_verdict


class _Handler(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):  # noqa: N802 (http.server naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.seen.append((self.path, self.headers.get("Authorization"), body))
        prompt = body["messages"][0]["content"]
        if "EXPLODE" in prompt:
            self.send_response(500)
            self.end_headers()
            return
        # A fake grader: correct when the reference answer's text appears in the model answer.
        ref = prompt.split("Reference answer: ")[1].split("\n")[0]
        ans = prompt.split("Model answer: ")[1].split("\n")[0]
        verdict = "CORRECT" if ref.lower() in ans.lower() else "INCORRECT"
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": verdict}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    for var in ("NO_PROXY", "no_proxy"):  # a CI proxy must not intercept the local fake server
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    httpd = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    _Handler.seen.clear()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_judge_marks_results_and_scores(server):
    res = judge(
        ["The right lower lobe", "Liver", "EXPLODE"],
        ["right lower lobe", "spleen", "x"],
        questions=["Where?", "Which organ?", "?"],
        base_url=server,
        model="fake-judge",
        api_key="k",
    )
    assert res["judged"] is True and res["judge_model"] == "fake-judge" and res["version"] == JUDGE_VERSION
    rows = res["per_sample"]
    assert [r["judge_correct"] for r in rows] == [1.0, 0.0, None]
    assert "HTTPError" in rows[2]["judge_error"]  # a failed request never aborts the run
    assert res["aggregate"] == {"judge_acc": 0.5, "judge_answered": 2.0, "judge_failed": 1.0}
    path, auth, body = _Handler.seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer k"
    assert body["model"] == "fake-judge" and body["temperature"] == 0 and "Where?" in body["messages"][0]["content"]


def test_judge_object_for_the_runner(server):
    j = LLMJudge(JudgeConfig(server, "fake-judge"))
    assert j.judge("q", "effusion", "small effusion") is True
    assert j.judge("q", "effusion", "pneumothorax") is False
    assert j.judge("q", "x", "EXPLODE") is False
    assert j.info()["model"] == "fake-judge"


def test_judge_is_off_by_default(monkeypatch):
    monkeypatch.delenv("MEDMO_JUDGE_URL", raising=False)
    monkeypatch.delenv("MEDMO_JUDGE_MODEL", raising=False)
    with pytest.raises(ValueError, match="off by default"):
        get_metric("llm_judge")(["a"], ["a"])


def test_judge_from_env(server, monkeypatch):
    monkeypatch.setenv("MEDMO_JUDGE_URL", server)
    monkeypatch.setenv("MEDMO_JUDGE_MODEL", "env-judge")
    assert get_metric("llm_judge")(["yes it is"], ["yes"])["aggregate"]["judge_acc"] == 1.0


@pytest.mark.parametrize(
    "text,want",
    [("CORRECT", True), ("incorrect.", False), ("Correct? No: INCORRECT", False), ("maybe", None), ("", None)],
)
def test_parse_verdict(text, want):
    assert parse_verdict(text) is want
