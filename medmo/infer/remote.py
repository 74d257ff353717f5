"""Fetching remote images (off unless a server opts in with ``--allow-remote-images``) without SSRF or stalls.

The rules follow OWASP's Server-Side Request Forgery Prevention Cheat Sheet:

- ``http`` and ``https`` only, no credentials in the URL;
- the host name is resolved once, and every address it resolves to must be public
  (:func:`is_public`: not loopback, private, link-local (cloud metadata services such as 169.254.169.254
  live there), shared CGNAT, multicast, reserved or unspecified, nor an IPv4-mapped, NAT64 or 6to4 form of
  one); the connection then goes to that checked address, so a second DNS answer cannot rebind it;
- redirects are followed by hand, at most ``max_redirects``, each hop checked like the first;
- one deadline covers resolution, connection, every redirect and the whole body, and the body is capped;
- every failure gives one message, so a caller learns nothing about the network behind the server: a closed
  port, an open one, a refused address and a slow server all read the same.

The fetch is asynchronous, so a server awaits it on its event loop without tying up a thread per slow peer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from medmo.infer.errors import InputError

REDIRECTS = (301, 302, 303, 307, 308)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
DEFAULT_MAX_BYTES = 64 * 2**20

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Fetched:
    """The bytes of a fetched remote image and the media type the peer declared."""

    raw: bytes
    mime: str = ""


class _Refused(Exception):
    """Any reason a fetch fails; callers only ever see :func:`uniform_error`."""


def is_public(ip: Address) -> bool:
    """Whether ``ip`` is a globally routable unicast address (embedded IPv4 forms are judged by their IPv4)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public(ip.ipv4_mapped)
        if ip in NAT64:
            return is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None:
            return is_public(ip.sixtofour)
    return ip.is_global and not ip.is_multicast


def uniform_error(where: str, max_bytes: int, timeout_s: float) -> InputError:
    return InputError(
        f"{where}: the remote image could not be fetched (this server fetches only public http(s) addresses "
        f"answering 200 with at most {max_bytes} bytes within {timeout_s:g} s); send it as a data URL instead"
    )


async def fetch_async(
    url: str, where: str, *, max_bytes: int | None, timeout_s: float, max_redirects: int = 3,
    allow: Callable[[Address], bool] = is_public,
) -> Fetched:
    """Fetch ``url`` under the rules of this module.

    Args:
        url: an ``http://`` or ``https://`` URL.
        where: the input's place in the request, for the error message.
        max_bytes: largest body accepted (default 64 MiB).
        timeout_s: the one deadline for the whole fetch.
        max_redirects: most redirects followed.
        allow: which resolved addresses may be connected to (default :func:`is_public`).

    Raises:
        InputError: one message (400) for every failure.
    """
    limit = max_bytes or DEFAULT_MAX_BYTES
    try:
        return await asyncio.wait_for(_fetch(url, limit, max_redirects, allow), timeout_s)
    except Exception:  # noqa: BLE001 - refused, unreachable, slow, too large, not 200: one answer
        raise uniform_error(where, limit, timeout_s) from None


def fetch(url: str, where: str, **kwargs: Any) -> Fetched:
    """:func:`fetch_async` for synchronous callers (the Python API), also from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(fetch_async(url, where, **kwargs))
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["ok"] = asyncio.run(fetch_async(url, where, **kwargs))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    return box["ok"]


async def _fetch(url: str, limit: int, max_redirects: int, allow: Callable[[Address], bool]) -> Fetched:
    import httpx

    # trust_env=False: no proxy from the environment, which would resolve names where these checks cannot see.
    async with httpx.AsyncClient(trust_env=False, follow_redirects=False, verify=True) as client:
        for _ in range(max_redirects + 1):
            pinned, headers, extensions = await _pin(url, allow)
            async with client.stream("GET", pinned, headers=headers, extensions=extensions) as r:
                if r.status_code in REDIRECTS and "location" in r.headers:
                    url = urljoin(url, r.headers["location"])
                    continue
                if r.status_code != 200:
                    raise _Refused
                declared = r.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise _Refused
                body = bytearray()
                async for chunk in r.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise _Refused
                return Fetched(bytes(body), r.headers.get("content-type", "").split(";")[0].strip().lower())
    raise _Refused  # too many redirects


async def _pin(url: str, allow: Callable[[Address], bool]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Check ``url``, resolve its host, check every address; the URL to the first, its Host header, its TLS name."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise _Refused
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses or not all(allow(a) for a in addresses):
        raise _Refused
    ip = addresses[0]
    literal = f"[{ip}]" if ip.version == 6 else str(ip)
    pinned = parts._replace(netloc=f"{literal}:{port}").geturl()
    name = f"[{host}]" if ":" in host else host
    default_port = port == (443 if parts.scheme == "https" else 80)
    headers = {"Host": name if default_port else f"{name}:{port}", "Accept": "image/*, application/dicom"}
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return pinned, headers, extensions
