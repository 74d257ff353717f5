"""Validation of the generation fields of a chat completion request (OpenAI's names, plus ``top_k``).

Each field is checked for its JSON type and range; a bad value is a 400 naming the field, what it
accepts and (briefly) what came. JSON ``true`` is not a number here, though Python's ``bool`` is an
``int``; ``null`` means "not given". Sampling follows the OpenAI reference
(https://platform.openai.com/docs/api-reference/chat/create) except that decoding is greedy unless
``temperature`` > 0 (or only ``top_p`` / ``top_k`` are given, which sample at the checkpoint's temperature):
a temperature below :data:`GREEDY_BELOW` is greedy, as vLLM treats it (``_SAMPLING_EPS``), so a
denormal temperature never reaches the softmax.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from medmo.infer.errors import short_repr
from medmo.serve.http import ApiError

GREEDY_BELOW = 1e-5
MAX_TEMPERATURE = 2.0


@dataclass(frozen=True)
class ChatOptions:
    """The checked options of one chat request: generation settings and the streaming switches."""

    gen: dict[str, Any]
    stream: bool
    include_usage: bool


def chat_options(data: dict[str, Any], max_new_tokens: int, max_tokens_limit: int) -> ChatOptions:
    """Check a chat completion body's fields (not its messages) -> :class:`ChatOptions`.

    Raises:
        ApiError: 400 naming the first bad field.
    """
    if "messages" not in data:
        raise ApiError(400, "missing field 'messages': send a list of chat messages")
    if data.get("model") is not None and not isinstance(data["model"], str):
        raise ApiError(400, f"model: expected a string, got {short_repr(data['model'])}")
    name = "max_completion_tokens" if data.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = integer(data, name, 1, max_tokens_limit)
    temperature = number(data, "temperature", 0.0, MAX_TEMPERATURE)
    top_p = number(data, "top_p", 0.0, 1.0, low_open=True)
    top_k = integer(data, "top_k", -1, None)
    integer(data, "n", 1, 1)  # one choice per request
    stream = flag(data, "stream")
    stream_options = data.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise ApiError(400, f"stream_options: expected an object like {{'include_usage': true}}, "
                            f"got {short_repr(stream_options)}")
    include_usage = flag(stream_options or {}, "include_usage", "stream_options.include_usage")
    sample = temperature >= GREEDY_BELOW if temperature is not None else (top_p is not None or top_k is not None)
    gen = {"max_new_tokens": max_tokens or max_new_tokens, "do_sample": sample,
           "temperature": temperature if sample else None, "top_p": top_p if sample else None,
           "top_k": (max(top_k, 0) if top_k is not None else None) if sample else None}
    return ChatOptions(gen, stream, include_usage)


def integer(data: dict[str, Any], name: str, low: int, high: int | None) -> int | None:
    """``data[name]`` as an integer in ``[low, high]`` (``None`` when absent or null)."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        span = f"the integer {low}" if high == low else f"an integer from {low}" + (f" to {high}" if high else " up")
        raise ApiError(400, f"{name}: expected {span}, got {short_repr(value)}")
    return value


def number(data: dict[str, Any], name: str, low: float, high: float, *, low_open: bool = False) -> float | None:
    """``data[name]`` as a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    value = data.get(name)
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > high or value < low or (low_open and value == low):
        span = f"{'above ' if low_open else 'from '}{low:g} to {high:g}"
        raise ApiError(400, f"{name}: expected a number {span}, got {short_repr(value)}")
    return float(value)


def flag(data: dict[str, Any], name: str, label: str | None = None) -> bool:
    """``data[name]`` as a JSON boolean (``False`` when absent or null)."""
    value = data.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, f"{label or name}: expected true or false, got {short_repr(value)}")
    return value
