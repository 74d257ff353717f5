"""The MedMO HTTP server: an OpenAI-compatible chat API, JSON endpoints for ask / ground / report, a web page.

``create_app(model)`` returns a FastAPI app; ``medmo serve MODEL`` runs it under uvicorn on 127.0.0.1.
Generation runs in a worker thread behind a bounded queue (:mod:`medmo.serve.scheduler`), so the event loop
keeps answering ``/health`` and rejecting overload (503) while the model works. Image decoding runs off the
loop in a small pool of its own (``decode_workers``), under per-request pixel and memory limits checked from
image headers first; remote images, when allowed, are fetched asynchronously on the loop. Host, Origin,
Content-Type and API-key checks run before any route (:mod:`medmo.serve.guard`). The API follows OpenAI's chat completions reference (https://platform.openai.com/docs/api-reference/chat),
including ``stream: true`` as server-sent events ending in ``data: [DONE]``.

For research only: MedMO's answers are not medical advice and must not be used for clinical decisions.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any

from medmo import __version__
from medmo.infer.engine import HFEngine
from medmo.infer.inputs import ImagePolicy
from medmo.serve.guard import check_request
from medmo.serve.http import ApiError
from medmo.serve.routes import add_routes
from medmo.serve.scheduler import Scheduler
from medmo.serve.settings import Settings

DISCLAIMER = (
    "**Research use only.** MedMO is a research model; its answers can be wrong and are not medical advice. "
    "Do not use them for diagnosis, treatment or any clinical decision."
)
STATIC = Path(__file__).parent / "static"


def image_policy(cfg: Settings) -> ImagePolicy:
    """The image policy a server with settings ``cfg`` applies to every request."""
    return ImagePolicy(
        allow_local=cfg.allow_local_files is not None,
        local_root=Path(cfg.allow_local_files) if cfg.allow_local_files is not None else None,
        allow_remote=cfg.allow_remote_images,
        max_pixels=cfg.max_image_pixels,
        max_bytes=cfg.max_request_bytes,
        max_images=cfg.max_images,
        max_request_pixels=cfg.max_request_pixels,
        max_decoded_bytes=cfg.max_decoded_bytes,
        remote_timeout_s=cfg.remote_timeout_s,
    )


def resolve_engine(model: Any, **load_kwargs: Any) -> Any:
    """A path or hub id (loaded as :class:`~medmo.infer.engine.HFEngine`), a ``MedMO`` or an engine -> engine."""
    if isinstance(model, (str, Path)):
        return HFEngine.load(model, **load_kwargs)
    return getattr(model, "engine", model)


def create_app(model: Any, *, load_kwargs: dict[str, Any] | None = None, **settings: Any):  # noqa: ANN201 - FastAPI
    """The server app for a checkpoint path / hub id, a :class:`~medmo.infer.MedMO`, or an engine.

    Args:
        model: what answers; a path is loaded with :func:`medmo.model.load` (``load_kwargs`` passed on).
        **settings: fields of :class:`Settings` (unknown names raise ``TypeError``).
    """
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles

    known = {f.name for f in fields(Settings)}
    if set(settings) - known:
        raise TypeError(f"unknown server settings {sorted(set(settings) - known)}; known: {sorted(known)}")
    cfg = Settings(**settings)
    cfg.allowed_hosts = tuple(h.strip("[]").lower() for h in cfg.allowed_hosts)
    cfg.allowed_origins = tuple(o.rstrip("/") for o in cfg.allowed_origins)
    engine = resolve_engine(model, **(load_kwargs or {}))
    scheduler = Scheduler(engine, max_batch=cfg.max_batch, max_queue=cfg.max_queue)
    decoder = ThreadPoolExecutor(max_workers=max(1, cfg.decode_workers), thread_name_prefix="medmo-decode")
    name = cfg.model_name or getattr(engine, "name", "medmo")

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # noqa: ANN202
        yield
        scheduler.close()
        decoder.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="MedMO server",
        version=__version__,
        description=DISCLAIMER + "\n\nOpenAI-compatible chat completions (`/v1/chat/completions`) for MedMO "
        "models, JSON endpoints for asking, grounding and reporting, and a web page at `/`.",
        lifespan=lifespan,
    )
    app.state.settings, app.state.engine, app.state.scheduler, app.state.model_name = cfg, engine, scheduler, name
    app.state.policy, app.state.decoder = image_policy(cfg), decoder

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # Never a plain-text 500 or a traceback for the client; the server log keeps the traceback.
        logging.getLogger(__name__).error("unexpected error", exc_info=exc)
        return JSONResponse(ApiError(500, f"internal error ({type(exc).__name__}); see the server log").body(), 500)

    @app.middleware("http")
    async def _guard(request: Request, call_next: Any) -> Any:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = rid[:128]
        try:
            check_request(request, allowed_hosts=cfg.allowed_hosts, allowed_origins=cfg.allowed_origins,
                          api_key=cfg.api_key, max_body=cfg.max_request_bytes)
        except ApiError as e:
            response = JSONResponse(e.body(), status_code=e.status, headers=e.headers)
        else:
            response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        return response

    if cfg.allowed_origins:  # pages on these origins may call the API from a browser: answer their preflights
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.allowed_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                           expose_headers=["X-Request-ID"])

    @app.get("/health", tags=["server"])
    async def health() -> dict[str, Any]:
        """Liveness and load: the model's name, requests waiting and generating."""
        return {"status": "ok", "model": name, "queued": scheduler.queued, "running": scheduler.running}

    @app.get("/v1/models", tags=["openai"])
    async def models() -> dict[str, Any]:
        """The one served model, in OpenAI's list format."""
        entry = {"id": name, "object": "model", "created": int(time.time()), "owned_by": "medmo"}
        return {"object": "list", "data": [entry]}

    @app.get("/", include_in_schema=False, response_class=FileResponse)
    async def index():  # noqa: ANN202
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    add_routes(app)
    return app
