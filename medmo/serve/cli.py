"""``medmo serve MODEL``: the OpenAI-compatible server and web page under uvicorn (127.0.0.1 by default)."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model over HTTP: OpenAI-compatible API + web page (research use only)",
        description="Serve a MedMO model: /v1/chat/completions, /v1/models, /health and a web page at /. "
        "For research only; not for clinical decisions.",
    )
    p.add_argument("model", help="checkpoint folder or hub id")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--api-key", default=os.environ.get("MEDMO_API_KEY"),
                   help="require 'Authorization: Bearer KEY' on /v1/* (default: $MEDMO_API_KEY, else none)")
    p.add_argument("--max-batch", type=int, default=8, help="requests generated together (default 8)")
    p.add_argument("--max-queue", type=int, default=64, help="requests allowed to wait; more get 503 (default 64)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds a request may wait for its answer (default 120)")
    p.add_argument("--max-request-mb", type=float, default=20.0, help="largest request body in MiB (default 20)")
    p.add_argument("--max-image-pixels", type=int, default=40_000_000, help="largest image, width x height (default 40M)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="default answer length in tokens (default 256)")
    p.add_argument("--allow-remote-images", action="store_true", help="fetch http(s) image URLs (default: data URLs only)")
    p.add_argument("--allow-local-files", metavar="DIR", default=None,
                   help="let requests name image files inside DIR by path (default: refused)")
    p.add_argument("--model-name", default=None, help="model id reported by /v1/models (default: the folder name)")
    p.add_argument("--dtype", default="auto", help="model dtype (default auto)")
    p.add_argument("--device-map", default=None, help="accelerate device map, e.g. auto (default: CPU)")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import sys

    import uvicorn

    from medmo.serve.app import create_app

    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.api_key:
        print(f"warning: serving on {args.host} without an API key; anyone who can reach it can use the model",
              file=sys.stderr)
    app = create_app(
        args.model,
        load_kwargs={"dtype": args.dtype, "device_map": args.device_map},
        api_key=args.api_key,
        max_batch=args.max_batch,
        max_queue=args.max_queue,
        timeout_s=args.timeout,
        max_request_bytes=int(args.max_request_mb * 2**20),
        max_image_pixels=args.max_image_pixels,
        max_new_tokens=args.max_new_tokens,
        allow_remote_images=args.allow_remote_images,
        allow_local_files=args.allow_local_files,
        model_name=args.model_name,
    )
    print(f"MedMO server on http://{args.host}:{args.port}/ (research use only; not for clinical decisions)",
          file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
