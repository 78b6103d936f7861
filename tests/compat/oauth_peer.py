"""The real OAuth server of `tests/oauth-peer` (npm `oidc-provider`), started for a compat test,
and a user who signs in and consents there over plain HTTP with a cookie jar."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from urllib.parse import urljoin

import httpx

PEER_DIR = Path(__file__).resolve().parents[1] / "oauth-peer"
# Seconds one start of the peer may take to print its ready line, and starts tried.
READY_TIMEOUT = 45
READY_ATTEMPTS = 3


def _ready_line(process: subprocess.Popen, timeout: float) -> str | None:
    """The process's first line ("" if it exited first), or None if none came in time."""
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return got[0] if got else None


class OAuthPeer:
    def __init__(
        self,
        redirect_uri: str | list[str],
        *,
        rotate: bool = True,
        access_ttl: int = 60,
        client_id: str = "alter-test",
        client_secret: str = "alter-test-secret",
        password: str = "alice-password",
    ) -> None:
        if not (PEER_DIR / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError(f"oidc-provider is not installed: run `npm ci` in {PEER_DIR}")
        redirect_uris = [redirect_uri] if isinstance(redirect_uri, str) else redirect_uri
        self.client_id = client_id
        self.client_secret = client_secret
        self.password = password
        env = {
            "PATH": __import__("os").environ.get("PATH", ""),
            "PEER_CLIENT_ID": self.client_id,
            "PEER_CLIENT_SECRET": self.client_secret,
            "PEER_REDIRECT_URIS": ",".join(redirect_uris),
            "PEER_ROTATE_REFRESH": "1" if rotate else "0",
            "PEER_ACCESS_TTL": str(access_ttl),
            "PEER_PASSWORD": self.password,
        }
        # Node (20, OpenSSL 3) has been seen to hang for good at start-up, before its first
        # line: a start that prints nothing in time is killed and tried again.
        for attempt in range(1, READY_ATTEMPTS + 1):
            self.process = subprocess.Popen(
                ["node", "server.mjs"],
                cwd=PEER_DIR,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            line = _ready_line(self.process, READY_TIMEOUT)
            if line is not None:
                break
            self.process.kill()
            self.process.wait()
            if attempt == READY_ATTEMPTS:
                raise RuntimeError(f"the OAuth peer printed no ready line in {READY_TIMEOUT} s")
        if not line:
            self.process.kill()
            raise RuntimeError("the OAuth peer exited before it was ready")
        assert self.process.stdout is not None
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        self.issuer = json.loads(line)["issuer"]

    def url(self, path: str) -> str:
        return f"{self.issuer}{path}"

    def stats(self) -> dict:
        return httpx.get(self.url("/_peer/stats"), timeout=10).json()

    def live_refresh_tokens(self) -> list[str]:
        return httpx.get(self.url("/_peer/refresh-tokens"), timeout=10).json()

    def revoke_at_provider(self, token: str) -> None:
        """The user revoking the app at the provider: the token dies there (RFC 7009)."""
        response = httpx.post(
            self.url("/token/revocation"),
            auth=(self.client_id, self.client_secret),
            data={"token": token, "token_type_hint": "refresh_token"},
            timeout=10,
        )
        assert response.status_code == 200, response.text

    def provider_config(self) -> dict:
        """The admin API body that configures this peer as a custom provider."""
        return {
            "display_name": "Acme Files",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "scopes": ["openid", "files.read"],
            "endpoints": {
                "issuer": self.issuer,
                "authorize_url": self.url("/auth"),
                "token_url": self.url("/token"),
                "revoke_url": self.url("/token/revocation"),
                "refresh": "rotating",
                "account": {"source": "id_token", "claim": "sub"},
                "api_headers": {"X-Acme-Version": "2026-01"},
                # Where the vault may send its tokens itself (proxy mode).
                "api_base_url": self.url("/"),
            },
        }

    def connect_as_user(self, connect_url: str) -> httpx.Response:
        """Plays the user: opens Alter's Connect page, picks the provider, signs in, consents,
        and follows the redirect back to Alter. Returns Alter's final page."""
        with httpx.Client(timeout=30, follow_redirects=True) as browser:
            page = browser.get(connect_url)
            assert page.status_code == 200, page.text
            assert "Connect Acme Files" in page.text
            login = browser.post(connect_url, data={"provider": "acme"})
            assert login.status_code == 200 and 'id="password"' in login.text, login.text
            consent = browser.post(
                f"{login.url}/login", data={"login": "alice", "password": self.password}
            )
            assert consent.status_code == 200 and 'id="allow"' in consent.text, consent.text
            return browser.post(f"{consent.url}/confirm")

    def configure_as_identity_provider(self, server) -> None:
        """Makes this peer the app's identity provider, with sign-in through its client."""
        jwks_uri = httpx.get(self.url("/.well-known/openid-configuration"), timeout=10).json()[
            "jwks_uri"
        ]
        response = server.admin(
            "PUT",
            f"/apps/{server.app_id}/idp",
            json={"issuer": self.issuer, "audiences": [self.client_id], "jwks_url": jwks_uri},
        )
        assert response.status_code == 200, response.text
        response = server.admin(
            "PUT",
            f"/apps/{server.app_id}/idp/sign-in",
            json={"client_id": self.client_id, "client_secret": self.client_secret},
        )
        assert response.status_code == 200, response.text
        assert response.json()["not_ready"] is None

    def sign_in(
        self, browser: httpx.Client, auth_url: str, login: str = "alice", password: str = ""
    ) -> httpx.Response:
        """Plays the user in `browser` (which follows redirects): login and consent at this
        peer, then the redirect back wherever the authorization asked. `bob` (password
        `bob-password`) is the peer's second account."""
        login_page = browser.get(auth_url)
        assert login_page.status_code == 200 and "/interaction/" in str(login_page.url), (
            login_page.text
        )
        consent = browser.post(
            f"{login_page.url}/login",
            data={"login": login, "password": password or self.password},
        )
        assert consent.status_code == 200 and 'id="allow"' in consent.text, consent.text
        return browser.post(f"{consent.url}/confirm")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
