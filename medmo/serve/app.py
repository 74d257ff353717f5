"""The MedMO HTTP server: an OpenAI-compatible chat API, JSON endpoints for ask / ground / report, a web page.

``create_app(model)`` returns a FastAPI app; ``medmo serve MODEL`` runs it under uvicorn on 127.0.0.1.
Generation runs in a worker thread behind a bounded queue (:mod:`medmo.serve.scheduler`), so the event loop
keeps answering ``/health`` and rejecting overload (503) while the model works. Image decoding also runs off
the loop. The API follows OpenAI's chat completions reference (https://platform.openai.com/docs/api-reference/chat),
including ``stream: true`` as server-sent events ending in ``data: [DONE]``.

For research only: MedMO's answers are not medical advice and must not be used for clinical decisions.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from medmo import __version__
from medmo.infer.engine import HFEngine
from medmo.infer.inputs import ImagePolicy
from medmo.serve.http import ApiError
from medmo.serve.routes import add_routes
from medmo.serve.scheduler import Scheduler

DISCLAIMER = (
    "**Research use only.** MedMO is a research model; its answers can be wrong and are not medical advice. "
    "Do not use them for diagnosis, treatment or any clinical decision."
)
STATIC = Path(__file__).parent / "static"


@dataclass
class Settings:
    """Server limits and switches (``medmo serve --help`` lists the same as flags).

    Attributes:
        api_key: when set, ``/v1/*`` requires ``Authorization: Bearer <api_key>`` (401 otherwise).
        max_batch: most requests generated together (bound on concurrent generations).
        max_queue: most requests waiting for the model; more get 503.
        timeout_s: longest a request waits for its answer, queueing included (504 after).
        max_request_bytes: largest request body (413 above).
        max_image_pixels: largest image, width x height (413 above).
        max_images: most images in one request.
        max_new_tokens: default answer length when a request gives none.
        max_tokens_limit: largest ``max_tokens`` a request may ask for.
        allow_remote_images: fetch ``http(s)://`` image URLs (off: only data URLs).
        allow_local_files: a folder whose files requests may name by path (off when ``None``).
        model_name: the id reported by ``/v1/models`` (default: the engine's name).
    """

    api_key: str | None = None
    max_batch: int = 8
    max_queue: int = 64
    timeout_s: float = 120.0
    max_request_bytes: int = 20 * 2**20
    max_image_pixels: int = 40_000_000
    max_images: int = 8
    max_new_tokens: int = 256
    max_tokens_limit: int = 4096
    allow_remote_images: bool = False
    allow_local_files: str | Path | None = None
    model_name: str | None = None

    def policy(self):  # noqa: ANN201 - ImagePolicy, imported lazily

        return ImagePolicy(
            allow_local=self.allow_local_files is not None,
            local_root=Path(self.allow_local_files) if self.allow_local_files is not None else None,
            allow_remote=self.allow_remote_images,
            max_pixels=self.max_image_pixels,
            max_bytes=self.max_request_bytes,
            max_images=self.max_images,
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
    engine = resolve_engine(model, **(load_kwargs or {}))
    scheduler = Scheduler(engine, max_batch=cfg.max_batch, max_queue=cfg.max_queue)
    name = cfg.model_name or getattr(engine, "name", "medmo")

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # noqa: ANN202
        yield
        scheduler.close()

    app = FastAPI(
        title="MedMO server",
        version=_version(),
        description=DISCLAIMER + "\n\nOpenAI-compatible chat completions (`/v1/chat/completions`) for MedMO "
        "models, JSON endpoints for asking, grounding and reporting, and a web page at `/`.",
        lifespan=lifespan,
    )
    app.state.settings, app.state.engine, app.state.scheduler, app.state.model_name = cfg, engine, scheduler, name
    app.state.policy = cfg.policy()

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.middleware("http")
    async def _request_id(request: Request, call_next: Any) -> Any:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = rid[:128]
        try:
            _authorize(request, cfg.api_key)
        except ApiError as e:
            response = JSONResponse(e.body(), status_code=e.status, headers=e.headers)
        else:
            response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        return response

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


def _authorize(request: Any, api_key: str | None) -> None:
    """Bearer-token check for ``/v1/*`` (the page and ``/health`` stay open so the page can load)."""
    if not api_key or not request.url.path.startswith("/v1/"):
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), api_key.encode()):
        raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", {"WWW-Authenticate": "Bearer"})


def _version() -> str:
    return __version__
