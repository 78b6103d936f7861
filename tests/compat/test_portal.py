"""The operator portal in a real browser (headless Chromium, `browser.py`): an operator signs in
with the admin token or an account made by `alter operator add`, mints a key (shown once, then
used by the official client), creates a managed secret and a rule, decides nothing it should
not, and reads the audit log, its chain status and its exports. Every page passes axe-core and
is photographed at desktop and phone width (`docs/screenshots/portal-*.png`).

The refusals (CSRF, cross-site posts, a Wallet session on the portal, wrong credentials) are
plain HTTP: what matters there is what the server answers and that nothing changes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from alter_sdk import Agent, App, SystemPrincipal
from alter_sdk.exceptions import (
    AgentInactiveError,
    BlockedDestinationError,
    KeyRevokedError,
    RestrictedGrantRequiresProxyError,
)

from browser import Browser, assert_clean
from harness import alter_bin
from provider import Provider

OPERATOR = "ops-alice"
OPERATOR_PASSWORD = "a long operator passphrase"


@pytest.fixture
def browser():
    with Browser() as running:
        yield running


@pytest.fixture
def provider():
    running = Provider()
    yield running
    running.stop()


def run(coro):
    """Runs the official client's coroutine on a thread of its own (Playwright's sync API
    holds this thread's event loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def alter_operator(server, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`alter operator …` against `server`, the password (if any) on stdin."""
    env = dict(os.environ, ALTER_ADDR=server.base_url, ALTER_ADMIN_TOKEN=server.admin_token)
    return subprocess.run(
        [alter_bin(), "operator", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def check_page(browser, page, server, name: str) -> None:
    """Accessible, no console error (CSP), and photographed."""
    browser.check_accessibility(page)
    assert_clean(page, server.base_url)
    browser.screenshot(page, f"portal-{name}")


def sign_in_with_token(page, server) -> None:
    page.goto(f"{server.base_url}/portal")
    assert page.url.endswith("/portal/sign-in"), "no session: sent to sign in"
    page.fill("#token", server.admin_token)
    page.get_by_role("button", name="Sign in with the token").click()
    page.wait_for_url(f"{server.base_url}/portal")


def sign_in_with_password(page, server, username: str, password: str) -> None:
    page.goto(f"{server.base_url}/portal/sign-in")
    page.fill("#username", username)
    page.fill("#password", password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def audit_events(server, app_id: str) -> list[dict]:
    response = server.admin("GET", f"/apps/{app_id}/audit", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return [item["event"] for item in response.json()["items"]]


def test_an_operator_runs_an_app_from_the_portal(server, browser, provider):
    page = browser.page()
    page.goto(f"{server.base_url}/portal/sign-in")
    check_page(browser, page, server, "signin")
    sign_in_with_token(page, server)
    assert "Signed in as admin-token" in page.text_content("header")
    cookie = {c["name"]: c for c in page.context.cookies()}["alter_portal"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/portal"

    # Apps: the dev app is listed; its keys page mints a key shown once.
    page.get_by_role("link", name="Apps", exact=True).click()
    check_page(browser, page, server, "apps")
    page.goto(f"{server.base_url}/portal/apps/{server.app_id}")
    page.fill("#key-name", "portal-minted")
    page.get_by_role("button", name="Mint key").click()
    minted = page.text_content("#minted-key").strip()
    assert minted.startswith("alter_rk_")
    assert "only time the key is shown" in page.text_content("main")
    page.goto(f"{server.base_url}/portal/apps/{server.app_id}")
    assert minted not in page.content(), "a minted key is never shown again"
    assert "portal-minted" in page.text_content("main")
    check_page(browser, page, server, "keys")

    # A managed secret; its value is never shown.
    value = f"sk_portal_{uuid.uuid4().hex}"
    page.get_by_role("link", name="Secrets", exact=True).click()
    page.fill("#secret-name", "Portal Provider")
    page.select_option("#secret-type", "bearer")
    page.fill("#secret-hosts", "127.0.0.1")
    page.fill("#secret-value", value)
    page.get_by_role("button", name="Create secret").click()
    page.get_by_text("Managed secret created.").wait_for()
    assert value not in page.content()
    slug = page.locator("dd code").first.text_content()
    assert slug == "portal-provider"
    check_page(browser, page, server, "secrets")
    secrets = server.admin("GET", f"/apps/{server.app_id}/secrets").json()["items"]
    secret_id = next(s["id"] for s in secrets if s["slug"] == slug)

    # The official client signs with the key the portal minted and uses the secret.
    async def call(method: str):
        async with App(api_key=minted) as app:
            made = await app.create_managed_secret_grant(
                secret_id, principal=SystemPrincipal()
            )
            return await app.request(method, provider.url("/v1/ping"), grant_id=made.grant_id)

    response = run(call("GET"))
    assert response.status_code == 200
    assert provider.one().header("Authorization") == f"Bearer {value}"

    # A rule, tried first with the what-if replay, then added.
    page.get_by_role("link", name="Policies", exact=True).click()
    page.fill("#rule-kind", "method")
    page.fill("#rule-body", '{"allow": ["GET"]}')
    page.fill("#rule-note", "read only")
    page.get_by_role("button", name="What if? (changes nothing)").click()
    page.get_by_text("past decisions").wait_for()
    assert "No rules" in page.text_content("main"), "a what-if stores nothing"
    page.fill("#rule-kind", "method")
    page.fill("#rule-body", '{"allow": ["GET"]}')
    page.get_by_role("button", name="Add rule").click()
    page.wait_for_load_state()
    assert "Rule added." in page.text_content("main"), page.text_content("main")
    check_page(browser, page, server, "policies")
    # A method rule cannot be enforced on a credential handed out, so the grant is now usable
    # through the proxy only: the client's direct call is refused (and audited as a denial).
    with pytest.raises(RestrictedGrantRequiresProxyError):
        run(call("GET"))

    # The identity provider, set from its form.
    page.get_by_role("link", name="Identity & providers", exact=True).click()
    page.fill("#idp-issuer", "https://idp.example.com")
    page.fill("#idp-audiences", "portal-app")
    page.fill("#idp-jwks", "https://idp.example.com/.well-known/jwks.json")
    page.get_by_role("button", name="Save identity provider").click()
    page.get_by_text("Identity provider saved.").wait_for()
    idp = server.admin("GET", f"/apps/{server.app_id}/idp").json()
    assert (idp["issuer"], idp["audiences"]) == ("https://idp.example.com", ["portal-app"])

    # Agents, identity & providers, approvals: shown (and accessible).
    for link, name in (
        ("Agents", "agents"),
        ("Identity & providers", "identity"),
        ("Approvals", "approvals"),
    ):
        page.get_by_role("link", name=link, exact=True).click()
        check_page(browser, page, server, name)

    # The audit log: the portal's changes, by the operator; the chain verifies; exports.
    page.get_by_role("link", name="Audit log", exact=True).click()
    # No checkpoint was checked: the page does not claim that nothing was cut from the end.
    status = page.text_content("#chain-status")
    assert "Chain consistent up to seq" in status and "removed" not in status, status
    main = page.text_content("main")
    for action in ("key.minted", "secret.created", "policy.rule_added", "credential.released",
                   "credential.denied", "idp.configured"):
        assert action in main, action
    assert "operator admin-token" in main
    check_page(browser, page, server, "audit")
    page.fill("#f-action", "key.minted")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("tbody tr")
    assert rows.count() >= 1
    assert all("key.minted" in rows.nth(i).text_content() for i in range(rows.count()))

    # Exports download from the page's links; the same URL fetched by anything but a page of
    # this site (no Sec-Fetch-Site: same-origin) is refused, cookie or not.
    def download(name: str) -> str:
        with page.expect_download() as started:
            page.get_by_role("link", name=name, exact=True).click()
        return Path(started.value.path()).read_text()

    csv_link = page.get_by_role("link", name="CSV", exact=True).get_attribute("href")
    assert page.context.request.get(f"{server.base_url}{csv_link}").status == 403
    exported = download("CSV")
    records = list(csv.DictReader(io.StringIO(exported)))
    assert records and {r["action"] for r in records} == {"key.minted"}
    assert minted not in exported
    lines = [json.loads(line) for line in download("JSON Lines").splitlines()]
    assert {line["event"]["action"] for line in lines} == {"key.minted"}
    assert all(re.fullmatch("[0-9a-f]{64}", line["hash"]) for line in lines)

    # The dashboard counts the release and the denial in its chart and its table.
    page.get_by_role("link", name="Dashboard", exact=True).click()
    chart = page.locator("figure.chart svg").first
    assert chart.get_attribute("role") == "img"
    assert "1 releases, 1 denials and 0 holds" in chart.text_content()
    check_page(browser, page, server, "dashboard")

    # Sign-out ends the session on the server, not just in this browser.
    stale = {c["name"]: c["value"] for c in page.context.cookies()}["alter_portal"]
    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("You are signed out").wait_for()
    again = httpx.get(
        f"{server.base_url}/portal", cookies={"alter_portal": stale}, follow_redirects=False
    )
    assert again.status_code == 303 and again.headers["location"].endswith("/portal/sign-in")


def test_an_operator_account_made_with_the_cli_signs_in_and_is_named(server, browser):
    added = alter_operator(server, "add", OPERATOR, stdin=OPERATOR_PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert OPERATOR_PASSWORD not in added.stdout + added.stderr
    listed = alter_operator(server, "list", "--json")
    assert [o["username"] for o in json.loads(listed.stdout)] == [OPERATOR]

    page = browser.page()
    sign_in_with_password(page, server, OPERATOR, "not the passphrase")
    refused_text = page.text_content("main")
    assert "Those credentials are not valid." in refused_text
    sign_in_with_password(page, server, OPERATOR, OPERATOR_PASSWORD)
    page.wait_for_url(f"{server.base_url}/portal")
    assert f"Signed in as {OPERATOR}" in page.text_content("header")

    page.goto(f"{server.base_url}/portal/apps")
    page.fill("#app-name", "made in the portal")
    page.get_by_role("button", name="Create app").click()
    page.get_by_text("App created.").wait_for()
    app_id = page.url.split("/portal/apps/")[1].split("?")[0]
    created = [e for e in audit_events(server, app_id) if e["action"] == "app.created"]
    assert created[0]["actor"] == {"kind": "operator", "operator": OPERATOR}

    # The dashboard lists the sign-ins, the refused one with its reason.
    page.goto(f"{server.base_url}/portal")
    table = page.text_content("main")
    assert "operator.signed_in" in table and "invalid_credentials" in table

    # A changed password ends the sessions signed in with the old one.
    changed = alter_operator(server, "passwd", OPERATOR, stdin="another long passphrase\n")
    assert changed.returncode == 0, changed.stderr
    page.goto(f"{server.base_url}/portal")
    assert "no longer signs you in" in page.text_content("main")
    removed = alter_operator(server, "remove", OPERATOR)
    assert removed.returncode == 0, removed.stderr
    missing = alter_operator(server, "remove", OPERATOR)
    assert missing.returncode == 4, (missing.returncode, missing.stderr)


def form_post(server, path: str, data: dict, cookie: str | None, origin: str | None = "self"):
    headers = {}
    if origin:
        headers["origin"] = server.base_url if origin == "self" else origin
    return httpx.post(
        f"{server.base_url}{path}",
        data=data,
        headers=headers,
        cookies={"alter_portal": cookie} if cookie else None,
        follow_redirects=False,
    )


def http_sign_in(server) -> tuple[str, str]:
    """Signs in with the admin token over plain HTTP: `(cookie, csrf)`."""
    response = form_post(server, "/portal/sign-in", {"token": server.admin_token}, None)
    assert response.status_code == 303, response.text
    cookie = response.cookies["alter_portal"]
    page = httpx.get(f"{server.base_url}/portal/apps", cookies={"alter_portal": cookie})
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return cookie, csrf


def test_wrong_credentials_are_refused_alike(server):
    assert alter_operator(server, "add", OPERATOR, stdin=OPERATOR_PASSWORD).returncode == 0
    answers = [
        form_post(server, "/portal/sign-in", body, None)
        for body in (
            {"username": OPERATOR, "password": "wrong passphrase!"},
            {"username": "nobody-here", "password": "wrong passphrase!"},
            {"token": "alter_admin_wrong"},
        )
    ]
    assert {a.status_code for a in answers} == {401}
    assert len({a.text for a in answers}) == 1, "one answer, whatever was wrong"
    assert all("alter_portal" not in a.cookies for a in answers)
    # A sign-in posted from another site is refused before anything is checked.
    cross = form_post(
        server, "/portal/sign-in", {"token": server.admin_token}, None, origin="https://evil.example"
    )
    assert cross.status_code == 403 and "alter_portal" not in cross.cookies


def test_every_change_needs_the_sessions_csrf_token_from_this_site(server):
    cookie, csrf = http_sign_in(server)
    path = f"/portal/apps/{server.app_id}/keys"

    def key_count() -> int:
        return len(server.admin("GET", f"/apps/{server.app_id}/keys").json()["items"])

    before = key_count()
    refusals = {
        "no token": form_post(server, path, {"name": "x"}, cookie),
        "wrong token": form_post(server, path, {"name": "x", "csrf": "0" * len(csrf)}, cookie),
        "another site": form_post(
            server, path, {"name": "x", "csrf": csrf}, cookie, origin="https://evil.example"
        ),
        "no origin": form_post(server, path, {"name": "x", "csrf": csrf}, cookie, origin=None),
        "no session": form_post(server, path, {"name": "x", "csrf": csrf}, None),
        "another session's token": form_post(
            server, path, {"name": "x", "csrf": http_sign_in(server)[1]}, cookie
        ),
    }
    for why, answer in refusals.items():
        assert answer.status_code == 403, (why, answer.status_code)
    assert key_count() == before, "nothing changed"
    accepted = form_post(server, path, {"name": "x", "csrf": csrf}, cookie)
    assert accepted.status_code == 200 and "alter_rk_" in accepted.text
    assert key_count() == before + 1


def make_agent(server, name: str):
    """An agent of the dev app, made by the official client: its `AgentCreateResult`."""

    async def create():
        async with App(api_key=server.api_key) as client:
            return await client.agents.create(name=name, scopes={})

    return run(create())


def every_form(server) -> tuple[list[tuple[str, dict]], callable]:
    """Every state-changing form of an app's pages, posted at real things (a key, a secret, an
    agent and its key, a provider, a rule, a held call's id), with what each would carry; and
    a snapshot of what they could change."""
    app = server.app_id
    key = server.mint_key(name="csrf-target")["id"]
    secret = server.create_secret("CSRF Target", allowed_hosts=["127.0.0.1"])
    provider = server.admin(
        "PUT",
        f"/apps/{app}/providers/csrf-target",
        json={"client_id": "c", "client_secret": "s", "endpoints": {
            "authorize_url": "https://auth.example.com/authorize",
            "token_url": "https://auth.example.com/token",
        }},
    )
    assert provider.status_code == 200, provider.text

    bot = make_agent(server, "csrf-target")
    agent_key = server.admin("GET", f"/apps/{app}/keys").json()["items"]
    agent_key = next(k["id"] for k in agent_key if k["key_prefix"] in bot.api_key)
    base = f"/portal/apps/{app}"
    forms = [
        ("/portal/apps", {"name": "sneaky"}),
        (f"{base}/keys", {"name": "sneaky"}),
        (f"{base}/keys/{key}/rotate", {"grace_seconds": "60"}),
        (f"{base}/keys/{key}/revoke", {}),
        (f"{base}/secrets", {"name": "Sneaky", "value": "v", "allowed_hosts": "evil.example"}),
        (f"{base}/secrets/{secret['id']}/rotate", {"value": "sneaky"}),
        (f"{base}/secrets/{secret['id']}/hosts", {"allowed_hosts": "evil.example"}),
        (f"{base}/secrets/{secret['id']}/delete", {"confirm": secret["slug"]}),
        (f"{base}/agents/{bot.id}/status", {"status": "inactive"}),
        (f"{base}/agents/{bot.id}/delete", {}),
        (f"{base}/agents/{bot.id}/keys", {}),
        (f"{base}/agents/{bot.id}/keys/{agent_key}/revoke", {"force": "yes"}),
        (f"{base}/identity", {"issuer": "https://evil.example", "audiences": "x",
                              "jwks_url": "https://evil.example/jwks"}),
        (f"{base}/providers", {"provider_id": "sneaky", "client_id": "c", "client_secret": "s",
                               "authorize_url": "https://evil.example/a",
                               "token_url": "https://evil.example/t"}),
        (f"{base}/providers/csrf-target/delete", {}),
        (f"{base}/policies", {"kind": "method", "body": '{"allow": ["GET"]}'}),
        (f"{base}/policies/{uuid.uuid4()}/remove", {}),
        (f"{base}/approvals/{uuid.uuid4()}/decide", {"decision": "approve"}),
    ]

    def snapshot():
        read = lambda path: server.admin("GET", f"/apps/{app}{path}").json()  # noqa: E731
        return (
            server.admin("GET", "/apps").json(),
            read("/keys"),
            read("/secrets"),
            read("/agents?include_revoked=true"),
            read("/providers"),
            read("/policies/rules"),
            server.admin("GET", f"/apps/{app}/idp").status_code,
        )

    return forms, snapshot


def test_every_app_form_refuses_a_missing_or_wrong_csrf_token(server):
    cookie, csrf = http_sign_in(server)
    forms, snapshot = every_form(server)
    before = snapshot()
    other = http_sign_in(server)[1]
    for path, data in forms:
        for why, token in (("no token", None), ("wrong token", "0" * len(csrf)),
                           ("another session's token", other)):
            body = dict(data) if token is None else {**data, "csrf": token}
            answer = form_post(server, path, body, cookie)
            assert answer.status_code == 403, (path, why, answer.status_code)
        cross = form_post(server, path, {**data, "csrf": csrf}, cookie, origin="https://evil.example")
        assert cross.status_code == 403, (path, "another site")
    assert snapshot() == before, "nothing changed"


def test_a_wallet_session_is_no_portal_session(server, browser):
    """A real Wallet session (signed in through the real OAuth server) presented as the portal's
    cookie opens no page and changes nothing."""
    from oauth_peer import OAuthPeer
    from test_wallet import CLIENT_ID, CLIENT_SECRET, PASSWORD, sign_in

    peer = OAuthPeer(
        [f"{server.base_url}/auth/callback", f"{server.base_url}/oauth/callback"],
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        password=PASSWORD,
    )
    try:
        peer.configure_as_identity_provider(server)
        page = browser.page()
        sign_in(page, server)
        wallet = {c["name"]: c["value"] for c in page.context.cookies()}["alter_wallet"]
    finally:
        peer.stop()
    view = httpx.get(
        f"{server.base_url}/portal", cookies={"alter_portal": wallet}, follow_redirects=False
    )
    assert view.status_code == 303 and view.headers["location"].endswith("/portal/sign-in")
    before = server.admin("GET", "/apps").json()["items"]
    # Its CSRF token is the one the Wallet's forms carry; the portal takes it for nothing.
    wallet_page = httpx.get(
        f"{server.base_url}/wallet/{server.app_id}", cookies={"alter_wallet": wallet}
    )
    wallet_csrf = re.search(r'name="csrf" value="([^"]+)"', wallet_page.text).group(1)
    post = form_post(server, "/portal/apps", {"name": "sneaky", "csrf": wallet_csrf}, wallet)
    assert post.status_code == 403
    assert server.admin("GET", "/apps").json()["items"] == before
    # Nor does any of the app's forms.
    forms, snapshot = every_form(server)
    before = snapshot()
    for path, data in forms:
        post = form_post(server, path, {**data, "csrf": wallet_csrf}, wallet)
        assert post.status_code == 403, (path, post.status_code)
    assert snapshot() == before, "nothing changed"


def test_the_approvals_queue_approves_and_denies_held_calls(server, browser, provider):
    from alter_sdk.exceptions import ApprovalDeniedError
    from test_approvals import held_agent

    provider.answer("/v1/refunds", 201, {"refunded": True})
    # (`held_agent` runs the client on this thread's loop, which Playwright holds.)
    with ThreadPoolExecutor(1) as pool:
        bot, grant = pool.submit(held_agent, server, provider).result()

    async def hold(amount: int):
        agent = Agent(api_key=bot.api_key)
        return await agent.proxy_request(
            "POST", provider.url("/v1/refunds"), grant_id=grant, json={"amount": amount},
            reason=f"refund {amount}",
        )

    approve_me, deny_me = run(hold(1)), run(hold(2))
    page = browser.page()
    sign_in_with_token(page, server)
    page.goto(f"{server.base_url}/portal/apps/{server.app_id}/approvals")
    assert page.locator("li.card").count() == 2
    assert '"amount": 1' in page.locator("pre.request").nth(1).text_content()
    check_page(browser, page, server, "approvals")

    for pending, verdict, reason in (
        (approve_me, "Approve", "customer asked"),
        (deny_me, "Deny", "duplicate refund"),
    ):
        card = page.locator("li.card", has=page.locator(f"#reason-{pending.approval_id}"))
        card.locator(f"#reason-{pending.approval_id}").fill(reason)
        card.get_by_role("button", name=verdict, exact=True).click()
        page.wait_for_load_state()
    assert page.locator("li.card").count() == 0, "nothing pending any more"

    async def outcomes():
        agent = Agent(api_key=bot.api_key)
        made = await agent.await_approval(str(approve_me.approval_id), timeout=60, poll_interval=0.2)
        with pytest.raises(ApprovalDeniedError) as denied:
            await agent.await_approval(str(deny_me.approval_id), timeout=30, poll_interval=0.2)
        return made, denied.value

    made, denied = run(outcomes())
    assert made.status_code == 201 and made.body_json() == {"refunded": True}
    assert provider.one().json() == {"amount": 1}, "the approved call alone was made, once"
    assert "duplicate refund" in str(denied)
    decided = {
        e["target"]["id"]: e for e in audit_events(server, server.app_id)
        if e["action"] in ("approval.approved", "approval.denied")
    }
    assert decided[str(approve_me.approval_id)]["actor"]["operator"] == "admin-token"
    page.goto(f"{server.base_url}/portal/apps/{server.app_id}/approvals?status=all")
    assert "admin-token: customer asked" in page.text_content("main")


def forget_refusal(page) -> None:
    """The browser logs the 422 of a refused form as a console error: expected here, so it is
    checked to be that alone and forgotten (later pages must still be clean)."""
    assert all("status of 422" in e for _, e in page.console_errors), page.console_errors
    page.console_errors.clear()


def save_provider(page, provider_id: str, client_id: str, secret: str, **fields: str) -> None:
    """Fills the identity page's provider form (`fields`: more inputs by selector) and saves."""
    form = page.locator("details", has=page.locator("#provider-id"))
    if form.get_attribute("open") is None:
        form.locator("summary").click()
    for selector, value in {
        "#provider-id": provider_id,
        "#provider-client-id": client_id,
        "#provider-client-secret": secret,
        **fields,
    }.items():
        page.fill(selector, value)
    page.get_by_role("button", name="Save provider").click()


def test_an_operator_rotates_keys_edits_secrets_providers_and_agents(server, browser, provider):
    page = browser.page()
    sign_in_with_token(page, server)
    base = f"{server.base_url}/portal/apps/{server.app_id}"

    async def works(api_key: str) -> None:
        async with App(api_key=api_key) as client:
            await client.agents.list()

    # An app key rotated: the new key is shown once and the old one keeps a grace period.
    page.goto(base)
    page.fill("#key-name", "rotating")
    page.get_by_role("button", name="Mint key").click()
    old = page.text_content("#minted-key").strip()
    page.goto(base)
    row = page.locator("tr", has_text="rotating")
    row.locator("summary", has_text="Rotate").click()
    row.locator("input[name=grace_seconds]").fill("600")
    row.get_by_role("button", name="Rotate rotating").click()
    page.get_by_text("Key rotated: copy it now").wait_for()
    new = page.text_content("#minted-key").strip()
    assert new.startswith("alter_rk_") and new != old
    assert "keeps working until" in page.text_content("#rotation-grace")
    run(works(old))
    run(works(new))
    page.goto(base)
    assert new not in page.content() and old not in page.content()
    assert page.locator("tr", has_text="rotating").count() == 2

    # A secret's allowed hosts narrowed: the client's next call to the removed host is refused.
    value = f"sk_hosts_{uuid.uuid4().hex}"
    page.goto(f"{base}/secrets")
    page.fill("#secret-name", "Hosts Demo")
    page.fill("#secret-hosts", "127.0.0.1")
    page.fill("#secret-value", value)
    page.get_by_role("button", name="Create secret").click()
    page.get_by_text("Managed secret created.").wait_for()
    secret = next(
        s for s in server.admin("GET", f"/apps/{server.app_id}/secrets").json()["items"]
        if s["slug"] == "hosts-demo"
    )

    async def call():
        async with App(api_key=server.api_key) as client:
            made = await client.create_managed_secret_grant(
                secret["id"], principal=SystemPrincipal()
            )
            return await client.request("GET", provider.url("/v1/ping"), grant_id=made.grant_id)

    assert run(call()).status_code == 200
    provider.take()
    card = page.locator("li.card", has_text="hosts-demo")
    card.locator("summary", has_text="Change the allowed hosts").click()
    card.locator(f"#hosts-{secret['id']}").fill("api.example.com *.example.org")
    card.get_by_role("button", name="Save hosts").click()
    page.get_by_text("Allowed hosts saved").wait_for()
    shown = server.admin("GET", f"/apps/{server.app_id}/secrets/{secret['id']}").json()
    assert shown["allowed_hosts"] == ["api.example.com", "*.example.org"]
    assert shown["value_version"] == secret["value_version"]
    with pytest.raises(BlockedDestinationError):
        run(call())
    assert provider.take() == [], "nothing was sent to the removed host"
    check_page(browser, page, server, "secrets")
    # Bad hosts are refused with the creation's message, and change nothing.
    card = page.locator("li.card", has_text="hosts-demo")
    card.locator("summary", has_text="Change the allowed hosts").click()
    card.locator(f"#hosts-{secret['id']}").fill("https://api.example.com/")
    card.get_by_role("button", name="Save hosts").click()
    assert "must be a host name" in page.text_content("main")
    forget_refusal(page)
    shown = server.admin("GET", f"/apps/{server.app_id}/secrets/{secret['id']}").json()
    assert shown["allowed_hosts"] == ["api.example.com", "*.example.org"]
    page.goto(f"{base}/secrets")
    # Deleted, after typing its slug.
    card = page.locator("li.card", has_text="hosts-demo")
    card.locator("summary", has_text="Delete").click()
    card.locator(f"#delete-{secret['id']}").fill("hosts-demo")
    card.get_by_role("button", name="Delete Hosts Demo").click()
    page.get_by_text("Managed secret deleted").wait_for()
    slugs = [s["slug"] for s in server.admin("GET", f"/apps/{server.app_id}/secrets").json()["items"]]
    assert "hosts-demo" not in slugs

    # An OAuth provider configured (custom, then a catalogue one) and deleted.
    page.goto(f"{base}/identity")
    client_secret = f"cs_{uuid.uuid4().hex}"
    save_provider(page, "acme", "acme-client", client_secret, **{
        "#provider-scopes": "read write",
        "#provider-authorize": "https://auth.acme.example/authorize",
        "#provider-token": "https://auth.acme.example/token",
    })
    page.get_by_text("OAuth provider saved.").wait_for()
    assert client_secret not in page.content()
    acme = server.admin("GET", f"/apps/{server.app_id}/providers/acme").json()
    assert (acme["client_id"], acme["scopes"]) == ("acme-client", ["read", "write"])
    assert acme["endpoints"]["token_url"] == "https://auth.acme.example/token"
    check_page(browser, page, server, "identity")
    # The admin API's validation answers the form: an unknown id without endpoints.
    save_provider(page, "not-in-the-catalogue", "x", "y")
    assert "not in the built-in catalogue" in page.text_content("main")
    forget_refusal(page)
    page.goto(f"{base}/identity")
    save_provider(page, "github", "gh-client", "gh-secret")
    page.get_by_text("OAuth provider saved.").wait_for()
    github = server.admin("GET", f"/apps/{server.app_id}/providers/github").json()
    assert github["client_id"] == "gh-client" and github["source"] == "catalog"
    row = page.locator("tr", has_text="acme-client")
    row.locator("summary", has_text="Delete").click()
    row.get_by_role("button", name="Delete acme").click()
    page.get_by_text("OAuth provider deleted.").wait_for()
    assert server.admin("GET", f"/apps/{server.app_id}/providers/acme").status_code == 404

    # An agent paused (its key refused), resumed, given a key and deleted.
    bot = make_agent(server, "portal-bot")

    async def agent_call(api_key: str):
        return await Agent(api_key=api_key).list_grants()

    run(agent_call(bot.api_key))
    page.goto(f"{base}/agents")
    card = page.locator(f"#agent-{bot.id}")
    card.get_by_role("button", name="Pause portal-bot").click()
    page.get_by_text("Agent paused").wait_for()
    with pytest.raises(AgentInactiveError):
        run(agent_call(bot.api_key))
    page.locator(f"#agent-{bot.id}").get_by_role("button", name="Resume portal-bot").click()
    page.get_by_text("Agent resumed.").wait_for()
    run(agent_call(bot.api_key))
    check_page(browser, page, server, "agents")

    page.locator(f"#agent-{bot.id}").get_by_role("button", name="Mint a key for portal-bot").click()
    page.get_by_text("Agent key minted: copy it now").wait_for()
    second = page.text_content("#minted-key").strip()
    assert second.startswith("alter_") and second != bot.api_key
    run(agent_call(second))
    page.goto(f"{base}/agents")
    assert second not in page.content()
    card = page.locator(f"#agent-{bot.id}")
    keys = server.admin("GET", f"/apps/{server.app_id}/keys").json()["items"]
    prefix = next(k["key_prefix"] for k in keys if second.startswith(k["key_prefix"]))
    item = card.locator("li", has_text=prefix)
    item.locator("summary").click()
    item.get_by_role("button", name=f"Revoke {prefix}").click()
    page.get_by_text("Agent key revoked.").wait_for()
    with pytest.raises(KeyRevokedError):
        run(agent_call(second))
    run(agent_call(bot.api_key))

    card = page.locator(f"#agent-{bot.id}")
    card.locator("summary", has_text="Delete").click()
    card.get_by_role("button", name="Delete portal-bot").click()
    page.get_by_text("Agent deleted").wait_for()
    with pytest.raises(KeyRevokedError):
        run(agent_call(bot.api_key))

    # Each change is in the app's audit chain, by the operator.
    events = audit_events(server, server.app_id)
    by_operator = {e["action"] for e in events if e["actor"].get("operator") == "admin-token"}
    for action in ("key.rotated", "secret.hosts_changed", "secret.deleted",
                   "provider.configured", "provider.deleted", "agent_key.minted",
                   "agent.deleted"):
        assert action in by_operator, (action, sorted(by_operator))
