"""The request guard: one pure ASGI middleware in front of the whole app.

It decides before FastAPI reads or validates a body, in this order:

1. ``Host`` must name this server (``Settings.trusted_hosts``: the loopback names unless
   ``INITLAB_ALLOWED_HOSTS`` says otherwise) or be an IP address, else 400. A DNS-rebinding page
   (evil.example resolving to 127.0.0.1) sends its own name as Host, so it can neither read nor
   write; an address cannot be rebound.
2. The method: ``OPTIONS`` answers 204 with the methods the path really takes (a CORS preflight
   from a configured origin goes on to the CORS middleware); a method the path does not take is a
   405 whose ``Allow`` lists every method of the path, not only those of its first route.
3. A write (any method but GET, HEAD, OPTIONS) from another origin is refused with 403: an
   ``Origin`` that is neither this server's own (by Host) nor listed in ``INITLAB_CORS_ORIGINS``,
   or ``Sec-Fetch-Site: cross-site | same-site`` (another port of localhost is same-site). A write
   without either header (curl, the CLI) is not a browser's and goes on.
4. With ``INITLAB_API_TOKEN`` set, every write under /api/ (and every read there too with
   ``INITLAB_READ_REQUIRES_TOKEN``) needs ``Authorization: Bearer <token>``, compared in constant
   time, else 401: an anonymous client learns nothing about what a valid body looks like.
5. A write under /api/ that carries anything must carry ``Content-Type: application/json`` (415
   otherwise): an HTML form or a ``no-cors`` fetch can only send form or text types (even an empty
   form sends one). A write without a body and without a content type (cancel, retry: the OpenAPI
   schema gives them no body) goes on.
6. A body longer than ``INITLAB_MAX_BODY_BYTES`` is a 413, before anything parses it: at once by
   its ``Content-Length``, or, sent chunked, once that many bytes have come (the guard reads such
   a body itself, up to the limit, and hands it on).

Every response carries a Content-Security-Policy (scripts only from this server: the pages have
no inline script; inline styles are allowed because Plotly injects its own ``<style>`` rules),
``X-Frame-Options: DENY`` / ``frame-ancestors 'none'``, ``X-Content-Type-Options: nosniff`` and
``Referrer-Policy: same-origin``; a route may set its own CSP (the API docs page does).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from urllib.parse import urlsplit

from fastapi.routing import iter_route_contexts
from starlette.routing import Match

from app.settings import get_settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Health probes of an orchestrator may reach the process by any address; the answer carries nothing.
HOST_EXEMPT_PATHS = frozenset({"/healthz"})
DEFAULT_PORTS = {"http": 80, "https": 443}

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",  # plotly.js adds <style> rules and style attributes at run time
    "img-src 'self' data: blob:",  # the favicon is data:, Plotly's PNG download a data:/blob: image
    "font-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


def _headers(scope) -> dict[str, str]:
    """Request headers by lower-case name (the first of repeated ones)."""
    found: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


def _bearer(headers: dict[str, str]) -> str | None:
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def token_matches(provided: str | None, expected: str) -> bool:
    # compare_digest takes the same time whatever prefix matches.
    return provided is not None and hmac.compare_digest(provided.encode(), expected.encode())


def host_name(host: str) -> str:
    """The name in a Host header, without its port: "[::1]:8000" -> "::1", "LocalHost:80" -> "localhost"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(name: str, trusted: frozenset[str]) -> bool:
    """A name in the list, or an IP address: a browser sends an address as Host only when it was asked
    for that address, and no DNS answer can rebind it (Vite allows them alike)."""
    if "*" in trusted or name in trusted:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _host_port(host: str, scheme: str) -> tuple[str, int | None]:
    try:
        parts = urlsplit(f"{scheme}://{host}")
        return (parts.hostname or "", parts.port or DEFAULT_PORTS.get(scheme))
    except ValueError:  # a port that is not a number
        return ("", None)


def same_origin(origin: str, host: str) -> bool:
    """Whether a browser's ``Origin`` is the server it sent the request to (named by ``Host``).

    The scheme is the Origin's own: behind a TLS proxy the server itself may see plain http.
    """
    try:
        parts = urlsplit(origin)
        origin_port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return False
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path or parts.query:
        return False
    return (parts.hostname, origin_port) == _host_port(host, parts.scheme)


def _route_methods(app, scope) -> tuple[bool, set[str] | None]:
    """(a route takes this method at this path, every method the path's routes take).

    None instead of the methods when the path is not routed by method (a static mount) or by nothing.
    """
    methods: set[str] = set()
    taken = False
    for route in iter_route_contexts(getattr(app, "routes", ())):  # routes of included routers too
        match, _ = route.matches(scope)
        if match is Match.NONE:
            continue
        route_methods = getattr(route, "methods", None)
        if route_methods is None:
            return True, None
        methods |= set(route_methods)
        taken = taken or match is Match.FULL
    return taken, (methods or None)


def _too_large(limit: int) -> tuple[int, str, list]:
    return 413, f"request body larger than {limit} bytes (INITLAB_MAX_BODY_BYTES)", []


async def _bounded(scope, receive, limit: int):
    """(receive, None) for a body within ``limit`` bytes, else (receive, a 413 refusal).

    A declared length is checked at once. A chunked body is read here, at most ``limit`` + 1
    bytes of it, and replayed to the app: memory stays bounded whatever a client sends.
    """
    headers = _headers(scope)
    length = headers.get("content-length", "").strip()
    if length.isdigit():
        return receive, (_too_large(limit) if int(length) > limit else None)
    if "transfer-encoding" not in headers:
        return receive, None
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
        if size > limit:
            return receive, _too_large(limit)
    replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

    async def replayed():
        return replay.pop() if replay else await receive()
    return replayed, None


class RequestGuard:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []),
                                                  *(pair for pair in SECURITY_HEADERS if pair[0] not in present)]}
            await send(message)

        refusal = self._refusal(scope)
        if refusal is None:
            receive, refusal = await _bounded(scope, receive, get_settings().max_body_bytes)
        if refusal is None:
            await self.app(scope, receive, send_with_headers)
            return
        status, detail, extra = refusal
        body = b"" if detail is None else json.dumps({"detail": detail}).encode()
        headers = [*([(b"content-type", b"application/json")] if body else []),
                   (b"content-length", str(len(body)).encode()), *extra]
        await send_with_headers({"type": "http.response.start", "status": status, "headers": headers})
        await send_with_headers({"type": "http.response.body", "body": body})

    def _refusal(self, scope) -> tuple[int, str | None, list[tuple[bytes, bytes]]] | None:
        """(status, detail, extra headers) of a request refused here, or None to let it through."""
        settings = get_settings()
        headers = _headers(scope)
        path, method = scope["path"], scope["method"].upper()
        host = headers.get("host", "")
        trusted = settings.trusted_hosts
        if path not in HOST_EXEMPT_PATHS and not host_allowed(host_name(host), trusted):
            return 400, (f"invalid Host header {host_name(host)!r}: this server answers to IP addresses and to "
                         f"{', '.join(sorted(trusted))} (INITLAB_ALLOWED_HOSTS)"), []

        origin = headers.get("origin")
        cors_origins = {allowed.rstrip("/") for allowed in settings.cors_origins}
        listed_origin = origin is not None and origin.rstrip("/") in cors_origins
        if method == "OPTIONS" and listed_origin and "access-control-request-method" in headers:
            return None  # a CORS preflight: the CORS middleware answers it
        taken, methods = _route_methods(scope.get("app"), scope)
        if methods is not None:
            allow = ", ".join(sorted(methods | {"OPTIONS"})).encode()
            if method == "OPTIONS":
                return 204, None, [(b"allow", allow)]
            if not taken:
                return 405, "Method Not Allowed", [(b"allow", allow)]

        if method not in SAFE_METHODS and not listed_origin:
            fetch_site = headers.get("sec-fetch-site", "").lower()
            if origin is not None and not same_origin(origin, host):
                return 403, f"cross-origin write refused: Origin {origin} is not this server (INITLAB_CORS_ORIGINS)", []
            if fetch_site in ("cross-site", "same-site"):
                return 403, f"cross-origin write refused (Sec-Fetch-Site: {fetch_site})", []

        if not path.startswith("/api/"):
            return None
        expected = settings.api_token.get_secret_value() if settings.api_token else ""
        needs_token = method not in SAFE_METHODS or (settings.read_requires_token and method != "OPTIONS")
        if expected and needs_token and not token_matches(_bearer(headers), expected):
            return 401, "missing or invalid bearer token (Authorization: Bearer <INITLAB_API_TOKEN>)", [
                (b"www-authenticate", b"Bearer")]
        if method not in SAFE_METHODS and taken:
            media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            # A write without a body (cancel, retry) needs no content type; anything it does send is JSON.
            empty = "transfer-encoding" not in headers and headers.get("content-length", "0").strip() == "0"
            if media_type != "application/json" and (media_type or not empty):
                return 415, (f"a write must be sent as Content-Type: application/json "
                             f"(got: {media_type or 'a body without a content type'})"), [(b"accept", b"application/json")]
        return None
