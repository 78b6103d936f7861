"""End-user sign-in and identity export through the unmodified official client (protocol part 2
§7): `create_auth_session` → the user signs in at a real OpenID Connect server (the OAuth peer,
`tests/oauth-peer`, driven over HTTP with a cookie jar) → `poll_auth_session` returns the user's
token → `verify_user_token` names the user, and the token works as a `UserPrincipal`. Then
`resolve_identity` / `assert_identity`, the assertion checked offline by
`verify_identity_assertion` against the JWKS the server publishes.
"""

from __future__ import annotations

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

from oauth_peer import OAuthPeer
from scenario import run

CLIENT_ID = "alter-compat"
CLIENT_SECRET = "alter-compat-secret-7f3a"
PASSWORD = "alice-compat-password"


@pytest.fixture
def peer(server):
    running = OAuthPeer(
        f"{server.base_url}/auth/callback",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        password=PASSWORD,
    )
    yield running
    running.stop()


def configure_sign_in(server, peer: OAuthPeer) -> None:
    peer.configure_as_identity_provider(server)


def sign_in_at_the_idp(peer: OAuthPeer, auth_url: str, server_url: str) -> httpx.Response:
    """Plays the user's browser: login, consent, and the redirect back to the server's
    callback page."""
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        done = peer.sign_in(browser, auth_url)
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

        page = sign_in_at_the_idp(peer, session.auth_url, server.base_url)
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
