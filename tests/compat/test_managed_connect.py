"""Managed-secret Connect sessions through the unmodified official client (protocol part 2 §6.5):
`create_managed_secret_connect_session` answers the shape the client checks strictly (`path`
present, `delegable_requested` echoed, `secret_slug` the provider sent); the user signs in at the
app's identity provider on the vault's page, enters their own key, and `request(provider=…)` with
their token injects that key — not the operator's value."""

import httpx
import pytest
from alter_sdk import App
from alter_sdk.exceptions import ConnectConfigError

from oauth_peer import OAuthPeer
from provider import Provider
from scenario import run

USER_KEY = "sk_live_alices_own_key_5150"


@pytest.fixture
def idp(server):
    running = OAuthPeer(
        [f"{server.base_url}/auth/callback", f"{server.base_url}/oauth/callback"]
    )
    running.configure_as_identity_provider(server)
    yield running
    running.stop()


def alice_token(app_key: str, server, idp: OAuthPeer) -> str:
    async def sign_in():
        app = App(api_key=app_key)
        session = await app.create_auth_session()
        with httpx.Client(follow_redirects=True, timeout=30) as browser:
            idp.sign_in(browser, session.auth_url)
        return (await app.poll_auth_session(session.session_token, timeout=30)).user_token

    return run(sign_in())


@pytest.fixture
def provider():
    running = Provider()
    yield running
    running.stop()


def enter_key_as_user(idp: OAuthPeer, connect_url: str, value: str) -> httpx.Response:
    """Plays the user at the vault's page: signs in at the IdP, then enters their key."""
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        page = browser.get(connect_url)
        assert "Sign in to continue" in page.text, page.text
        login = browser.post(connect_url, data={"provider": "alter:sign-in"})
        assert "/interaction/" in str(login.url), login.text
        consent = browser.post(
            f"{login.url}/login", data={"login": "alice", "password": idp.password}
        )
        form = browser.post(f"{consent.url}/confirm")
        assert form.url.path == "/connect/resume" and 'type="password"' in form.text, form.text
        return browser.post(str(form.url), data={"value": value})


def test_a_user_enters_their_own_key_through_the_official_client(server, idp, provider):
    secret = server.create_secret("Stripe Prod", allowed_hosts=["127.0.0.1"])
    token = alice_token(server.api_key, server, idp)

    async def scenario():
        app = App(api_key=server.api_key)
        session = await app.create_managed_secret_connect_session(
            provider=secret["slug"], user_token=token
        )
        assert session.path == "key_entry"
        assert session.secret_slug == secret["slug"]
        assert session.delegable_requested is False
        assert session.existing_grant_id is None

        done = enter_key_as_user(idp, session.connect_url, USER_KEY)
        assert done.status_code == 200 and "saved" in done.text

        provider.answer("/v1/charges", 200, {"ok": True})
        answer = await app.request(
            "GET", provider.url("/v1/charges"), provider=secret["slug"], user_token=token
        )
        assert answer.status_code == 200
        assert provider.one().header("Authorization") == f"Bearer {USER_KEY}"

        again = await app.create_managed_secret_connect_session(
            provider=secret["slug"], user_token=token
        )
        assert again.path == "fast_path"
        assert again.existing_grant_id

        with pytest.raises(ConnectConfigError):
            await app.create_managed_secret_connect_session(provider="nope", user_token=token)

    run(scenario())
