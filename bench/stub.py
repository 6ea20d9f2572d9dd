"""A stand-in HTTP server for the harness's dry run: answers like a tile and features server.

Usage: python -m bench.stub PORT

GET /health and /healthz answer 200; a path containing /items answers a GeoJSON
FeatureCollection of `limit` tiny features starting at `offset` (ids 0 … 3320, as many as
there are communes); any other path answers 2,000 bytes, like a small vector tile. HTTP/1.1
with keep-alive, so wrk drives it as it drives the real servers.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FEATURES = 3321
TILE = bytes(range(250)) * 8


def items(query: str) -> bytes:
    """A FeatureCollection page as the query's limit and offset ask."""
    params = urllib.parse.parse_qs(query)
    limit = int(params.get("limit", ["10"])[0])
    offset = int(params.get("offset", ["0"])[0])
    features = [
        {
            "type": "Feature",
            "id": str(i),
            "properties": {"code": f"{i:05d}"},
            "geometry": {"type": "Point", "coordinates": [105.8, 21.0]},
        }
        for i in range(offset, min(offset + limit, FEATURES))
    ]
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


class Handler(BaseHTTPRequestHandler):
    """Answers every GET from memory."""

    protocol_version = "HTTP/1.1"  # keep-alive, like uvicorn and nginx
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        """Answer one request."""
        path, _, query = self.path.partition("?")
        if path in ("/health", "/healthz"):
            body, kind = b'{"status": "ok"}', "application/json"
        elif "/items" in path:
            body, kind = items(query), "application/geo+json"
        else:
            body, kind = TILE, "application/vnd.mapbox-vector-tile"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Stay quiet: wrk sends thousands of requests."""


def main(argv: list[str] | None = None) -> int:
    """Serve on 127.0.0.1:PORT until terminated."""
    port = int((argv if argv is not None else sys.argv[1:])[0])
    ThreadingHTTPServer.daemon_threads = True
    with ThreadingHTTPServer(("127.0.0.1", port), Handler) as server:
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
