"""Starts the real `alter` binary and drives it with the unmodified official client.

`ALTER_BIN` names the binary (the test command builds it). Each server runs `alter dev` on a
fresh data directory, on SQLite, or on a fresh PostgreSQL schema when `ALTER_TEST_DATABASE_URL`
is set.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import httpx


def alter_bin() -> str:
    path = os.environ.get("ALTER_BIN")
    if not path or not Path(path).exists():
        raise RuntimeError("ALTER_BIN must name the built `alter` binary")
    return path


@dataclass
class Server:
    base_url: str
    app_id: str
    api_key: str
    admin_token: str
    engine: str
    process: subprocess.Popen
    # Where it keeps its master key and credentials, and its database, so another process can
    # serve the same vault (`start_node`).
    data_dir: Path | None = None
    database_url: str | None = None

    def admin(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.base_url}/admin/v1{path}",
            headers={"authorization": f"Bearer {self.admin_token}"},
            timeout=30,
            **kwargs,
        )

    def mint_key(self, **body) -> dict:
        response = self.admin("POST", f"/apps/{self.app_id}/keys", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def create_secret(self, name: str, app_id: str | None = None, **body) -> dict:
        """A managed secret (`POST /admin/v1/apps/{app}/secrets`); returns its SecretInfo."""
        body = {"name": name, "type": "bearer", "value": f"value-of-{name}", **body}
        response = self.admin("POST", f"/apps/{app_id or self.app_id}/secrets", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def create_app(self, name: str) -> tuple[str, str]:
        """A second app and a runtime key for it: `(app_id, api_key)`."""
        response = self.admin("POST", "/apps", json={"name": name})
        assert response.status_code == 201, response.text
        app_id = response.json()["id"]
        response = self.admin("POST", f"/apps/{app_id}/keys", json={})
        assert response.status_code == 201, response.text
        return app_id, response.json()["api_key"]

    def delegate(self, grant_id: str, agent_id: str, app_id: str | None = None, **body) -> dict:
        """The operator delegates a grant the app owns to an agent (admin API)."""
        response = self.admin(
            "POST",
            f"/apps/{app_id or self.app_id}/grants/{grant_id}/delegations",
            json={"agent_id": str(agent_id), **body},
        )
        assert response.status_code == 201, response.text
        return response.json()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_server(data_dir: Path, database_url: str | None, engine: str) -> Server:
    command = [alter_bin(), "dev", "--listen", "127.0.0.1:0", "--data", str(data_dir)]
    if database_url:
        command += ["--database-url", database_url]
    env = {k: v for k, v in os.environ.items() if k != "ALTER_DATABASE_URL"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise RuntimeError("alter dev exited before printing its credentials")
    # Keep draining stdout so the server never blocks on a full pipe.
    threading.Thread(target=process.stdout.read, daemon=True).start()
    creds = json.loads(line)
    return Server(
        base_url=creds["base_url"],
        app_id=creds["app_id"],
        api_key=creds["api_key"],
        admin_token=creds["admin_token"],
        engine=engine,
        process=process,
        data_dir=data_dir,
        database_url=database_url,
    )


def start_node(server: Server) -> Server:
    """A second `alter` process serving the same vault as `server`: the same data directory
    (so the same master key, app and credentials) and the same database, on another port."""
    assert server.data_dir is not None
    node = start_server(server.data_dir, server.database_url, server.engine)
    if node.app_id != server.app_id or node.api_key != server.api_key:
        node.stop()
        raise RuntimeError("the second node did not serve the same app")
    return node


class PostgresSchema:
    """A fresh schema in the PostgreSQL of ALTER_TEST_DATABASE_URL, dropped afterwards."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.admin_url = url
        self.name = f"compat_{uuid.uuid4().hex}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {self.name}")
        separator = "&" if "?" in url else "?"
        self.url = f"{url}{separator}options=-c%20search_path%3D{self.name}"

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.name} CASCADE")


class TamperingProxy:
    """A loopback HTTP/1.1 proxy in front of the server that can rewrite or replay requests on
    the wire, the way an attacker between client and server could."""

    def __init__(self, upstream: str) -> None:
        self.upstream_host, port = upstream.removeprefix("http://").split(":")
        self.upstream_port = int(port)
        self.transform: Callable[[bytes], bytes] = lambda request: request
        self.requests: list[bytes] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_message(reader)
                if request is None:
                    break
                self.requests.append(request)
                forwarded = self.transform(request)
                up_reader, up_writer = await asyncio.open_connection(
                    self.upstream_host, self.upstream_port
                )
                up_writer.write(forwarded)
                await up_writer.drain()
                response = await _read_message(up_reader)
                up_writer.close()
                writer.write(response or b"")
                await writer.drain()
        finally:
            writer.close()


async def _read_message(reader: asyncio.StreamReader) -> bytes | None:
    """One HTTP/1.1 message framed by Content-Length (all that client and server use here)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return head + body
