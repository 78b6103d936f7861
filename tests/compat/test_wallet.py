"""The Wallet (`/wallet/{app}`) in a real browser (headless Chromium through `browser.py`),
signed in through the real OAuth server (`tests/oauth-peer`) as the app's identity provider,
with the unmodified official client making the calls the Wallet shows and takes back:

- sign-in (OIDC code + PKCE through the app's sign-in client), the session cookie, sign-out;
- revoking a grant: the official client's next `request()` fails;
- stopping one agent's delegation: only that agent loses access; delegating from the Wallet;
- extending a grant up to its maximum; the activity feed and its CSV export;
- approving a held call from the approval URL (deep link through sign-in): the call is made;
- CSRF: a missing or wrong token, a cross-site post, a session of another app are refused and
  change nothing (plain HTTP); another user's grant is invisible and "not found";
- every page passes axe-core (no serious or critical violation), loads nothing its CSP
  refuses, and is captured at desktop and phone width under `docs/screenshots/`.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from alter_sdk import Agent, App, UserPrincipal
from alter_sdk.exceptions import GrantRevokedError

from browser import Browser, assert_clean
from oauth_peer import OAuthPeer
from provider import Provider


def run(coro):
    """Runs the official client's coroutine to its end on a thread of its own: Playwright's
    sync API keeps an event loop running on this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()

CLIENT_ID = "alter-wallet"
CLIENT_SECRET = "alter-wallet-secret-5c1e"
PASSWORD = "alice-wallet-password"
DAY = 24 * 3600


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
def provider():
    running = Provider()
    yield running
    running.stop()


@pytest.fixture
def browser():
    with Browser() as running:
        yield running


def wallet_url(server, path: str = "", app_id: str | None = None) -> str:
    return f"{server.base_url}/wallet/{app_id or server.app_id}{path}"


def sign_in(page, server, path: str = "", app_id: str | None = None, login: str = "alice"):
    """The user opens their Wallet (or a page of it), signs in at the IdP, and lands back
    there."""
    page.goto(wallet_url(server, path, app_id))
    page.get_by_role("button", name="Sign in with your account").click()
    page.locator("#password").wait_for()
    page.fill("#username", login)
    page.fill("#password", PASSWORD if login == "alice" else "bob-password")
    page.click("#submit")
    page.locator("#allow").click()
    page.wait_for_url(re.compile(re.escape(wallet_url(server, path, app_id)) + r"(\?.*)?$"))


def user_token(server, peer, login: str = "alice") -> str:
    """An ID token of `login` from the IdP, through the official client's sign-in session."""

    async def scenario():
        app = App(api_key=server.api_key)
        session = await app.create_auth_session()
        with httpx.Client(follow_redirects=True, timeout=30) as http:
            password = PASSWORD if login == "alice" else "bob-password"
            peer.sign_in(http, session.auth_url, login=login, password=password)
        result = await app.poll_auth_session(session.session_token, timeout=30, poll_interval=0.5)
        return result.user_token

    return run(scenario())


def secret_grant(server, token: str, name: str, **policy) -> tuple[dict, str]:
    """A managed secret for the local provider and a grant of it to the user of `token`."""
    secret = server.create_secret(name, allowed_hosts=["127.0.0.1"])

    async def scenario():
        app = App(api_key=server.api_key)
        grant = await app.create_managed_secret_grant(
            secret["id"],
            principal=UserPrincipal(user_token=token, label="mine"),
            grant_policy=policy or None,
        )
        return grant.grant_id

    return secret, run(scenario())


def agent_for(server, name: str, secret: dict, **extra) -> object:
    async def scenario():
        app = App(api_key=server.api_key)
        return await app.agents.create(
            name=name, scopes={"managed_secret_slugs": [secret["slug"]]}, **extra
        )

    return run(scenario())


def grant_info(server, grant_id: str) -> dict:
    """The grant as the operator's listing shows it."""
    response = server.admin("GET", f"/apps/{server.app_id}/grants", params={"limit": 1000})
    assert response.status_code == 200, response.text
    (found,) = [g for g in response.json()["grants"] if g["grant_id"] == grant_id]
    return found


def grant_status(server, grant_id: str) -> str:
    return grant_info(server, grant_id)["status"]


def check_page(browser, page, server, name: str) -> None:
    """The page as it is now: no console error (CSP), axe-clean, captured at both widths (once:
    on SQLite)."""
    assert_clean(page, server.base_url)
    browser.check_accessibility(page)
    if server.engine == "sqlite":
        browser.screenshot(page, name)


def test_sign_in_and_out(server, peer, browser):
    page = browser.page()
    page.goto(wallet_url(server))
    assert "/sign-in" in page.url
    check_page(browser, page, server, "wallet-sign-in")
    sign_in(page, server)
    assert re.search(r"Signed in as\s+alice", page.text_content("header"))
    assert_clean(page, server.base_url)
    cookies = {c["name"]: c for c in page.context.cookies()}
    wallet = cookies["alter_wallet"]
    assert wallet["httpOnly"] and wallet["sameSite"] == "Lax"
    assert wallet["path"] == f"/wallet/{server.app_id}"
    assert "alter_wallet_signin" not in cookies
    response = page.request.get(wallet_url(server))
    headers = response.headers
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"
    assert headers["referrer-policy"] == "no-referrer"
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]

    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("You are signed out").wait_for()
    # The cookie is gone, and the old token signs nothing in any more.
    page.context.add_cookies([{**wallet, "expires": -1}])
    page.goto(wallet_url(server))
    assert "/sign-in" in page.url


def connect_as(server, peer, token: str) -> str:
    """The user connects their account at the OAuth peer (as provider `acme`) through a
    Connect session the official client makes for them (the browser played over HTTP);
    returns the grant id."""
    response = server.admin(
        "PUT", f"/apps/{server.app_id}/providers/acme", json=peer.provider_config()
    )
    assert response.status_code == 200, response.text

    async def start():
        async with App(api_key=server.api_key) as app:
            return await app.create_connect_session(allowed_providers=["acme"], user_token=token)

    session = run(start())
    assert peer.connect_as_user(session.connect_url).status_code == 200

    async def finish():
        async with App(api_key=server.api_key) as app:
            results = await app.poll_connect_session(
                session.session_token, timeout=30, poll_interval=0.5
            )
            return results[0].grant_id

    return run(finish())


def test_revoke_delegate_extend_and_activity(server, peer, provider, browser):
    token = user_token(server, peer)
    connection = connect_as(server, peer, token)
    secret, grant_id = secret_grant(
        server, token, "Stripe Prod", default_ttl_seconds=7 * DAY, max_ttl_seconds=60 * DAY
    )
    scout = agent_for(server, "scout", secret)
    helper = agent_for(server, "helper", secret)

    page = browser.page()
    sign_in(page, server)
    assert page.locator("li.card").count() == 2
    acme = page.locator("li.card", has_text="acme")
    assert "alice" in acme.text_content() and "files.read" in acme.text_content()
    assert connection in acme.locator("a").get_attribute("href")
    card = page.locator("li.card", has_text="Stripe Prod")
    assert "active" in card.text_content()
    check_page(browser, page, server, "wallet-connections")

    # Delegate to both agents from the Wallet, one for 48 hours.
    page.get_by_role("link", name="Manage Stripe Prod").click()
    for agent, hours in (("scout", "48"), ("helper", "")):
        page.select_option("#agent_id", label=agent)
        page.fill("#ttl_hours", hours)
        page.get_by_role("button", name="Delegate").click()
        page.get_by_text("The agent can now act with this grant.").wait_for()
    rows = page.locator("table tbody tr")
    assert rows.count() == 2
    check_page(browser, page, server, "wallet-grant")

    delegations = {}
    for listed in httpx.get(
        f"{server.base_url}/user/v1/apps/{server.app_id}/delegations",
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    ).json()["grants"]:
        delegations[listed["agent_id"]] = listed["grant_id"]
    assert set(delegations) == {str(scout.id), str(helper.id)}

    async def call(agent_key: str, grant: str):
        async with Agent(api_key=agent_key) as agent:
            return await agent.request("GET", provider.url("/ok"), grant_id=grant)

    assert run(call(scout.api_key, delegations[str(scout.id)])).status_code == 200
    assert run(call(helper.api_key, delegations[str(helper.id)])).status_code == 200
    assert len(provider.take()) == 2

    # Stop the scout: only the scout loses access.
    page.get_by_role("button", name="Stop scout").click()
    page.get_by_text("The agent can no longer act with this grant.").wait_for()
    with pytest.raises(GrantRevokedError):
        run(call(scout.api_key, delegations[str(scout.id)]))
    assert run(call(helper.api_key, delegations[str(helper.id)])).status_code == 200
    assert len(provider.take()) == 1
    assert grant_status(server, grant_id) == "active"

    # Extend: the grant ends later, never past its maximum (60 days from creation).
    before = grant_info(server, grant_id)
    options = page.locator("#until option").all_text_contents()
    assert options[-1].startswith("As long as allowed")
    page.select_option("#until", index=len(options) - 1)
    page.get_by_role("button", name="Extend").click()
    page.get_by_text("The grant now lasts longer.").wait_for()
    after = grant_info(server, grant_id)
    assert after["grant_expires_at"] > before["grant_expires_at"]
    assert "extend" not in page.locator("main").text_content().lower().split("make it last")[0]

    # Activity: the calls, filterable, exported as CSV.
    page.get_by_role("link", name="Activity").click()
    table = page.locator("table tbody tr")
    assert table.count() >= 3
    text = page.locator("table").text_content()
    assert "scout" in text and "helper" in text and "/ok" in text and "refused" in text
    check_page(browser, page, server, "wallet-activity")
    page.fill("#f-agent", "scout")
    page.select_option("#f-outcome", "refused")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("table tbody tr").count() == 1
    href = page.get_by_role("link", name="Download as CSV").get_attribute("href")
    exported = page.request.get(urljoin(page.url, href))
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text())))
    assert rows[0] == ["time", "agent", "provider", "method", "host_and_path", "outcome", "reason"]
    assert [r[1] for r in rows[1:]] == ["scout"]
    assert rows[1][5] == "refused" and rows[1][4].endswith("/ok")

    # Revoke the grant itself (after confirming): the app's next request fails.
    page.get_by_role("link", name="Connections").click()
    card = page.locator("li.card", has_text="Stripe Prod")
    card.get_by_text("Revoke…").click()
    card.get_by_role("button", name="Revoke permanently").click()
    page.get_by_text("The grant is revoked.").wait_for()
    assert grant_status(server, grant_id) == "revoked"

    async def app_call():
        async with App(api_key=server.api_key) as app:
            return await app.request("GET", provider.url("/ok"), grant_id=grant_id)

    with pytest.raises(GrantRevokedError):
        run(app_call())
    with pytest.raises(GrantRevokedError):
        run(call(helper.api_key, delegations[str(helper.id)]))
    assert provider.take() == []
    assert_clean(page, server.base_url)


def test_approve_a_held_call_from_its_link(server, peer, provider, browser):
    provider.answer("/v1/refunds", 201, {"refunded": True})
    token = user_token(server, peer)
    secret, grant_id = secret_grant(server, token, "Payments")
    careful = agent_for(server, "careful", secret, policy={"requires_approval": True})
    delegation = httpx.post(
        f"{server.base_url}/user/v1/apps/{server.app_id}/grants/{grant_id}/delegations",
        headers={"authorization": f"Bearer {token}"},
        json={"agent_id": str(careful.id)},
        timeout=30,
    ).json()["grant_id"]

    async def held():
        async with Agent(api_key=careful.api_key) as agent:
            return await agent.proxy_request(
                "POST",
                provider.url("/v1/refunds?order=1042"),
                grant_id=delegation,
                json={"amount": 4200, "note": "<script>alert('x')</script>"},
                reason="refund order 1042",
            )

    pending = run(held())
    assert pending.approval_url == wallet_url(server, f"/approvals/{pending.approval_id}")

    page = browser.page()
    # The link leads through sign-in and back to the approval.
    sign_in(page, server, f"/approvals/{pending.approval_id}")
    request = page.locator("pre.request").text_content()
    assert "POST " + provider.url("/v1/refunds?order=1042") in request
    assert "<script>alert('x')</script>" in request
    assert page.locator("pre.request script").count() == 0
    check_page(browser, page, server, "wallet-approval")
    page.fill("#reason", "yes, that refund")
    page.get_by_role("button", name="Approve").click()
    page.get_by_text("Approved: the call is being made.").wait_for()

    async def result():
        async with Agent(api_key=careful.api_key) as agent:
            return await agent.await_approval(
                str(pending.approval_id), timeout=60, poll_interval=0.2
            )

    answer = run(result())
    assert answer.status_code == 201 and answer.body_json() == {"refunded": True}
    arrival = provider.one()
    assert arrival.json()["amount"] == 4200
    page.get_by_role("link", name="Approvals", exact=True).click()
    assert "executed" in page.locator("main").text_content() or "approved" in page.locator(
        "main"
    ).text_content()
    check_page(browser, page, server, "wallet-approvals")
    # Audited as the user's decision, like the operator's is.
    events = server.admin(
        "GET", f"/apps/{server.app_id}/audit", params={"action": "approval.approved"}
    )
    assert events.status_code == 200, events.text
    actors = [item["event"]["actor"] for item in events.json()["items"]]
    assert [a["kind"] for a in actors] == ["user"], actors


def session_cookie(page) -> dict:
    return {c["name"]: c["value"] for c in page.context.cookies()}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, "no CSRF field"
    return found.group(1)


def test_forms_refuse_forged_posts_and_other_users_grants(server, peer, browser):
    alice_token = user_token(server, peer)
    bob_token = user_token(server, peer, login="bob")
    _, alice_grant = secret_grant(server, alice_token, "Alice Mail")
    _, bob_grant = secret_grant(server, bob_token, "Bob Mail")

    page = browser.page()
    sign_in(page, server)
    # Bob's grant is not listed, and is "not found" by its id.
    assert page.locator("li.card").count() == 1
    assert "Bob Mail" not in page.content()
    cookie = session_cookie(page)["alter_wallet"]
    base = wallet_url(server)
    same_site = {"sec-fetch-site": "same-origin", "origin": server.base_url}
    with httpx.Client(timeout=30, cookies={"alter_wallet": cookie}) as http:
        home = http.get(base)
        assert home.status_code == 200
        token = csrf_of(home.text)
        assert http.get(f"{base}/grants/{bob_grant}").status_code == 404

        revoke = f"{base}/grants/{alice_grant}/revoke"
        refused = [
            http.post(revoke, data={}, headers=same_site),
            http.post(revoke, data={"csrf": "0" * 64}, headers=same_site),
            http.post(revoke, data={"csrf": token}, headers={"sec-fetch-site": "cross-site"}),
            http.post(revoke, data={"csrf": token}, headers={"origin": "https://evil.example"}),
            http.post(revoke, data={"csrf": token}),
        ]
        assert [r.status_code for r in refused] == [403] * 5
        assert grant_status(server, alice_grant) == "active"

        # A valid form on someone else's grant: not found, and it stays active.
        answer = http.post(
            f"{base}/grants/{bob_grant}/revoke", data={"csrf": token}, headers=same_site
        )
        assert answer.status_code == 404
        assert grant_status(server, bob_grant) == "active"

    # A session of another app (same IdP) signs nothing in here.
    other_app, _ = server.create_app("other")
    peer_config = httpx.get(peer.url("/.well-known/openid-configuration"), timeout=10).json()
    assert server.admin(
        "PUT",
        f"/apps/{other_app}/idp",
        json={"issuer": peer.issuer, "audiences": [CLIENT_ID], "jwks_url": peer_config["jwks_uri"]},
    ).status_code == 200
    assert server.admin(
        "PUT",
        f"/apps/{other_app}/idp/sign-in",
        json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    ).status_code == 200
    elsewhere = browser.page()
    sign_in(elsewhere, server, app_id=other_app)
    other_cookie = session_cookie(elsewhere)["alter_wallet"]
    other_home = httpx.get(
        wallet_url(server, app_id=other_app), cookies={"alter_wallet": other_cookie}, timeout=30
    )
    other_token = csrf_of(other_home.text)
    with httpx.Client(timeout=30, cookies={"alter_wallet": other_cookie}) as http:
        answer = http.get(base, follow_redirects=False)
        assert answer.status_code in (303, 307) and "/sign-in" in answer.headers["location"]
        answer = http.post(
            f"{base}/grants/{alice_grant}/revoke", data={"csrf": other_token}, headers=same_site
        )
        assert answer.status_code == 403
    assert grant_status(server, alice_grant) == "active"
    assert urlsplit(page.url).path == f"/wallet/{server.app_id}"

    # A double click: two revokes at once both end on "revoked"; the grant is revoked once.
    with httpx.Client(timeout=30, cookies={"alter_wallet": cookie}) as http:
        revoke = f"{base}/grants/{alice_grant}/revoke"
        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(
                pool.map(
                    lambda _: http.post(revoke, data={"csrf": token}, headers=same_site),
                    range(2),
                )
            )
    assert [a.status_code for a in answers] == [303, 303], [a.text for a in answers]
    assert all(a.headers["location"].endswith("?done=revoked") for a in answers)
    assert grant_status(server, alice_grant) == "revoked"
    events = server.admin(
        "GET",
        f"/apps/{server.app_id}/audit",
        params={"action": "grant.revoked", "grant": alice_grant},
    )
    assert len(events.json()["items"]) == 1
    assert events.json()["items"][0]["event"]["actor"]["kind"] == "user"
