"""`app.request()` / `agent.request()` through the unmodified official client, end to end: the
server releases the credential (`POST /sdk/token`), the client injects it and calls a real
HTTP server on 127.0.0.1 (`provider.py`), and what arrived there is the proof.

Protocol part 1 §5 (token request and strict response, injection, provider responses, the
scope-mismatch and audit reports) and §4.2 (refusal → exception). Every test also scans the
whole audit log and every exception it saw for the secret values it stored.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from unittest import mock

import botocore.auth
import pytest
from alter_sdk import Agent, App, GroupPrincipal, SystemPrincipal, UserPrincipal
from alter_sdk.exceptions import (
    AgentDelegationMissingError,
    AgentInactiveError,
    AgentNotFoundError,
    AmbiguousGrantError,
    BackendError,
    BlockedDestinationError,
    GrantDeletedError,
    GrantExpiredError,
    GrantNotFoundError,
    GrantRevokedError,
    InsufficientScopeError,
    KeyRevokedError,
    NoDelegatedGrantError,
    PolicyViolationError,
    ProviderAPIError,
    ProviderUnauthorizedError,
    ScopeReauthRequiredError,
)
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from provider import Arrival, Provider
from scenario import now, parse_time, run

USER_AGENT = "alter-sdk-python/0.29.0"


@pytest.fixture
def provider():
    running = Provider()
    yield running
    running.stop()


def secret_value(kind: str) -> str:
    """A value distinctive enough that finding it anywhere is a leak."""
    return f"{kind}-{uuid.uuid4().hex}"


class Kit:
    """The server, the provider, and what must never show up where it does not belong: the
    secret values a test stored."""

    def __init__(self, server, provider: Provider) -> None:
        self.server = server
        self.provider = provider
        self.secrets: set[str] = set()
        self.raised: list[BaseException] = []

    def secret(self, name: str, *, watch: list[str], **body) -> dict:
        """Creates a managed secret; `watch` lists the sensitive strings in its value."""
        info = self.server.create_secret(name, **body)
        self.secrets.update(watch)
        return info

    async def refused(self, exception: type[BaseException], call) -> BaseException:
        """Awaits `call`, which must raise exactly `exception` (not a sub- or superclass)."""
        with pytest.raises(BaseException) as raised:
            await call
        error = raised.value
        self.raised.append(error)
        assert type(error) is exception, f"{type(error).__name__}: {error!r}"
        return error

    def events(self, **query) -> list[dict]:
        """Every audit event matching `query` (all pages), oldest first."""
        events, cursor = [], None
        while True:
            params = {**query, "limit": 1000, **({"cursor": cursor} if cursor else {})}
            response = self.server.admin("GET", f"/apps/{self.server.app_id}/audit", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            events += [item["event"] for item in page["items"]]
            cursor = page.get("next_cursor")
            if not cursor:
                return events

    async def wait_events(self, count: int = 1, deadline: float = 10, **query) -> list[dict]:
        """Polls (letting the client's background reports run) until `count` events match."""
        end = time.monotonic() + deadline
        while True:
            found = await asyncio.to_thread(self.events, **query)
            if len(found) >= count:
                return found
            assert time.monotonic() < end, f"{len(found)} of {count} {query} events arrived"
            await asyncio.sleep(0.05)

    def denial(self, grant_id: str | None, reason: str) -> dict:
        """The one `credential.denied` event with `reason` (about `grant_id`, if given)."""
        query = {"action": "credential.denied"}
        if grant_id:
            query["grant"] = grant_id
        found = [e for e in self.events(**query) if e["reason"] == reason]
        assert len(found) == 1, (reason, self.events(action="credential.denied"))
        [event] = found
        assert event["decision"] == "deny"
        if grant_id:
            assert event["target"] == {"kind": "grant", "id": grant_id}
        return event

    def assert_no_leaks(self) -> None:
        """No stored secret value in any audit event, error body or exception; the audit
        chain verifies."""
        texts = [json.dumps(event) for event in self.events()]
        for error in self.raised:
            texts += [
                str(error),
                repr(error),
                json.dumps(getattr(error, "details", None), default=str),
                repr(getattr(error, "response_body", None)),
                repr(vars(error)),
            ]
        for secret in self.secrets:
            for text in texts:
                assert secret not in text, f"a secret value leaked into {text[:300]}"
        verify = self.server.admin("POST", f"/apps/{self.server.app_id}/audit/verify")
        assert verify.status_code == 200, verify.text
        assert verify.json()["ok"] is True, verify.json()


@pytest.fixture
def kit(server, provider) -> Kit:
    return Kit(server, provider)


def assert_plain_provider_call(arrival: Arrival, server) -> None:
    """What every provider call carries and never carries (protocol part 1 §5.4 step 4): the
    client's User-Agent; neither the Alter key nor any `X-Alter-*` header but the marker."""
    assert arrival.header("User-Agent") == USER_AGENT
    assert server.api_key not in arrival.text()
    assert not [
        n for n in arrival.header_names if n.startswith("x-alter-") and n != "x-alter-credential"
    ]


async def system_grant(app: App, secret: dict, label: str | None = None) -> str:
    made = await app.create_managed_secret_grant(
        secret["id"], principal=SystemPrincipal(label=label)
    )
    return made.grant_id


# ── 1. Every injection format, proven by what arrived ──────────────────────────────────────


def test_bearer_with_path_params_query_params_json_and_extra_headers(kit, server, provider):
    value = secret_value("sk_live")
    secret = kit.secret("Stripe Prod", type="bearer", value=value, watch=[value])

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            response = await app.request(
                "POST",
                provider.url("/v1/customers/{customer}/charges"),
                grant_id=grant_id,
                path_params={"customer": "cus/42 é"},
                query_params={"limit": 10, "starting_after": "ch_1"},
                json={"amount": 1999, "currency": "eur", "tags": ["a", "b"], "meta": None},
                extra_headers={
                    "Authorization": "Bearer caller-supplied",
                    "Idempotency-Key": "idem-1",
                    "X-Trace": "t-1",
                },
            )
            assert response.status_code == 200
            assert response.json() == {"ok": True}
            arrival = provider.one()
            assert arrival.method == "POST"
            # Each path value percent-encoded with no safe characters.
            assert arrival.path == "/v1/customers/cus%2F42%20%C3%A9/charges"
            assert arrival.query == [("limit", "10"), ("starting_after", "ch_1")]
            # The credential overrides the caller's same-named header.
            assert arrival.header("Authorization") == f"Bearer {value}"
            assert arrival.header("Idempotency-Key") == "idem-1"
            assert arrival.header("X-Trace") == "t-1"
            assert arrival.header("Content-Type") == "application/json"
            assert arrival.json() == {
                "amount": 1999,
                "currency": "eur",
                "tags": ["a", "b"],
                "meta": None,
            }
            assert_plain_provider_call(arrival, server)

            # Provider mode: the app's one system grant for that slug.
            response = await app.request(
                "GET", provider.url("/v1/balance"), provider=secret["slug"]
            )
            assert response.status_code == 200
            arrival = provider.one()
            assert (arrival.method, arrival.target) == ("GET", "/v1/balance")
            assert arrival.header("Authorization") == f"Bearer {value}"
            assert arrival.body == b""
        kit.assert_no_leaks()

    run(scenario())


def test_custom_header(kit, server, provider):
    value = secret_value("key")
    secret = kit.secret(
        "OpenAI",
        type="header",
        header="X-API-Key",
        value=value,
        allowed_hosts=["127.0.0.1"],
        watch=[value],
    )

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            response = await app.request(
                "PUT", provider.url("/v1/models/m1"), grant_id=grant_id, json=["x", 1, True]
            )
            assert response.status_code == 200
            arrival = provider.one()
            assert arrival.method == "PUT"
            assert arrival.header("X-API-Key") == value
            assert "authorization" not in arrival.header_names
            assert arrival.json() == ["x", 1, True]
            assert_plain_provider_call(arrival, server)
        kit.assert_no_leaks()

    run(scenario())


def test_basic(kit, server, provider):
    password = secret_value("pa55")
    value = f"svc-user:{password}"
    encoded = base64.b64encode(value.encode()).decode()
    secret = kit.secret("Jira", type="basic", value=value, watch=[password, encoded])

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            response = await app.request(
                "DELETE", provider.url("/rest/api/2/issue/7"), grant_id=grant_id
            )
            assert response.status_code == 200
            arrival = provider.one()
            assert arrival.method == "DELETE"
            assert arrival.header("Authorization") == f"Basic {encoded}"
            assert base64.b64decode(arrival.header("Authorization").split()[1]) == value.encode()
            assert_plain_provider_call(arrival, server)
        kit.assert_no_leaks()

    run(scenario())


def test_query_parameter(kit, server, provider):
    value = secret_value("maps")
    secret = kit.secret("Maps", type="query", param="api_key", value=value, watch=[value])

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            response = await app.request(
                "GET",
                provider.url("/maps/api/geocode/json"),
                grant_id=grant_id,
                query_params={"address": "1,rue/de:Rivoli", "region": "fr"},
                extra_headers={"Accept": "application/json"},
            )
            assert response.status_code == 200
            arrival = provider.one()
            assert arrival.param("api_key") == value
            assert arrival.param("address") == "1,rue/de:Rivoli"
            assert arrival.param("region") == "fr"
            # The main header still travels: the harmless marker, never the secret.
            assert arrival.header("X-Alter-Credential") == "query-parameter"
            assert "authorization" not in arrival.header_names
            for name, header in arrival.headers:
                assert value not in header, name
            assert arrival.header("Accept") == "application/json"
            assert_plain_provider_call(arrival, server)
        kit.assert_no_leaks()

    run(scenario())


def test_several_rules_at_once(kit, server, provider):
    fields = {
        "client_id": secret_value("cid"),
        "client_secret": secret_value("csecret"),
        "tenant": secret_value("tenant"),
    }
    secret = kit.secret(
        "Partner API",
        type="multi",
        value=json.dumps(fields),
        rules=[
            {"target": "header", "name": "X-Client-Id", "field": "client_id"},
            {"target": "header", "name": "X-Client-Secret", "field": "client_secret"},
            {"target": "query", "name": "tenant", "field": "tenant"},
        ],
        allowed_hosts=["127.0.0.1"],
        watch=list(fields.values()),
    )

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            response = await app.request(
                "PATCH",
                provider.url("/v2/orders/{id}"),
                grant_id=grant_id,
                path_params={"id": "o-1"},
                query_params={"dry_run": "true"},
                json={"status": "shipped"},
            )
            assert response.status_code == 200
            arrival = provider.one()
            assert (arrival.method, arrival.path) == ("PATCH", "/v2/orders/o-1")
            assert arrival.header("X-Client-Id") == fields["client_id"]
            assert arrival.header("X-Client-Secret") == fields["client_secret"]
            assert arrival.param("tenant") == fields["tenant"]
            assert arrival.param("dry_run") == "true"
            assert arrival.header("X-Alter-Credential") == "multi"
            assert "authorization" not in arrival.header_names
            assert arrival.json() == {"status": "shipped"}
            assert_plain_provider_call(arrival, server)
        kit.assert_no_leaks()

    run(scenario())


def botocore_signature(arrival: Arrival, value: dict) -> dict[str, str]:
    """What botocore's `SigV4Auth` signs for the request that arrived, with the stored
    credentials, region and service, at the instant the client stamped (`x-amz-date`)."""
    when = datetime.strptime(arrival.header("x-amz-date"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    headers = {
        "host": arrival.header("host"),
        "X-Amz-Content-SHA256": arrival.header("x-amz-content-sha256"),
    }
    request = AWSRequest(
        method=arrival.method,
        url=f"http://{arrival.header('host')}{arrival.path}",
        headers=headers,
        data=arrival.body,
        params=arrival.query,
    )
    credentials = Credentials(
        value["access_key_id"], value["secret_access_key"], value.get("session_token")
    )
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
        SigV4Auth(credentials, value["service"], value["region"]).add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize("session", [True, False], ids=["session-token", "long-term-key"])
def test_aws_sigv4_verified_by_botocore(kit, server, provider, session):
    value = {
        "access_key_id": "AKIA" + uuid.uuid4().hex[:16].upper(),
        "secret_access_key": secret_value("wJalrXUtnFEMI/K7MDENG+bPxRfiCY"),
        "region": "eu-west-3",
        "service": "execute-api",
    }
    if session:
        value["session_token"] = secret_value("FwoGZXIvYXdzEXAMPLE//+token")
    secret = kit.secret(
        "AWS Gateway",
        type="aws_sigv4",
        value=json.dumps(value),
        allowed_hosts=["127.0.0.1"],
        watch=[value["secret_access_key"]] + ([value["session_token"]] if session else []),
    )

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            response = await app.request(
                "POST",
                provider.url("/prod/items/{item}/invoke"),
                grant_id=grant_id,
                path_params={"item": "my item"},
                query_params={"b": "2", "a": "x/y~z"},
                json={"key": "value", "n": 1},
                extra_headers={"X-Custom": "kept"},
            )
            assert response.status_code == 200
            arrival = provider.one()
            assert arrival.path == "/prod/items/my%20item/invoke"
            assert sorted(arrival.query) == [("a", "x/y~z"), ("b", "2")]
            assert arrival.json() == {"key": "value", "n": 1}
            assert arrival.header("X-Custom") == "kept"
            assert arrival.header("host") == provider.host
            assert (
                arrival.header("x-amz-content-sha256") == hashlib.sha256(arrival.body).hexdigest()
            )
            authorization = arrival.header("Authorization")
            date = arrival.header("x-amz-date")[:8]
            assert authorization.startswith(
                f"AWS4-HMAC-SHA256 Credential={value['access_key_id']}/{date}/eu-west-3/execute-api/aws4_request, "
            )
            signed = botocore_signature(arrival, value)
            assert authorization == signed["Authorization"]
            if session:
                assert arrival.header("x-amz-security-token") == value["session_token"]
                assert signed["X-Amz-Security-Token"] == value["session_token"]
                assert (
                    "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"
                    in authorization
                )
            else:
                assert "x-amz-security-token" not in arrival.header_names
                assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date," in authorization
            # SigV4 skips every other injection: no marker header.
            assert "x-alter-credential" not in arrival.header_names
            assert value["secret_access_key"] not in arrival.text()
            assert_plain_provider_call(arrival, server)

            # A GET with no body signs the empty payload.
            await app.request("GET", provider.url("/prod/items"), grant_id=grant_id)
            arrival = provider.one()
            assert arrival.body == b""
            assert arrival.header("x-amz-content-sha256") == hashlib.sha256(b"").hexdigest()
            assert (
                arrival.header("Authorization")
                == botocore_signature(arrival, value)["Authorization"]
            )
        kit.assert_no_leaks()

    run(scenario())


# ── 2. Provider responses ──────────────────────────────────────────────────────────────────


def test_provider_401_and_500(kit, server, provider):
    value = secret_value("sk")
    secret = kit.secret("Stripe Prod", value=value, watch=[value])
    provider.answer(
        "/v1/unauthorized",
        401,
        {"error": "invalid_api_key"},
        {"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )
    provider.answer("/v1/broken", 500, "upstream exploded")

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            error = await kit.refused(
                ProviderUnauthorizedError,
                app.request("GET", provider.url("/v1/unauthorized"), grant_id=grant_id),
            )
            assert error.status_code == 401
            assert error.grant_id == grant_id
            assert error.details["source"] == "provider_unauthorized"
            assert json.loads(error.response_body) == {"error": "invalid_api_key"}

            error = await kit.refused(
                ProviderAPIError,
                app.request("POST", provider.url("/v1/broken"), grant_id=grant_id, json={}),
            )
            assert error.status_code == 500
            assert error.response_body == "upstream exploded"
            assert len(provider.take()) == 2

            # Both calls were reported (credential.used) with the provider's status.
            used = await kit.wait_events(2, action="credential.used", grant=grant_id)
            assert [e["outcome"]["response_status"] for e in used] == [401, 500]
        kit.assert_no_leaks()

    run(scenario())


def test_provider_403_insufficient_scope_is_reported_and_flagged(kit, server, provider):
    value = secret_value("gh")
    secret = kit.secret("GitHub Bot", value=value, watch=[value])
    provider.answer("/repos/forbidden", 403, {"message": "Forbidden"})
    provider.answer(
        "/repos/scoped",
        403,
        {"message": "needs more"},
        {"WWW-Authenticate": 'Bearer realm="api", error="insufficient_scope", scope="a b"'},
    )

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            # A 403 without the challenge, before any report: a plain provider error.
            error = await kit.refused(
                ProviderAPIError,
                app.request("GET", provider.url("/repos/forbidden"), grant_id=grant_id),
            )
            assert error.status_code == 403

            # With the challenge: the client raises and reports in the background.
            error = await kit.refused(
                ScopeReauthRequiredError,
                app.request("GET", provider.url("/repos/scoped"), grant_id=grant_id),
            )
            assert error.missing_scopes == ["a", "b"]
            assert error.grant_id == grant_id
            assert error.details["source"] == "provider_insufficient_scope"
            [report] = await kit.wait_events(action="grant.scope_mismatch", grant=grant_id)
            assert report["decision"] == "allow"
            assert report["target"] == {"kind": "grant", "id": grant_id}
            assert report["details"]["missing_scopes"] == ["a", "b"]

            # Now /sdk/token says scope_mismatch: true, so a bare 403 is a scope problem the
            # backend flagged.
            error = await kit.refused(
                ScopeReauthRequiredError,
                app.request("GET", provider.url("/repos/forbidden"), grant_id=grant_id),
            )
            assert error.details["source"] == "backend_flag"
            assert error.missing_scopes is None
            assert error.status_code == 403
            # Other answers are unaffected.
            assert (
                await app.request("GET", provider.url("/repos/ok"), grant_id=grant_id)
            ).status_code == 200
            assert len(provider.take()) == 4
        kit.assert_no_leaks()

    run(scenario())


# ── 3. Refusals ────────────────────────────────────────────────────────────────────────────


def test_revoked_grant(kit, server, provider):
    value = secret_value("sk")
    secret = kit.secret("Stripe Prod", value=value, watch=[value])

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            await app.request("GET", provider.url("/ok"), grant_id=grant_id)
            provider.take()
            await app.revoke_grant(grant_id, reason="rotated out")
            error = await kit.refused(
                GrantRevokedError,
                app.request("GET", provider.url("/v1/charges"), grant_id=grant_id),
            )
            assert error.status_code == 403
            assert provider.take() == []
            kit.denial(grant_id, "grant_revoked")
            # By provider: nothing active is left.
            await kit.refused(
                GrantNotFoundError,
                app.request("GET", provider.url("/v1/charges"), provider=secret["slug"]),
            )
        kit.assert_no_leaks()

    run(scenario())


def test_expired_grant(kit, server, provider):
    value = secret_value("sk")
    secret = kit.secret("Stripe Prod", value=value, watch=[value])

    async def scenario():
        async with App(api_key=server.api_key) as app:
            made = await app.create_managed_secret_grant(
                secret["id"],
                principal=SystemPrincipal(label="short"),
                grant_policy={"max_ttl_seconds": 3},
            )
            await app.request("GET", provider.url("/ok"), grant_id=made.grant_id)
            provider.take()
            [grant] = (await app.list_grants(label="short")).grants
            ends = parse_time(grant.grant_expires_at)
            await asyncio.sleep(max(0.0, (ends - now()).total_seconds()) + 0.3)
            error = await kit.refused(
                GrantExpiredError,
                app.request("GET", provider.url("/v1/charges"), grant_id=made.grant_id),
            )
            assert error.status_code == 403
            assert provider.take() == []
            kit.denial(made.grant_id, "grant_expired")
        kit.assert_no_leaks()

    run(scenario())


def test_deleted_secret_is_gone(kit, server, provider):
    value = secret_value("sk")
    secret = kit.secret("Stripe Prod", value=value, watch=[value])

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            deleted = server.admin(
                "DELETE",
                f"/apps/{server.app_id}/secrets/{secret['id']}",
                params={"confirm": secret["slug"]},
            )
            assert deleted.status_code == 200, deleted.text
            error = await kit.refused(
                GrantDeletedError,
                app.request("GET", provider.url("/v1/charges"), grant_id=grant_id),
            )
            assert error.status_code == 410
            assert provider.take() == []
            kit.denial(grant_id, "grant_deleted")
        kit.assert_no_leaks()

    run(scenario())


def test_paused_and_deleted_agent(kit, server, provider):
    value = secret_value("sk")
    secret = kit.secret("Stripe Prod", value=value, watch=[value])

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            bot = await app.agents.create(
                name="billing-bot", scopes={"managed_secret_slugs": [secret["slug"]]}
            )
            delegation = server.delegate(grant_id, bot.id)
            async with Agent(api_key=bot.api_key) as agent:
                response = await agent.request("GET", provider.url("/ok"), provider=secret["slug"])
                assert response.status_code == 200
                assert provider.one().header("Authorization") == f"Bearer {value}"

                await app.agents.suspend(str(bot.id))
                error = await kit.refused(
                    AgentInactiveError,
                    agent.request("GET", provider.url("/v1"), provider=secret["slug"]),
                )
                assert error.status_code == 401
                await kit.refused(
                    AgentInactiveError,
                    agent.request("GET", provider.url("/v1"), grant_id=delegation["grant_id"]),
                )
                # An app acting as the paused agent: no active agent by that id.
                await kit.refused(
                    AgentNotFoundError,
                    app.get_agent(str(bot.id)).request(
                        "GET", provider.url("/v1"), provider=secret["slug"]
                    ),
                )
                assert provider.take() == []

                await app.agents.resume(str(bot.id))
                await agent.request("GET", provider.url("/ok"), provider=secret["slug"])
                provider.take()

                # Deleted: its keys are revoked with it.
                await app.agents.delete(str(bot.id))
                error = await kit.refused(
                    KeyRevokedError,
                    agent.request("GET", provider.url("/v1"), provider=secret["slug"]),
                )
                assert error.status_code == 401
                await kit.refused(
                    AgentNotFoundError,
                    app.get_agent(str(bot.id)).request(
                        "GET", provider.url("/v1"), provider=secret["slug"]
                    ),
                )
                assert provider.take() == []
        kit.assert_no_leaks()

    run(scenario())


def test_delegation_invalid_once_the_user_left_the_group(kit, server, provider, idp):
    value = secret_value("sk")
    secret = kit.secret("Stripe Prod", value=value, watch=[value])

    async def scenario():
        async with App(api_key=server.api_key) as app:
            group = await app.create_managed_secret_grant(
                secret["id"],
                principal=GroupPrincipal(external_group_id="eng", idp_id=idp.id, label="eng"),
            )
            bot = await app.agents.create(
                name="research-bot", scopes={"managed_secret_slugs": [secret["slug"]]}
            )
            member = idp.token("alice", groups=["eng"])
            delegation = idp.user_delegates(server, member, group.grant_id, bot.id)
            async with Agent(api_key=bot.api_key) as agent:
                response = await agent.request("GET", provider.url("/ok"), provider=secret["slug"])
                assert response.status_code == 200
                assert provider.one().header("Authorization") == f"Bearer {value}"

                # Alice's next token no longer names the group; the server learns it when she
                # presents it.
                me = idp.user_api(server, "GET", "/me", idp.token("alice", groups=[]))
                assert me.status_code == 200, me.text
                assert me.json()["groups"] == []

                error = await kit.refused(
                    PolicyViolationError,
                    agent.request("GET", provider.url("/v1"), provider=secret["slug"]),
                )
                assert error.policy_error == "delegation_invalid"
                assert error.status_code == 403
                await kit.refused(
                    PolicyViolationError,
                    agent.request("GET", provider.url("/v1"), grant_id=delegation["grant_id"]),
                )
                assert provider.take() == []
                denied = [
                    e for e in kit.events(action="credential.denied", grant=delegation["grant_id"])
                ]
                assert [e["reason"] for e in denied] == ["delegation_invalid"] * 2

                # Back in the group: the delegation holds again.
                idp.user_api(server, "GET", "/me", idp.token("alice", groups=["eng"]))
                await agent.request("GET", provider.url("/ok"), provider=secret["slug"])
                assert provider.one().header("Authorization") == f"Bearer {value}"
        kit.assert_no_leaks()

    run(scenario())


async def alice_delegates_to_a_bot(app, server, idp, secret):
    """Alice's grant of `secret`, an agent allowed to use it, and her delegation to it."""
    alice = idp.token("alice")
    grant = await app.create_managed_secret_grant(
        secret["id"], principal=UserPrincipal(user_token=alice, label="alice")
    )
    bot = await app.agents.create(
        name="research-bot", scopes={"managed_secret_slugs": [secret["slug"]]}
    )
    delegation = idp.user_delegates(server, alice, grant.grant_id, bot.id)
    return alice, grant, bot, delegation


def test_revoking_the_parent_takes_the_delegation(kit, server, provider, idp):
    value = secret_value("sk")
    secret = kit.secret("Stripe Prod", value=value, watch=[value])

    async def scenario():
        async with App(api_key=server.api_key) as app:
            alice, grant, bot, delegation = await alice_delegates_to_a_bot(app, server, idp, secret)
            async with Agent(api_key=bot.api_key) as agent:
                await agent.request("GET", provider.url("/ok"), grant_id=delegation["grant_id"])
                assert provider.one().header("Authorization") == f"Bearer {value}"

                await app.revoke_grant(grant.grant_id, reason="offboarded")
                error = await kit.refused(
                    GrantRevokedError,
                    agent.request("GET", provider.url("/v1"), grant_id=delegation["grant_id"]),
                )
                assert error.status_code == 403
                kit.denial(delegation["grant_id"], "grant_revoked")
                # By provider, the agent holds nothing any more.
                await kit.refused(
                    NoDelegatedGrantError,
                    agent.request("GET", provider.url("/v1"), provider=secret["slug"]),
                )
                assert provider.take() == []
        kit.assert_no_leaks()

    run(scenario())


def test_host_not_allowed(kit, server, provider):
    value = secret_value("sk")
    secret = kit.secret(
        "Stripe Prod", value=value, allowed_hosts=["api.stripe.com", "*.stripe.com"], watch=[value]
    )

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            error = await kit.refused(
                BlockedDestinationError,
                app.request("GET", provider.url("/v1/charges"), grant_id=grant_id),
            )
            assert error.status_code == 422
            await kit.refused(
                BlockedDestinationError,
                app.request("GET", provider.url("/v1/charges"), provider=secret["slug"]),
            )
            assert provider.take() == []
            denied = kit.events(action="credential.denied", grant=grant_id)
            assert [e["reason"] for e in denied] == ["blocked_destination"] * 2
            assert denied[0]["request"] == {"method": "GET", "url": provider.url("/v1/charges")}
        kit.assert_no_leaks()

    run(scenario())


def test_a_key_without_credential_scopes_cannot_flag_a_scope_mismatch(
    kit, server, provider, caplog
):
    value = secret_value("gh")
    secret = kit.secret("GitHub Bot", value=value, watch=[value])
    provider.answer("/repos/forbidden", 403, {"message": "Forbidden"})
    publishable = server.mint_key(key_type="pk")

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            # The client's own background report, sent with a publishable key: refused. (The
            # client guards its private methods; object.__getattribute__ is its documented
            # way round.)
            async with App(api_key=publishable["api_key"]) as outsider:
                report = object.__getattribute__(
                    outsider._client, "_VaultClient__report_scope_mismatch_with_timeout"
                )
                await report(
                    grant_id=grant_id,
                    provider_status_code=403,
                    provider_error_code="insufficient_scope",
                    missing_scopes=["admin:org"],
                    raw_www_authenticate=None,
                    api_endpoint=provider.url("/repos/forbidden"),
                    detection_source="www_authenticate_rfc6750",
                )
            assert "sdk_report_backend_error" in caplog.text and "status=403" in caplog.text
            assert kit.events(action="grant.scope_mismatch") == []
            # The grant is not flagged: a bare 403 stays a plain provider error.
            error = await kit.refused(
                ProviderAPIError,
                app.request("GET", provider.url("/repos/forbidden"), grant_id=grant_id),
            )
            assert error.status_code == 403
        kit.assert_no_leaks()

    run(scenario())


def test_urls_parsers_read_differently_are_refused_before_anything_is_sent(kit, server, provider):
    value = secret_value("sk")
    secret = kit.secret("Local", value=value, allowed_hosts=["127.0.0.1"], watch=[value])
    # The client (httpx) sends the first to 127.0.0.1, a WHATWG parser (the Rust SDK, reqwest)
    # to evil.example; userinfo never belongs in a provider URL.
    port = provider.host.split(":")[1]
    ambiguous = [
        f"http://evil.example\\@127.0.0.1:{port}/v1/charges",
        f"http://user:pass@127.0.0.1:{port}/v1/charges",
    ]

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            for url in ambiguous:
                error = await kit.refused(BackendError, app.request("GET", url, grant_id=grant_id))
                assert error.status_code == 422, url
                assert error.details["error"] == "invalid_request", error.details
            assert provider.take() == []
            assert kit.events(action="credential.released") == []
        kit.assert_no_leaks()

    run(scenario())


def test_key_without_tokens_retrieve(kit, server, provider):
    value = secret_value("sk")
    secret = kit.secret("Stripe Prod", value=value, watch=[value])
    narrow = server.mint_key(scopes=["grants:read", "grants:write"])

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
        async with App(api_key=narrow["api_key"]) as app:
            error = await kit.refused(
                InsufficientScopeError,
                app.request("GET", provider.url("/v1/charges"), grant_id=grant_id),
            )
            assert error.status_code == 403
            assert "tokens:retrieve" in error.details["required"]
            assert provider.take() == []
            [denied] = [
                e
                for e in kit.events(action="credential.denied")
                if e["reason"] == "insufficient_scope"
            ]
            assert denied["actor"]["key_prefix"] == narrow["key_prefix"]
        kit.assert_no_leaks()

    run(scenario())


def test_agent_whose_allowlist_lacks_the_secret(kit, server, provider):
    value = secret_value("sk")
    secret = kit.secret("Stripe Prod", value=value, watch=[value])

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            bot = await app.agents.create(
                name="other-bot", scopes={"managed_secret_slugs": ["github-bot"]}
            )
            delegation = server.delegate(grant_id, bot.id)
            async with Agent(api_key=bot.api_key) as agent:
                error = await kit.refused(
                    PolicyViolationError,
                    agent.request("GET", provider.url("/v1"), provider=secret["slug"]),
                )
                assert error.policy_error == "agent_not_allowlisted"
                assert error.status_code == 403
                assert provider.take() == []
                kit.denial(delegation["grant_id"], "agent_not_allowlisted")
        kit.assert_no_leaks()

    run(scenario())


def test_unknown_grant(kit, server, provider):
    value = secret_value("sk")
    secret = kit.secret("Stripe Prod", value=value, watch=[value])
    unknown = str(uuid.uuid4())

    async def scenario():
        async with App(api_key=server.api_key) as app:
            await system_grant(app, secret)
            await kit.refused(
                GrantNotFoundError, app.request("GET", provider.url("/v1"), grant_id=unknown)
            )
            error = await kit.refused(
                GrantNotFoundError,
                app.request("GET", provider.url("/v1"), provider="no-such-provider"),
            )
            assert error.provider_id == "no-such-provider"
            bot = await app.agents.create(
                name="bot", scopes={"managed_secret_slugs": [secret["slug"]]}
            )
            async with Agent(api_key=bot.api_key) as agent:
                error = await kit.refused(
                    AgentDelegationMissingError,
                    agent.request("GET", provider.url("/v1"), grant_id=unknown),
                )
                assert error.status_code == 404
            assert provider.take() == []
            reasons = [e["reason"] for e in kit.events(action="credential.denied")]
            assert reasons == ["grant_not_found"] * 3
        kit.assert_no_leaks()

    run(scenario())


def test_ambiguous_provider_lookup(kit, server, provider):
    value = secret_value("sk")
    secret = kit.secret("Stripe Prod", value=value, watch=[value])

    async def scenario():
        async with App(api_key=server.api_key) as app:
            nightly = await system_grant(app, secret, label="nightly")
            reports = await system_grant(app, secret, label="reports")
            error = await kit.refused(
                AmbiguousGrantError,
                app.request("GET", provider.url("/v1"), provider=secret["slug"]),
            )
            assert error.status_code == 409
            assert error.provider_id == secret["slug"]
            assert sorted(error.grant_ids) == sorted([nightly, reports])
            assert sorted((c.grant_id, c.label) for c in error.candidates) == sorted(
                [(nightly, "nightly"), (reports, "reports")]
            )
            assert provider.take() == []
            [denied] = kit.events(action="credential.denied")
            assert denied["reason"] == "ambiguous_grant"

            # Narrowed by label, it resolves.
            await app.request("GET", provider.url("/ok"), provider=secret["slug"], label="reports")
            provider.one()
            [released] = kit.events(action="credential.released")
            assert released["target"]["id"] == reports
        kit.assert_no_leaks()

    run(scenario())


def test_agent_with_no_grant_for_the_provider(kit, server, provider):
    value = secret_value("sk")
    secret = kit.secret("Stripe Prod", value=value, watch=[value])

    async def scenario():
        async with App(api_key=server.api_key) as app:
            await system_grant(app, secret)
            bot = await app.agents.create(
                name="bot", scopes={"managed_secret_slugs": [secret["slug"]]}
            )
            async with Agent(api_key=bot.api_key) as agent:
                error = await kit.refused(
                    NoDelegatedGrantError,
                    agent.request("GET", provider.url("/v1"), provider=secret["slug"]),
                )
                assert error.provider_id == secret["slug"]
                assert error.agent_id == str(bot.id)
            assert provider.take() == []
            [denied] = kit.events(action="credential.denied")
            assert denied["reason"] == "no_delegated_grant"
        kit.assert_no_leaks()

    run(scenario())


# ── 4. The audit trail ─────────────────────────────────────────────────────────────────────


def test_the_audit_trail_of_a_request(kit, server, provider):
    value = secret_value("sk")
    secret = kit.secret("Stripe Prod", value=value, watch=[value])

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret, label="nightly")
            [before] = (await app.list_grants(label="nightly")).grants
            assert before.last_used_at is None

            started = now()
            response = await app.request(
                "POST",
                provider.url("/v1/charges?customer=cus_secret_id&expand=x"),
                grant_id=grant_id,
                json={"amount": 5},
                reason="nightly billing",
                context={"run_id": "run-7"},
            )
            assert response.status_code == 200
            assert provider.one().param("customer") == "cus_secret_id"

            [released] = kit.events(action="credential.released", grant=grant_id)
            assert released["decision"] == "allow"
            assert released["target"] == {"kind": "grant", "id": grant_id}
            # Method and URL, without query values (names only).
            assert released["request"] == {
                "method": "POST",
                "url": provider.url("/v1/charges?customer&expand"),
            }
            assert released["reason"] == "nightly billing"
            assert released["context"] == {"run_id": "run-7"}
            actor = released["actor"]
            assert actor["kind"] == "api_key"
            assert actor["key_prefix"] and server.api_key.startswith(actor["key_prefix"])
            assert actor["key_prefix"] != server.api_key
            assert released["principal"] == {"type": "system"}
            assert released["details"]["secret_id"] == secret["id"]
            assert abs(parse_time(released["at"]) - started) < timedelta(minutes=1)

            # The client's report of the provider call (background): with the status.
            [used] = await kit.wait_events(action="credential.used", grant=grant_id)
            assert used["decision"] == "allow"
            assert used["outcome"]["response_status"] == 200
            assert isinstance(used["outcome"]["latency_ms"], int)
            assert used["details"]["release_id"] == released["id"]
            assert used["request"]["method"] == "POST"
            assert "cus_secret_id" not in json.dumps(used)
            assert used["actor"]["key_prefix"] == actor["key_prefix"]

            [after] = (await app.list_grants(label="nightly")).grants
            assert after.last_used_at is not None
            assert abs(parse_time(after.last_used_at) - started) < timedelta(minutes=1)

            # A refusal is recorded with its code.
            await app.revoke_grant(grant_id)
            await kit.refused(
                GrantRevokedError, app.request("GET", provider.url("/v1"), grant_id=grant_id)
            )
            denied = kit.denial(grant_id, "grant_revoked")
            assert denied["request"] == {"method": "GET", "url": provider.url("/v1")}
            assert denied["actor"]["key_prefix"] == actor["key_prefix"]
            assert kit.events(action="credential.used", grant=grant_id) == [used]
        kit.assert_no_leaks()

    run(scenario())


def test_an_agents_request_is_audited_as_the_agent(kit, server, provider, idp):
    value = secret_value("sk")
    secret = kit.secret("Stripe Prod", value=value, watch=[value])

    async def scenario():
        async with App(api_key=server.api_key) as app:
            alice, grant, bot, delegation = await alice_delegates_to_a_bot(app, server, idp, secret)
            async with Agent(api_key=bot.api_key) as agent:
                await agent.request("GET", provider.url("/v1/balance"), provider=secret["slug"])
                assert provider.one().header("Authorization") == f"Bearer {value}"
                [released] = kit.events(action="credential.released", grant=delegation["grant_id"])
                assert released["actor"]["agent_id"] == str(bot.id)
                assert bot.api_key.startswith(released["actor"]["key_prefix"])
                assert released["principal"]["type"] == "agent"
                assert released["principal"]["agent_id"] == str(bot.id)
                assert released["details"]["parent_grant_id"] == grant.grant_id
                [used] = await kit.wait_events(
                    action="credential.used", grant=delegation["grant_id"]
                )
                assert used["outcome"]["response_status"] == 200
                assert used["actor"]["agent_id"] == str(bot.id)
                listed = (await agent.list_grants()).grants
                assert [g.grant_id for g in listed] == [delegation["grant_id"]]
                assert listed[0].last_used_at is not None
        kit.assert_no_leaks()

    run(scenario())


def api_call_report(grant_id: str, status: int = 200) -> dict:
    """The body the client posts to `/sdk/oauth/audit/api-call` (protocol part 1 §5.7)."""
    return {
        "grant_id": grant_id,
        "provider_id": "",
        "token_generation": None,
        "method": "GET",
        "url": "https://api.example.com/v1",
        "request_headers": {},
        "request_body": None,
        "response_status": status,
        "response_headers": {},
        "response_body": "",
        "latency_ms": 3,
        "reason": None,
        "context": None,
    }


def test_a_use_report_counts_only_for_a_grant_the_caller_reaches(kit, server, provider):
    """The client reports each provider call it made with a released credential. A report
    naming a grant the caller could never be given (unknown, or another agent's delegation)
    must not enter the audit log as use of that grant. Sent on the client's own signed path."""
    value = secret_value("sk")
    secret = kit.secret("Stripe Prod", value=value, watch=[value])

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            slugs = {"managed_secret_slugs": [secret["slug"]]}
            mine = await app.agents.create(name="mine", scopes=slugs)
            other = await app.agents.create(name="other", scopes=slugs)
            theirs = server.delegate(grant_id, other.id)
            unknown = str(uuid.uuid4())
            recorded = {}
            async with Agent(api_key=mine.api_key) as agent:
                for name, target in (("unknown", unknown), ("another agent's", theirs["grant_id"])):
                    answer = await agent._client._authed_backend_request(
                        "POST", "/sdk/oauth/audit/api-call", body=api_call_report(target)
                    )
                    events = kit.events(action="credential.used", grant=target)
                    if events:
                        recorded[name] = (answer.status_code, [e["decision"] for e in events])
            assert recorded == {}, f"recorded as used (answer, decisions): {recorded}"
        kit.assert_no_leaks()

    run(scenario())
