"""The generating endpoints: ``/v1/chat/completions`` (OpenAI format) and ``/v1/medmo/*`` (for the web page).

Each request is read with a size limit and validated with a 400 that names the offending field
(:mod:`medmo.serve.options`, :func:`medmo.infer.inputs.parse_messages`). Its remote images, when the server
allows them, are fetched on the event loop (:mod:`medmo.infer.remote`); its images are measured from their
headers, charged to the request's limits and decoded in the app's decoding pool, then shrunk to what the
model sees (:meth:`~medmo.infer.engine.Engine.prepare_image`). Its generation is queued on the app's
:class:`~medmo.serve.scheduler.Scheduler`. Responses carry OpenAI's ``usage`` (prompt, completion and total
tokens).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request  # routes are imported by create_app only, with fastapi installed

from medmo.infer.api import boxes_from_text, image_conversation
from medmo.infer.engine import Completion
from medmo.infer.inputs import InputError, check_remote_allowed, checked_text, load_images, parse_messages
from medmo.infer.remote import fetch_async
from medmo.prompts import REPORT_PROMPT, grounding_prompt
from medmo.serve.http import ApiError, read_json
from medmo.serve.options import chat_options
from medmo.serve.scheduler import QueueFull

CHAT_SCHEMA = {
    "type": "object",
    "required": ["messages"],
    "properties": {
        "model": {"type": "string"},
        "messages": {"type": "array", "items": {"type": "object"},
                     "description": "OpenAI chat messages; images as image_url parts holding data URLs"},
        "max_tokens": {"type": "integer", "minimum": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2,
                        "description": "0 or absent: greedy decoding (the default, unlike OpenAI's)"},
        "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                  "description": "nucleus sampling; absent: the checkpoint's generation_config"},
        "top_k": {"type": "integer", "minimum": -1, "description": "top-k sampling (0 or -1: off)"},
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
        "n": {"type": "integer", "enum": [1]},
    },
}
IMAGE_SCHEMA = {"type": "string", "description": "data URL (image/png, image/jpeg or application/dicom)"}
TEXT_SCHEMA = {"type": "string"}
log = logging.getLogger(__name__)


def _body(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "required": required, "properties": props}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def add_routes(app: Any) -> None:
    @app.post("/v1/chat/completions", tags=["openai"], openapi_extra=_body(CHAT_SCHEMA["properties"], ["messages"]))
    async def chat_completions(request: Request) -> Any:
        """OpenAI-compatible chat completion (research use only; not for clinical decisions).

        One model is served: the request's ``model`` field is accepted and ignored. Decoding is greedy
        unless ``temperature`` > 0; unset sampling values come from the checkpoint's generation_config.
        """
        st = request.app.state
        data = await read_json(request, st.settings.max_request_bytes)
        opts = chat_options(data, st.settings.max_new_tokens, st.settings.max_tokens_limit)
        try:
            conversation, sources = parse_messages(data["messages"], st.policy)
        except InputError as e:
            raise ApiError(e.status, str(e)) from None
        images = [im for im, _ in await _images(request, sources)]
        rid = "chatcmpl-" + uuid.uuid4().hex
        if opts.stream:
            from fastapi.responses import StreamingResponse

            events = await _stream_events(request, rid, conversation, images, opts.gen, opts.include_usage)
            return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        done = await _generate(request, conversation, images, opts.gen)
        choice = {"index": 0, "message": {"role": "assistant", "content": done.text}, "finish_reason": done.finish_reason}
        return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": st.model_name,
                "choices": [choice], "usage": done.usage}

    ask_body = _body({"image": IMAGE_SCHEMA, "question": TEXT_SCHEMA}, ["image", "question"])

    @app.post("/v1/medmo/ask", tags=["medmo"], openapi_extra=ask_body)
    async def ask(request: Request) -> dict[str, Any]:
        """Answer a question about an image: ``{"answer": ..., "usage": ...}``."""
        data, image, _ = await _task_input(request, "question")
        done = await _task_generate(request, image, data["question"])
        return {"answer": done.text, "model": request.app.state.model_name, "usage": done.usage}

    @app.post("/v1/medmo/report", tags=["medmo"], openapi_extra=_body({"image": IMAGE_SCHEMA}, ["image"]))
    async def report(request: Request) -> dict[str, Any]:
        """Write a report (findings and impression) for an image: ``{"report": ..., "usage": ...}``."""
        _, image, _ = await _task_input(request, None)
        done = await _task_generate(request, image, REPORT_PROMPT)
        return {"report": done.text, "model": request.app.state.model_name, "usage": done.usage}

    ground_body = _body({"image": IMAGE_SCHEMA, "target": TEXT_SCHEMA}, ["image", "target"])

    @app.post("/v1/medmo/ground", tags=["medmo"], openapi_extra=ground_body)
    async def ground(request: Request) -> dict[str, Any]:
        """Boxes of a target in the image's pixels: ``{"boxes": [{"label", "box", "grid_box"}], "text", ...}``."""
        data, image, (width, height) = await _task_input(request, "target")
        done = await _task_generate(request, image, grounding_prompt(data["target"]))
        boxes = [b.to_dict() for b in boxes_from_text(done.text, data["target"], (width, height))]
        return {"boxes": boxes, "text": done.text, "width": width, "height": height,
                "model": request.app.state.model_name, "usage": done.usage}

    @app.post("/v1/medmo/render", tags=["medmo"], openapi_extra=_body({"image": IMAGE_SCHEMA}, ["image"]))
    async def render(request: Request) -> dict[str, Any]:
        """The image as the model sees it (DICOM windowed to 8-bit RGB) as a PNG data URL, for display."""
        data = await _image_field(request)
        (image, _), = await _images(request, [("image", data["image"])], prepare=False)
        png = await _off_loop(request, _png_data_url, image)
        return {"image": png, "width": image.width, "height": image.height}


# ------------------------------------------------------------------------------------------ inputs


async def _off_loop(request: Any, fn: Any, *args: Any) -> Any:
    """Run ``fn`` in the app's decoding pool; an :class:`InputError` becomes the matching HTTP error."""
    try:
        return await asyncio.get_running_loop().run_in_executor(request.app.state.decoder, fn, *args)
    except InputError as e:
        raise ApiError(e.status, str(e)) from None


async def _images(request: Any, sources: list[tuple[str, Any]], *, prepare: bool = True) -> list[tuple[Any, tuple]]:
    """Fetch (remote), measure, charge and decode a request's images -> ``(image for the model, original size)``."""
    st = request.app.state
    policy = st.policy

    async def fetched(where: str, src: Any) -> tuple[str, Any]:
        if not (isinstance(src, str) and src.startswith(("http://", "https://"))):
            return where, src
        check_remote_allowed(policy, where)
        got = await fetch_async(src, where, max_bytes=policy.max_bytes, timeout_s=policy.remote_timeout_s,
                                max_redirects=policy.remote_max_redirects, allow=policy.remote_allow)
        return where, got

    try:
        sources = list(await asyncio.gather(*(fetched(w, s) for w, s in sources)))
    except InputError as e:
        raise ApiError(e.status, str(e)) from None
    return await _off_loop(request, _decode, sources, policy, st.engine if prepare else None)


def _decode(sources: list[tuple[str, Any]], policy: Any, engine: Any) -> list[tuple[Any, tuple]]:
    out = []
    for (where, _), image in zip(sources, load_images(sources, policy)):
        size = image.size
        if engine is not None and hasattr(engine, "prepare_image"):
            try:
                image = engine.prepare_image(image)
            except InputError as e:
                raise InputError(f"{where}: {e}", e.status) from None
        out.append((image, size))
    return out


async def _image_field(request: Any) -> dict[str, Any]:
    data = await read_json(request, request.app.state.settings.max_request_bytes)
    if not isinstance(data.get("image"), str):
        raise ApiError(400, "image: expected a data URL string, e.g. 'data:image/png;base64,...'")
    return data


async def _task_input(request: Any, text_field: str | None) -> tuple[dict[str, Any], Any, tuple[int, int]]:
    data = await _image_field(request)
    if text_field is not None and (not isinstance(data.get(text_field), str) or not data[text_field].strip()):
        raise ApiError(400, f"{text_field}: expected a non-empty string")
    if text_field is not None:
        try:
            checked_text(data[text_field], text_field)
        except InputError as e:
            raise ApiError(400, str(e)) from None
    (image, size), = await _images(request, [("image", data["image"])])
    return data, image, size


async def _task_generate(request: Any, image: Any, text: str) -> Completion:
    gen = {"max_new_tokens": request.app.state.settings.max_new_tokens, "do_sample": False, "temperature": None,
           "top_p": None, "top_k": None}
    return await _generate(request, image_conversation(text), [image], gen)


# -------------------------------------------------------------------------------------- generation


def _api_error(e: BaseException, timeout_s: float) -> ApiError:
    """The HTTP error of a failed generation: the request's own fault (400), overload (503), time (504), else 500."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, InputError):
        return ApiError(e.status, str(e))
    if isinstance(e, QueueFull):
        return ApiError(503, str(e), {"Retry-After": "1"})
    if isinstance(e, (asyncio.TimeoutError, TimeoutError)):  # aliases from Python 3.11
        return ApiError(504, f"no answer within the server's {timeout_s:g} s limit; retry later")
    log.error("generation failed", exc_info=e)
    return ApiError(500, f"generation failed ({type(e).__name__}); see the server log")


async def _generate(request: Any, conversation: list[dict], images: list[Any], gen: dict[str, Any]) -> Completion:
    st = request.app.state
    try:
        return await st.scheduler.run(conversation, images, timeout_s=st.settings.timeout_s, **gen)
    except Exception as e:  # noqa: BLE001 - mapped to a clean HTTP error, the log keeps unexpected tracebacks
        raise _api_error(e, st.settings.timeout_s) from None


def _chunk(rid: str, model: str, created: int, delta: dict[str, Any] | None, reason: str | None,
           usage: dict[str, int] | None = None) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": reason}]
    chunk: dict[str, Any] = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                             "choices": choices}
    if usage is not None:
        chunk["usage"] = usage
    return f"data: {json.dumps(chunk)}\n\n"


async def _stream_events(request: Any, rid: str, conversation: list, images: list, gen: dict[str, Any],
                         include_usage: bool) -> AsyncIterator[str]:
    """Queue a streamed generation and wait for its first piece, then return its SSE events.

    Until the first piece arrives nothing is sent, so a full queue (503), a request the model refuses
    (400), a timeout (504) or a failure is a plain HTTP error. Events follow OpenAI's ``chat.completion.chunk``
    stream: the role, content pieces as the model produces them, a last chunk with ``finish_reason`` (and
    ``usage``), with ``stream_options.include_usage`` a usage chunk with no choices, then ``data: [DONE]``.
    A failure after the stream has started is sent as an ``{"error": ...}`` event before ``[DONE]``.
    """
    st = request.app.state
    timeout_s = st.settings.timeout_s
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[str | None] = asyncio.Queue()
    job_stop = threading.Event()
    try:
        fut = st.scheduler.submit_stream(conversation, images, lambda p: loop.call_soon_threadsafe(pieces.put_nowait, p),
                                         job_stop, **gen)
    except QueueFull as e:
        raise _api_error(e, timeout_s) from None
    deadline = loop.time() + timeout_s
    try:
        first = await asyncio.wait_for(pieces.get(), timeout_s)
        if first is None:
            fut.result()  # the engine's error, if any, before anything was sent
    except BaseException as e:
        job_stop.set()
        fut.cancel()
        if isinstance(e, asyncio.CancelledError):  # the client went away while waiting
            raise
        raise _api_error(e, timeout_s) from None

    async def events() -> AsyncIterator[str]:
        created, piece = int(time.time()), first
        try:
            yield _chunk(rid, st.model_name, created, {"role": "assistant", "content": ""}, None)
            while piece is not None:
                yield _chunk(rid, st.model_name, created, {"content": piece}, None)
                piece = await asyncio.wait_for(pieces.get(), max(0.0, deadline - loop.time()))
            done: Completion = fut.result()  # raises the engine's error, if any
            yield _chunk(rid, st.model_name, created, {}, done.finish_reason, done.usage)
            if include_usage:
                yield _chunk(rid, st.model_name, created, None, None, done.usage)
        except asyncio.TimeoutError:
            yield "data: " + json.dumps(ApiError(504, f"no answer within {timeout_s:g} s").body()) + "\n\n"
        except Exception as e:  # noqa: BLE001 - the stream has started: report in-band
            yield "data: " + json.dumps(_api_error(e, timeout_s).body()) + "\n\n"
        finally:
            job_stop.set()  # the client left or the stream ended: stop generating
            fut.cancel()
        yield "data: [DONE]\n\n"

    return events()


def _png_data_url(image: Any) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
