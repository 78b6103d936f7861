"""OAuth connections through the unmodified official client (protocol part 2 §6, part 1 §5):
`connect()` opens the Connect page in "the browser" (a user played over HTTP against the real
OAuth server), `request(provider=…)` injects the provider's access token, which the provider's
own resource endpoint accepts; past the token's refresh point the next call refreshes once, with
the rotated refresh token the time after; `revoke_grant` kills the tokens at the provider."""

import asyncio
import json
import subprocess
import threading
import time
import webbrowser

import pytest
from alter_sdk import App
from alter_sdk.exceptions import ConnectFlowError

from oauth_peer import PEER_DIR, OAuthPeer
from scenario import run

# The vault refreshes a token within its buffer: 60 s, at most half the token's lifetime. A
# 6-second token is fresh for 3 s.
ACCESS_TTL = 6
FRESH_FOR = ACCESS_TTL / 2


@pytest.fixture
def peer(server):
    running = OAuthPeer(f"{server.base_url}/oauth/callback", access_ttl=ACCESS_TTL)
    response = server.admin(
        "PUT", f"/apps/{server.app_id}/providers/acme", json=running.provider_config()
    )
    assert response.status_code == 200, response.text
    yield running
    running.stop()


@pytest.fixture
def browser(peer, monkeypatch):
    """`webbrowser.open` plays the user at the Connect page and the provider (in a thread, as a
    real browser runs beside the polling client). Returns the pages the user ended on."""
    landed = []

    def open_url(url, *args, **kwargs):
        thread = threading.Thread(target=lambda: landed.append(peer.connect_as_user(url)))
        thread.start()
        return True

    monkeypatch.setattr(webbrowser, "open", open_url)
    return landed


def test_connect_then_request_refreshes_once_and_revoke_reaches_the_provider(server, peer, browser):
    async def scenario():
        app = App(api_key=server.api_key)
        results = await app.connect(providers=["acme"], timeout=60, poll_interval=0.5)
        assert len(results) == 1
        connected = results[0]
        assert connected.provider_id == "acme"
        assert connected.account_identifier == "alice"
        assert set(connected.scopes) == {"openid", "files.read"}
        assert connected.operation in (None, "creation")
        assert browser[0].status_code == 200 and "is connected" in browser[0].text

        grants = await app.list_grants(provider_id="acme")
        assert [g.grant_id for g in grants.grants] == [connected.grant_id]
        assert grants.grants[0].grant_kind == "oauth"
        assert grants.grants[0].account_identifier == "alice"

        resource = peer.url("/_peer/resource")
        answer = await app.request("GET", resource, provider="acme")
        assert answer.status_code == 200
        assert answer.json()["sub"] == "alice"
        # The provider's fixed API headers travel with every call, injected by the client.
        assert answer.json()["api_version"] == "2026-01"
        assert peer.stats()["token_requests"]["refresh_token"] == 0

        # Within the refresh buffer: the next call refreshes, once.
        await asyncio.sleep(FRESH_FOR + 0.5)
        for _ in range(3):
            answer = await app.request("GET", resource, provider="acme", grant_id=None)
            assert answer.status_code == 200
        assert peer.stats()["token_requests"]["refresh_token"] == 1
        # And again, with the rotated refresh token (reusing the first would revoke it all).
        await asyncio.sleep(FRESH_FOR + 0.5)
        answer = await app.request("GET", resource, grant_id=connected.grant_id)
        assert answer.status_code == 200
        assert peer.stats()["token_requests"]["refresh_token"] == 2

        assert peer.live_refresh_tokens(), "the provider holds the connection's refresh token"
        await app.revoke_grant(connected.grant_id)
        deadline = time.monotonic() + 10
        while peer.live_refresh_tokens() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert peer.live_refresh_tokens() == [], "the provider still holds a live refresh token"
        assert peer.stats()["revocations"] >= 1

    run(scenario())


def test_connect_in_a_real_browser(server, peer, monkeypatch):
    """The hosted Connect page and the provider's pages in headless Chromium: the buttons
    work without script, the page loads nothing the CSP refuses, and the client's `connect()`
    returns the grant."""
    outcome = {}

    def open_url(url, *args, **kwargs):
        def drive():
            done = subprocess.run(
                ["node", "browser-connect.mjs", url, peer.password],
                cwd=PEER_DIR,
                capture_output=True,
                text=True,
                timeout=120,
            )
            outcome["returncode"] = done.returncode
            outcome["stdout"] = done.stdout
            outcome["stderr"] = done.stderr

        threading.Thread(target=drive).start()
        return True

    monkeypatch.setattr(webbrowser, "open", open_url)

    async def scenario():
        app = App(api_key=server.api_key)
        results = await app.connect(providers=["acme"], timeout=120, poll_interval=0.5)
        assert [r.provider_id for r in results] == ["acme"]
        assert results[0].account_identifier == "alice"
        answer = await app.request("GET", peer.url("/_peer/resource"), provider="acme")
        assert answer.status_code == 200

    run(scenario())
    deadline = time.monotonic() + 30
    while "returncode" not in outcome and time.monotonic() < deadline:
        time.sleep(0.1)
    assert outcome.get("returncode") == 0, outcome
    page = json.loads(outcome["stdout"].strip().splitlines()[-1])
    assert page["title"] == "Connected"
    assert "alice" in page["text"]
    assert page["url"].startswith(f"{server.base_url}/oauth/callback?")
    # Alter's pages load everything they ask for, and nothing the CSP refuses (the peer's own
    # pages are not ours to judge).
    ours = [e for e in page["console_errors"] if e["url"].startswith(server.base_url)]
    assert ours == [], page["console_errors"]


def test_a_denied_session_fails_the_clients_poll(server, peer):
    async def scenario():
        app = App(api_key=server.api_key)
        session = await app.create_connect_session(allowed_providers=["acme"])
        assert session.single_provider

        def deny():
            import httpx

            with httpx.Client(timeout=30, follow_redirects=True) as user:
                login = user.post(session.connect_url, data={"provider": "acme"})
                consent = user.post(
                    f"{login.url}/login", data={"login": "alice", "password": peer.password}
                )
                return user.get(f"{consent.url}/abort")

        landed = await asyncio.to_thread(deny)
        assert landed.status_code == 200
        with pytest.raises(Exception) as raised:
            await app.poll_connect_session(session.session_token, timeout=10, poll_interval=0.5)
        assert type(raised.value).__name__ == "ConnectDeniedError"
        listed = await app.list_grants()
        assert listed.total == 0

    run(scenario())


def test_an_unknown_session_token_is_a_flow_error(server, peer):
    async def scenario():
        app = App(api_key=server.api_key)
        with pytest.raises(ConnectFlowError):
            await app.poll_connect_session("alter_cs_unknown", timeout=5, poll_interval=0.5)

    run(scenario())


def test_a_refused_refresh_token_is_repaired_through_the_clients_error(server, peer, browser):
    """The user revokes the app at the provider: the next `request()` raises
    `CredentialRevokedError` carrying the grant and provider, and the client's
    `create_connect_session_for_error` repairs that same grant."""
    from alter_sdk.exceptions import CredentialRevokedError

    async def scenario():
        app = App(api_key=server.api_key)
        connected = (await app.connect(providers=["acme"], timeout=60, poll_interval=0.5))[0]
        for token in peer.live_refresh_tokens():
            peer.revoke_at_provider(token)
        await asyncio.sleep(FRESH_FOR + 0.5)
        resource = peer.url("/_peer/resource")
        with pytest.raises(CredentialRevokedError) as raised:
            await app.request("GET", resource, provider="acme")
        assert raised.value.grant_id == connected.grant_id
        assert raised.value.provider_id == "acme"

        session = await app.create_connect_session_for_error(raised.value)
        webbrowser.open(session.connect_url)
        repaired = await app.poll_connect_session(
            session.session_token, timeout=60, poll_interval=0.5
        )
        assert repaired[0].grant_id == connected.grant_id
        assert repaired[0].operation == "reauth"
        answer = await app.request("GET", resource, provider="acme")
        assert answer.status_code == 200

    run(scenario())


def test_requested_grant_restrictions_make_a_proxy_only_grant(server, peer, browser):
    """`requested_grant.restrictions` through the official client: the grant the session makes
    answers only the allowed method on the allowed endpoint, through the proxy; retrieve mode
    raises `RestrictedGrantRequiresProxyError`; bad restrictions are refused."""
    from alter_sdk import RestrictedGrantRequiresProxyError
    from alter_sdk.exceptions import PolicyViolationError

    async def scenario():
        app = App(api_key=server.api_key)
        resource = peer.url("/_peer/resource")
        with pytest.raises(Exception) as raised:
            await app.create_connect_session(
                allowed_providers=["acme"],
                requested_grant={
                    "label": "work",
                    "restrictions": {"allowed_endpoints": ["ftp://files.example/"]},
                },
            )
        assert getattr(raised.value, "status_code", None) == 422, raised.value

        session = await app.create_connect_session(
            allowed_providers=["acme"],
            requested_grant={
                "label": "work",
                "restrictions": {"allowed_methods": ["GET"], "allowed_endpoints": [resource]},
            },
        )
        webbrowser.open(session.connect_url)
        connected = await app.poll_connect_session(
            session.session_token, timeout=60, poll_interval=0.5
        )
        grant_id = connected[0].grant_id

        answer = await app.proxy_request("GET", resource, grant_id=grant_id)
        assert answer.status_code == 200
        for method, url, code in (
            ("GET", peer.url("/_peer/other"), "url_not_allowed"),
            ("POST", resource, "method_not_allowed"),
        ):
            with pytest.raises(PolicyViolationError) as refused:
                await app.proxy_request(method, url, grant_id=grant_id)
            assert refused.value.policy_error == code
        with pytest.raises(RestrictedGrantRequiresProxyError):
            await app.request("GET", resource, grant_id=grant_id)

    run(scenario())
