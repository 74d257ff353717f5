"""The error every input check of :mod:`medmo.infer` raises: a message naming the input, and an HTTP status."""

from __future__ import annotations


class InputError(ValueError):
    """A request input that cannot be used; ``status`` is the HTTP status the server answers with.

    400: malformed or unusable; 403: refused by the server's policy; 413: above a size limit (the message
    says which limit and what to do).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def short_repr(value: object) -> str:
    """A value for an error message, never long (a request may send megabytes where a word belongs)."""
    text = repr(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."
