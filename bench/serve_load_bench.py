"""Load test of ``medmo serve``: requests/s and latency percentiles at N concurrent clients, on loopback.

    .venv/bin/python bench/serve_load_bench.py [--model DIR] [--clients 16] [--requests 96] [--max-seconds 120]
    .venv/bin/python bench/serve_load_bench.py --engine echo   # server + queue only, no model

Starts the real server (``medmo.serve.app.create_app`` under uvicorn) on 127.0.0.1 with a tiny random
Qwen3-VL (``medmo.model.build_small``) unless ``--model`` names a checkpoint, then ``--clients`` concurrent
clients send ``--requests`` chat completions with a small image, each carrying a unique ``X-Request-ID``.
Checks that every request is answered exactly once, by its own response (the id comes back in the header;
with ``--engine echo`` the answer text must also quote its own question), and prints latency p50/p99,
requests/s and the batch sizes the scheduler formed, then one JSON line. Bounded in count and time:
requests not sent by ``--max-seconds`` are counted as skipped, never silently dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def image_url(seed: int, size: int) -> str:
    import numpy as np
    from PIL import Image

    arr = np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def start_server(app, port: int):  # noqa: ANN001, ANN201 - uvicorn objects
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            sys.exit("server failed to start")
        time.sleep(0.05)
    return server, thread


async def client_loop(http, url: str, todo: asyncio.Queue, results: list, deadline: float, args) -> None:  # noqa: ANN001
    while True:
        try:
            rid = todo.get_nowait()
        except asyncio.QueueEmpty:
            return
        if time.monotonic() > deadline:
            results.append({"id": rid, "status": "skipped"})
            continue
        question = f"request {rid}: which organ is shown?"
        body = {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": args.image}}, {"type": "text", "text": question}]}],
            "max_tokens": args.max_new_tokens}
        t0 = time.perf_counter()
        try:
            r = await http.post(url, json=body, headers={"X-Request-ID": rid}, timeout=args.max_seconds)
        except Exception as e:  # noqa: BLE001 - a transport failure is a lost request
            results.append({"id": rid, "status": f"error {type(e).__name__}"})
            continue
        latency = time.perf_counter() - t0
        text = r.json()["choices"][0]["message"]["content"] if r.status_code == 200 else ""
        results.append({"id": rid, "status": r.status_code, "echo": r.headers.get("x-request-id"),
                        "latency": latency, "own_answer": question in text})


async def drive(port: int, args) -> tuple[list, float]:  # noqa: ANN001
    import httpx

    todo: asyncio.Queue = asyncio.Queue()
    ids = [f"r{i:05d}" for i in range(args.requests)]
    for rid in ids:
        todo.put_nowait(rid)
    results: list = []
    limits = httpx.Limits(max_connections=args.clients)
    async with httpx.AsyncClient(limits=limits) as http:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        warm = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": args.image}},
                                                          {"type": "text", "text": "warm-up"}]}], "max_tokens": 2}
        (await http.post(url, json=warm, timeout=args.max_seconds)).raise_for_status()  # first call pays one-off costs
        t0 = time.perf_counter()
        deadline = time.monotonic() + args.max_seconds
        await asyncio.gather(*(client_loop(http, url, todo, results, deadline, args) for _ in range(args.clients)))
        return results, time.perf_counter() - t0


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))] if s else float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="checkpoint folder (default: a tiny random model built in a temp folder)")
    p.add_argument("--engine", choices=["model", "echo"], default="model", help="echo: no model, answers quote the question")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests", type=int, default=96)
    p.add_argument("--max-seconds", type=float, default=120.0, help="stop sending after this long")
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--image-size", type=int, default=64)
    args = p.parse_args()
    args.image = image_url(0, args.image_size)

    from medmo.infer.engine import HFEngine, ScriptedEngine, last_user_text
    from medmo.serve.app import create_app

    if args.engine == "echo":
        engine, label = ScriptedEngine(lambda conv: "echo " + last_user_text(conv), name="echo"), "echo engine"
    else:
        from medmo.model import build_small

        path = Path(args.model) if args.model else build_small(Path(tempfile.mkdtemp(prefix="medmo-bench-")) / "tiny")
        engine, label = HFEngine.load(path, batch_size=args.max_batch), f"model {path}"
    app = create_app(engine, max_batch=args.max_batch, max_queue=4 * args.clients, timeout_s=args.max_seconds)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, thread = start_server(app, port)
    try:
        results, wall = asyncio.run(drive(port, args))
    finally:
        server.should_exit = True
        thread.join(10)
    return report(results, wall, list(app.state.scheduler.batches)[1:], args, label)  # [0] is the warm-up


def report(results: list, wall: float, batches: list[int], args, label: str) -> int:  # noqa: ANN001
    counts = Counter(r["id"] for r in results)
    sent = {f"r{i:05d}" for i in range(args.requests)}
    ok = [r for r in results if r["status"] == 200]
    skipped = sum(r["status"] == "skipped" for r in results)
    lost = sorted(sent - set(counts)) + [r["id"] for r in results if r["status"] not in (200, "skipped")]
    twice = sorted(k for k, n in counts.items() if n > 1)
    wrong_id = [r["id"] for r in ok if r["echo"] != r["id"]]
    wrong_answer = [r["id"] for r in ok if args.engine == "echo" and not r["own_answer"]]
    lat = [r["latency"] for r in ok]
    summary = {
        "bench": "serve_load", "engine": label, "clients": args.clients, "requests": args.requests,
        "answered": len(ok), "skipped": skipped, "lost": len(lost), "answered_twice": len(twice),
        "wrong_request_id": len(wrong_id), "wrong_answer": len(wrong_answer), "wall_s": round(wall, 2),
        "requests_per_s": round(len(ok) / wall, 2), "p50_ms": round(1000 * percentile(lat, 50), 1),
        "p99_ms": round(1000 * percentile(lat, 99), 1), "mean_batch": round(sum(batches) / max(1, len(batches)), 2),
        "max_new_tokens": args.max_new_tokens, "cpu_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    print(f"{label}: {len(ok)}/{args.requests} answered in {wall:.1f} s at {args.clients} clients -> "
          f"{summary['requests_per_s']} req/s, p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, "
          f"mean batch {summary['mean_batch']}")
    print(json.dumps(summary))
    problems = {"lost": lost, "answered twice": twice, "wrong X-Request-ID": wrong_id, "someone else's answer": wrong_answer}
    bad = {k: v[:10] for k, v in problems.items() if v}
    if bad:
        print(f"FAILED: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
