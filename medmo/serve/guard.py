"""Request checks a browser-facing server needs before any route runs: Host, Origin, Content-Type, API key.

- **Host** (DNS rebinding): a page on ``attacker.example`` whose name is made to resolve to 127.0.0.1 reaches a
  loopback server with ``Host: attacker.example``. Only the names in ``allowed_hosts`` are answered (400
  otherwise); ``medmo serve`` allows the name it is bound to, plus the localhost names when that is a loopback
  address (``--allowed-hosts`` sets them; ``*`` allows any).
- **Origin** (cross-site requests): a state-changing request (POST, PUT, PATCH, DELETE) from a browser carries
  ``Origin``; it must be this server's own origin (its host and port as in the Host header, the host allowed)
  or one of ``allowed_origins`` (403 otherwise). ``Sec-Fetch-Site: cross-site`` and ``Origin: null`` are
  refused the same way. Clients that are not browsers send no Origin and are unaffected.
- **Content-Type**: the API's POST bodies must be ``application/json`` (415 otherwise). A cross-site form or
  ``fetch`` can send ``text/plain`` without a CORS preflight; ``application/json`` always needs one, and this
  server answers no preflight, so a browser never sends it cross-site.
- **API key**: when set, ``/v1/*`` needs ``Authorization: Bearer <key>`` (401 otherwise).

These follow OWASP's CSRF Prevention Cheat Sheet (verifying origin with standard headers) and the
DNS-rebinding defence of checking the Host header.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from medmo.serve.http import ApiError
from medmo.serve.settings import LOCAL_HOSTS

WILDCARD_BINDS = ("0.0.0.0", "::", "")
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")


def default_allowed_hosts(bind: str) -> tuple[str, ...]:
    """The Host names a server bound to ``bind`` answers by default: its own name, plus localhost names on loopback.

    A wildcard bind (``0.0.0.0``, ``::``) cannot know the names clients use, so it allows any (``*``).
    """
    if bind in WILDCARD_BINDS:
        return ("*",)
    names = [bind.strip("[]").lower()]
    if names[0] == "localhost" or _is_loopback(names[0]):
        names += [n for n in LOCAL_HOSTS if n not in names]
    return tuple(names)


def _is_loopback(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(netloc: str) -> str:
    """``example.org:8000`` -> ``example.org``, ``[::1]:8000`` -> ``::1`` (lower case, no trailing dot)."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1:netloc.find("]")] if "]" in netloc else netloc
    if netloc.count(":") == 1:
        netloc = netloc.split(":", 1)[0]
    return netloc.rstrip(".")


def check_request(request: Any, *, allowed_hosts: Sequence[str], allowed_origins: Sequence[str],
                  api_key: str | None, max_body: int) -> None:
    """Raise the :class:`ApiError` a request must get before its route runs, if any (see the module docstring)."""
    host = request.headers.get("host", "")
    if "*" not in allowed_hosts and host_name(host) not in allowed_hosts:
        raise ApiError(400, f"Host {host[:100]!r} is not a name this server answers to; start it with "
                            "--allowed-hosts NAME to allow it (a guard against DNS rebinding)")
    if request.method in STATE_CHANGING:
        _check_origin(request, host, allowed_hosts, allowed_origins)
    path = request.url.path
    if not path.startswith("/v1/"):
        return
    if request.method in STATE_CHANGING:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body:
            raise ApiError(413, f"request body is {int(declared)} bytes, above the server's limit of {max_body}")
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
            raise ApiError(415, f"Content-Type must be application/json, got {media[:60] or 'none'!r}")
    _authorize(request, api_key)


def _check_origin(request: Any, host: str, allowed_hosts: Sequence[str], allowed_origins: Sequence[str]) -> None:
    origin = request.headers.get("origin")
    site = request.headers.get("sec-fetch-site", "")
    if origin is None:
        if site == "cross-site":
            raise ApiError(403, "cross-site requests are refused; call the API from this server's own page "
                                "or from a non-browser client")
        return
    if origin.rstrip("/") in allowed_origins:
        return
    parts = urlsplit(origin)
    same = origin != "null" and parts.netloc.lower() == host.strip().lower()
    allowed = "*" in allowed_hosts or host_name(parts.netloc) in allowed_hosts
    if not (same and allowed) or site == "cross-site":
        raise ApiError(403, f"requests from the web origin {origin[:100]!r} are refused; start the server with "
                            "--allowed-origins ORIGIN to allow a page on another origin")


def _authorize(request: Any, api_key: str | None) -> None:
    """Bearer-token check for ``/v1/*`` (the page and ``/health`` stay open so the page can load)."""
    if not api_key:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), api_key.encode()):
        raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", {"WWW-Authenticate": "Bearer"})
