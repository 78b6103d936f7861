"""`app.proxy_request()` / `agent.proxy_request()` through the unmodified official client: the
vault injects the credential and calls a real HTTP server on 127.0.0.1 (`provider.py`, which
`alter dev` allows), and the client gets the provider's answer in the `ApprovalResult`
envelope. Protocol part 1 §6.1–6.2 and §4.2–4.3.
"""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
from alter_sdk import Agent, App, SystemPrincipal
from alter_sdk.exceptions import (
    AgentDelegationMissingError,
    AlterSDKError,
    BlockedDestinationError,
    GrantNotFoundError,
    GrantRevokedError,
)

from provider import Provider
from scenario import run


@pytest.fixture
def provider():
    running = Provider()
    yield running
    running.stop()


async def system_grant(app: App, secret: dict) -> str:
    made = await app.create_managed_secret_grant(secret["id"], principal=SystemPrincipal())
    return made.grant_id


def audit(server, **query) -> list[dict]:
    response = server.admin("GET", f"/apps/{server.app_id}/audit", params={**query, "limit": 1000})
    assert response.status_code == 200, response.text
    return [item["event"] for item in response.json()["items"]]


def outcomes(server, grant: str, count: int) -> list[dict]:
    """The grant's `credential.used` events once there are `count`: what a proxied call came to
    is recorded just after its answer."""
    for _ in range(100):
        used = audit(server, action="credential.used", grant=grant)
        if len(used) >= count:
            return used
        time.sleep(0.05)
    return audit(server, action="credential.used", grant=grant)


def test_a_proxied_call_carries_the_credential_and_returns_the_providers_answer(server, provider):
    value = f"sk_live-{uuid.uuid4().hex}"
    secret = server.create_secret("Stripe Proxy", type="bearer", value=value, allowed_hosts=["127.0.0.1"])
    provider.answer("/v1/customers/cus%2F42/charges", 201, {"id": "ch_1"}, {"X-Provider": "p"})

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            result = await app.proxy_request(
                "POST",
                provider.url("/v1/customers/{customer}/charges"),
                grant_id=grant_id,
                path_params={"customer": "cus/42"},
                query_params={"limit": 10, "starting_after": "ch_0"},
                json={"amount": 1999, "currency": "eur"},
                extra_headers={"Idempotency-Key": "idem-1"},
                reason="charge the customer",
            )
            assert result.approval_id is None
            assert result.status_code == 201
            assert result.body_json() == {"id": "ch_1"}
            assert result.headers.get("x-provider") == "p"
            assert result.body_truncated is False
            assert result.credential_hint is None
            arrival = provider.one()
            assert arrival.method == "POST"
            assert arrival.path == "/v1/customers/cus%2F42/charges"
            assert arrival.query == [("limit", "10"), ("starting_after", "ch_0")]
            assert arrival.header("Authorization") == f"Bearer {value}"
            assert arrival.header("Idempotency-Key") == "idem-1"
            assert arrival.json() == {"amount": 1999, "currency": "eur"}
            assert server.api_key not in arrival.text()
            assert not [n for n in arrival.header_names if n.startswith("x-alter-")]
            return grant_id

    grant_id = run(scenario())
    [released] = audit(server, action="credential.released", grant=grant_id)
    assert released["details"]["mode"] == "proxy"
    [used] = outcomes(server, grant_id, 1)
    assert used["outcome"]["response_status"] == 201
    assert value not in json.dumps(audit(server))


def test_provider_errors_and_redirects_are_answers_not_exceptions(server, provider):
    secret = server.create_secret("Api", type="header", header="X-Api-Key", value="hdr-secret-1", allowed_hosts=["127.0.0.1"])
    provider.answer("/missing", 404, {"error": "nope"})
    provider.answer("/moved", 302, "", {"Location": provider.url("/elsewhere")})

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            missing = await app.proxy_request("GET", provider.url("/missing"), grant_id=grant_id)
            assert missing.status_code == 404
            assert missing.body_json() == {"error": "nope"}
            assert provider.one().header("X-Api-Key") == "hdr-secret-1"
            moved = await app.proxy_request("GET", provider.url("/moved"), grant_id=grant_id)
            assert moved.status_code == 302
            assert moved.headers["location"] == provider.url("/elsewhere")
            assert [a.path for a in provider.take()] == ["/moved"], "the redirect is not followed"

    run(scenario())


def test_refusals_map_to_the_clients_exceptions(server, provider):
    secret = server.create_secret("Anywhere", type="bearer", value="any-secret-1")

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            for url in [
                "http://169.254.169.254/latest/meta-data/",
                "http://10.0.0.1/",
                "http://[::ffff:10.0.0.1]/",
                "http://[fd00::1]/",
            ]:
                with pytest.raises(BlockedDestinationError):
                    await app.proxy_request("GET", url, grant_id=grant_id)
            with pytest.raises(GrantNotFoundError):
                await app.proxy_request("GET", provider.url("/x"), grant_id=str(uuid.uuid4()))
            # The official client refuses credential headers itself.
            with pytest.raises(AlterSDKError):
                await app.proxy_request(
                    "GET", provider.url("/x"), grant_id=grant_id, extra_headers={"Cookie": "c"}
                )
            await app.revoke_grant(grant_id)
            with pytest.raises(GrantRevokedError):
                await app.proxy_request("GET", provider.url("/x"), grant_id=grant_id)
            agent_info = await app.agents.create(name="bot", scopes={"managed_secret_slugs": [secret["slug"]]})
            async with Agent(api_key=agent_info.api_key) as agent:
                other = await system_grant(app, secret)
                with pytest.raises(AgentDelegationMissingError):
                    await agent.proxy_request("GET", provider.url("/x"), grant_id=other)
            assert provider.take() == []

    run(scenario())


def test_the_body_comes_back_as_padded_standard_base64(server, provider):
    secret = server.create_secret("Bin", type="bearer", value="bin-secret-1", allowed_hosts=["127.0.0.1"])
    payload = bytes(range(256)) * 3 + b"\xfb\xff"
    provider.answer("/bin", 200, payload, {"Content-Type": "application/octet-stream"})

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            result = await app.proxy_request("GET", provider.url("/bin"), grant_id=grant_id)
            assert result.body_bytes() == payload
            assert base64.b64decode(result.body_b64, validate=True) == payload

    run(scenario())
