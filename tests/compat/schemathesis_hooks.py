"""Schemathesis hooks for test_schemathesis.py (loaded through `SCHEMATHESIS_HOOKS`).

With `ALTER_ST_SIGN=1`, every `/sdk/*` request that carries an `x-api-key` (the
`signedRequest` scheme, given with `-H x-api-key:…`) is signed with that key exactly as the
official client signs (protocol part 1 §3), over the bytes schemathesis actually sends, so the
generated input reaches the handlers instead of stopping at authentication. A case that leaves
the key out on purpose goes unsigned and must be refused.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import requests
import schemathesis

IDENTITY = (
    ("caller", "x-alter-caller"),
    ("caller-type", "x-alter-caller-type"),
    ("actor-id", "x-alter-actor-id"),
    ("actor-context", "x-alter-context"),
)


class Signed(requests.auth.AuthBase):
    """Signs a prepared request with the API key it carries."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        api_key = request.headers.get("x-api-key")
        if not api_key:
            return request
        signing_key = hmac.new(api_key.encode(), b"alter-signing-v1", hashlib.sha256).digest()
        url = urlsplit(request.url)
        target = unquote(url.path)
        if url.query:
            pairs = sorted(parse_qsl(url.query, keep_blank_values=True))
            target = f"{target}?{urlencode(pairs)}"
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        headers = request.headers
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16)
        digest = hashlib.sha256(body).hexdigest()
        lines = [
            request.method.upper(),
            target,
            timestamp,
            nonce,
            digest,
            headers.get("x-alter-scope-constraints", ""),
        ]
        if "x-alter-request-rule" in headers:
            lines.append(f"request-rule:{headers['x-alter-request-rule']}")
        v1 = "\n".join(lines)
        v2 = "\n".join(
            lines + [f"{label}:{headers[name]}" for label, name in IDENTITY if headers.get(name)]
        )
        signature = hmac.new(signing_key, v2.encode(), hashlib.sha256).hexdigest()
        headers["x-alter-timestamp"] = timestamp
        headers["x-alter-nonce"] = nonce
        headers["x-alter-content-sha256"] = digest
        headers["x-alter-signature"] = signature
        if v2 != v1:
            headers["x-alter-signature-v2"] = signature
        else:
            headers.pop("x-alter-signature-v2", None)
        return request


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    if os.environ.get("ALTER_ST_SIGN") == "1" and case.operation.path.startswith("/sdk/"):
        kwargs["auth"] = Signed()
