"""HTTP helpers of the server's routes: OpenAI-style error bodies and a size-capped JSON body reader."""

from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    """An error answered as OpenAI's ``{"error": {"message", "type", "code"}}`` body."""

    TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
             404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large",
             415: "invalid_request_error", 422: "invalid_request_error", 503: "server_overloaded", 504: "timeout"}

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}

    def body(self) -> dict[str, Any]:
        kind = self.TYPES.get(self.status, "server_error")
        return {"error": {"message": self.message, "type": kind, "code": self.status}}


async def read_json(request: Any, max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object, refusing bodies over ``max_bytes`` before reading them whole."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body is {int(declared)} bytes, above the server's limit of {max_bytes}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise ApiError(413, f"request body is above the server's limit of {max_bytes} bytes")
    try:
        data = json.loads(body)
    except json.JSONDecodeError as e:
        raise ApiError(400, f"malformed JSON body: {e.msg} at line {e.lineno} column {e.colno}") from None
    except UnicodeDecodeError:
        raise ApiError(400, "malformed JSON body: not UTF-8 text") from None
    except RecursionError:
        raise ApiError(400, "malformed JSON body: nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"the JSON body must be an object, got {type(data).__name__}")
    return data
