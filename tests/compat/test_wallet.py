"""The Wallet in a real browser (headless Chromium, `browser.py`), signed in through the real
OAuth server (`tests/oauth-peer`, the app's identity provider)."""

from __future__ import annotations

import pytest

from browser import Browser, assert_clean
from oauth_peer import OAuthPeer

CLIENT_ID = "alter-wallet"
CLIENT_SECRET = "alter-wallet-secret-5c1e"
PASSWORD = "alice-wallet-password"


@pytest.fixture
def peer(server):
    running = OAuthPeer(
        [f"{server.base_url}/auth/callback", f"{server.base_url}/oauth/callback"],
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        password=PASSWORD,
    )
    running.configure_as_identity_provider(server)
    yield running
    running.stop()


@pytest.fixture
def browser():
    with Browser() as running:
        yield running


def sign_in(page, server, peer, path: str = "") -> None:
    """Alice opens her Wallet (or a page of it), signs in at the IdP, and lands back there."""
    page.goto(f"{server.base_url}/wallet/{server.app_id}{path}")
    page.get_by_role("button", name="Sign in with your account").click()
    page.locator("#password").wait_for()
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("#submit")
    page.locator("#allow").click()
    page.wait_for_url(f"{server.base_url}/wallet/{server.app_id}{path}*")


def test_sign_in_through_the_identity_provider(server, peer, browser):
    page = browser.page()
    sign_in(page, server, peer)
    assert "Signed in as" in page.text_content("header")
    assert_clean(page, server.base_url)
    cookies = {c["name"]: c for c in page.context.cookies()}
    wallet = cookies["alter_wallet"]
    assert wallet["httpOnly"] and wallet["sameSite"] == "Lax"
    assert wallet["path"] == f"/wallet/{server.app_id}"
    assert "alter_wallet_signin" not in cookies
    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("You are signed out").wait_for()
    page.goto(f"{server.base_url}/wallet/{server.app_id}")
    assert "/sign-in" in page.url
