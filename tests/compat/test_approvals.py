"""Human approvals of held proxy calls through the unmodified official client: an agent whose
calls need approval gets a `PendingApproval` from `proxy_request`; the operator approves it
(admin API) and `await_approval` returns the provider's answer, made once; a denied call raises
`ApprovalDeniedError` and is never made. Protocol part 1 §6.2–6.5.

(Expiry needs 15 minutes of the server's clock: the Rust suite covers it with a test clock.)
"""

from __future__ import annotations

import pytest
from alter_sdk import Agent, App, SystemPrincipal
from alter_sdk.exceptions import ApprovalDeniedError, BackendError

from provider import Provider
from scenario import run

VALUE = "sk_live_compatApproval0123456789"


@pytest.fixture
def provider():
    running = Provider()
    yield running
    running.stop()


def held_agent(server, provider):
    """An agent whose calls need approval, holding a delegation of a bearer secret for the
    local provider."""
    secret = server.create_secret(
        "Payments", value=VALUE, allowed_hosts=["127.0.0.1"], principals=["system", "agent"]
    )

    async def make():
        app = App(api_key=server.api_key)
        bot = await app.agents.create(
            name="careful",
            scopes={"managed_secret_slugs": [secret["slug"]]},
            policy={"requires_approval": True},
        )
        system = await app.create_managed_secret_grant(secret["id"], principal=SystemPrincipal())
        delegation = server.delegate(system.grant_id, bot.id)["grant_id"]
        return bot, delegation

    return run(make())


def decide(server, approval_id: str, verdict: str, reason: str):
    response = server.admin(
        "POST",
        f"/apps/{server.app_id}/approvals/{approval_id}/{verdict}",
        json={"reason": reason, "decided_by": "ops@example.com"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_an_approved_call_is_made_once_and_awaited(server, provider):
    provider.answer("/v1/refunds", 201, {"refunded": True})
    bot, grant = held_agent(server, provider)

    async def scenario():
        agent = Agent(api_key=bot.api_key)
        pending = await agent.proxy_request(
            "POST",
            provider.url("/v1/refunds"),
            grant_id=grant,
            json={"amount": 4200},
            reason="refund order 1042",
        )
        assert type(pending).__name__ == "PendingApproval"
        assert pending.status == "pending"
        assert len(pending.gates) == 1
        assert pending.approval_url.endswith(f"/approvals/{pending.approval_id}")
        assert provider.take() == []

        status = await agent.get_approval_status(str(pending.approval_id))
        assert status.status == "pending"
        assert status.has_result is False
        with pytest.raises(BackendError):
            await agent.get_approval_status(str(pending.approval_id), wait=26)

        decide(server, str(pending.approval_id), "approve", "fine")
        result = await agent.await_approval(str(pending.approval_id), timeout=60, poll_interval=0.2)
        assert result.status_code == 201
        assert result.body_json() == {"refunded": True}
        arrival = provider.one()
        assert arrival.header("authorization") == f"Bearer {VALUE}"
        assert arrival.json() == {"amount": 4200}

        # Approving again makes no second call.
        decide(server, str(pending.approval_id), "approve", "again")
        status = await agent.get_approval_status(str(pending.approval_id))
        assert status.status == "executed"
        assert status.has_result is True
        assert provider.take() == []

    run(scenario())


def test_a_denied_call_raises_and_is_never_made(server, provider):
    bot, grant = held_agent(server, provider)

    async def scenario():
        agent = Agent(api_key=bot.api_key)
        pending = await agent.proxy_request(
            "POST", provider.url("/v1/refunds"), grant_id=grant, json={}, reason="refund"
        )
        decide(server, str(pending.approval_id), "deny", "not this one")
        with pytest.raises(ApprovalDeniedError) as raised:
            await agent.await_approval(str(pending.approval_id), timeout=30, poll_interval=0.2)
        assert "not this one" in str(raised.value)
        # Another app's key sees nothing.
        _, other_key = server.create_app("other")
        with pytest.raises(BackendError) as raised:
            await App(api_key=other_key).get_approval_status(str(pending.approval_id))
        assert raised.value.status_code == 404
        assert provider.take() == []

    run(scenario())
