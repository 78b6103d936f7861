"""Small helpers shared by the grant, agent and isolation tests."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from alter_sdk import App


def run(coro):
    return asyncio.run(coro)


async def grant_states(app: App) -> dict[str, str]:
    """Every grant the app sees (delegations included), as `{grant_id: status}`."""
    page = await app.list_grants(limit=1000)
    assert page.total == len(page.grants), "one page holds everything in these tests"
    return {grant.grant_id: grant.status for grant in page.grants}


async def agent_states(app: App) -> dict[str, tuple[str, int]]:
    """Every agent of the app, revoked ones included, as `{agent_id: (status, version)}`."""
    listed = await app.agents.list(include_revoked=True, limit=1000)
    return {str(agent.id): (agent.status, agent.version) for agent in listed.agents}


def parse_time(text: str) -> datetime:
    """An ISO-8601 time from the wire (with `Z` or an offset)."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, f"{text!r} carries no offset"
    return parsed


def now() -> datetime:
    return datetime.now(timezone.utc)
