"""What proxy mode costs, measured end to end in one run.

Runs `alter dev` (the binary in ALTER_BIN, on SQLite) and a minimal HTTP upstream on 127.0.0.1
in its own process (`alter dev` allows loopback), stores a bearer secret and a system grant,
then, through the official client:

1. one client, one call at a time: p50/p90 of a direct call to the upstream (plain httpx), of
   `proxy_request` (the vault injects and calls) and of `request` (retrieve mode: the client
   fetches the token, then calls); the proxy's overhead is its p50 less the direct p50;
2. 16 clients at once for a fixed time: calls per second in proxy mode and in retrieve mode.

    ALTER_BIN=$CARGO_TARGET_DIR/release/alter python scripts/measure-proxy.py [ROUNDS] [SECONDS]

Use the compat suite's virtualenv (it has the official client) and a release build for figures.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "compat"))

from alter_sdk import App, SystemPrincipal  # noqa: E402

from harness import start_server  # noqa: E402

CLIENTS = 16

UPSTREAM = r"""
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b'{"ok":true}'


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are written separately: without this, delayed ACKs add ~40 ms.
    disable_nagle_algorithm = True

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


async def timed(call, rounds: int) -> list[float]:
    for _ in range(10):  # warm-up: connections, caches
        await call()
    took = []
    for _ in range(rounds):
        started = time.perf_counter()
        await call()
        took.append((time.perf_counter() - started) * 1000)
    return took


async def throughput(call, seconds: float) -> float:
    done = 0
    end = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < end:
            await call()
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    return done / (time.monotonic() - started)


async def main(rounds: int, seconds: float) -> None:
    upstream = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM], stdout=subprocess.PIPE, text=True
    )
    with tempfile.TemporaryDirectory() as data:
        server = start_server(Path(data), None, "sqlite")
        try:
            port = int(upstream.stdout.readline())
            url = f"http://127.0.0.1:{port}/v1/items"
            secret = server.create_secret(
                "Bench", type="bearer", value="bench-secret-value", allowed_hosts=["127.0.0.1"]
            )
            os.environ["ALTER_BASE_URL"] = server.base_url
            async with App(api_key=server.api_key) as app, httpx.AsyncClient() as direct_client:
                made = await app.create_managed_secret_grant(
                    secret["id"], principal=SystemPrincipal()
                )
                grant = made.grant_id

                async def direct():
                    assert (await direct_client.get(url)).status_code == 200

                async def proxy():
                    assert (await app.proxy_request("GET", url, grant_id=grant)).status_code == 200

                async def retrieve():
                    assert (await app.request("GET", url, grant_id=grant)).status_code == 200

                single = {
                    "direct": await timed(direct, rounds),
                    "proxy": await timed(proxy, rounds),
                    "retrieve": await timed(retrieve, rounds),
                }
                for name, values in single.items():
                    print(
                        f"1 client  {name:>8}: p50 {statistics.median(values):6.2f} ms  "
                        f"p90 {percentile(values, 0.9):6.2f} ms  ({len(values)} calls)"
                    )
                overhead = statistics.median(single["proxy"]) - statistics.median(single["direct"])
                print(f"proxy overhead over a direct call (p50): {overhead:.2f} ms")
                for name, call in (("proxy", proxy), ("retrieve", retrieve)):
                    rate = await throughput(call, seconds)
                    print(f"{CLIENTS} clients {name:>8}: {rate:7.1f} calls/s over {seconds:.0f} s")
        finally:
            server.stop()
            upstream.terminate()


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 300,
            float(sys.argv[2]) if len(sys.argv) > 2 else 10,
        )
    )
