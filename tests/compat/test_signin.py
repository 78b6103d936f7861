"""End-user sign-in and identity export through the unmodified official client (protocol part 2
§7): `create_auth_session` → the user signs in at a real OpenID Connect server (the OAuth peer,
`tests/oauth-peer`, driven over HTTP with a cookie jar) → `poll_auth_session` returns the user's
token → `verify_user_token` names the user, and the token works as a `UserPrincipal`. Then
`resolve_identity` / `assert_identity`, the assertion checked offline by
`verify_identity_assertion` against the JWKS the server publishes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from alter_sdk import (
    Agent,
    App,
    MemoryIsolationError,
    UserPrincipal,
    verify_identity_assertion,
)

from scenario import run

PEER_DIR = Path(__file__).resolve().parent.parent / "oauth-peer"
CLIENT_ID = "alter-compat"
CLIENT_SECRET = "alter-compat-secret-7f3a"
PASSWORD = "alice-compat-password"


class Peer:
    """The OAuth peer for one test: its only client redirects to the server's callback."""

    def __init__(self, redirect_uri: str) -> None:
        if not (PEER_DIR / "node_modules" / "oidc-provider").is_dir():
            pytest.fail(f"run `npm ci --ignore-scripts` in {PEER_DIR} (scripts/test does it)")
        self.process = subprocess.Popen(
            ["node", "server.mjs"],
            cwd=PEER_DIR,
            env={
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "PEER_CLIENT_ID": CLIENT_ID,
                "PEER_CLIENT_SECRET": CLIENT_SECRET,
                "PEER_REDIRECT_URIS": redirect_uri,
                "PEER_ROTATE_REFRESH": "1",
                "PEER_ACCESS_TTL": "60",
                "PEER_PASSWORD": PASSWORD,
            },
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.issuer = json.loads(self.process.stdout.readline())["issuer"]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def peer(server):
    running = Peer(f"{server.base_url}/auth/callback")
    yield running
    running.stop()


def configure_sign_in(server, peer: Peer) -> None:
    jwks_uri = httpx.get(f"{peer.issuer}/.well-known/openid-configuration").json()["jwks_uri"]
    response = server.admin(
        "PUT",
        f"/apps/{server.app_id}/idp",
        json={"issuer": peer.issuer, "audiences": [CLIENT_ID], "jwks_url": jwks_uri},
    )
    assert response.status_code == 200, response.text
    response = server.admin(
        "PUT",
        f"/apps/{server.app_id}/idp/sign-in",
        json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    )
    assert response.status_code == 200, response.text
    assert response.json()["not_ready"] is None


def sign_in_at_the_idp(auth_url: str, server_url: str) -> httpx.Response:
    """Plays the user's browser: login, consent, and the redirect back to the server's
    callback page."""
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        login = browser.get(auth_url)
        assert login.status_code == 200 and "/interaction/" in str(login.url), login.text
        consent = browser.post(
            f"{login.url}/login", data={"login": "alice", "password": PASSWORD}
        )
        assert consent.status_code == 200 and 'id="allow"' in consent.text, consent.text
        done = browser.post(f"{consent.url}/confirm")
        assert str(done.url).startswith(f"{server_url}/auth/callback")
        return done


def test_a_user_signs_in_through_the_official_client(server, peer):
    configure_sign_in(server, peer)
    secret = server.create_secret("Stripe Prod", allowed_hosts=["api.stripe.com"])

    async def scenario():
        app = App(api_key=server.api_key)
        session = await app.create_auth_session()
        assert session.auth_url.startswith(peer.issuer)
        assert session.expires_in == 600
        query = parse_qs(urlsplit(session.auth_url).query)
        assert query["state"][0] != session.session_token
        assert query["code_challenge_method"] == ["S256"]

        page = sign_in_at_the_idp(session.auth_url, server.base_url)
        assert page.status_code == 200 and "You are signed in" in page.text
        assert page.headers["x-frame-options"] == "DENY"
        assert "unsafe-inline" not in page.headers["content-security-policy"]

        result = await app.poll_auth_session(session.session_token, timeout=30, poll_interval=1)
        assert result.user_token
        assert result.user_info["sub"] == "alice"
        assert await app.verify_user_token(result.user_token) == "alice"
        assert await app.verify_user_token("not.a.jwt") is None

        grant = await app.create_managed_secret_grant(
            secret["id"], principal=UserPrincipal(user_token=result.user_token, label="alice")
        )
        mine = await app.list_grants(end_user_token=result.user_token)
        assert [g.grant_id for g in mine.grants] == [grant.grant_id]

        identity = await app.resolve_identity(user_token=result.user_token)
        assert identity.app_id == server.app_id
        assert identity.external_subject_id == "alice"
        assert identity.app_user_id and identity.app_user_id != "alice"
        return identity.app_user_id

    run(scenario())


def test_identity_assertions_verify_against_the_published_jwks(server, idp):
    jwks = httpx.get(f"{server.base_url}/.well-known/alter-identity-jwks.json").json()
    assert [key["kty"] for key in jwks["keys"]] == ["EC"]
    assert all("d" not in key for key in jwks["keys"])

    async def scenario():
        app = App(api_key=server.api_key)
        token = idp.token("alice", groups=["eng"])
        identity = await app.resolve_identity(user_token=token, include_profile=True)
        assert identity.group_ids == ["eng"]

        assertion = await app.assert_identity(
            audience="https://api.example.com", user_token=token, ttl_seconds=60
        )
        assert assertion.identity.app_user_id == identity.app_user_id
        verified = verify_identity_assertion(
            assertion.token,
            issuer=server.base_url,
            audience="https://api.example.com",
            jwks=jwks,
            expected_app_id=server.app_id,
        )
        assert verified.app_user_id == identity.app_user_id
        assert verified.app_id == server.app_id

        headless = await app.assert_identity(audience="urn:example:api")
        verified = verify_identity_assertion(
            headless.token,
            issuer=server.base_url,
            audience="urn:example:api",
            jwks=jwks,
            expected_app_id=server.app_id,
        )
        assert verified.app_user_id is None
        with pytest.raises(MemoryIsolationError) as refused:
            verify_identity_assertion(
                headless.token,
                issuer=server.base_url,
                audience="https://another.example.com",
                jwks=jwks,
                expected_app_id=server.app_id,
            )
        assert refused.value.code == "memory_assertion_invalid"

        # An agent's assertion names it as the actor.
        bot = await app.agents.create(name="helper", scopes={})
        agent = Agent(api_key=bot.api_key)
        by_agent = await agent.assert_identity(audience="https://api.example.com")
        verified = verify_identity_assertion(
            by_agent.token,
            issuer=server.base_url,
            audience="https://api.example.com",
            jwks=jwks,
            expected_app_id=server.app_id,
            expected_agent_id=str(bot.id),
        )
        assert verified.agent_id == str(bot.id)

    run(scenario())
