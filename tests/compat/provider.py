"""A real HTTP server on 127.0.0.1 standing in for a provider API.

It records exactly what arrived (method, raw target, path, query, headers as sent, body) and
answers what the test asked for, per path: 200 JSON by default, or any status, headers and
body. The official client reaches it over a real socket, as it would reach Stripe or AWS.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


@dataclass
class Arrival:
    """One request as it arrived on the wire."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def path(self) -> str:
        """The raw (still percent-encoded) path."""
        return self.target.split("?", 1)[0]

    @property
    def raw_query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    @property
    def query(self) -> list[tuple[str, str]]:
        """The query's pairs, percent-decoded, in order (a `+` stays a `+`)."""
        pairs = []
        for part in self.raw_query.split("&"):
            if part:
                name, _, value = part.partition("=")
                pairs.append((unquote(name), unquote(value)))
        return pairs

    def param(self, name: str) -> str | None:
        found = [value for key, value in self.query if key == name]
        assert len(found) <= 1, f"query parameter {name} arrived {len(found)} times"
        return found[0] if found else None

    def header(self, name: str) -> str | None:
        """The one value of a header (case-insensitive), or None."""
        found = [value for key, value in self.headers if key.lower() == name.lower()]
        assert len(found) <= 1, f"header {name} arrived {len(found)} times"
        return found[0] if found else None

    @property
    def header_names(self) -> set[str]:
        return {key.lower() for key, _ in self.headers}

    def json(self):
        return json.loads(self.body)

    def text(self) -> str:
        """Everything that arrived, as one string (for scans)."""
        lines = [f"{self.method} {self.target}"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        return "\n".join(lines) + "\n\n" + self.body.decode("utf-8", "replace")


@dataclass
class Answer:
    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


class Provider:
    """`Provider()` starts listening; `url(path)`, `answer(path, …)`, `arrivals`, `stop()`."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self._answers: dict[str, Answer] = {}
        self._lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                body = self._read_body()
                arrival = Arrival(
                    method=self.command,
                    target=self.path,
                    headers=list(self.headers.items()),
                    body=body,
                )
                with provider._lock:
                    provider.arrivals.append(arrival)
                    answer = provider._answers.get(arrival.path, Answer())
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.body)

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

            def log_message(self, *args) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def host(self) -> str:
        """The `Host` a client sends here."""
        return f"127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def answer(
        self,
        path: str,
        status: int,
        body: bytes | dict | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """From now on, requests to `path` get this answer."""
        if body is None:
            body = {"error": f"status {status}"}
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        with self._lock:
            self._answers[path] = Answer(
                status, body, {"Content-Type": "application/json", **(headers or {})}
            )

    def take(self) -> list[Arrival]:
        """The arrivals since the last `take()`."""
        with self._lock:
            taken, self.arrivals = self.arrivals, []
        return taken

    def one(self) -> Arrival:
        """The single arrival since the last `take()`."""
        taken = self.take()
        assert len(taken) == 1, f"{len(taken)} requests arrived: {[a.target for a in taken]}"
        return taken[0]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
