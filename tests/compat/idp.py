"""A test identity provider: an EC P-256 key whose public half is registered with the server as
the app's IdP (an inline JWKS), and which mints the end users' ES256 JWTs.

The server only ever sees the public key; tokens are signed here, the way a real IdP signs
them, and travel to the server inside the official client's request bodies.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from harness import Server

GROUPS_CLAIM = "groups"


class TestIdp:
    """One IdP per app: `register()` it, then `token(subject, groups=…)`."""

    __test__ = False  # not a pytest test class

    def __init__(self, issuer: str | None = None, audience: str = "alter-compat") -> None:
        self.issuer = issuer or f"https://idp-{uuid.uuid4().hex[:8]}.example.test/"
        self.audience = audience
        self.kid = f"compat-{uuid.uuid4().hex[:8]}"
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.id: str | None = None

    def jwks(self) -> str:
        """The public JWKS document, as the JSON string the admin API takes."""
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self._key.public_key()))
        public.update({"kid": self.kid, "use": "sig", "alg": "ES256"})
        assert "d" not in public, "only the public key leaves the test"
        return json.dumps({"keys": [public]})

    def register(self, server: Server, app_id: str | None = None) -> dict:
        """`PUT /admin/v1/apps/{app}/idp` with the inline JWKS; returns the IdpInfo. `id` is
        the IdP id of the server's own app (another app that trusts this IdP gets its own)."""
        response = server.admin(
            "PUT",
            f"/apps/{app_id or server.app_id}/idp",
            json={
                "issuer": self.issuer,
                "audiences": [self.audience],
                "jwks": self.jwks(),
                "algorithms": ["ES256"],
                "groups_claim": GROUPS_CLAIM,
                "leeway_seconds": 0,
            },
        )
        assert response.status_code == 200, response.text
        info = response.json()
        if app_id is None or app_id == server.app_id:
            self.id = info["id"]
        return info

    def token(
        self,
        subject: str,
        *,
        groups: list[str] | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        lifetime: int = 600,
        **claims,
    ) -> str:
        """An ES256 JWT for `subject` (negative `lifetime`: already expired)."""
        now = int(time.time())
        payload = {
            "iss": issuer or self.issuer,
            "aud": audience or self.audience,
            "sub": subject,
            "iat": now - 5 if lifetime > 0 else now + lifetime - 60,
            "exp": now + lifetime,
            **claims,
        }
        if groups is not None:
            payload[GROUPS_CLAIM] = groups
        return jwt.encode(payload, self._key, algorithm="ES256", headers={"kid": self.kid})

    def user_api(
        self,
        server: Server,
        method: str,
        path: str,
        token: str,
        app_id: str | None = None,
        **kwargs,
    ) -> httpx.Response:
        """The end-user API `/user/v1/apps/{app}{path}`, with `token` as the Bearer."""
        return httpx.request(
            method,
            f"{server.base_url}/user/v1/apps/{app_id or server.app_id}{path}",
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
            **kwargs,
        )

    def user_delegates(
        self, server: Server, token: str, grant_id: str, agent_id, app_id: str | None = None, **body
    ) -> dict:
        """An end user delegates a grant they hold to an agent (end-user API)."""
        response = self.user_api(
            server,
            "POST",
            f"/grants/{grant_id}/delegations",
            token,
            app_id=app_id,
            json={"agent_id": str(agent_id), **body},
        )
        assert response.status_code == 201, response.text
        return response.json()
