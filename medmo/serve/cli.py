"""``medmo serve MODEL``: the OpenAI-compatible server and web page under uvicorn (127.0.0.1 by default)."""

from __future__ import annotations

import argparse
import os

from medmo.model.flags import add_load_flags, load_kwargs
from medmo.serve.settings import Settings

D = Settings()  # the defaults, declared once in medmo.serve.settings
MIB = 2**20


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model over HTTP: OpenAI-compatible API + web page (research use only)",
        description="Serve a MedMO model: /v1/chat/completions, /v1/models, /health and a web page at /. "
        "For research only; not for clinical decisions. README.md, section Security, lists what is accepted "
        "by default and what each opt-in flag opens.",
    )
    p.add_argument("model", help="checkpoint folder or hub id")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--api-key", default=os.environ.get("MEDMO_API_KEY"),
                   help="require 'Authorization: Bearer KEY' on /v1/* (default: $MEDMO_API_KEY, else none)")
    p.add_argument("--allowed-hosts", default=None, metavar="NAME[,NAME]",
                   help="Host header names answered, * for any (default: the --host name, plus localhost, "
                        "127.0.0.1 and ::1 when it is a loopback address; any when it is 0.0.0.0 or ::)")
    p.add_argument("--allowed-origins", default="", metavar="ORIGIN[,ORIGIN]",
                   help="web origins besides the server's own whose pages may POST to it, e.g. https://app.example")
    p.add_argument("--max-batch", type=int, default=D.max_batch, help=f"requests generated together (default {D.max_batch})")
    p.add_argument("--max-queue", type=int, default=D.max_queue,
                   help=f"requests allowed to wait; more get 503 (default {D.max_queue})")
    p.add_argument("--timeout", type=float, default=D.timeout_s,
                   help=f"seconds a request may wait for its answer; generation stops after (default {D.timeout_s:g})")
    p.add_argument("--max-request-mb", type=float, default=D.max_request_bytes / MIB,
                   help=f"largest request body in MiB (default {D.max_request_bytes / MIB:g})")
    p.add_argument("--max-image-pixels", type=int, default=D.max_image_pixels,
                   help=f"largest image, width x height (default {D.max_image_pixels:,})")
    p.add_argument("--max-request-pixels", type=int, default=D.max_request_pixels,
                   help=f"most pixels of all images of one request (default {D.max_request_pixels:,})")
    p.add_argument("--max-decoded-mb", type=float, default=D.max_decoded_bytes / MIB,
                   help="most memory decoding one request's images may take, estimated from their headers "
                        f"(default {D.max_decoded_bytes / MIB:g})")
    p.add_argument("--decode-workers", type=int, default=D.decode_workers,
                   help=f"images decoded at once, over all requests (default {D.decode_workers})")
    p.add_argument("--max-new-tokens", type=int, default=D.max_new_tokens,
                   help=f"default answer length in tokens (default {D.max_new_tokens})")
    p.add_argument("--allow-remote-images", action="store_true",
                   help="fetch image URLs from public http(s) addresses (default: data URLs only)")
    p.add_argument("--remote-timeout", type=float, default=D.remote_timeout_s,
                   help=f"seconds for a whole remote image fetch, redirects included (default {D.remote_timeout_s:g})")
    p.add_argument("--allow-local-files", metavar="DIR", default=None,
                   help="let requests name image files inside DIR by path (default: refused)")
    p.add_argument("--model-name", default=None, help="model id reported by /v1/models (default: the folder name)")
    add_load_flags(p)
    p.set_defaults(func=_serve)


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (text or "").split(",") if n.strip())


def _serve(args: argparse.Namespace) -> int:
    import sys

    import uvicorn

    from medmo.serve.app import create_app
    from medmo.serve.guard import default_allowed_hosts

    hosts = _names(args.allowed_hosts) or default_allowed_hosts(args.host)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.api_key:
        print(f"warning: serving on {args.host} without an API key; anyone who can reach it can use the model",
              file=sys.stderr)
    if "*" in hosts:
        print("warning: any Host header is answered; pass --allowed-hosts NAME[,NAME] (the names clients use) "
              "to refuse DNS-rebinding requests", file=sys.stderr)
    app = create_app(
        args.model,
        load_kwargs=load_kwargs(args),
        api_key=args.api_key,
        allowed_hosts=hosts,
        allowed_origins=_names(args.allowed_origins),
        max_batch=args.max_batch,
        max_queue=args.max_queue,
        timeout_s=args.timeout,
        max_request_bytes=int(args.max_request_mb * 2**20),
        max_image_pixels=args.max_image_pixels,
        max_request_pixels=args.max_request_pixels,
        max_decoded_bytes=int(args.max_decoded_mb * 2**20),
        decode_workers=args.decode_workers,
        max_new_tokens=args.max_new_tokens,
        allow_remote_images=args.allow_remote_images,
        remote_timeout_s=args.remote_timeout,
        allow_local_files=args.allow_local_files,
        model_name=args.model_name,
    )
    print(f"MedMO server on http://{args.host}:{args.port}/ (research use only; not for clinical decisions)",
          file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
