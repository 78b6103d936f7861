"""Agents and agent-typed keys stay in their lane, through the unmodified official client.

An agent cannot grant itself a secret on the public grant route (protocol part 2 §2.1–2.2:
the server rejects an `AgentPrincipal` with 422 and never infers the agent from the key), nor
create user, group or system grants there. An `ak` key is bound to no managed agent (part 1
§2.3): it cannot list, release, revoke or delegate what a named agent holds, cannot act as an
agent (`X-Alter-Caller`), and cannot manage agents or their keys.
"""

import pytest
from alter_sdk import Agent, AgentPrincipal, App, SystemPrincipal, UserPrincipal
from alter_sdk.exceptions import (
    AgentCannotMintSubagentsError,
    BackendError,
    CallerAgentMismatchError,
    GrantNotFoundError,
    PolicyViolationError,
)

from scenario import agent_states, grant_states, run

# Every scope of the catalogue: the refusals below come from the key's type, not its scopes.
ALL_SCOPES = [
    f"{resource}:admin"
    for resource in (
        "agents",
        "approvals",
        "audit_logs",
        "grants",
        "idp_users",
        "keys",
        "providers",
        "secrets",
        "usage",
    )
] + ["tokens:retrieve", "proxy:execute", "connect:initiate", "keys:derive", "audit:emit"]


def test_an_agent_key_cannot_grant_itself_or_anyone_on_the_public_route(server, idp):
    stripe = server.create_secret("Stripe Prod")

    async def scenario():
        app = App(api_key=server.api_key)
        bot = await app.agents.create(
            name="research-bot", scopes={"managed_secret_slugs": [stripe["slug"]]}
        )
        as_agent = App(api_key=bot.api_key)
        with pytest.raises(BackendError) as raised:
            await as_agent.create_managed_secret_grant(
                stripe["id"], principal=AgentPrincipal(label="mine")
            )
        assert raised.value.status_code == 422
        # Nor a second (unlabelled) system grant, nor a user's.
        for principal in (
            SystemPrincipal(),
            UserPrincipal(user_token=idp.token("alice"), label="alice"),
        ):
            with pytest.raises(PolicyViolationError) as raised:
                await as_agent.create_managed_secret_grant(stripe["id"], principal=principal)
            assert raised.value.policy_error == "agents_cannot_create_grants"
        assert await grant_states(app) == {}
        assert (await Agent(api_key=bot.api_key).list_grants()).total == 0

    run(scenario())


def test_an_ak_key_cannot_create_grants(server):
    stripe = server.create_secret("Stripe Prod")
    ak = server.mint_key(key_type="ak", scopes=ALL_SCOPES)

    async def scenario():
        app = App(api_key=server.api_key)
        for principal in (AgentPrincipal(), SystemPrincipal(label="x")):
            with pytest.raises(BackendError) as raised:
                await App(api_key=ak["api_key"]).create_managed_secret_grant(
                    stripe["id"], principal=principal
                )
            assert raised.value.status_code in (403, 422)
        assert await grant_states(app) == {}

    run(scenario())


def test_an_ak_key_cannot_reach_what_a_named_agent_holds(server):
    stripe = server.create_secret("Stripe Prod", allowed_hosts=["api.stripe.com"])
    ak = server.mint_key(key_type="ak", scopes=ALL_SCOPES)

    async def scenario():
        app = App(api_key=server.api_key)
        bot = await app.agents.create(
            name="research-bot", scopes={"managed_secret_slugs": [stripe["slug"]]}
        )
        system = await app.create_managed_secret_grant(
            stripe["id"], principal=SystemPrincipal(label="nightly")
        )
        delegation = server.delegate(system.grant_id, bot.id)["grant_id"]
        before = await grant_states(app)
        assert set(before) == {system.grant_id, delegation}

        unbound = App(api_key=ak["api_key"])
        # Listing: the app's own grant, never the delegation to the named agent.
        listed = await unbound.list_grants()
        assert [g.grant_id for g in listed.grants] == [system.grant_id]
        assert listed.total == 1
        # Release, revoke, revoke the delegation: the delegation does not exist for it.
        with pytest.raises(GrantNotFoundError):
            await unbound.request("GET", "https://api.stripe.com/v1/charges", grant_id=delegation)
        with pytest.raises(GrantNotFoundError):
            await unbound.revoke_grant(delegation)
        assert await unbound.revoke_delegation(system.grant_id, str(bot.id)) is None
        assert await unbound.revoke_delegation(delegation, str(bot.id)) is None
        assert await grant_states(app) == before

    run(scenario())


def test_an_ak_key_cannot_act_as_an_agent_or_manage_agents(server):
    stripe = server.create_secret("Stripe Prod")
    ak = server.mint_key(key_type="ak", scopes=ALL_SCOPES)

    async def scenario():
        app = App(api_key=server.api_key)
        bot = await app.agents.create(
            name="research-bot", scopes={"managed_secret_slugs": [stripe["slug"]]}
        )
        system = await app.create_managed_secret_grant(
            stripe["id"], principal=SystemPrincipal(label="nightly")
        )
        delegation = server.delegate(system.grant_id, bot.id)["grant_id"]
        agents_before = await agent_states(app)
        keys_before = (await app.agents.list_keys(str(bot.id))).items

        # Impersonation, either way the client offers it.
        unbound = App(api_key=ak["api_key"])
        for acting in (
            unbound.get_agent(str(bot.id)),
            App(api_key=ak["api_key"], caller=str(bot.id), caller_type="agent"),
        ):
            with pytest.raises(CallerAgentMismatchError):
                await acting.list_grants()
        with pytest.raises(CallerAgentMismatchError):
            await unbound.get_agent(str(bot.id)).revoke_delegation(delegation)

        # The agents namespace, with every scope held.
        agents = unbound.agents
        for call in (
            agents.list(),
            agents.get(str(bot.id)),
            agents.create(name="spawned", scopes={}),
            agents.suspend(str(bot.id)),
            agents.mint_key(str(bot.id)),
            agents.list_keys(str(bot.id)),
            agents.revoke_key(str(bot.id), str(bot.key_id), force=True),
            agents.delete(str(bot.id)),
        ):
            with pytest.raises(AgentCannotMintSubagentsError):
                await call
        # The agent's key through the keys namespace looks "not found" (404 `key_not_found`,
        # which the main mapper raises as GrantNotFoundError).
        with pytest.raises(GrantNotFoundError):
            await unbound.keys.revoke(key_id=str(bot.key_id), force=True)
        with pytest.raises(GrantNotFoundError):
            await unbound.keys.rotate(key_id=str(bot.key_id), overlap_days=0)

        assert await agent_states(app) == agents_before
        assert (await app.agents.list_keys(str(bot.id))).items == keys_before
        assert (await grant_states(app))[delegation] == "active"

    run(scenario())
