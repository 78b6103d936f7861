"""Human approvals of held proxy calls through the unmodified official client: an agent whose
calls need approval gets a `PendingApproval` from `proxy_request`; the operator approves it
(admin API) and `await_approval` returns the provider's answer, made once; a denied call raises
`ApprovalDeniedError` and is never made. Protocol part 1 §6.2–6.5.

(Expiry needs minutes of the server's clock: the Rust suite covers it with a test clock.)
"""

from __future__ import annotations

import os

import pytest
from alter_sdk import Agent, App, SystemPrincipal
from alter_sdk.exceptions import ApprovalDeniedError, BackendError

from harness import start_node
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


def add_rule(server, kind: str, body: dict) -> dict:
    response = server.admin(
        "POST",
        f"/apps/{server.app_id}/policies/rules",
        json={"target": {"type": "app"}, "kind": kind, "body": body},
    )
    assert response.status_code == 201, response.text
    return response.json()


def system_grant(server) -> str:
    """A system grant of a bearer secret for the local provider, usable by the app's key."""
    secret = server.create_secret("Refunds", value=VALUE, allowed_hosts=["127.0.0.1"])

    async def make():
        app = App(api_key=server.api_key)
        made = await app.create_managed_secret_grant(secret["id"], principal=SystemPrincipal())
        return made.grant_id

    return run(make())


def test_a_rules_terms_set_the_expiry_and_the_approvers(server, provider):
    grant = system_grant(server)
    rule = add_rule(
        server,
        "require_approval",
        {"ttl_seconds": 120, "approvers": ["alice@example.com", "finance"]},
    )
    add_rule(server, "require_approval", {"ttl_seconds": 600, "approvers": ["finance", "bob"]})

    async def scenario():
        app = App(api_key=server.api_key)
        pending = await app.proxy_request(
            "POST", provider.url("/v1/refunds"), grant_id=grant, json={}, reason="refund 7"
        )
        assert type(pending).__name__ == "PendingApproval"
        # The shortest ttl among the holds wins.
        assert 100 <= pending.expires_in <= 120, pending.expires_in
        shown = server.admin("GET", f"/apps/{server.app_id}/approvals/{pending.approval_id}")
        assert shown.status_code == 200, shown.text
        info = shown.json()
        assert info["approvers"] == ["alice@example.com", "finance", "bob"]
        held_by = {h["rule_id"]: h for h in info["holds"]}
        assert held_by[rule["id"]]["approval"] == {
            "ttl_seconds": 120,
            "approvers": ["alice@example.com", "finance"],
        }
        listed = server.admin("GET", f"/apps/{server.app_id}/approvals").json()["items"]
        assert [a["approvers"] for a in listed] == [info["approvers"]]
        # Only an operator decides today; who is recorded as given.
        decided = decide(server, str(pending.approval_id), "deny", "no")
        assert decided["decided_by"] == "ops@example.com"
        assert provider.take() == []

    run(scenario())


def test_two_server_processes_approving_at_once_make_the_call_once(server, provider):
    """Two `alter` processes on one PostgreSQL database and master key approve the same held
    calls at the same instant: each call is made exactly once, and the client awaiting it on
    either node gets the answer. (Nodes scale out on PostgreSQL; SQLite is one node, whose
    concurrent approvals the Rust tests race in process.)"""
    import threading

    if server.engine != "postgres":
        pytest.skip("several nodes share a PostgreSQL database")

    provider.answer("/v1/refunds", 201, {"refunded": True})
    grant = system_grant(server)
    add_rule(server, "require_approval", {})
    other = start_node(server)
    assert other.base_url != server.base_url
    try:

        async def hold(n: int) -> str:
            app = App(api_key=server.api_key)
            pending = await app.proxy_request(
                "POST",
                provider.url("/v1/refunds"),
                grant_id=grant,
                json={"order": n},
                reason=f"refund {n}",
            )
            return str(pending.approval_id)

        rounds = 5
        for n in range(rounds):
            approval_id = run(hold(n))
            # The second node sees the approval the first one held.
            seen = other.admin("GET", f"/apps/{server.app_id}/approvals/{approval_id}")
            assert seen.status_code == 200, seen.text
            assert seen.json()["status"] == "pending"

            start = threading.Barrier(2)
            answers: list[tuple[int, str]] = []

            def approve(node, answers=answers, start=start, approval_id=approval_id):
                start.wait(10)
                response = node.admin(
                    "POST",
                    f"/apps/{server.app_id}/approvals/{approval_id}/approve",
                    json={"decided_by": node.base_url},
                )
                answers.append((response.status_code, response.text))

            threads = [threading.Thread(target=approve, args=(node,)) for node in (server, other)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert [code for code, _ in answers] == [200, 200], answers

            async def await_on(node_url: str):
                # The client takes its server from ALTER_BASE_URL when it is made.
                os.environ["ALTER_BASE_URL"] = node_url
                try:
                    app = App(api_key=server.api_key)
                finally:
                    os.environ["ALTER_BASE_URL"] = server.base_url
                return await app.await_approval(approval_id, timeout=60, poll_interval=0.2)

            # Awaited on the node that did not necessarily make the call, then on the other.
            for node in (other, server):
                result = run(await_on(node.base_url))
                assert result.status_code == 201
                assert result.body_json() == {"refunded": True}

        arrivals = provider.take()
        assert sorted(a.json()["order"] for a in arrivals) == list(range(rounds))
        # One decision and one execution per approval, whichever node recorded it.
        for action in ("approval.approved", "approval.executed"):
            events = server.admin(
                "GET", f"/apps/{server.app_id}/audit", params={"action": action, "limit": 100}
            )
            assert events.status_code == 200, events.text
            assert len(events.json()["items"]) == rounds, action
    finally:
        other.stop()


def test_the_approver_sees_the_exact_request_and_the_decision_names_it(server, provider):
    """What a person approves is what runs: the operator's view of a held call shows the final
    URL with its query values, the caller's headers and the body, and the approval event
    records the digest of that exact request."""
    provider.answer("/v1/transfers", 201, {"ok": True})
    bot, grant = held_agent(server, provider)

    async def scenario():
        agent = Agent(api_key=bot.api_key)
        pending = await agent.proxy_request(
            "POST",
            provider.url("/v1/transfers"),
            grant_id=grant,
            json={"amount": 99999999, "to": "attacker-iban"},
            query_params={"dest": "ATTACKER"},
            extra_headers={"X-Target-Account": "attacker"},
            reason="small routine refund of 5 EUR",
        )
        return pending.approval_id

    approval_id = run(scenario())
    shown = server.admin("GET", f"/apps/{server.app_id}/approvals/{approval_id}").json()
    request = shown["request"]
    assert request["method"] == "POST"
    assert request["url"] == provider.url("/v1/transfers") + "?dest=ATTACKER"
    assert ["X-Target-Account", "attacker"] in request["headers"]
    assert request["body"] == {"amount": 99999999, "to": "attacker-iban"}
    assert VALUE not in str(shown)
    decide(server, approval_id, "deny", "not what the reason says")
    events = server.admin(
        "GET", f"/apps/{server.app_id}/audit", params={"action": "approval.denied"}
    ).json()["items"]
    assert [e["event"]["details"]["request_sha256"] for e in events] == [request["sha256"]]
    assert provider.take() == []
