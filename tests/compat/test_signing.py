"""Signed requests, as the official client signs them (protocol part 1 §3)."""

import asyncio
import os
import time
from unittest import mock

import pytest
from alter_sdk import Agent, App
from alter_sdk.exceptions import InvalidKeyError, KeyRevokedError

from harness import TamperingProxy


def run(coro):
    return asyncio.run(coro)


def scopes(api_key: str):
    """Lists scopes with a fresh client (kept alive for the call: namespaces hold it weakly)."""

    async def call():
        app = App(api_key=api_key)
        return await app.scopes.list()

    return run(call())


def test_a_correctly_signed_call_succeeds(server):
    async def calls():
        app = App(api_key=server.api_key)
        catalogue = await app.scopes.list()
        assert catalogue.scope_version == 1
        assert "tokens:retrieve" in catalogue.action_verbs
        derived = await app.keys.derive(scopes=["keys:read"], expires_in=60)
        assert derived.key_type == "dk" and derived.api_key.startswith("alter_dk_")
        # v2 signatures: a caller label, and an audit context.
        labelled = App(api_key=server.api_key, caller="billing-worker")
        await labelled.scopes.list()
        agent = Agent(api_key=server.api_key)
        async with agent.trace(run_id="run-1", thread_id="t-1"):
            await agent.scopes.list()
        # Attenuated clients sign their constraints.
        narrowed = app.with_constraints(scopes=["keys:read"])
        await narrowed.scopes.list()

    run(calls())


def test_a_wrong_key_fails(server):
    wrong = "alter_rk_abcdefghijklmnopqrstuv_iwpykn"
    with pytest.raises(InvalidKeyError):
        scopes(wrong)


def test_a_tampered_body_fails(server):
    proxy = TamperingProxy(server.base_url)
    os.environ["ALTER_BASE_URL"] = proxy.base_url
    # Widen what the signed body asks for, keeping its length.
    proxy.transform = lambda request: request.replace(b'"keys:read"', b'"keys:admn"')

    async def derive():
        app = App(api_key=server.api_key)
        await app.keys.derive(scopes=["keys:read"], expires_in=60)

    with pytest.raises(InvalidKeyError):
        run(derive())
    assert b'"keys:read"' in proxy.requests[-1], "the proxy saw the signed body"


def test_a_stale_timestamp_fails(server):
    with mock.patch("time.time", return_value=time.time() - 301):
        with pytest.raises(InvalidKeyError):
            scopes(server.api_key)


def test_a_replayed_request_fails(server):
    proxy = TamperingProxy(server.base_url)
    os.environ["ALTER_BASE_URL"] = proxy.base_url

    async def twice():
        app = App(api_key=server.api_key)
        await app.scopes.list()
        captured = proxy.requests[-1]
        proxy.transform = lambda request: captured
        await app.scopes.list()

    with pytest.raises(InvalidKeyError):
        run(twice())


def test_a_revoked_key_fails(server):
    minted = server.mint_key(name="short-lived")
    scopes(minted["api_key"])
    revoked = server.admin("DELETE", f"/apps/{server.app_id}/keys/{minted['id']}")
    assert revoked.status_code == 200, revoked.text
    with pytest.raises(KeyRevokedError):
        scopes(minted["api_key"])


def test_key_rotation_through_the_client(server):
    async def rotate():
        app = App(api_key=server.api_key)
        key_id = server.admin("GET", f"/apps/{server.app_id}/keys").json()["items"][0]["id"]
        successor = await app.keys.rotate(key_id=key_id, overlap_days=0)
        successor_app = App(api_key=successor.api_key)
        await successor_app.scopes.list()
        return successor

    run(rotate())
    from alter_sdk.exceptions import KeyRotationExpiredError

    with pytest.raises(KeyRotationExpiredError):
        scopes(server.api_key)
