import os
from pathlib import Path

import pytest

from harness import PostgresSchema, Server, start_server


def engines() -> list[str]:
    found = ["sqlite"]
    if os.environ.get("ALTER_TEST_DATABASE_URL"):
        found.append("postgres")
    return found


@pytest.fixture(params=engines())
def server(request, tmp_path: Path):
    """A running `alter dev` with one app and key, on each configured engine."""
    schema = None
    database_url = None
    if request.param == "postgres":
        schema = PostgresSchema(os.environ["ALTER_TEST_DATABASE_URL"])
        database_url = schema.url
    running: Server = start_server(tmp_path / "data", database_url, request.param)
    os.environ["ALTER_BASE_URL"] = running.base_url
    yield running
    running.stop()
    if schema:
        schema.drop()


@pytest.fixture
def idp(server):
    """The app's identity provider: an EC P-256 key registered as an inline JWKS, with a
    groups claim. `idp.token("alice", groups=[…])` mints a user's JWT."""
    from idp import TestIdp

    provider = TestIdp()
    provider.register(server)
    return provider
