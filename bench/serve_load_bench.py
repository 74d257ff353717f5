"""Load test of ``medmo serve`` with the real nano model: requests/s, latency p50/p99, errors/lost/duplicated.

    .venv/bin/python bench/serve_load_bench.py                      # nano model, 16 then 64 clients, 128 requests each
    .venv/bin/python bench/serve_load_bench.py --clients 16 --requests 256 --model runs/nano/sft
    .venv/bin/python bench/serve_load_bench.py --quick              # tiny model, 4 then 8 clients: seconds
    .venv/bin/python bench/serve_load_bench.py --engine echo        # server + queue only, no model

Starts the real server (``medmo.serve.app.create_app`` under uvicorn) on 127.0.0.1 with a random nano Qwen3-VL
(``medmo.model.build_small(size="nano")``, the CPU recipe's model) unless ``--model`` names a checkpoint. At each
concurrency level, that many clients send ``--requests`` chat completions between them, each with its own small
image and a unique ``X-Request-ID``. Every request must be answered exactly once, by its own response (the id
comes back in the header; with ``--engine echo`` the answer must also quote its own question): ``errors`` counts
non-200 answers, ``lost`` requests never answered (transport failures), ``duplicated`` requests answered twice or
with another request's id. Prints, per level, requests/s, latency p50/p99, usage tokens/s and the batch sizes the
scheduler formed, then one JSON line; exits 1 unless errors, lost and duplicated are all 0. Bounded in count and
time: requests not sent within ``--max-seconds`` are counted as skipped, never silently dropped.
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

QUICK = {"size": "tiny", "clients": "4,8", "requests": 16, "max_new_tokens": 2, "image_size": 32}


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


def body(rid: str, args: argparse.Namespace) -> dict:
    question = f"request {rid}: which organ is shown?"
    parts = [{"type": "image_url", "image_url": {"url": image_url(int(rid[-5:]), args.image_size)}},
             {"type": "text", "text": question}]
    return {"messages": [{"role": "user", "content": parts}], "max_tokens": args.max_new_tokens}


async def client_loop(http, url: str, todo: asyncio.Queue, results: list, deadline: float, args) -> None:  # noqa: ANN001
    while True:
        try:
            rid, payload = todo.get_nowait()
        except asyncio.QueueEmpty:
            return
        if time.monotonic() > deadline:
            results.append({"id": rid, "status": "skipped"})
            continue
        t0 = time.perf_counter()
        try:
            r = await http.post(url, json=payload, headers={"X-Request-ID": rid}, timeout=args.max_seconds)
        except Exception as e:  # noqa: BLE001 - a transport failure is a lost request
            results.append({"id": rid, "status": f"transport {type(e).__name__}"})
            continue
        latency = time.perf_counter() - t0
        data = r.json() if r.status_code == 200 else {}
        text = data["choices"][0]["message"]["content"] if data else ""
        results.append({"id": rid, "status": r.status_code, "echo": r.headers.get("x-request-id"), "latency": latency,
                        "own_answer": f"request {rid}:" in text, "tokens": data.get("usage", {}).get("total_tokens", 0)})


async def drive(port: int, clients: int, level: int, args) -> tuple[list, float, list[str]]:  # noqa: ANN001
    import httpx

    ids = [f"c{level}-r{i:05d}" for i in range(args.requests)]
    todo: asyncio.Queue = asyncio.Queue()
    for rid in ids:
        todo.put_nowait((rid, body(rid, args)))  # images encoded before the clock starts
    results: list = []
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients)) as http:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        t0 = time.perf_counter()
        deadline = time.monotonic() + args.max_seconds
        await asyncio.gather(*(client_loop(http, url, todo, results, deadline, args) for _ in range(clients)))
        return results, time.perf_counter() - t0, ids


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))] if s else float("nan")


def summarize(results: list, ids: list[str], wall: float, batches: list[int], clients: int, args, label: str) -> dict:  # noqa: ANN001
    counts = Counter(r["id"] for r in results)
    ok = [r for r in results if r["status"] == 200]
    lost = [i for i in ids if i not in counts] + [r["id"] for r in results if str(r["status"]).startswith("transport")]
    errors = [r["id"] for r in results if isinstance(r["status"], int) and r["status"] != 200]
    duplicated = sorted({k for k, n in counts.items() if n > 1} | {r["id"] for r in ok if r["echo"] != r["id"]}
                        | {r["id"] for r in ok if args.engine == "echo" and not r["own_answer"]})
    lat = [r["latency"] for r in ok]
    return {
        "bench": "serve_load", "engine": label, "clients": clients, "requests": len(ids), "answered": len(ok),
        "errors": len(errors), "lost": len(lost), "duplicated": len(duplicated),
        "skipped": sum(r["status"] == "skipped" for r in results), "wall_s": round(wall, 2),
        "requests_per_s": round(len(ok) / wall, 2), "tokens_per_s": round(sum(r["tokens"] for r in ok) / wall, 1),
        "p50_ms": round(1000 * percentile(lat, 50), 1), "p99_ms": round(1000 * percentile(lat, 99), 1),
        "mean_batch": round(sum(batches) / max(1, len(batches)), 2), "max_new_tokens": args.max_new_tokens,
        "cpu_threads": os.environ.get("OMP_NUM_THREADS"),
        "failed_ids": (errors + lost + duplicated)[:10],
    }


def build_engine(args):  # noqa: ANN001, ANN201
    from medmo.infer.engine import HFEngine, ScriptedEngine, last_user_text

    if args.engine == "echo":
        return ScriptedEngine(lambda conv: "echo " + last_user_text(conv), name="echo"), "echo engine"
    from medmo.model import build_small

    path = Path(args.model) if args.model else build_small(Path(tempfile.mkdtemp(prefix="medmo-bench-")) / args.size,
                                                           size=args.size)
    label = f"model {path}" if args.model else f"random {args.size} Qwen3-VL"
    return HFEngine.load(path, batch_size=args.max_batch), label


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="checkpoint folder (default: a random nano model built in a temp folder)")
    p.add_argument("--size", choices=("nano", "tiny"), default="nano", help="model built when --model is absent")
    p.add_argument("--engine", choices=["model", "echo"], default="model", help="echo: no model, answers quote the question")
    p.add_argument("--clients", default="16,64", help="concurrency levels, comma-separated (default 16,64)")
    p.add_argument("--requests", type=int, default=128, help="requests per level (default 128)")
    p.add_argument("--max-seconds", type=float, default=300.0, help="stop sending after this long, per level")
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--quick", action="store_true", help="tiny model, 4 and 8 clients, 16 requests: finishes in seconds")
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    levels = [int(c) for c in args.clients.split(",")]

    from medmo.serve.app import create_app

    engine, label = build_engine(args)
    app = create_app(engine, max_batch=args.max_batch, max_queue=4 * max(levels), timeout_s=args.max_seconds)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, thread = start_server(app, port)
    summaries = []
    try:
        asyncio.run(drive(port, 1, 0, argparse.Namespace(**{**vars(args), "requests": 1})))  # warm-up: one-off costs
        for clients in levels:
            done = len(app.state.scheduler.batches)
            results, wall, ids = asyncio.run(drive(port, clients, clients, args))
            summaries.append(summarize(results, ids, wall, list(app.state.scheduler.batches)[done:], clients, args, label))
    finally:
        server.should_exit = True
        thread.join(10)
    return report(summaries)


def report(summaries: list[dict]) -> int:
    for s in summaries:
        print(f"{s['engine']}: {s['answered']}/{s['requests']} answered at {s['clients']} clients in {s['wall_s']} s -> "
              f"{s['requests_per_s']} req/s, p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, {s['tokens_per_s']} tokens/s, "
              f"mean batch {s['mean_batch']}; errors {s['errors']}, lost {s['lost']}, duplicated {s['duplicated']}")
        print(json.dumps(s))
    bad = [s for s in summaries if s["errors"] or s["lost"] or s["duplicated"]]
    if bad:
        print(f"FAILED: {[(s['clients'], s['failed_ids']) for s in bad]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
