"""Policy rules through the unmodified official client: every rule kind allows what it should and
refuses what it should, in retrieve mode (`request`) and proxy mode (`proxy_request`), with the
error classes the client maps the codes to, and every decision audited with the rules that
matched and the facts they saw (never the credential). Issue 10 item 1; docs/policies.md.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import uuid

import pytest
from alter_sdk import App, SystemPrincipal, UserPrincipal
from alter_sdk.exceptions import (
    BlockedDestinationError,
    PolicyViolationError,
    RateLimitError,
    RestrictedGrantRequiresProxyError,
)

from harness import alter_bin
from provider import Provider
from scenario import run


@pytest.fixture
def provider():
    running = Provider()
    yield running
    running.stop()


def add_rule(server, kind: str, body: dict, target: dict | None = None, **extra) -> dict:
    response = server.admin(
        "POST",
        f"/apps/{server.app_id}/policies/rules",
        json={"target": target or {"type": "app"}, "kind": kind, "body": body, **extra},
    )
    assert response.status_code == 201, response.text
    return response.json()


def remove_rule(server, rule: dict) -> None:
    response = server.admin("DELETE", f"/apps/{server.app_id}/policies/rules/{rule['id']}")
    assert response.status_code == 200, response.text


def audit(server, action: str) -> list[dict]:
    response = server.admin(
        "GET", f"/apps/{server.app_id}/audit", params={"action": action, "limit": 1000}
    )
    assert response.status_code == 200, response.text
    return [item["event"] for item in response.json()["items"]]


def secret_and_value(server, name: str) -> tuple[dict, str]:
    value = f"sk_live-{uuid.uuid4().hex}"
    secret = server.create_secret(name, type="bearer", value=value, allowed_hosts=["127.0.0.1"])
    return secret, value


async def system_grant(app: App, secret: dict) -> str:
    made = await app.create_managed_secret_grant(secret["id"], principal=SystemPrincipal())
    return made.grant_id


def test_ip_allowlist_allows_the_callers_network_and_refuses_others(server, provider):
    secret, value = secret_and_value(server, "Stripe IP")

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            rule = add_rule(server, "ip_allowlist", {"cidrs": ["127.0.0.0/8", "::1/128"]})
            await app.request("GET", provider.url("/ok"), grant_id=grant_id)
            assert len(provider.take()) == 1
            remove_rule(server, rule)

            refusing = add_rule(server, "ip_allowlist", {"cidrs": ["203.0.113.0/24"]})
            with pytest.raises(PolicyViolationError) as refused:
                await app.request("GET", provider.url("/ok"), grant_id=grant_id)
            assert refused.value.policy_error == "ip_not_allowed"
            assert refused.value.details["details"]["rule_id"] == refusing["id"]
            with pytest.raises(PolicyViolationError) as proxied:
                await app.proxy_request("GET", provider.url("/ok"), grant_id=grant_id)
            assert proxied.value.policy_error == "ip_not_allowed"
            assert provider.take() == []

    run(scenario())
    # The refusal is audited with the rule that matched and the facts it saw, never the value.
    denied = [e for e in audit(server, "credential.denied") if e["reason"] == "ip_not_allowed"]
    assert len(denied) == 2
    for event in denied:
        assert value not in str(event)
        matched = event["details"]["rules"]
        assert [m["rule_id"] for m in matched] and matched[0]["kind"] == "ip_allowlist"
        facts = event["details"]["decision_facts"]
        assert facts["source_ip"] in ("127.0.0.1", "::1")
        assert facts["target"]["host"] == "127.0.0.1"


def test_time_windows_allow_inside_and_refuse_outside(server, provider):
    secret, _ = secret_and_value(server, "Stripe Hours")
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    today = days[datetime.datetime.now(datetime.timezone.utc).weekday()]
    other = days[(days.index(today) + 3) % 7]

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            always = add_rule(
                server,
                "time_window",
                {"timezone": "UTC", "windows": [{"days": days, "start": "00:00", "end": "24:00"}]},
            )
            await app.request("GET", provider.url("/ok"), grant_id=grant_id)
            assert len(provider.take()) == 1
            remove_rule(server, always)

            add_rule(
                server,
                "time_window",
                {
                    "timezone": "Europe/Paris",
                    "windows": [{"days": [other], "start": "09:00", "end": "10:00"}],
                },
                target={"type": "provider", "id": secret["slug"]},
            )
            with pytest.raises(PolicyViolationError) as refused:
                await app.request("GET", provider.url("/ok"), grant_id=grant_id)
            assert refused.value.policy_error == "outside_time_window"
            assert provider.take() == []

    run(scenario())


def test_rate_limits_admit_the_burst_then_answer_429_with_retry_after(server, provider):
    secret, _ = secret_and_value(server, "Stripe Rate")

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            add_rule(
                server,
                "rate_limit",
                {"per_minute": 2, "burst": 2, "per": "grant"},
                target={"type": "grant", "id": grant_id},
            )
            for _ in range(2):
                await app.request("GET", provider.url("/ok"), grant_id=grant_id)
            with pytest.raises(RateLimitError) as limited:
                await app.request("GET", provider.url("/ok"), grant_id=grant_id)
            assert 1 <= limited.value.retry_after <= 30
            with pytest.raises(RateLimitError):
                await app.proxy_request("GET", provider.url("/ok"), grant_id=grant_id)
            assert len(provider.take()) == 2

    run(scenario())


def test_url_method_and_params_rules_check_what_the_proxy_sends(server, provider):
    secret, value = secret_and_value(server, "GitHub Proxy")

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            on_grant = {"type": "grant", "id": grant_id}
            add_rule(server, "url", {"allow": [{"host": "127.0.0.1", "path": "/repos/*/issues"}]}, on_grant)
            add_rule(server, "method", {"allow": ["GET", "POST"]}, on_grant)
            add_rule(
                server,
                "params",
                {
                    "constraints": [
                        {"in": "body", "field": "/amount", "op": "max", "value": 100},
                        {"in": "query", "field": "per_page", "op": "forbidden"},
                    ],
                    "applies_to": {"methods": ["POST"]},
                },
                on_grant,
            )
            ok = await app.proxy_request("GET", provider.url("/repos/acme/issues"), grant_id=grant_id)
            assert ok.status_code == 200
            ok = await app.proxy_request(
                "POST", provider.url("/repos/acme/issues"), grant_id=grant_id, json={"amount": 50}
            )
            assert ok.status_code == 200
            assert len(provider.take()) == 2

            refusals = {
                "url_not_allowed": dict(method="GET", url=provider.url("/admin/users")),
                # Dot segments are resolved before the rule sees the path.
                "url_not_allowed ": dict(method="GET", url=provider.url("/repos/acme/../../admin/issues")),
                "method_not_allowed": dict(method="DELETE", url=provider.url("/repos/acme/issues")),
                "parameter_not_allowed": dict(
                    method="POST", url=provider.url("/repos/acme/issues"), json={"amount": 500}
                ),
                "parameter_not_allowed ": dict(
                    method="POST",
                    url=provider.url("/repos/acme/issues"),
                    json={"amount": 5},
                    query_params={"per_page": 100},
                ),
            }
            for code, call in refusals.items():
                method = call.pop("method")
                url = call.pop("url")
                with pytest.raises(PolicyViolationError) as refused:
                    await app.proxy_request(method, url, grant_id=grant_id, **call)
                assert refused.value.policy_error == code.strip(), code
            assert provider.take() == []

            # Rules on what is sent cannot be enforced on a token handed out: proxy only.
            with pytest.raises(RestrictedGrantRequiresProxyError):
                await app.request("GET", provider.url("/repos/acme/issues"), grant_id=grant_id)
            assert provider.take() == []

    run(scenario())


def test_group_rules_follow_the_users_token(server, idp, provider):
    secret, _ = secret_and_value(server, "Treasury")

    async def scenario():
        async with App(api_key=server.api_key) as app:
            alice = idp.token("alice", groups=["grp_finance"])
            bob = idp.token("bob", groups=["grp_sales"])
            alice_grant = await app.create_managed_secret_grant(
                secret["id"], principal=UserPrincipal(user_token=alice, label="alice")
            )
            bob_grant = await app.create_managed_secret_grant(
                secret["id"], principal=UserPrincipal(user_token=bob, label="bob")
            )
            add_rule(
                server,
                "group",
                {"any_of": ["grp_finance"]},
                target={"type": "provider", "id": secret["slug"]},
            )
            await app.request(
                "GET", provider.url("/ok"), grant_id=alice_grant.grant_id, user_token=alice
            )
            with pytest.raises(PolicyViolationError) as refused:
                await app.request(
                    "GET", provider.url("/ok"), grant_id=bob_grant.grant_id, user_token=bob
                )
            assert refused.value.policy_error == "policy_denied"
            assert len(provider.take()) == 1

    run(scenario())


def test_custom_cedar_rules_deny_and_cannot_widen(server, provider):
    secret, _ = secret_and_value(server, "Custom")

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            add_rule(server, "custom", {"when": 'context.target.method == "DELETE"'})
            ok = await app.proxy_request("GET", provider.url("/thing"), grant_id=grant_id)
            assert ok.status_code == 200
            with pytest.raises(PolicyViolationError) as refused:
                await app.proxy_request("DELETE", provider.url("/thing"), grant_id=grant_id)
            assert refused.value.policy_error == "policy_denied"
            assert len(provider.take()) == 1

            # A condition that tries to become a permit, or to reach past its target, is refused
            # when saved, and nothing is stored.
            for body in (
                {"when": "true }; permit (principal, action, resource) when { true"},
                {"when": "context.nonexistent == 1"},
            ):
                response = server.admin(
                    "POST",
                    f"/apps/{server.app_id}/policies/rules",
                    json={"target": {"type": "app"}, "kind": "custom", "body": body},
                )
                assert response.status_code == 422, response.text
            listed = server.admin("GET", f"/apps/{server.app_id}/policies/rules").json()["items"]
            assert [r["kind"] for r in listed] == ["custom"]

    run(scenario())


def test_shadow_rules_are_audited_and_not_enforced(server, provider):
    secret, _ = secret_and_value(server, "Shadow")

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            rule = add_rule(server, "method", {"allow": ["HEAD"]}, mode="shadow")
            ok = await app.proxy_request("GET", provider.url("/ok"), grant_id=grant_id)
            assert ok.status_code == 200
            assert len(provider.take()) == 1
            return rule

    rule = run(scenario())
    released = [
        e for e in audit(server, "credential.released") if e["details"].get("rules")
    ]
    assert released, "the shadow match is audited"
    matched = released[-1]["details"]["rules"]
    assert matched[0]["rule_id"] == rule["id"] and matched[0]["mode"] == "shadow"


def test_what_if_replays_recorded_traffic_with_exact_counts(server, provider, tmp_path):
    """Traffic recorded through the official client, then `alter policy test --draft FILE`:
    the draft's effect on exactly that traffic, per rule, with examples."""
    secret, _ = secret_and_value(server, "GitHub What-if")

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            for _ in range(3):
                await app.proxy_request("GET", provider.url("/repos/acme/issues"), grant_id=grant_id)
            await app.proxy_request("GET", provider.url("/admin"), grant_id=grant_id)
            for amount in (50, 500):
                await app.proxy_request(
                    "POST",
                    provider.url("/repos/acme/issues"),
                    grant_id=grant_id,
                    json={"amount": amount},
                )
            # Retrieve mode: rules on the outgoing call cannot be enforced on a token handed out.
            await app.request("GET", provider.url("/repos/acme/issues"), grant_id=grant_id)
            assert len(provider.take()) == 7

    run(scenario())
    draft = tmp_path / "draft.json"
    draft.write_text(
        json.dumps(
            [
                {"target": {"type": "app"}, "kind": "method", "body": {"allow": ["GET"]}},
                {
                    "target": f"provider:{secret['slug']}",
                    "kind": "params",
                    "body": {
                        "constraints": [{"in": "body", "field": "/amount", "op": "max", "value": 100}],
                        "applies_to": {"methods": ["POST"], "modes": ["proxy"]},
                    },
                },
            ]
        )
    )
    env = {**os.environ, "ALTER_ADDR": server.base_url, "ALTER_ADMIN_TOKEN": server.admin_token}
    done = subprocess.run(
        [alter_bin(), "policy", "test", "--app", server.app_id, "--draft", str(draft),
         "--since", "1h", "--json"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["total"], report["indeterminate"]) == (7, 0)
    # Allowed: the four proxied GETs. Denied: both POSTs (method) and the retrieve (the method
    # rule needs the proxy); the params rule also denies the POST of 500.
    assert (report["allow"], report["hold"], report["deny"]) == (4, 0, 3)
    by_kind = {rule["kind"]: rule for rule in report["rules"]}
    assert (by_kind["method"]["denied"], by_kind["method"]["held"]) == (3, 0)
    assert by_kind["params"]["denied"] == 1
    assert len(by_kind["method"]["examples"]) == 3
    # Nothing was saved.
    listed = server.admin("GET", f"/apps/{server.app_id}/policies/rules").json()["items"]
    assert listed == []


def test_a_restricted_grant_is_used_only_through_the_proxy(server, provider):
    secret, value = secret_and_value(server, "Restricted")

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            add_rule(server, "proxy_only", {}, target={"type": "grant", "id": grant_id})
            with pytest.raises(RestrictedGrantRequiresProxyError):
                await app.request("GET", provider.url("/ok"), grant_id=grant_id)
            assert provider.take() == []
            ok = await app.proxy_request("GET", provider.url("/ok"), grant_id=grant_id)
            assert ok.status_code == 200
            assert provider.one().header("Authorization") == f"Bearer {value}"

    run(scenario())


def test_a_credential_without_allowed_hosts_is_never_sent_by_the_vault(server, provider):
    """A rule that makes a grant proxy-only must not turn the proxy into a way to send the
    credential anywhere: the vault sends a credential only to hosts it names."""
    value = f"sk_live-{uuid.uuid4().hex}"
    secret = server.create_secret("Anywhere", type="bearer", value=value)

    async def scenario():
        async with App(api_key=server.api_key) as app:
            grant_id = await system_grant(app, secret)
            add_rule(server, "method", {"allow": ["GET"]}, target={"type": "grant", "id": grant_id})
            with pytest.raises(RestrictedGrantRequiresProxyError):
                await app.request("GET", provider.url("/steal"), grant_id=grant_id)
            with pytest.raises(BlockedDestinationError):
                await app.proxy_request("GET", provider.url("/steal"), grant_id=grant_id)
            assert provider.take() == []

    run(scenario())
