"""LLM-judge mode as MedEvalKit runs it, against a local fake OpenAI-compatible endpoint.

The fake endpoint answers each judge prompt with the reply stored in the MedEvalKit fixtures for that
sample, so per-sample verdicts, the prompt text and MedEvalKit's printed totals can all be checked against
what MedEvalKit's own judge mode produced with the same replies.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from medmo.eval import registry, scoring
from medmo.eval.metrics.judge import JudgeConfig, apply_judge, judge_prompt, verdict
from tests.test_metrics_medevalkit import ITEMS, META, QA, to_sample


@pytest.fixture
def endpoint():
    """A local chat-completions server: replies[prompt] -> contents in order (None / missing: HTTP 500)."""
    replies: dict[str, list[str | None]] = {}
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            queue = replies.get(body["messages"][0]["content"]) or [None]
            reply = queue.pop(0)
            if reply is None:
                self.send_response(500)
                self.end_headers()
                return
            out = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1", replies, seen
    server.shutdown()


def test_verdict_reads_the_judge_tag_like_medevalkit():
    assert verdict("<think>same</think>\n<judge>0</judge>") and verdict("<judge> 0 </judge>") and verdict("0")
    assert not verdict("<judge>1</judge>") and not verdict("The answer is correct.") and not verdict(None)
    assert not verdict("<judge>0</judge><judge>1</judge>")


def test_prompt_is_medevalkits_word_for_word():
    stored = [r for r in QA if (r.get("mek_judge") or {}).get("prompt")]
    assert stored
    for r in stored:
        s = to_sample(r["bench"], ITEMS[r["bench"]][r["item"]])
        row = scoring.score(registry.get(r["bench"]), [s], [r["prediction"]], preset="medevalkit").rows[0]
        assert judge_prompt(s.question, row["judge_gold"], row["judge_response"]) == r["mek_judge"]["prompt"]


@pytest.mark.parametrize("bench", ["vqa_rad", "slake", "pathvqa"])
def test_judge_verdicts_replace_the_rule_as_in_medevalkit(bench, endpoint):
    url, replies, seen = endpoint
    agg = META["aggregates"][bench]["judge"]
    rows = [r for r in QA if r["bench"] == bench]
    rows = [rows[i] for i in agg["rows"]]  # MedEvalKit could run judge mode only without its crashing samples
    b = registry.get(bench)
    samples = [to_sample(bench, ITEMS[bench][r["item"]]) for r in rows]
    scored = scoring.score(b, samples, [r["prediction"] for r in rows], preset="medevalkit")
    for s, row, r in zip(samples, scored.rows, rows):
        if r["mek_judge"]["judged"]:
            key = judge_prompt(s.question, row["judge_gold"], row["judge_response"])
            replies.setdefault(key, []).append(r["judge_reply"])  # the same prompt can get different replies
    info = apply_judge(JudgeConfig(url, "fake-judge", concurrency=1), b, samples, scored, preset="medevalkit")
    assert [row["correct"] for row in scored.rows] == [float(c) for c in agg["correct"]]
    assert info["judged"] == sum(r["mek_judge"]["judged"] for r in rows) and info["model"] == "fake-judge"
    assert info["failed_requests"] == sum(r["judge_reply"] is None for r in rows if r["mek_judge"]["judged"])
    printed = agg["metrics"]
    assert info["medevalkit_printed"]["overall_acc"] == pytest.approx(printed["total metrics"]["acc"])
    assert info["medevalkit_printed"]["closed_acc"] == pytest.approx(printed["close"]["acc"])
    assert 0.0 <= info["agreement"] <= 1.0 and seen[0]["temperature"] == 0 and seen[0]["model"] == "fake-judge"
