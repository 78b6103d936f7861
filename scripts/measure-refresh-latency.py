"""What a lazy OAuth refresh adds to a release, measured end to end.

Runs `alter dev` (the binary in ALTER_BIN, on SQLite) and the real OAuth server of
`tests/oauth-peer` with 2-second access tokens, connects one account through the hosted Connect
page, then times `POST /sdk/token` (through the official client's own signed transport) in pairs:
right after the token expired (the release refreshes it at the provider) and right after that
(the release reads the stored token). Prints p50/p90 of both and their difference.

    ALTER_BIN=$CARGO_TARGET_DIR/release/alter python scripts/measure-refresh-latency.py [ROUNDS]

Use the compat suite's virtualenv (it has the official client) and a release build for figures.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
import webbrowser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "compat"))

from alter_sdk import App  # noqa: E402

from harness import start_server  # noqa: E402
from oauth_peer import OAuthPeer  # noqa: E402

ACCESS_TTL = 2


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as data:
        server = start_server(Path(data), None, "sqlite")
        peer = OAuthPeer(f"{server.base_url}/oauth/callback", access_ttl=ACCESS_TTL)
        try:
            response = server.admin(
                "PUT", f"/apps/{server.app_id}/providers/acme", json=peer.provider_config()
            )
            assert response.status_code == 200, response.text
            webbrowser.open = lambda url, *a, **k: (
                threading.Thread(target=peer.connect_as_user, args=(url,)).start() or True
            )
            os.environ["ALTER_BASE_URL"] = server.base_url
            app = App(api_key=server.api_key)
            await app.connect(providers=["acme"], timeout=60, poll_interval=0.2)
            url = peer.url("/_peer/resource")
            refreshed, stored = [], []
            for _ in range(rounds):
                await asyncio.sleep(ACCESS_TTL + 0.2)
                for sink in (refreshed, stored):
                    started = time.perf_counter()
                    answer = await app.request("GET", url, provider="acme")
                    sink.append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 200
            refreshes = peer.stats()["token_requests"]["refresh_token"]
            assert refreshes == rounds, f"{refreshes} refreshes for {rounds} rounds"
            for name, values in (("with a refresh", refreshed), ("stored token", stored)):
                print(
                    f"{name:>15}: p50 {statistics.median(values):6.2f} ms  "
                    f"p90 {percentile(values, 0.9):6.2f} ms  ({len(values)} requests)"
                )
            print(
                f"refresh adds (p50): {statistics.median(refreshed) - statistics.median(stored):.2f} ms"
            )
        finally:
            peer.stop()
            server.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
