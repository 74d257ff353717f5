"""The generating endpoints: ``/v1/chat/completions`` (OpenAI format) and ``/v1/medmo/*`` (for the web page).

Each request is read with a size limit, validated with a 400 that names the offending field, its images are
decoded off the event loop under the server's :class:`~medmo.infer.inputs.ImagePolicy`, and its generation
is queued on the app's :class:`~medmo.serve.scheduler.Scheduler`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request  # routes are imported by create_app only, with fastapi installed

from medmo.infer.api import boxes_from_text, image_conversation
from medmo.infer.inputs import InputError, load_any, to_conversation
from medmo.prompts import REPORT_PROMPT, grounding_prompt
from medmo.serve.http import ApiError, read_json
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
        "stream": {"type": "boolean"},
        "n": {"type": "integer", "enum": [1]},
    },
}
IMAGE_SCHEMA = {"type": "string", "description": "data URL (image/png, image/jpeg or application/dicom)"}
TEXT_SCHEMA = {"type": "string"}


def _body(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "required": required, "properties": props}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def add_routes(app: Any) -> None:
    @app.post("/v1/chat/completions", tags=["openai"], openapi_extra=_body(CHAT_SCHEMA["properties"], ["messages"]))
    async def chat_completions(request: Request) -> Any:
        """OpenAI-compatible chat completion (research use only; not for clinical decisions).

        One model is served: the request's ``model`` field is accepted and ignored. Decoding is greedy
        unless ``temperature`` > 0.
        """
        st = request.app.state
        data = await read_json(request, st.settings.max_request_bytes)
        gen, stream = _chat_options(data, st.settings)

        conversation, images = await _inputs(to_conversation, data["messages"], st.policy)
        rid = "chatcmpl-" + uuid.uuid4().hex
        if stream:
            from fastapi.responses import StreamingResponse

            events = _stream_events(request, rid, conversation, images, gen)
            return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        text = await _generate(request, conversation, images, gen)
        finish = _finish_reason(st.engine, text, gen["max_new_tokens"])
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "finish_reason": finish}
        return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": st.model_name,
                "choices": [choice]}

    ask_body = _body({"image": IMAGE_SCHEMA, "question": TEXT_SCHEMA}, ["image", "question"])

    @app.post("/v1/medmo/ask", tags=["medmo"], openapi_extra=ask_body)
    async def ask(request: Request) -> dict[str, Any]:
        """Answer a question about an image: ``{"answer": ...}``."""
        data, image = await _task_input(request, "question")
        text = await _task_generate(request, image, data["question"])
        return {"answer": text, "model": request.app.state.model_name}

    @app.post("/v1/medmo/report", tags=["medmo"], openapi_extra=_body({"image": IMAGE_SCHEMA}, ["image"]))
    async def report(request: Request) -> dict[str, Any]:
        """Write a report (findings and impression) for an image: ``{"report": ...}``."""
        _, image = await _task_input(request, None)
        text = await _task_generate(request, image, REPORT_PROMPT)
        return {"report": text, "model": request.app.state.model_name}

    ground_body = _body({"image": IMAGE_SCHEMA, "target": TEXT_SCHEMA}, ["image", "target"])

    @app.post("/v1/medmo/ground", tags=["medmo"], openapi_extra=ground_body)
    async def ground(request: Request) -> dict[str, Any]:
        """Boxes of a target in the image's pixels: ``{"boxes": [{"label", "box", "grid_box"}], "text", ...}``."""
        data, image = await _task_input(request, "target")
        text = await _task_generate(request, image, grounding_prompt(data["target"]))
        boxes = [b.to_dict() for b in boxes_from_text(text, data["target"], image.size)]
        return {"boxes": boxes, "text": text, "width": image.width, "height": image.height,
                "model": request.app.state.model_name}

    @app.post("/v1/medmo/render", tags=["medmo"], openapi_extra=_body({"image": IMAGE_SCHEMA}, ["image"]))
    async def render(request: Request) -> dict[str, Any]:
        """The image as the model sees it (DICOM windowed to 8-bit RGB) as a PNG data URL, for display."""
        _, image = await _task_input(request, None)
        png = await asyncio.to_thread(_png_data_url, image)
        return {"image": png, "width": image.width, "height": image.height}


# ------------------------------------------------------------------------------------- validation


def _chat_options(data: dict[str, Any], cfg: Any) -> tuple[dict[str, Any], bool]:
    if "messages" not in data:
        raise ApiError(400, "missing field 'messages': send a list of chat messages")
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    if max_tokens is None:
        max_tokens = cfg.max_new_tokens
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= cfg.max_tokens_limit:
        raise ApiError(400, f"max_tokens: expected an integer from 1 to {cfg.max_tokens_limit}, got {max_tokens!r}")
    temperature = data.get("temperature") or 0.0
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not 0 <= temperature <= 2:
        raise ApiError(400, f"temperature: expected a number from 0 to 2, got {data.get('temperature')!r}")
    if data.get("n", 1) != 1:
        raise ApiError(400, f"n: only n=1 is supported, got {data.get('n')!r}")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, f"stream: expected true or false, got {stream!r}")
    gen = {"max_new_tokens": max_tokens, "do_sample": temperature > 0, "temperature": float(temperature or 1.0)}
    return gen, stream


async def _inputs(fn: Any, *args: Any) -> Any:
    """Run an input decoder off the event loop; its :class:`InputError` becomes the matching HTTP error."""
    try:
        return await asyncio.to_thread(fn, *args)
    except InputError as e:
        raise ApiError(e.status, str(e)) from None


async def _task_input(request: Any, text_field: str | None) -> tuple[dict[str, Any], Any]:
    st = request.app.state
    data = await read_json(request, st.settings.max_request_bytes)
    if not isinstance(data.get("image"), str):
        raise ApiError(400, "image: expected a data URL string, e.g. 'data:image/png;base64,...'")
    if text_field is not None and (not isinstance(data.get(text_field), str) or not data[text_field].strip()):
        raise ApiError(400, f"{text_field}: expected a non-empty string")
    image = await _inputs(load_any, data["image"], st.policy, "image")
    return data, image


async def _task_generate(request: Any, image: Any, text: str) -> str:
    gen = {"max_new_tokens": request.app.state.settings.max_new_tokens, "do_sample": False, "temperature": 1.0}
    return await _generate(request, image_conversation(text), [image], gen)


async def _generate(request: Any, conversation: list[dict], images: list[Any], gen: dict[str, Any]) -> str:
    st = request.app.state
    try:
        return await st.scheduler.run(conversation, images, timeout_s=st.settings.timeout_s, **gen)
    except QueueFull as e:
        raise ApiError(503, str(e), {"Retry-After": "1"}) from None
    except asyncio.TimeoutError:  # an alias of TimeoutError from Python 3.11
        raise ApiError(504, f"no answer within the server's {st.settings.timeout_s:g} s limit; retry later") from None
    except Exception as e:  # noqa: BLE001 - the client gets a clean 500, the server log the traceback
        import logging

        logging.getLogger(__name__).exception("generation failed")
        raise ApiError(500, f"generation failed ({type(e).__name__}); see the server log") from None


# --------------------------------------------------------------------------------------- responses


def _finish_reason(engine: Any, text: str, max_new_tokens: int) -> str:
    count = getattr(engine, "count_tokens", None)
    return "length" if count is not None and count(text) >= max_new_tokens else "stop"


def _chunk(rid: str, model: str, created: int, delta: dict[str, Any], reason: str | None) -> str:
    chunk = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
             "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}
    return f"data: {json.dumps(chunk)}\n\n"


def _stream_events(request: Any, rid: str, conversation: list, images: list, gen: dict[str, Any]) -> AsyncIterator[str]:
    """Queue a streamed generation now (so a full queue is a plain 503) and return its SSE events.

    Events follow OpenAI's ``chat.completion.chunk`` stream: the role, content pieces as the model
    produces them, a last chunk with ``finish_reason``, then ``data: [DONE]``. A failure after the stream
    has started is sent as an ``{"error": ...}`` event before ``[DONE]``.
    """
    st = request.app.state
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[str | None] = asyncio.Queue()
    stop = threading.Event()
    try:
        fut = st.scheduler.submit_stream(conversation, images, lambda p: loop.call_soon_threadsafe(pieces.put_nowait, p),
                                         stop, **gen)
    except QueueFull as e:
        raise ApiError(503, str(e), {"Retry-After": "1"}) from None

    async def events() -> AsyncIterator[str]:
        created, deadline, parts = int(time.time()), loop.time() + st.settings.timeout_s, []
        try:
            yield _chunk(rid, st.model_name, created, {"role": "assistant", "content": ""}, None)
            while (piece := await asyncio.wait_for(pieces.get(), max(0.0, deadline - loop.time()))) is not None:
                parts.append(piece)
                yield _chunk(rid, st.model_name, created, {"content": piece}, None)
            fut.result()  # raises the engine's error, if any
            finish = _finish_reason(st.engine, "".join(parts), gen["max_new_tokens"])
            yield _chunk(rid, st.model_name, created, {}, finish)
        except asyncio.TimeoutError:
            yield "data: " + json.dumps(ApiError(504, f"no answer within {st.settings.timeout_s:g} s").body()) + "\n\n"
        except Exception as e:  # noqa: BLE001 - the stream has started: report in-band
            yield "data: " + json.dumps(ApiError(500, f"generation failed ({type(e).__name__})").body()) + "\n\n"
        finally:
            stop.set()  # the client left or the stream ended: stop generating
            fut.cancel()
        yield "data: [DONE]\n\n"

    return events()


def _png_data_url(image: Any) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
