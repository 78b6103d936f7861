"""Revoking a delegation through the unmodified official client, against the real binary
(hardening issue item 5): however many delegations of one grant to one agent were requested at
once, the server keeps a single active one, and one `revoke_delegation` leaves the agent no
access — neither by grant id nor by provider, and none listed as active.
"""

from concurrent.futures import ThreadPoolExecutor

import pytest
from alter_sdk import Agent, App, UserPrincipal
from alter_sdk.exceptions import GrantRevokedError, NoDelegatedGrantError

from provider import Provider
from scenario import run


@pytest.fixture
def provider():
    running = Provider()
    yield running
    running.stop()


async def active_grants(agent: Agent) -> list[str]:
    page = await agent.list_grants()
    return [grant.grant_id for grant in page.grants if grant.status == "active"]


def test_ten_concurrent_delegations_then_one_revoke_leave_no_access(server, idp, provider):
    secret = server.create_secret("Stripe Prod", allowed_hosts=["127.0.0.1"])

    async def scenario():
        async with App(api_key=server.api_key) as app:
            alice = idp.token("alice")
            grant = await app.create_managed_secret_grant(
                secret["id"], principal=UserPrincipal(user_token=alice, label="alice")
            )
            bot = await app.agents.create(
                name="research-bot", scopes={"managed_secret_slugs": [secret["slug"]]}
            )
            with ThreadPoolExecutor(max_workers=10) as pool:
                made = list(
                    pool.map(
                        lambda _: idp.user_delegates(server, alice, grant.grant_id, bot.id),
                        range(10),
                    )
                )
            delegations = {delegation["grant_id"] for delegation in made}
            async with Agent(api_key=bot.api_key) as agent:
                await agent.request("GET", provider.url("/ok"), grant_id=made[0]["grant_id"])
                assert len(provider.take()) == 1

                await app.revoke_delegation(grant.grant_id, str(bot.id))
                for delegation in delegations:
                    with pytest.raises(GrantRevokedError):
                        await agent.request("GET", provider.url("/ok"), grant_id=delegation)
                with pytest.raises(NoDelegatedGrantError):
                    await agent.request("GET", provider.url("/ok"), provider=secret["slug"])
                assert await active_grants(agent) == []
                assert provider.take() == []
            # Every call after the first renewed the delegation the first made.
            assert len(delegations) == 1, delegations

    run(scenario())
