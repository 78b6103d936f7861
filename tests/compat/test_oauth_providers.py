"""The app's connectable OAuth providers reach the official client's `oauth_providers.list()`
(protocol part 1 §7.6): a catalogue provider with the catalogue's scope descriptions, a custom
one with its configured scopes; a key without `providers:read` is refused."""

import pytest
from alter_sdk import App
from alter_sdk.exceptions import InsufficientScopeError

from scenario import run

SECRET = "compat-client-secret-5e1d90"


def configure(server, provider: str, **body) -> dict:
    response = server.admin(
        "PUT",
        f"/apps/{server.app_id}/providers/{provider}",
        json={"client_id": "alter-client", "client_secret": SECRET, **body},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_configured_providers_are_the_clients_catalogue(server):
    configure(server, "google")
    configure(
        server,
        "acme",
        display_name="Acme Files",
        scopes=["openid", "files.read"],
        endpoints={
            "authorize_url": "https://id.acme.example/authorize",
            "token_url": "https://id.acme.example/token",
            "refresh": "none",
        },
    )

    async def scenario():
        app = App(api_key=server.api_key)
        catalog = await app.oauth_providers.list()
        assert set(catalog.providers) == {"google", "acme"}
        google = catalog.providers["google"]
        assert google.display_name == "Google"
        assert google.status == "active"
        assert google.supports_refresh and google.supports_pkce
        assert catalog.get_default_scopes("google") == ("openid", "email")
        assert "openid" in catalog.get_required_scopes("google")
        assert google.available_scopes["openid"].is_default
        assert google.category
        acme = catalog.providers["acme"]
        assert acme.display_name == "Acme Files"
        assert not acme.supports_refresh
        assert set(acme.available_scopes) == {"openid", "files.read"}
        assert catalog.get_default_scopes("acme") == ("openid", "files.read")

    run(scenario())


def test_the_catalogue_needs_providers_read(server):
    configure(server, "google")
    key = server.mint_key(scopes=["tokens:retrieve"])

    async def scenario():
        app = App(api_key=key["api_key"])
        with pytest.raises(InsufficientScopeError):
            await app.oauth_providers.list()

    run(scenario())
