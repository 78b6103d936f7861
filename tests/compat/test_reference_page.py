"""Every example of the SDK grants reference page our users gave us
(`/work/shared/reference/sdk-grants-reference.txt`), run through the unmodified official client
against the real server, plus the calls and errors the page names around them.

Protocol part 2 §1–§5, §8. Delegations come into being the two ways Alter offers: an end
user delegating their own grant (end-user API, their JWT) and the operator delegating a grant
the app owns (admin API).
"""

from datetime import timedelta
from uuid import UUID

import pytest
from alter_sdk import (
    Agent,
    AgentPrincipal,
    App,
    GroupPrincipal,
    SystemPrincipal,
    UserPrincipal,
)
from alter_sdk.exceptions import (
    AgentInactiveError,
    AgentNotFoundError,
    AlterValueError,
    BackendError,
    GrantNotFoundError,
    GrantRevokedError,
    KeyRevokedError,
    MeRequiresAgentKeyError,
    PolicyViolationError,
    SiblingLabelConflictError,
)
from alter_sdk.models import (
    AgentCreateResult,
    AgentInfo,
    CreateGrantResult,
    GrantInfo,
    ManagedSecretGrantItem,
    RevokeGrantResult,
    UnifiedGrantListResult,
)

from scenario import agent_states, grant_states, now, parse_time, run


def is_uuid(text) -> bool:
    try:
        UUID(str(text))
    except ValueError:
        return False
    return True


# ── list_grants() ───────────────────────────────────────────────────────────────────────────


def test_the_list_grants_example_runs_unchanged(server):
    """The page's snippet, verbatim: `provider_id="google"` names no provider here, so the
    page is empty, and well formed."""

    async def scenario():
        app = App(api_key=server.api_key)
        page = await app.list_grants(provider_id="google", limit=50)
        printed = []
        for grant in page.grants:
            if grant.grant_kind == "oauth":
                printed.append((grant.grant_id, grant.account_identifier, grant.scopes))
        assert isinstance(page, UnifiedGrantListResult)
        assert (page.grants, page.total, page.limit, page.offset, page.has_more) == (
            [],
            0,
            50,
            0,
            False,
        )
        assert printed == []

    run(scenario())


def test_list_grants_filters_on_a_managed_secret_slug(server, idp):
    stripe = server.create_secret("Stripe Prod")
    github = server.create_secret("GitHub Bot")

    async def scenario():
        app = App(api_key=server.api_key)
        alice = idp.token("alice", groups=["eng"])
        made = [
            await app.create_managed_secret_grant(
                stripe["id"], principal=UserPrincipal(user_token=alice, label="alice-prod-stripe")
            ),
            await app.create_managed_secret_grant(
                stripe["id"],
                principal=GroupPrincipal(external_group_id="eng", idp_id=idp.id, label="eng"),
            ),
            await app.create_managed_secret_grant(
                stripe["id"], principal=SystemPrincipal(label="nightly-billing")
            ),
        ]
        other = await app.create_managed_secret_grant(
            github["id"], principal=SystemPrincipal(label="ci")
        )

        page = await app.list_grants(provider_id=stripe["slug"], limit=50)
        assert isinstance(page, UnifiedGrantListResult)
        assert (page.total, page.limit, page.offset, page.has_more) == (3, 50, 0, False)
        assert [g.grant_id for g in page.grants] == [m.grant_id for m in made]
        assert other.grant_id not in {g.grant_id for g in page.grants}
        for grant in page.grants:
            # Discriminate on grant_kind, as the page says.
            assert grant.grant_kind == "managed_secret"
            assert isinstance(grant, ManagedSecretGrantItem)
            assert grant.managed_secret_id == stripe["id"]
            assert grant.managed_secret_slug == stripe["slug"] == "stripe-prod"
            assert grant.managed_secret_name == "Stripe Prod"
            assert grant.status == "active"
            assert grant.access_via == "ownership"
            assert grant.parent_grant_id is None and grant.depth == 0
            assert grant.agent_id is None
            assert grant.grant_expires_at is None
            assert grant.credential_id == stripe["id"]
            assert abs(parse_time(grant.created_at) - now()) < timedelta(minutes=5)
        assert [(g.principal_type, g.label) for g in page.grants] == [
            ("user", "alice-prod-stripe"),
            ("group", "eng"),
            ("system", "nightly-billing"),
        ]

        # Pages: total stays, has_more says whether another page follows.
        first = await app.list_grants(provider_id=stripe["slug"], limit=2)
        assert (len(first.grants), first.total, first.has_more) == (2, 3, True)
        second = await app.list_grants(provider_id=stripe["slug"], limit=2, offset=2)
        assert (len(second.grants), second.total, second.offset, second.has_more) == (
            1,
            3,
            2,
            False,
        )
        assert [g.grant_id for g in first.grants + second.grants] == [m.grant_id for m in made]

        # Everything, unfiltered: all four grants of both secrets.
        assert (await app.list_grants()).total == 4

    run(scenario())


def test_an_agent_lists_only_what_was_delegated_to_it(server, idp):
    stripe = server.create_secret("Stripe Prod")

    async def scenario():
        app = App(api_key=server.api_key)
        alice = idp.token("alice")
        users = await app.create_managed_secret_grant(
            stripe["id"], principal=UserPrincipal(user_token=alice, label="alice-prod-stripe")
        )
        system = await app.create_managed_secret_grant(
            stripe["id"], principal=SystemPrincipal(label="nightly")
        )
        research = await app.agents.create(name="research-bot", scopes={})
        billing = await app.agents.create(name="billing-bot", scopes={})
        # Alice delegates her grant to research-bot; the operator delegates the system grant
        # to billing-bot.
        to_research = idp.user_delegates(server, alice, users.grant_id, research.id)
        to_billing = server.delegate(system.grant_id, billing.id)

        research_agent = Agent(api_key=research.api_key)
        page = await research_agent.list_grants(limit=10, offset=0)
        assert (page.total, page.limit, page.offset, page.has_more) == (1, 10, 0, False)
        [grant] = page.grants
        assert grant.grant_kind == "managed_secret"
        assert grant.grant_id == to_research["grant_id"]
        assert grant.parent_grant_id == users.grant_id
        assert grant.principal_type == "agent"
        assert grant.agent_id == str(research.id)
        assert grant.access_via == "ms_delegation"
        assert grant.depth == 1 and grant.delegable is False
        assert grant.status == "active"
        assert grant.delegated_at is not None
        assert grant.managed_secret_slug == stripe["slug"]
        # Neither the roots nor the other agent's delegation.
        assert to_billing["grant_id"] not in {g.grant_id for g in page.grants}

        billing_agent = Agent(api_key=billing.api_key)
        [theirs] = (await billing_agent.list_grants(limit=100, offset=0)).grants
        assert theirs.grant_id == to_billing["grant_id"]
        assert theirs.parent_grant_id == system.grant_id

        # Offsets past the end: empty, total unchanged.
        beyond = await research_agent.list_grants(limit=10, offset=1)
        assert (beyond.grants, beyond.total, beyond.has_more) == ([], 1, False)

        # An app acting as the agent sees what the agent sees.
        acting = app.get_agent(str(research.id))
        assert [g.grant_id for g in (await acting.list_grants()).grants] == [
            to_research["grant_id"]
        ]

        # The app sees everything: two roots and two delegations.
        assert set(await grant_states(app)) == {
            users.grant_id,
            system.grant_id,
            to_research["grant_id"],
            to_billing["grant_id"],
        }

    run(scenario())


# ── create_managed_secret_grant() ───────────────────────────────────────────────────────────


def test_the_create_managed_secret_grant_example(server, idp):
    stripe = server.create_secret("Stripe Prod")

    async def scenario():
        app = App(api_key=server.api_key)
        alice_jwt = idp.token("alice", email="alice@example.com")
        result = await app.create_managed_secret_grant(
            managed_secret_id=stripe["id"],
            principal=UserPrincipal(user_token=alice_jwt, label="alice-prod-stripe"),
        )
        assert isinstance(result, CreateGrantResult)
        assert is_uuid(result.grant_id)
        assert result.principal_type == "user"
        assert result.label == "alice-prod-stripe"
        assert result.credential_id == stripe["id"]
        assert abs(parse_time(result.created_at) - now()) < timedelta(minutes=5)

        # Scoped to Alice by her JWT, the grant is hers; Bob sees nothing.
        hers = await app.list_grants(end_user_token=idp.token("alice"))
        assert [(g.grant_id, g.principal_type) for g in hers.grants] == [(result.grant_id, "user")]
        bobs = await app.list_grants(end_user_token=idp.token("bob"))
        assert bobs.total == 0 and bobs.grants == []

        # A second grant with the same label for the same user is a sibling conflict; for
        # another user it is fine.
        with pytest.raises(SiblingLabelConflictError):
            await app.create_managed_secret_grant(
                stripe["id"],
                principal=UserPrincipal(user_token=alice_jwt, label="alice-prod-stripe"),
            )
        await app.create_managed_secret_grant(
            stripe["id"],
            principal=UserPrincipal(user_token=idp.token("bob"), label="alice-prod-stripe"),
        )
        assert (await app.list_grants()).total == 2

    run(scenario())


def test_group_and_system_principals(server, idp):
    stripe = server.create_secret("Stripe Prod")

    async def scenario():
        app = App(api_key=server.api_key)
        group = await app.create_managed_secret_grant(
            stripe["id"],
            principal=GroupPrincipal(
                external_group_id="00g-eng", idp_id=idp.id, label="engineering-prod-stripe"
            ),
        )
        assert (group.principal_type, group.label) == ("group", "engineering-prod-stripe")
        system = await app.create_managed_secret_grant(stripe["id"], principal=SystemPrincipal())
        # The client sends `"label":null`; the answer carries the key, null.
        assert (system.principal_type, system.label) == ("system", None)
        labelled = await app.create_managed_secret_grant(
            stripe["id"], principal=SystemPrincipal(label="cron")
        )
        assert labelled.label == "cron"

        # Members of the group hold the group grant; others don't.
        member = await app.list_grants(end_user_token=idp.token("carol", groups=["00g-eng"]))
        assert [g.grant_id for g in member.grants] == [group.grant_id]
        assert member.grants[0].principal_type == "group"
        outsider = await app.list_grants(end_user_token=idp.token("dave", groups=["00g-ops"]))
        assert outsider.grants == []

    run(scenario())


def test_an_agent_principal_through_an_app_key_is_refused(server):
    stripe = server.create_secret("Stripe Prod")

    async def scenario():
        app = App(api_key=server.api_key)
        with pytest.raises(BackendError) as raised:
            await app.create_managed_secret_grant(
                stripe["id"], principal=AgentPrincipal(label="mine")
            )
        assert raised.value.status_code == 422
        assert await grant_states(app) == {}

    run(scenario())


def test_the_0_29_0_agent_has_no_create_managed_secret_grant():
    """The page says "Agent (self only)"; the 0.29.0 client has no such method on `Agent`
    (protocol part 2 §2.1). An `AgentPrincipal` sent on the public route is refused whatever
    key sends it (`test_agent_confinement.py`); our Rust SDK's `Agent` binds a secret to itself
    on its own route, where the secret's operator opted agents in."""
    assert not hasattr(Agent, "create_managed_secret_grant")
    assert hasattr(App, "create_managed_secret_grant")


def test_a_longer_ttl_than_the_secret_allows_is_a_policy_violation(server):
    capped = server.create_secret("Capped", max_grant_ttl_seconds=3600)

    async def scenario():
        app = App(api_key=server.api_key)
        for policy in (
            {"max_ttl_seconds": 7200},
            {"default_ttl_seconds": 3601},
            {"expires_at": (now() + timedelta(days=2)).isoformat()},
        ):
            with pytest.raises(PolicyViolationError) as raised:
                await app.create_managed_secret_grant(
                    capped["id"], principal=SystemPrincipal(), grant_policy=policy
                )
            assert raised.value.status_code == 403
            assert raised.value.policy_error == "secret_limit_exceeded"
        assert await grant_states(app) == {}

        # Within the cap it works, and the grant ends when its policy says.
        made = await app.create_managed_secret_grant(
            capped["id"],
            principal=SystemPrincipal(label="short"),
            grant_policy={"max_ttl_seconds": 3600, "default_ttl_seconds": 600},
        )
        [grant] = (await app.list_grants(label="short")).grants
        assert grant.grant_id == made.grant_id
        ends = parse_time(grant.grant_expires_at) - parse_time(grant.created_at)
        assert ends == timedelta(seconds=600)
        assert grant.grant_policy["max_ttl_seconds"] == 3600
        assert grant.grant_policy["default_ttl_seconds"] == 600
        # With no lifetime asked for, the cap applies.
        await app.create_managed_secret_grant(
            capped["id"], principal=SystemPrincipal(label="default")
        )
        [default] = (await app.list_grants(label="default")).grants
        ends = parse_time(default.grant_expires_at) - parse_time(default.created_at)
        assert ends == timedelta(seconds=3600)

    run(scenario())


def test_client_side_validation_raises_alter_value_error(server):
    stripe = server.create_secret("Stripe Prod")

    async def scenario():
        app = App(api_key=server.api_key)
        for policy in (
            {"maxTtlSeconds": 3600},  # camelCase typo
            {"max_ttl_seconds": 3600, "restrictions": {}},  # unknown key
            {"max_ttl_seconds": 0},
            {"default_ttl_seconds": -1},
            {"max_ttl_seconds": "3600"},
            {"expires_at": "not-an-iso-date"},
        ):
            with pytest.raises(AlterValueError):
                await app.create_managed_secret_grant(
                    stripe["id"], principal=SystemPrincipal(), grant_policy=policy
                )
        with pytest.raises(AlterValueError):
            await app.create_managed_secret_grant(
                stripe["id"], principal={"type": "system", "label": None}
            )
        assert await grant_states(app) == {}

    run(scenario())


# ── revoke_grant() ──────────────────────────────────────────────────────────────────────────


def test_the_revoke_grant_example(server, idp):
    stripe = server.create_secret("Stripe Prod")

    async def scenario():
        app = App(api_key=server.api_key)
        alice = idp.token("alice")
        grant = await app.create_managed_secret_grant(
            stripe["id"], principal=UserPrincipal(user_token=alice, label="alice-prod-stripe")
        )
        keep = await app.create_managed_secret_grant(
            stripe["id"], principal=SystemPrincipal(label="keep")
        )
        bot = await app.agents.create(name="research-bot", scopes={})
        delegation = idp.user_delegates(server, alice, grant.grant_id, bot.id)
        agent = Agent(api_key=bot.api_key)
        assert [g.status for g in (await agent.list_grants()).grants] == ["active"]

        result = await app.revoke_grant(grant.grant_id, reason="user offboarded")
        assert isinstance(result, RevokeGrantResult)
        assert result.success is True
        assert isinstance(result.message, str) and result.message
        assert result.grant_id == grant.grant_id
        assert abs(parse_time(result.revoked_at) - now()) < timedelta(minutes=5)

        # The grant and its delegation are revoked; the other grant is untouched.
        assert await grant_states(app) == {
            grant.grant_id: "revoked",
            keep.grant_id: "active",
            delegation["grant_id"]: "revoked",
        }
        # The agent lost its access: the delegation shows as revoked, and no longer among
        # its active grants.
        [seen] = (await agent.list_grants()).grants
        assert (seen.grant_id, seen.status) == (delegation["grant_id"], "revoked")
        assert (await agent.list_grants(status="active")).grants == []

        # Revoking twice: GrantRevokedError.
        with pytest.raises(GrantRevokedError):
            await app.revoke_grant(grant.grant_id, reason="again")
        # An unknown grant: GrantNotFoundError.
        with pytest.raises(GrantNotFoundError):
            await app.revoke_grant("00000000-0000-4000-8000-000000000000")
        assert (await grant_states(app))[keep.grant_id] == "active"

    run(scenario())


def test_revoke_grant_with_an_agents_key_reaches_only_its_own(server, idp):
    """Protocol part 2 §4.3: an agent key revokes only a grant it is the principal of."""
    stripe = server.create_secret("Stripe Prod")

    async def scenario():
        app = App(api_key=server.api_key)
        alice = idp.token("alice")
        grant = await app.create_managed_secret_grant(
            stripe["id"], principal=UserPrincipal(user_token=alice, label="alice-prod-stripe")
        )
        bot = await app.agents.create(name="research-bot", scopes={})
        delegation = idp.user_delegates(server, alice, grant.grant_id, bot.id)
        as_agent = App(api_key=bot.api_key)
        with pytest.raises(GrantNotFoundError):
            await as_agent.revoke_grant(grant.grant_id, reason="not mine")
        result = await as_agent.revoke_grant(delegation["grant_id"], reason="done")
        assert (result.success, result.grant_id) == (True, delegation["grant_id"])
        assert await grant_states(app) == {
            grant.grant_id: "active",
            delegation["grant_id"]: "revoked",
        }

    run(scenario())


def test_the_page_placeholder_ids_as_written(server, idp):
    """The page's literal placeholder ids: the client refuses non-UUIDs for revoke before
    sending; the managed-secret id travels verbatim and names nothing."""

    async def scenario():
        app = App(api_key=server.api_key)
        with pytest.raises(AlterValueError):
            await app.revoke_grant("grant_xyz", reason="user offboarded")
        with pytest.raises(AlterValueError):
            await app.revoke_delegation("grant_xyz", "agent_research_bot")
        with pytest.raises(GrantNotFoundError):
            await app.create_managed_secret_grant(
                managed_secret_id="ms_abc123",
                principal=UserPrincipal(user_token=idp.token("alice"), label="alice-prod-stripe"),
            )
        assert await grant_states(app) == {}

    run(scenario())


# ── revoke_delegation() ─────────────────────────────────────────────────────────────────────


def test_the_operator_revokes_an_agents_delegation(server, idp):
    stripe = server.create_secret("Stripe Prod")

    async def scenario():
        app = App(api_key=server.api_key)
        alice = idp.token("alice")
        grant = await app.create_managed_secret_grant(
            stripe["id"], principal=UserPrincipal(user_token=alice, label="alice-prod-stripe")
        )
        research = await app.agents.create(name="research-bot", scopes={})
        other = await app.agents.create(name="other-bot", scopes={})
        to_research = idp.user_delegates(server, alice, grant.grant_id, research.id)
        to_other = idp.user_delegates(server, alice, grant.grant_id, other.id)

        # Operator removes a specific agent's access on a grant
        assert await app.revoke_delegation(grant.grant_id, str(research.id)) is None

        research_agent = Agent(api_key=research.api_key)
        [seen] = (await research_agent.list_grants()).grants
        assert (seen.grant_id, seen.status) == (to_research["grant_id"], "revoked")
        assert (await research_agent.list_grants(status="active")).grants == []
        # The underlying user grant is unchanged, and so is the other agent's delegation.
        assert await grant_states(app) == {
            grant.grant_id: "active",
            to_research["grant_id"]: "revoked",
            to_other["grant_id"]: "active",
        }
        # Idempotent.
        assert await app.revoke_delegation(grant.grant_id, str(research.id)) is None

        # An agent's key on the operator path: 403 use_self_revoke_path.
        as_agent = App(api_key=other.api_key)
        with pytest.raises(PolicyViolationError) as raised:
            await as_agent.revoke_delegation(grant.grant_id, str(other.id))
        assert raised.value.status_code == 403
        assert raised.value.policy_error == "use_self_revoke_path"
        assert (await grant_states(app))[to_other["grant_id"]] == "active"

    run(scenario())


def test_an_agent_revokes_its_own_delegation(server, idp):
    stripe = server.create_secret("Stripe Prod")

    async def scenario():
        app = App(api_key=server.api_key)
        system = await app.create_managed_secret_grant(
            stripe["id"], principal=SystemPrincipal(label="nightly")
        )
        research = await app.agents.create(name="research-bot", scopes={})
        other = await app.agents.create(name="other-bot", scopes={})
        to_research = server.delegate(system.grant_id, research.id)
        to_other = server.delegate(system.grant_id, other.id)

        # Agent self-revoke
        agent = Agent(api_key=research.api_key)
        assert await agent.revoke_delegation(system.grant_id) is None
        [seen] = (await agent.list_grants()).grants
        assert (seen.grant_id, seen.status) == (to_research["grant_id"], "revoked")
        assert await grant_states(app) == {
            system.grant_id: "active",
            to_research["grant_id"]: "revoked",
            to_other["grant_id"]: "active",
        }
        # Idempotent.
        assert await agent.revoke_delegation(system.grant_id) is None

        # An app acting as the other agent revokes that agent's own delegation.
        assert await app.get_agent(str(other.id)).revoke_delegation(system.grant_id) is None
        assert (await grant_states(app))[to_other["grant_id"]] == "revoked"
        assert (await grant_states(app))[system.grant_id] == "active"

        # An app key (not acting as an agent) on the self path: 403 agent_key_required.
        with pytest.raises(PolicyViolationError) as raised:
            await app._client.revoke_delegation(system.grant_id)
        assert raised.value.policy_error == "agent_key_required"

    run(scenario())


# ── agents ──────────────────────────────────────────────────────────────────────────────────


def test_agents_create_impersonate_pause_resume_delete(server):
    async def scenario():
        app = App(api_key=server.api_key)
        created = await app.agents.create(
            name="research-bot",
            scopes={"managed_secret_slugs": ["stripe-prod"]},
            display_name="Research bot",
        )
        assert isinstance(created, AgentCreateResult)
        assert created.api_key and isinstance(created.api_key, str)
        assert (created.name, created.display_name, created.type, created.status) == (
            "research-bot",
            "Research bot",
            "agent",
            "active",
        )
        assert created.scopes == {"managed_secret_slugs": ["stripe-prod"]}
        assert created.version == 1
        agent_id = str(created.id)

        agent = Agent(api_key=created.api_key)
        me = await agent.me()
        assert isinstance(me, AgentInfo)
        assert (str(me.id), me.name, me.status) == (agent_id, "research-bot", "active")
        acting = app.get_agent(agent_id)
        assert str((await acting.me()).id) == agent_id
        assert (await agent.list_grants()).total == 0
        with pytest.raises(MeRequiresAgentKeyError):
            await Agent(api_key=server.api_key).me()

        # Paused: every call but me() is refused with agent_inactive.
        paused = await app.agents.suspend(agent_id)
        assert paused.status == "inactive" and paused.version == 2
        with pytest.raises(AgentInactiveError):
            await agent.list_grants()
        assert (await agent.me()).status == "inactive"
        with pytest.raises(AgentNotFoundError):
            await app.get_agent(agent_id).list_grants()

        resumed = await app.agents.resume(agent_id)
        assert resumed.status == "active" and resumed.version == 3
        assert (await agent.list_grants()).total == 0

        # Deleted: terminal; its keys are revoked with it.
        deleted = await app.agents.delete(agent_id)
        assert deleted.status == "revoked"
        with pytest.raises(KeyRevokedError):
            await agent.list_grants()
        with pytest.raises(AgentNotFoundError):
            await app.get_agent(agent_id).list_grants()
        assert await agent_states(app) == {agent_id: ("revoked", deleted.version)}
        assert (await app.agents.list()).agents == []

    run(scenario())


# ── mint_grant() ────────────────────────────────────────────────────────────────────────────


def test_mint_grant(server, idp):
    stripe = server.create_secret("Stripe Prod")

    async def scenario():
        app = App(api_key=server.api_key)
        alice = idp.token("alice")
        source = await app.create_managed_secret_grant(
            stripe["id"], principal=UserPrincipal(user_token=alice, label="alice-prod-stripe")
        )
        bot = await app.agents.create(name="research-bot", scopes={})
        delegation = idp.user_delegates(server, alice, source.grant_id, bot.id)

        minted = await app.mint_grant(
            source.grant_id, label="alice-reporting", grant_policy={"max_ttl_seconds": 3600}
        )
        assert isinstance(minted, GrantInfo)
        assert is_uuid(minted.grant_id) and minted.grant_id != source.grant_id
        assert minted.provider_id == stripe["slug"]
        assert minted.status == "active"
        assert minted.principal_type == "user"
        assert minted.label == "alice-reporting"
        assert minted.credential_id == stripe["id"]
        assert minted.scopes == []
        assert minted.grant_policy["max_ttl_seconds"] == 3600
        ends = parse_time(minted.expires_at) - parse_time(minted.created_at)
        assert ends == timedelta(seconds=3600)

        # Same principal: Alice holds both. Delegations are not copied.
        hers = await app.list_grants(end_user_token=alice, status="active")
        assert {g.grant_id for g in hers.grants} >= {source.grant_id, minted.grant_id}
        agent_view = await Agent(api_key=bot.api_key).list_grants()
        assert [g.grant_id for g in agent_view.grants] == [delegation["grant_id"]]

        # A label already in use among the active siblings, the source's own included.
        for taken in ("alice-reporting", "alice-prod-stripe"):
            with pytest.raises(SiblingLabelConflictError) as raised:
                await app.mint_grant(source.grant_id, label=taken)
            assert raised.value.label == taken
        # Not from a delegation, nor from a revoked grant.
        with pytest.raises(GrantNotFoundError):
            await app.mint_grant(delegation["grant_id"], label="from-a-delegation")
        await app.revoke_grant(source.grant_id)
        with pytest.raises(GrantNotFoundError):
            await app.mint_grant(source.grant_id, label="after-revoke")
        # Agents cannot mint.
        with pytest.raises(PolicyViolationError) as raised:
            await App(api_key=bot.api_key).mint_grant(minted.grant_id, label="by-agent")
        assert raised.value.policy_error == "agents_cannot_mint"
        assert len(await grant_states(app)) == 3

    run(scenario())
