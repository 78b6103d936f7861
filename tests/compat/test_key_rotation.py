"""Key rotation cannot widen the caller's power (hardening issue, item 3): a rotation hands
the caller a fresh plaintext of the rotated key, so a caller may only rotate a key it could
hold itself."""

import pytest
from alter_sdk import App
from alter_sdk.exceptions import InsufficientScopeError, PolicyViolationError

from scenario import run


def app_keys(server) -> dict[str, dict]:
    """Every key of the dev app, by id, as the operator sees it (without `last_used_at`, which
    any signed call may refresh)."""
    response = server.admin("GET", f"/apps/{server.app_id}/keys")
    assert response.status_code == 200, response.text
    return {key["id"]: {**key, "last_used_at": None} for key in response.json()["items"]}


def app_key_id(server) -> str:
    (key,) = [k for k in app_keys(server).values() if k["key_type"] == "rk"]
    return key["id"]


def test_a_derived_key_holding_keys_admin_cannot_rotate_the_app_key(server):
    target = app_key_id(server)

    async def scenario():
        app = App(api_key=server.api_key)
        derived = await app.keys.derive(scopes=["keys:admin"], expires_in=3600)
        before = app_keys(server)
        child = App(api_key=derived.api_key)
        with pytest.raises(PolicyViolationError) as refused:
            await child.keys.rotate(key_id=target, overlap_days=0)
        assert refused.value.policy_error == "key_rotation_refused"
        # Not even a key it covers, such as itself.
        with pytest.raises(PolicyViolationError):
            await child.keys.rotate(key_id=derived.id, overlap_days=0)
        assert app_keys(server) == before, "a refused rotation changes nothing"
        await app.scopes.list()

    run(scenario())


def test_a_caller_must_hold_every_scope_of_the_key_it_rotates(server):
    target = app_key_id(server)
    narrow = server.mint_key(name="key-admin-only", scopes=["keys:admin"])

    async def scenario():
        before = app_keys(server)
        # Namespaces hold their client weakly: keep each client in a variable.
        narrow_app = App(api_key=narrow["api_key"])
        with pytest.raises(InsufficientScopeError) as refused:
            await narrow_app.keys.rotate(key_id=target, overlap_days=0)
        assert "tokens:retrieve" in refused.value.required
        # The full key attenuated to keys:admin has the same reach as the narrow key.
        app = App(api_key=server.api_key)
        attenuated = app.with_constraints(scopes=["keys:admin"])
        with pytest.raises(InsufficientScopeError):
            await attenuated.keys.rotate(key_id=target, overlap_days=0)
        assert app_keys(server) == before, "a refused rotation changes nothing"
        # A key it covers (its own) it may rotate.
        successor = await narrow_app.keys.rotate(key_id=narrow["id"], overlap_days=0)
        assert successor.scopes == ["keys:admin"]

    run(scenario())


def test_a_caller_cannot_rotate_a_key_usable_from_more_networks_or_for_longer(server):
    target = app_key_id(server)
    confined = server.mint_key(name="loopback-only", cidr_allowlist=["127.0.0.0/8", "::1/128"])
    short_lived = server.mint_key(name="one-hour", expires_in=3600)

    async def scenario():
        before = app_keys(server)
        for caller in (confined, short_lived):
            caller_app = App(api_key=caller["api_key"])
            with pytest.raises(PolicyViolationError) as refused:
                await caller_app.keys.rotate(key_id=target, overlap_days=0)
            assert refused.value.policy_error == "key_rotation_refused"
        assert app_keys(server) == before, "a refused rotation changes nothing"
        # The full app key may rotate either of them: both are narrower than it.
        app = App(api_key=server.api_key)
        for caller in (confined, short_lived):
            await app.keys.rotate(key_id=caller["id"], overlap_days=0)

    run(scenario())
