"""Provider specs reach the official client's `provider_specs` namespace (protocol part 1 §7.7):
an operator imports an OpenAPI document for an OAuth provider or a managed secret; the client
lists specs, pages and searches operations and reads one with its schemas, validating every
answer against its own models. Missing specs and operations are `GrantNotFoundError`; a key
without `providers:read` gets `InsufficientScopeError`; another app sees nothing."""

from datetime import datetime
from pathlib import Path

import httpx
import pytest
from alter_sdk import App
from alter_sdk.exceptions import GrantNotFoundError, InsufficientScopeError

from scenario import run

FIXTURE = Path(__file__).parent / "fixtures" / "payments.openapi.yaml"


def configure_acme(server, app_id: str | None = None) -> None:
    response = server.admin(
        "PUT",
        f"/apps/{app_id or server.app_id}/providers/acme",
        json={
            "client_id": "alter-client",
            "client_secret": "compat-client-secret-41aa",
            "endpoints": {
                "authorize_url": "https://id.acme.example/authorize",
                "token_url": "https://id.acme.example/token",
            },
        },
    )
    assert response.status_code == 200, response.text


def import_spec(server, kind: str, provider: str, app_id: str | None = None, **params) -> dict:
    # The document is the body, with its own content type (not the harness's JSON helper).
    response = httpx.put(
        f"{server.base_url}/admin/v1/apps/{app_id or server.app_id}"
        f"/provider-specs/{kind}/{provider}",
        content=FIXTURE.read_bytes(),
        headers={
            "authorization": f"Bearer {server.admin_token}",
            "content-type": "application/yaml",
        },
        params=params,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_the_client_lists_pages_searches_and_reads_operations(server):
    configure_acme(server)
    imported = import_spec(
        server, "oauth", "acme", source_url="https://docs.acme.example/openapi.yaml"
    )
    secret = server.create_secret("Payments Prod")
    import_spec(server, "managed", secret["slug"])

    async def scenario():
        app = App(api_key=server.api_key)
        specs = await app.provider_specs.list()
        assert [(s.provider_kind, s.provider_id) for s in specs] == [
            ("managed", secret["slug"]),
            ("oauth", "acme"),
        ]
        oauth = await app.provider_specs.get("oauth", "acme")
        assert oauth.version == 1
        assert oauth.operation_count == 9
        assert oauth.provenance == "import"
        assert oauth.content_hash == imported["content_hash"]
        assert oauth.source_url == "https://docs.acme.example/openapi.yaml"
        assert oauth.title == "Acme Payments API"
        assert oauth.spec_version == "2024-06-20"
        assert isinstance(oauth.fetched_at, datetime) and oauth.fetched_at.tzinfo
        assert oauth.changed_at == oauth.fetched_at
        assert [s.provider_id for s in await app.provider_specs.list(kind="managed")] == [
            secret["slug"]
        ]

        page = await app.provider_specs.list_operations("oauth", "acme", limit=4)
        assert (page.total, page.limit, page.offset, page.has_more) == (9, 4, 0, True)
        assert page.spec == oauth
        assert [o.operation_id for o in page.items] == [
            "GetCharges",
            "PostCharges",
            "GetChargesCharge",
            "PostChargesCharge",
        ]
        assert page.items[0].method == "GET"
        assert page.items[0].path_template == "/v1/charges"
        assert page.items[0].summary == "List all charges"
        tail = await app.provider_specs.list_operations("oauth", "acme", limit=4, offset=8)
        assert len(tail.items) == 1 and not tail.has_more

        found = await app.provider_specs.list_operations("oauth", "acme", search="Customer")
        assert found.total == 3
        # The client form-encodes the search: a space, a % and a / arrive intact.
        refund = await app.provider_specs.list_operations("oauth", "acme", search="Refund 100%")
        assert [o.operation_id for o in refund.items] == ["PostRefunds"]
        capture = await app.provider_specs.list_operations("oauth", "acme", search="/capture")
        derived_id = capture.items[0].operation_id
        assert derived_id == "post /v1/charges/{charge}/capture"

        # An id with a space, / and braces travels form-encoded in the query.
        detail = await app.provider_specs.get_operation("oauth", "acme", derived_id)
        assert detail.method == "POST"
        assert detail.path_template == "/v1/charges/{charge}/capture"
        assert detail.params_schema[0]["name"] == "charge"

        charge = await app.provider_specs.get_operation("oauth", "acme", "GetChargesCharge")
        assert [p["name"] for p in charge.params_schema] == ["charge", "expand"]
        assert charge.response_schema["properties"]["amount"]["type"] == "integer"
        customer = charge.response_schema["properties"]["customer"]["allOf"][0]
        assert customer["properties"]["latest_charge"]["allOf"][0] == {
            "$ref": "#/components/schemas/Charge"
        }
        create = await app.provider_specs.get_operation("oauth", "acme", "PostCharges")
        assert create.request_schema["required"] == ["amount", "currency"]
        assert create.spec == oauth

    run(scenario())


def test_missing_specs_and_operations_are_grant_not_found(server):
    configure_acme(server)
    import_spec(server, "oauth", "acme")

    async def scenario():
        app = App(api_key=server.api_key)
        with pytest.raises(GrantNotFoundError) as missing:
            await app.provider_specs.get("oauth", "nope")
        assert missing.value.details["error"] == "provider_spec_not_found"
        with pytest.raises(GrantNotFoundError):
            await app.provider_specs.get("managed", "acme")
        with pytest.raises(GrantNotFoundError):
            await app.provider_specs.list_operations("oauth", "nope")
        with pytest.raises(GrantNotFoundError) as missing:
            await app.provider_specs.get_operation("oauth", "acme", "getcharges")
        assert missing.value.details["error"] == "operation_not_found"

    run(scenario())


def test_specs_need_providers_read_and_stay_inside_their_app(server):
    configure_acme(server)
    import_spec(server, "oauth", "acme")
    other_app, other_key = server.create_app("other")
    configure_acme(server, other_app)
    outsider = server.mint_key(scopes=["grants:read"])
    reader = server.mint_key(scopes=["providers:read"])

    async def scenario():
        app = App(api_key=outsider["api_key"])
        for call in (
            lambda: app.provider_specs.list(),
            lambda: app.provider_specs.get("oauth", "acme"),
            lambda: app.provider_specs.list_operations("oauth", "acme"),
            lambda: app.provider_specs.get_operation("oauth", "acme", "GetCharges"),
        ):
            with pytest.raises(InsufficientScopeError) as refused:
                await call()
            assert refused.value.required == ["providers:read"]

        allowed = App(api_key=reader["api_key"])
        assert [s.provider_id for s in await allowed.provider_specs.list()] == ["acme"]

        theirs = App(api_key=other_key)
        assert await theirs.provider_specs.list() == []
        with pytest.raises(GrantNotFoundError):
            await theirs.provider_specs.get("oauth", "acme")
        with pytest.raises(GrantNotFoundError):
            await theirs.provider_specs.get_operation("oauth", "acme", "GetCharges")

    run(scenario())
