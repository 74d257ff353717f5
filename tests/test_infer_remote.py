"""Remote image fetching: non-public addresses refused (also after a redirect), one deadline, one error text.

Local HTTP servers on loopback stand in for the internet; ``allow`` marks which of their addresses count as
public for a test (127.0.0.2 is loopback too on Linux, so a redirect to it can be refused while 127.0.0.1 is not).
"""

from __future__ import annotations

import io
import ipaddress
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from medmo.infer.errors import InputError
from medmo.infer.remote import fetch, is_public

buf = io.BytesIO()
Image.new("RGB", (8, 6), (200, 10, 10)).save(buf, format="PNG")
PNG = buf.getvalue()


class Handler(BaseHTTPRequestHandler):
    hits: list[tuple[str, str]] = []

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        Handler.hits.append((self.path, self.headers.get("Host", "")))
        if self.path == "/ok.png":
            self._send(200, PNG)
        elif self.path.startswith("/to/"):
            self.send_response(302)
            self.send_header("Location", "http://" + self.path[len("/to/"):])
            self.end_headers()
        elif self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            try:
                for b in PNG:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
        elif self.path == "/big":
            self._send(200, b"\0" * 5000)
        else:
            self._send(404, b"no")

    def _send(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def servers():
    """Two servers: 127.0.0.1 (counted public in these tests) and 127.0.0.2 (not)."""
    made = []
    for host in ("127.0.0.1", "127.0.0.2"):
        httpd = ThreadingHTTPServer((host, 0), Handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        made.append(httpd)
    yield [f"{h.server_address[0]}:{h.server_address[1]}" for h in made]
    for h in made:
        h.shutdown()


def only_first(ip) -> bool:
    return str(ip) == "127.0.0.1"


def get(url: str, **kw):
    return fetch(url, "messages[0].content[0]", **{"max_bytes": 4096, "timeout_s": 2.0, "allow": only_first, **kw})


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "224.0.0.1", "::1", "fe80::1", "fd00:ec2::254",
                                     "::ffff:127.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "::"])
def test_non_public_addresses_are_not_public(address):
    assert not is_public(ipaddress.ip_address(address))


def test_public_addresses_are_public():
    assert is_public(ipaddress.ip_address("8.8.8.8")) and is_public(ipaddress.ip_address("2606:4700:4700::1111"))


def test_loopback_is_refused_by_default_without_a_request(servers):
    Handler.hits.clear()
    with pytest.raises(InputError, match="could not be fetched"):
        get(f"http://{servers[0]}/ok.png", allow=is_public)
    with pytest.raises(InputError, match="could not be fetched"):
        get(f"http://localhost:{servers[0].split(':')[1]}/ok.png", allow=is_public)  # checked after resolution
    assert Handler.hits == []


def test_an_allowed_name_is_fetched_from_the_checked_address(servers):
    port = servers[0].split(":")[1]
    Handler.hits.clear()
    got = get(f"http://localhost:{port}/ok.png", allow=lambda ip: ip.is_loopback)
    assert got.raw == PNG and got.mime == "image/png"
    assert Handler.hits == [("/ok.png", f"localhost:{port}")]  # the Host header keeps the name


def test_every_redirect_hop_is_checked(servers):
    Handler.hits.clear()
    assert get(f"http://{servers[0]}/to/{servers[0]}/ok.png").raw == PNG  # an allowed hop is followed
    with pytest.raises(InputError, match="could not be fetched"):
        get(f"http://{servers[0]}/to/{servers[1]}/ok.png")
    assert all(not path.endswith("ok.png") or host == servers[0] for path, host in Handler.hits)
    assert len(Handler.hits) == 3  # the refused hop was never requested


def test_one_deadline_for_the_whole_fetch(servers):
    t0 = time.monotonic()
    with pytest.raises(InputError, match="within 0.5 s"):
        get(f"http://{servers[0]}/slow", timeout_s=0.5)  # 0.1 s per byte: every read is quick, the whole is not
    assert time.monotonic() - t0 < 2.0


def test_one_message_for_every_failure(servers):
    """Closed port, open port with 404, too large, too many redirects, refused address: one text."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    urls = [f"http://127.0.0.1:{closed}/x.png", f"http://{servers[0]}/missing.png", f"http://{servers[0]}/big",
            f"http://{servers[0]}/to/{servers[0]}/to/{servers[0]}/ok.png", f"http://{servers[1]}/ok.png",
            "ftp://example.org/x.png", f"http://user:pw@{servers[0]}/ok.png"]
    texts = set()
    for url in urls:
        with pytest.raises(InputError) as e:
            get(url, max_redirects=1)
        texts.add((str(e.value), e.value.status))
    assert len(texts) == 1, texts
