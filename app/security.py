"""Bearer-token guard for writes (and, optionally, reads).

A pure ASGI middleware, so a request without the token is refused before
FastAPI reads or validates its body: an anonymous client learns nothing about
what a valid body looks like, and cannot make the server parse large payloads.
"""

from __future__ import annotations

import hmac
import json

from app.settings import get_settings

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            return credentials.strip() if scheme.lower() == "bearer" else None
    return None


def token_matches(provided: str | None, expected: str) -> bool:
    # compare_digest takes the same time whatever prefix matches.
    return provided is not None and hmac.compare_digest(provided.encode(), expected.encode())


class TokenGuard:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and self._refused(scope):
            body = json.dumps({"detail": "missing or invalid bearer token (Authorization: Bearer <INITLAB_API_TOKEN>)"})
            await send({"type": "http.response.start", "status": 401, "headers": [
                (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
            await send({"type": "http.response.body", "body": body.encode()})
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _refused(scope) -> bool:
        settings = get_settings()
        expected = settings.api_token.get_secret_value() if settings.api_token else ""
        if not expected or not scope["path"].startswith("/api/"):
            return False
        if scope["method"] in SAFE_METHODS and not settings.read_requires_token:
            return False
        if scope["method"] == "OPTIONS":
            return False  # CORS preflight carries no credentials
        return not token_matches(_bearer(scope.get("headers", [])), expected)
