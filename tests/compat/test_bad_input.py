"""Bad input on the grant, delegation and agent routes: a clear 4xx with a stable code, and
nothing changes (checked with a listing afterwards).

Everything goes through the unmodified official client. Where the client validates locally and
would never send the request, the request is sent anyway with the client's own signing
(`_authed_backend_request`) to prove the server refuses it too.
"""

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta

import httpx
import jwt
import pytest
from alter_sdk import Agent, App, SystemPrincipal, UserPrincipal
from alter_sdk.exceptions import (
    AgentConcurrentUpdateError,
    AgentNameExistsError,
    AgentNotFoundError,
    AlterValueError,
    BackendError,
    GrantNotFoundError,
    ReAuthRequiredError,
)

from idp import TestIdp
from scenario import agent_states, grant_states, now, parse_time, run


async def raw(app: App, method: str, path: str, body: dict | None = None):
    """A request signed by the official client itself, for bodies it refuses to build."""
    return await app._client._authed_backend_request(method, path, body=body)


def assert_refused(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == code, response.text


def refused(raised, status: int, code: str) -> None:
    """The client's exception carries the server's status and stable code."""
    assert raised.value.status_code == status, raised.value.details
    assert raised.value.details.get("error") == code, raised.value.details


# ── end users' JWTs ─────────────────────────────────────────────────────────────────────────


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bad_tokens(idp: TestIdp) -> dict[str, str]:
    """Tokens the app's IdP configuration must refuse, each wrong in one way."""
    claims = {"iss": idp.issuer, "aud": idp.audience, "sub": "mallory"}
    soon = int(time.time()) + 600
    impostor = TestIdp(issuer=idp.issuer, audience=idp.audience)
    impostor.kid = idp.kid  # same kid, another key
    # Algorithm confusion: HS256 keyed with the IdP's public JWKS.
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": idp.kid}).encode())
    body = b64(json.dumps({**claims, "exp": soon}).encode())
    mac = hmac.new(idp.jwks().encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return {
        "expired": idp.token("mallory", lifetime=-3600),
        "wrong audience": idp.token("mallory", audience="another-app"),
        "wrong issuer": idp.token("mallory", issuer="https://evil.example.test/"),
        "another key": impostor.token("mallory"),
        "alg none": jwt.encode({**claims, "exp": soon}, None, algorithm="none"),
        "hs256 with the public key": f"{head}.{body}.{b64(mac)}",
        "no exp": jwt.encode(claims, idp._key, algorithm="ES256", headers={"kid": idp.kid}),
        "not yet valid": idp.token("mallory", nbf=int(time.time()) + 3600),
        "no subject": jwt.encode(
            {"iss": idp.issuer, "aud": idp.audience, "exp": soon},
            idp._key,
            algorithm="ES256",
            headers={"kid": idp.kid},
        ),
        "tampered": idp.token("mallory")[:-4] + "AAAA",
        "garbage": "not.a.jwt",
        "oversize": "x" * 9000,
    }


def test_bad_user_tokens_are_refused_and_change_nothing(server, idp):
    stripe = server.create_secret("Stripe Prod")

    async def scenario():
        app = App(api_key=server.api_key)
        held = await app.create_managed_secret_grant(
            stripe["id"], principal=UserPrincipal(user_token=idp.token("alice"), label="alice")
        )
        bot = await app.agents.create(name="research-bot", scopes={})
        before = await grant_states(app)
        for case, token in bad_tokens(idp).items():
            if len(token) <= 8192:  # the client's own limit on UserPrincipal
                with pytest.raises(ReAuthRequiredError) as raised:
                    await app.create_managed_secret_grant(
                        stripe["id"], principal=UserPrincipal(user_token=token, label=case)
                    )
            else:
                response = await raw(
                    app,
                    "POST",
                    f"/sdk/managed-secrets/{stripe['id']}/grants",
                    {
                        "principal": {"type": "user", "user_token": token, "label": case},
                        "grant_policy": {},
                    },
                )
                assert_refused(response, 401, "jwt_validation_error")
            with pytest.raises(ReAuthRequiredError) as raised:
                await app.list_grants(end_user_token=token)
            refused(raised, 401, "jwt_validation_error")
            with pytest.raises(ReAuthRequiredError) as raised:
                await Agent(api_key=bot.api_key).list_grants(end_user_token=token)
            refused(raised, 401, "jwt_validation_error")
            # The end-user API refuses the same tokens.
            for method, path, body in (
                ("GET", "/me", None),
                ("GET", "/grants", None),
                ("POST", f"/grants/{held.grant_id}/delegations", {"agent_id": str(bot.id)}),
            ):
                response = idp.user_api(server, method, path, token, json=body)
                assert_refused(response, 401, "jwt_validation_error")
        assert await grant_states(app) == before

    run(scenario())


def test_a_token_for_another_app_is_refused(server, idp):
    """An end-user route of an app with no IdP, or of no app, refuses any token alike."""
    second_id, _ = server.create_app("no-idp")
    token = idp.token("alice")
    for app_id in (second_id, "not-an-app", "00000000-0000-4000-8000-000000000000"):
        response = idp.user_api(server, "GET", "/grants", token, app_id=app_id)
        assert_refused(response, 401, "jwt_validation_error")
    # No token at all.
    response = httpx.get(f"{server.base_url}/user/v1/apps/{server.app_id}/grants", timeout=30)
    assert_refused(response, 401, "jwt_validation_error")


# ── malformed ids ───────────────────────────────────────────────────────────────────────────

MALFORMED_IDS = [
    "not-a-uuid",
    "00000000-0000-0000-0000-000000000000",
    "' OR '1'='1",
    "%2e%2e",
    "é",
    "x" * 2000,
]
# Inserted verbatim by the client, these miss every route (see the connection test below).
ROUTE_MISSING_IDS = ["a/b", "x?y=1", "x#y"]


def test_malformed_ids_answer_not_found_and_change_nothing(server, idp):
    stripe = server.create_secret("Stripe Prod")

    async def scenario():
        app = App(api_key=server.api_key)
        alice = idp.token("alice")
        grant = await app.create_managed_secret_grant(
            stripe["id"], principal=UserPrincipal(user_token=alice, label="alice")
        )
        bot = await app.agents.create(name="research-bot", scopes={})
        idp.user_delegates(server, alice, grant.grant_id, bot.id)
        grants, agents = await grant_states(app), await agent_states(app)

        for bad in MALFORMED_IDS:
            with pytest.raises(GrantNotFoundError):
                await app.create_managed_secret_grant(bad, principal=SystemPrincipal())
            with pytest.raises(GrantNotFoundError):
                await app.mint_grant(bad, label="sibling")
            for call in (app.agents.get(bad), app.agents.delete(bad), app.agents.mint_key(bad)):
                with pytest.raises(AgentNotFoundError):
                    await call
            # Routes whose ids the client validates as UUIDs: the server refuses them too.
            path = f"/sdk/oauth/grants/{bad.replace('/', '%2F')}/revoke"
            assert_refused(await raw(app, "POST", path, {}), 404, "grant_not_found")
            # Revoking a delegation is idempotent (protocol part 2 §5.2): success, no change.
            for path in (
                f"/sdk/grants/{grant.grant_id}/delegations/{bad.replace('/', '%2F')}",
                f"/sdk/grants/{bad.replace('/', '%2F')}/delegations/{bot.id}",
            ):
                assert (await raw(app, "DELETE", path)).status_code == 204
            # The end-user API.
            response = idp.user_api(
                server, "POST", f"/grants/{bad}/delegations", alice, json={"agent_id": str(bot.id)}
            )
            assert response.status_code == 404, response.text
            response = idp.user_api(
                server,
                "POST",
                f"/grants/{grant.grant_id}/delegations",
                alice,
                json={"agent_id": bad},
            )
            assert_refused(response, 404, "agent_not_found")
            response = idp.user_api(server, "DELETE", f"/delegations/{bad}", alice)
            assert response.status_code == 404, response.text
        with pytest.raises(AlterValueError):
            app.get_agent("not-a-uuid")
        with pytest.raises(GrantNotFoundError):
            await app.create_managed_secret_grant(
                stripe["id"], principal=SystemPrincipal(), credential_id="not-this-secret"
            )

        assert await grant_states(app) == grants
        assert await agent_states(app) == agents

    run(scenario())


def test_ids_that_miss_every_route_answer_not_found(server):
    """The client inserts `managed_secret_id` and `source_grant_id` verbatim, so an id with
    `/`, `?` or `#` misses every route: 404 `not_found`, GrantNotFoundError.

    Each call is on a fresh client; that the connection stays usable after such an answer is
    pinned down deterministically by the next test."""

    async def scenario():
        for bad in ROUTE_MISSING_IDS:
            for call in ("create", "mint"):
                app = App(api_key=server.api_key)
                with pytest.raises(GrantNotFoundError) as raised:
                    if call == "create":
                        await app.create_managed_secret_grant(bad, principal=SystemPrincipal())
                    else:
                        await app.mint_grant(bad, label="sibling")
                refused(raised, 404, "not_found")
                await app.close()
        assert await grant_states(App(api_key=server.api_key)) == {}

    run(scenario())


def test_escaped_separators_in_a_path_are_refused_before_the_signature(server):
    """The client percent-encodes agent ids (`quote(id, safe="")`), so an id holding `/`, `?` or
    `#` reaches the server as `%2F`, `%3F` or `%23`, which the signature cannot tell from the
    characters themselves: refused with 400 `invalid_path`, and nothing changes. The client's
    own ids (UUIDs) never contain them."""

    async def scenario():
        app = App(api_key=server.api_key)
        bot = await app.agents.create(name="research-bot", scopes={})
        agents = await agent_states(app)
        for bad in (f"{bot.id}?force=true", f"x/{bot.id}", f"{bot.id}#x"):
            for call in (app.agents.get(bad), app.agents.delete(bad)):
                with pytest.raises(BackendError) as raised:
                    await call
                assert raised.value.status_code == 400, raised.value.details
                assert "invalid_path" in json.dumps(raised.value.details), raised.value.details
        assert await agent_states(app) == agents

    run(scenario())


def test_an_early_answer_says_whether_the_connection_stays_open(server):
    """HTTP/1.1 (RFC 9112 §9.6): a server that closes the connection after a response says
    `Connection: close` in it. A pooling client (the official one) otherwise sends its next
    request into a closing connection. Here the request's body is held back for a moment: the
    server either waits for it (then answers and keeps the connection), or answers early and
    then says whether the connection stays open."""
    import socket

    host, port = server.base_url.removeprefix("http://").split(":")
    body = b'{"principal":{"type":"system","label":null},"grant_policy":{}}'
    problems = []
    for method, path in (
        ("POST", "/sdk/managed-secrets/a/b/grants"),  # no such route
        ("POST", f"/user/v1/apps/{server.app_id}/grants/x/delegations"),  # no user token
        ("POST", "/admin/v1/apps"),  # no admin token
    ):
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(
                f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            )
            conn.settimeout(0.5)
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    head += chunk
            except socket.timeout:
                pass  # the server waits for the body: the best answer
            answered_early = b"\r\n\r\n" in head
            # Finish the request and send a second one on the same connection.
            conn.settimeout(5)
            conn.sendall(body + f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            rest = head
            try:
                while rest.count(b"HTTP/1.1 ") < 2:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
            except (socket.timeout, ConnectionResetError, BrokenPipeError):
                pass
            first = rest.split(b"\r\n\r\n")[0].decode(errors="replace").split("\r\n")
            status_line, headers = first[0], first[1:]
            assert status_line.split()[1].startswith("4"), status_line
            says_close = any(h.lower() == "connection: close" for h in headers)
            kept_open = b"HTTP/1.1 200" in rest
            if not (says_close or kept_open):
                problems.append(
                    f"{method} {path}: answered {status_line!r} "
                    f"({'before' if answered_early else 'after'} the body), then closed the "
                    f"connection without `Connection: close` (headers: {headers})"
                )
    assert problems == []


# ── labels ──────────────────────────────────────────────────────────────────────────────────


def test_oversize_and_malformed_labels_are_refused(server, idp):
    stripe = server.create_secret("Stripe Prod")
    path = f"/sdk/managed-secrets/{stripe['id']}/grants"

    async def scenario():
        app = App(api_key=server.api_key)
        source = await app.create_managed_secret_grant(
            stripe["id"], principal=SystemPrincipal(label="source")
        )
        before = await grant_states(app)
        long = "x" * 256
        for principal in (
            {"type": "system", "label": long},
            {"type": "user", "user_token": idp.token("alice"), "label": long},
            {"type": "user", "user_token": idp.token("alice"), "label": ""},
            {"type": "group", "external_group_id": "eng", "idp_id": idp.id, "label": long},
            {"type": "group", "external_group_id": "g" * 256, "idp_id": idp.id, "label": "g"},
            {"type": "group", "external_group_id": "", "idp_id": idp.id, "label": "g"},
        ):
            response = await raw(app, "POST", path, {"principal": principal, "grant_policy": {}})
            assert_refused(response, 422, "invalid_request")
        # Labels the client lets through.
        for label in ("line\nbreak", "nul\x00byte", "tab\there"):
            with pytest.raises(BackendError) as raised:
                await app.create_managed_secret_grant(
                    stripe["id"], principal=SystemPrincipal(label=label)
                )
            refused(raised, 422, "invalid_request")
        for label in (long, "line\nbreak"):
            with pytest.raises(BackendError) as raised:
                await app.mint_grant(source.grant_id, label=label)
            refused(raised, 422, "invalid_request")
        # A reason longer than the audit log keeps: refused before anything is revoked.
        with pytest.raises(BackendError) as raised:
            await app.revoke_grant(source.grant_id, reason="r" * 1001)
        refused(raised, 422, "invalid_request")
        assert await grant_states(app) == before

        # 255 characters (counted as characters, not bytes) are fine.
        made = await app.create_managed_secret_grant(
            stripe["id"], principal=SystemPrincipal(label="é" * 255)
        )
        assert made.label == "é" * 255

    run(scenario())


# ── grant policies ──────────────────────────────────────────────────────────────────────────


def test_grant_policies_the_server_must_refuse(server):
    stripe = server.create_secret("Stripe Prod")
    path = f"/sdk/managed-secrets/{stripe['id']}/grants"

    async def scenario():
        app = App(api_key=server.api_key)
        source = await app.create_managed_secret_grant(
            stripe["id"], principal=SystemPrincipal(label="source")
        )
        before = await grant_states(app)
        past = (now() - timedelta(minutes=5)).isoformat()

        # Pass the client's validation; the server refuses them.
        for policy in (
            {"max_ttl_seconds": 60, "default_ttl_seconds": 120},
            {"expires_at": past},
            {"expires_at": "2000-01-01T00:00:00Z"},
            {"expires_at": "2099-01-01T00:00:00"},  # no offset: ambiguous
        ):
            with pytest.raises(BackendError) as raised:
                await app.create_managed_secret_grant(
                    stripe["id"], principal=SystemPrincipal(), grant_policy=policy
                )
            refused(raised, 422, "invalid_grant_policy")
        # The client refuses these locally; so must the server.
        for policy, code in (
            ({"max_ttl_seconds": 0}, "invalid_grant_policy"),
            ({"default_ttl_seconds": -5}, "invalid_grant_policy"),
            ({"expires_at": "not-a-date"}, "invalid_grant_policy"),
            ({"max_ttl_seconds": "60"}, "invalid_request"),
            ({"max_ttl_seconds": 1.5}, "invalid_request"),
            ({"max_ttl_seconds": True}, "invalid_request"),
            ({"max_ttl_seconds": 2**64}, "invalid_request"),
            ({"expires_at": 1700000000}, "invalid_request"),
            ({"maxTtlSeconds": 60}, "invalid_request"),
            ({"restrictions": {}}, "invalid_request"),
        ):
            body = {"principal": {"type": "system", "label": None}, "grant_policy": policy}
            assert_refused(await raw(app, "POST", path, body), 422, code)
        # Mint takes a plain dict through unvalidated: the server is the only gate.
        for policy in (
            {"restrictions": {"methods": ["GET"]}},
            {"requires_approval": True},
            {"max_ttl_seconds": "60"},
            {"max_ttl_seconds": -5},
            {"expires_at": past},
        ):
            with pytest.raises(BackendError) as raised:
                await app.mint_grant(source.grant_id, label="sibling", grant_policy=policy)
            refused(raised, 422, "invalid_grant_policy")
        assert await grant_states(app) == before

    run(scenario())


def test_an_absurd_ttl_is_refused_or_shown_truthfully(server):
    """A lifetime past what a timestamp can show must not come back as an expiry in 1970
    on a grant reported active: refuse it (422), or show a real future time."""
    stripe = server.create_secret("Stripe Prod")

    async def scenario():
        app = App(api_key=server.api_key)
        source = await app.create_managed_secret_grant(
            stripe["id"], principal=SystemPrincipal(label="source")
        )
        for n, policy in enumerate(
            (
                {"max_ttl_seconds": 10**12},  # ~31,700 years
                {"default_ttl_seconds": 2**63 - 1},
            )
        ):
            try:
                made = await app.create_managed_secret_grant(
                    stripe["id"],
                    principal=SystemPrincipal(label=f"absurd-{n}"),
                    grant_policy=policy,
                )
            except BackendError as refusal:
                assert refusal.status_code == 422, refusal.details
                continue
            [grant] = (await app.list_grants(label=made.label)).grants
            assert grant.status == "active"
            assert parse_time(grant.grant_expires_at) > now(), (policy, grant.grant_expires_at)
        try:
            minted = await app.mint_grant(
                source.grant_id, label="absurd-mint", grant_policy={"max_ttl_seconds": 10**12}
            )
        except BackendError as refusal:
            assert refusal.status_code == 422, refusal.details
        else:
            assert parse_time(minted.expires_at) > now(), minted.expires_at

    run(scenario())


# ── listings ────────────────────────────────────────────────────────────────────────────────


def test_bad_listing_requests_are_refused(server):
    async def scenario():
        app = App(api_key=server.api_key)
        with pytest.raises(BackendError) as raised:
            await app.list_grants(status="bogus")
        refused(raised, 422, "invalid_request")
        for body in (
            {"limit": 0, "offset": 0},
            {"limit": 1001, "offset": 0},
            {"limit": 10, "offset": -1},
            {"limit": "10", "offset": 0},
            {"limit": True, "offset": 0},
            {"limit": 10, "offset": 0, "provider": "stripe"},
        ):
            assert_refused(await raw(app, "POST", "/sdk/grants/list", body), 422, "invalid_request")

    run(scenario())


def test_a_wrong_method_gets_the_error_envelope(server):
    """A method a route does not take is a 4xx in the error envelope with a stable code, like
    every other refusal (the client otherwise reports "non-JSON error")."""
    stripe = server.create_secret("Stripe Prod")

    async def scenario():
        app = App(api_key=server.api_key)
        for method, path in (
            ("GET", "/sdk/grants/list"),
            ("PUT", f"/sdk/managed-secrets/{stripe['id']}/grants"),
            ("GET", "/sdk/oauth/grants/00000000-0000-4000-8000-000000000000/revoke"),
            ("POST", "/sdk/agents/me"),
        ):
            response = await raw(app, method, path, {} if method != "GET" else None)
            assert response.status_code == 405, (method, path, response.status_code)
            assert response.headers.get("content-type", "").startswith("application/json"), (
                method,
                path,
                response.headers.get("content-type"),
                response.text,
            )
            assert isinstance(response.json().get("error"), str), response.text

    run(scenario())


# ── agents ──────────────────────────────────────────────────────────────────────────────────


def test_bad_agent_input_is_refused_and_changes_nothing(server):
    async def scenario():
        app = App(api_key=server.api_key)
        bot = await app.agents.create(name="research-bot", scopes={"github": ["repo"]})
        bot_id = str(bot.id)
        before = await agent_states(app)

        for name in (
            "Research-Bot",
            "RESEARCH",
            "research bot",
            "-bot",
            "_bot",
            "bot!",
            "bøt",
            "x" * 65,
        ):
            with pytest.raises(BackendError) as raised:
                await app.agents.create(name=name, scopes={})
            refused(raised, 422, "invalid_request")
        with pytest.raises(AlterValueError):
            await app.agents.create(name="", scopes={})
        with pytest.raises(BackendError) as raised:
            await app.agents.create(name="fine-name", scopes={}, display_name="d" * 256)
        refused(raised, 422, "invalid_request")
        for body in (
            {"name": "", "type": "agent", "scopes": {}, "metadata": {}},
            {"name": "fine-name", "type": "agent", "scopes": {"github": []}, "metadata": {}},
            {"name": "fine-name", "type": "agent", "scopes": [], "metadata": {}},
            {"name": "fine-name", "type": "robot", "scopes": {}, "metadata": {}},
            {"name": "fine-name", "type": "agent", "scopes": {}, "metadata": []},
        ):
            assert_refused(await raw(app, "POST", "/sdk/agents", body), 422, "invalid_request")

        # A name in use.
        with pytest.raises(AgentNameExistsError) as raised:
            await app.agents.create(name="research-bot", scopes={})
        refused(raised, 409, "agent_name_exists")

        # A stale version.
        with pytest.raises(AgentConcurrentUpdateError) as raised:
            await app.agents.update(bot_id, scopes={}, expected_version=bot.version + 1)
        refused(raised, 409, "agent_concurrent_update")
        # Update controls the client checks, checked by the server too.
        for query, body in (
            ("", {"scopes": {}}),  # scopes without expected_version
            ("?expected_version=0", {"scopes": {}}),
            ("?grace_seconds=604801&expected_version=1", {"scopes": {}}),
            ("?grace_seconds=5", {}),  # grace without scopes
            ("", {"status": "revoked"}),
            ("", {"status": "bogus"}),
        ):
            response = await raw(app, "PATCH", f"/sdk/agents/{bot_id}{query}", body)
            assert_refused(response, 422, "invalid_request")

        assert await agent_states(app) == before
        unchanged = await app.agents.get(bot_id)
        assert unchanged.scopes == {"github": ["repo"]} and unchanged.version == bot.version

        # The current version succeeds; a deleted agent's name is free again.
        updated = await app.agents.update(
            bot_id, scopes={"github": ["repo", "read:org"]}, expected_version=bot.version
        )
        assert updated.version == bot.version + 1
        await app.agents.delete(bot_id)
        again = await app.agents.create(name="research-bot", scopes={})
        assert str(again.id) != bot_id

    run(scenario())
