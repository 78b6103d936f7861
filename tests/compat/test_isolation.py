"""Two apps on one server: nothing of the first app is reachable with the second app's key.

Every grant, agent, key, secret and delegation route the official client offers is walked with
the second app's key against the first app's objects; each answers "not found" (as the client
maps it) or an empty list, and the first app's state is unchanged afterwards. Both apps trust
the same identity provider, so the same end user exists in both, as two distinct users.
"""

from dataclasses import dataclass

import pytest
from alter_sdk import Agent, App, GroupPrincipal, SystemPrincipal, UserPrincipal
from alter_sdk.exceptions import (
    AgentNotFoundError,
    BackendError,
    GrantNotFoundError,
    KeyNotFoundError,
)

from harness import Server
from idp import TestIdp
from scenario import agent_states, grant_states, run


@dataclass
class FirstApp:
    """What the first app holds."""

    secret: dict
    user_grant: str
    system_grant: str
    user_delegation: str
    system_delegation: str
    agent_id: str
    agent_key: str
    agent_key_id: str
    app_key_id: str
    alice: str


async def first_app(server: Server, idp: TestIdp) -> FirstApp:
    app = App(api_key=server.api_key)
    secret = server.create_secret("Stripe Prod")
    alice = idp.token("alice", groups=["eng"])
    user_grant = await app.create_managed_secret_grant(
        secret["id"], principal=UserPrincipal(user_token=alice, label="alice-prod-stripe")
    )
    system_grant = await app.create_managed_secret_grant(
        secret["id"], principal=SystemPrincipal(label="nightly")
    )
    bot = await app.agents.create(
        name="research-bot", scopes={"managed_secret_slugs": [secret["slug"]]}
    )
    user_delegation = idp.user_delegates(server, alice, user_grant.grant_id, bot.id)
    system_delegation = server.delegate(system_grant.grant_id, bot.id)
    keys = server.admin("GET", f"/apps/{server.app_id}/keys").json()["items"]
    [app_key] = [k for k in keys if k["key_type"] == "rk"]
    return FirstApp(
        secret=secret,
        user_grant=user_grant.grant_id,
        system_grant=system_grant.grant_id,
        user_delegation=user_delegation["grant_id"],
        system_delegation=system_delegation["grant_id"],
        agent_id=str(bot.id),
        agent_key=bot.api_key,
        agent_key_id=str(bot.key_id),
        app_key_id=app_key["id"],
        alice=alice,
    )


async def snapshot(server: Server, first: FirstApp) -> dict:
    """The first app's state, as its own key and agent see it."""
    app = App(api_key=server.api_key)
    agent = Agent(api_key=first.agent_key)
    return {
        "grants": await grant_states(app),
        "agents": await agent_states(app),
        "agent_grants": {g.grant_id: g.status for g in (await agent.list_grants()).grants},
        "agent_keys": [
            (str(k.key_id), k.revoked_at, k.deprecated_at)
            for k in (await app.agents.list_keys(first.agent_id)).items
        ],
        "app_keys": [
            (k["id"], k["revoked_at"], k["expires_at"])
            for k in server.admin("GET", f"/apps/{server.app_id}/keys").json()["items"]
        ],
        "secrets": server.admin("GET", f"/apps/{server.app_id}/secrets").json(),
    }


def second_app(server: Server, idp: TestIdp) -> tuple[str, str, str]:
    """A second app trusting the same IdP: `(app_id, api_key, idp_id)`."""
    app_id, api_key = server.create_app("second")
    info = idp.register(server, app_id)
    assert info["id"] != idp.id, "each app has its own IdP record"
    return app_id, api_key, info["id"]


def test_grant_routes_of_another_app_answer_not_found(server, idp):
    async def scenario():
        first = await first_app(server, idp)
        before = await snapshot(server, first)
        second_id, key, _ = second_app(server, idp)
        other = App(api_key=key)

        # Listings: empty, whatever the filter.
        for filters in (
            {},
            {"provider_id": first.secret["slug"]},
            {"label": "alice-prod-stripe"},
            {"status": "active"},
            {"end_user_token": first.alice},
        ):
            page = await other.list_grants(**filters)
            assert (page.grants, page.total, page.has_more) == ([], 0, False), filters

        # Revoke and mint: every grant of the first app, roots and delegations.
        every_grant = (
            first.user_grant,
            first.system_grant,
            first.user_delegation,
            first.system_delegation,
        )
        for grant_id in every_grant:
            with pytest.raises(GrantNotFoundError):
                await other.revoke_grant(grant_id, reason="cross-app")
            with pytest.raises(GrantNotFoundError):
                await other.mint_grant(grant_id, label="stolen")

        # Grants on the first app's secret, by id or slug, for any principal.
        for secret in (first.secret["id"], first.secret["slug"]):
            with pytest.raises(GrantNotFoundError):
                await other.create_managed_secret_grant(secret, principal=SystemPrincipal())
            with pytest.raises(GrantNotFoundError):
                await other.create_managed_secret_grant(
                    secret, principal=UserPrincipal(user_token=first.alice, label="stolen")
                )

        # A group grant on the second app's own secret naming the first app's IdP.
        own_secret = server.create_secret("Own", app_id=second_id)
        with pytest.raises(BackendError) as raised:
            await other.create_managed_secret_grant(
                own_secret["id"],
                principal=GroupPrincipal(external_group_id="eng", idp_id=idp.id, label="eng"),
            )
        assert raised.value.status_code == 422
        assert (await other.list_grants()).total == 0

        assert await snapshot(server, first) == before

    run(scenario())


def test_delegation_routes_of_another_app_change_nothing(server, idp):
    async def scenario():
        first = await first_app(server, idp)
        before = await snapshot(server, first)
        _, key, _ = second_app(server, idp)
        other = App(api_key=key)
        own = await other.agents.create(name="research-bot", scopes={})  # same name: per app

        # Operator path: idempotent by contract, so it answers success — and revokes nothing.
        for grant_id in (first.user_grant, first.system_grant, first.user_delegation):
            assert await other.revoke_delegation(grant_id, first.agent_id) is None
            assert await other.revoke_delegation(grant_id, str(own.id)) is None
        # Self path, as the second app's own agent (its key, or the app acting as it).
        for agent in (Agent(api_key=own.api_key), other.get_agent(str(own.id))):
            assert await agent.revoke_delegation(first.user_grant) is None
            assert await agent.revoke_delegation(first.system_delegation) is None
            assert (await agent.list_grants()).total == 0

        # Acting as the first app's agent: that agent does not exist for this app.
        impostor = other.get_agent(first.agent_id)
        with pytest.raises(AgentNotFoundError):
            await impostor.list_grants()
        with pytest.raises(AgentNotFoundError):
            await impostor.me()
        with pytest.raises(AgentNotFoundError):
            await impostor.revoke_delegation(first.user_grant)

        assert await snapshot(server, first) == before

    run(scenario())


def test_agent_routes_of_another_app_answer_not_found(server, idp):
    async def scenario():
        first = await first_app(server, idp)
        before = await snapshot(server, first)
        _, key, _ = second_app(server, idp)
        other = App(api_key=key)
        agents = other.agents
        agent = first.agent_id

        assert (await agents.list(include_revoked=True)).agents == []
        assert await agents.get_by_name("research-bot") is None
        calls = [
            agents.get(agent),
            agents.update(agent, display_name="hijacked"),
            agents.update(agent, scopes={}, expected_version=1, grace_seconds=0),
            agents.suspend(agent),
            agents.resume(agent),
            agents.delete(agent),
            agents.mint_key(agent),
            agents.list_keys(agent),
        ]
        for call in calls:
            with pytest.raises(AgentNotFoundError):
                await call
        for call in (
            agents.deprecate_key(agent, first.agent_key_id),
            agents.undeprecate_key(agent, first.agent_key_id),
            agents.revoke_key(agent, first.agent_key_id, force=True),
        ):
            with pytest.raises((AgentNotFoundError, KeyNotFoundError)):
                await call

        # The second app's own agent does not reach the first app's agent keys either.
        own = await agents.create(name="own-bot", scopes={})
        for call in (
            agents.deprecate_key(str(own.id), first.agent_key_id),
            agents.revoke_key(str(own.id), first.agent_key_id, force=True),
        ):
            with pytest.raises(KeyNotFoundError):
                await call

        assert await snapshot(server, first) == before

    run(scenario())


def test_key_routes_of_another_app_answer_not_found(server, idp):
    async def scenario():
        first = await first_app(server, idp)
        before = await snapshot(server, first)
        _, key, _ = second_app(server, idp)
        other = App(api_key=key)

        for key_id in (first.app_key_id, first.agent_key_id):
            with pytest.raises(GrantNotFoundError):  # 404 key_not_found on the main mapper
                await other.keys.revoke(key_id=key_id, force=True)
            with pytest.raises(GrantNotFoundError):
                await other.keys.rotate(key_id=key_id, overlap_days=0)

        assert await snapshot(server, first) == before
        # The first app's keys still work.
        assert (await App(api_key=server.api_key).list_grants()).total == 4
        assert (await Agent(api_key=first.agent_key).list_grants()).total == 2

    run(scenario())


def test_the_admin_and_end_user_apis_keep_apps_apart(server, idp):
    """Alter's own APIs (no official client exists for them): an app id in the path never
    reaches another app's grants or agents, and an end user is a different user per app."""

    async def scenario():
        first = await first_app(server, idp)
        before = await snapshot(server, first)
        second_id, key, _ = second_app(server, idp)
        other = App(api_key=key)  # kept alive: the client's namespaces hold it weakly
        own = await other.agents.create(name="own-bot", scopes={})

        admin = server.admin
        assert admin("GET", f"/apps/{second_id}/grants").json()["grants"] == []
        for method, path, body in (
            (
                "POST",
                f"/apps/{second_id}/grants/{first.system_grant}/delegations",
                {"agent_id": str(own.id)},
            ),
            ("POST", f"/apps/{second_id}/grants/{first.system_grant}/revoke", {}),
            ("POST", f"/apps/{second_id}/agents/{first.agent_id}/pause", None),
            ("DELETE", f"/apps/{second_id}/agents/{first.agent_id}", None),
            ("DELETE", f"/apps/{second_id}/keys/{first.app_key_id}", None),
            ("GET", f"/apps/{second_id}/secrets/{first.secret['id']}", None),
            # The first app delegating to the second app's agent.
            (
                "POST",
                f"/apps/{server.app_id}/grants/{first.system_grant}/delegations",
                {"agent_id": str(own.id)},
            ),
        ):
            response = admin(method, path, json=body) if body is not None else admin(method, path)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"].endswith("_not_found"), response.text

        user = idp.user_api
        # Alice in the second app: a different user, holding nothing.
        me_first = user(server, "GET", "/me", first.alice).json()
        me_second = user(server, "GET", "/me", first.alice, app_id=second_id).json()
        assert me_first["app_user_id"] != me_second["app_user_id"]
        assert user(server, "GET", "/grants", first.alice, app_id=second_id).json()["grants"] == []
        assert (
            user(server, "GET", "/delegations", first.alice, app_id=second_id).json()["grants"]
            == []
        )
        assert [
            a["id"] for a in user(server, "GET", "/agents", first.alice, app_id=second_id).json()
        ] == [str(own.id)]
        for response in (
            user(
                server,
                "POST",
                f"/grants/{first.user_grant}/delegations",
                first.alice,
                app_id=second_id,
                json={"agent_id": str(own.id)},
            ),
            user(
                server,
                "DELETE",
                f"/delegations/{first.user_delegation}",
                first.alice,
                app_id=second_id,
            ),
            # In her own app, to the other app's agent.
            user(
                server,
                "POST",
                f"/grants/{first.user_grant}/delegations",
                first.alice,
                json={"agent_id": str(own.id)},
            ),
        ):
            assert response.status_code == 404, response.text

        assert await snapshot(server, first) == before

    run(scenario())
