"""The HTTP side of ``initlab submit``, ``export`` and ``delete`` (app/cli_client.py): one server's API.

Plain urllib (httpx is only a test dependency), so the client commands add nothing to what the
server's environment installs. Errors come back as exceptions the commands turn into one line:
ApiError (the server answered an error), Unreachable (no answer), BadUrl (--url is no http URL).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from app.settings import get_settings


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.body = status, body

    def message(self) -> str:
        detail = self.body.get("detail") if isinstance(self.body, dict) else self.body
        if self.status == 401:
            return "the server wants an API token: pass --token or set INITLAB_API_TOKEN"
        if isinstance(detail, list):  # a 422: one line per field
            return "\n".join(f"  {item.get('field', '?')}: {item.get('msg', item)}" if isinstance(item, dict) else f"  {item}"
                             for item in detail)
        return f"HTTP {self.status}: {detail}"


class Unreachable(Exception):
    pass


class BadUrl(ValueError):
    """--url is not an http(s) URL: the user's typo, said before anything is sent."""


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be the server's address, in one line with the fix; None when it can.

    urllib takes "localhost:8031" for a URL of scheme "localhost", and refuses it only when asked
    to send, in words that blame the server (or in a traceback).
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        rest = url.split("://", 1)[-1].lstrip("/")
        return f"--url {url}: not an http(s) URL; write http://{rest or 'HOST:PORT'}"
    try:
        parts.port
    except ValueError as exc:  # "http://localhost:80x1"
        return f"--url {url}: not an http(s) URL ({exc})"
    return None


class Client:
    """The API at ``url``, with the bearer token when there is one; BadUrl for a URL that is not http(s)."""

    def __init__(self, url: str | None, token: str | None) -> None:
        settings = get_settings()
        problem = url_problem(url) if url is not None else None
        if problem:
            raise BadUrl(problem)
        self.url = (url or f"http://127.0.0.1:{settings.port}").rstrip("/")
        secret = settings.api_token.get_secret_value() if settings.api_token else None
        self.token = token or secret

    def open(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 30):
        """The response (caller closes it); ApiError for an error status, Unreachable if unreachable."""
        sent = {"Accept": "application/json", **(headers or {})}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
        if method.upper() not in ("GET", "HEAD"):  # the server takes writes as JSON only (415 otherwise)
            sent["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=sent)
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                parsed: Any = json.loads(raw)
            except ValueError:
                parsed = raw.decode("utf-8", "replace")
            raise ApiError(exc.code, parsed) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(f"cannot reach {self.url} ({reason}); is `initlab up` running there?") from None

    def json(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        with self.open(method, path, body, headers) as response:
            return json.loads(response.read() or b"null")
