"""The HTTP server's own refusals (before the app sees a request) are bounded and JSON, as
`geo-service serve` runs it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from geo_service.http.server import MAX_HEADER_BYTES, MAX_URL_BYTES
from geo_service.localdb import free_port


@pytest.fixture(scope="module")
def served(demo_ro: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`geo-service serve` over the demo database; yields its port."""
    port = free_port()
    home = tmp_path_factory.mktemp("serve-home")
    environment = {
        **os.environ,
        "DATABASE_URL": demo_ro,
        "GEO_SERVICE_HOME": str(home),
        # (short, so that the tests below need not wait long for them)
        "GEO_SERVICE_REQUEST_HEAD_TIMEOUT_S": "1.5",
        "GEO_SERVICE_REQUEST_BODY_IDLE_S": "1.5",
    }
    command = [sys.executable, "-c", "from geo_service.cli import main; main()"]
    process = subprocess.Popen(
        [*command, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def _exchange(port: int, *parts: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send the parts (stopping when the server hangs up) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            for part in parts:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # (refused before the request was sent whole)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    if not answer:
        return 0, {}, b""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def _refused_as_json(
    answer: tuple[int, dict[str, str], bytes], status: int, parameter: str
) -> None:
    code, headers, body = answer
    assert code == status, body
    assert headers["content-type"] == "application/json"
    document = json.loads(body)
    assert document["status"] == status and document["parameter"] == parameter


def test_a_url_past_the_limit_is_414_json_read_no_further(served: int) -> None:
    long = b"GET /collections?q=" + b"a" * (MAX_URL_BYTES + 1000) + b" HTTP/1.1\r\n"
    answer = _exchange(served, long, b"Host: localhost\r\nConnection: close\r\n\r\n")
    _refused_as_json(answer, 414, "path")
    # a request line of 20 MB: the server hangs up at the limit, before it is sent whole
    with socket.create_connection(("127.0.0.1", served), timeout=30) as sock:
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            sock.sendall(b"GET /collections?q=" + b"a" * (20 * 1024 * 1024))
    # under the limit the app answers itself (here: the unknown parameter)
    fits = b"GET /collections?x=" + b"a" * (MAX_URL_BYTES - 100) + b" HTTP/1.1\r\n"
    answer = _exchange(served, fits, b"Host: localhost\r\nConnection: close\r\n\r\n")
    _refused_as_json(answer, 400, "x")


def test_headers_past_the_limits_are_431_json(served: int) -> None:
    start = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    big = b"X-Big: " + b"a" * (MAX_HEADER_BYTES + 1) + b"\r\n\r\n"
    _refused_as_json(_exchange(served, start, big), 431, "headers")
    many = b"".join(b"X-H%d: 1\r\n" % i for i in range(200)) + b"\r\n"
    _refused_as_json(_exchange(served, start, many), 431, "headers")
    fits = b"X-Fine: " + b"a" * 8000 + b"\r\n\r\n"
    assert _exchange(served, start, fits)[0] == 200


def test_a_request_that_is_not_http_is_400_json(served: int) -> None:
    for garbage in (
        b"\x16\x03\x01\x02\x00\x01\x00\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    ):
        _refused_as_json(_exchange(served, garbage), 400, "request")
    with urllib.request.urlopen(f"http://127.0.0.1:{served}/health", timeout=10) as ok:
        assert ok.status == 200  # (the server is still there)


def test_a_websocket_upgrade_is_400_json_naming_the_header(served: int) -> None:
    upgrade = (
        b"GET /health HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    # (before: 403 with an empty text/plain body)
    _refused_as_json(_exchange(served, upgrade), 400, "Upgrade")


def test_a_head_that_never_ends_is_408_json_and_a_stalled_body_is_cut(served: int) -> None:
    """What uvicorn alone kept open for ever: a silent connection, a head never finished,
    a body announced and never sent (GEO_SERVICE_REQUEST_*: 1.5 s here)."""
    _refused_as_json(_exchange(served), 408, "request")
    _refused_as_json(_exchange(served, b"GET /health HTTP/1.1\r\nHost: l\r\n"), 408, "request")
    stalled = b"POST /aggregate HTTP/1.1\r\nHost: l\r\nContent-Length: 1000\r\n\r\n{"
    assert _exchange(served, stalled) == (0, {}, b"")  # (hung up, nothing sent)
    # a client that keeps sending is not cut, however long it takes in all
    with socket.create_connection(("127.0.0.1", served), timeout=30) as sock:
        body = json.dumps({"geometry": {"type": "Point", "coordinates": [105.8, 21.0]}}).encode()
        head = b"POST /aggregate HTTP/1.1\r\nHost: l\r\nConnection: close\r\n"
        sock.sendall(head + b"Content-Type: application/json\r\n")
        sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), len(body) // 3 + 1):
            time.sleep(1.0)  # (each pause under the limit, together over it)
            sock.sendall(body[i : i + len(body) // 3 + 1])
        answer = sock.recv(65536)
    # (the app's own verdict on the body, whatever it is: it was read whole)
    assert answer.startswith(b"HTTP/1.1 ") and b"x-request-id" in answer.lower(), answer[:200]
