"""How errors reach a client: a 422 that names the field and the rule, a 503 that says retry."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.queue import QueueUnavailable
from app.storage.db import StorageUnavailable


def _field_path(loc: tuple) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's own shape, plus a dotted "field" so a person (and the form) can
    # tell at a glance which field broke which rule.
    detail = []
    for err in exc.errors():
        invalid_json = err.get("type") == "json_invalid"
        message = err.get("msg", "") + (f": {err['ctx']['error']}" if invalid_json and err.get("ctx") else "")
        detail.append({"field": "body" if invalid_json else _field_path(tuple(err.get("loc", ()))), "msg": message,
                       "type": err.get("type", ""), "loc": list(err.get("loc", ()))})
    return JSONResponse({"detail": detail}, status_code=422)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    # FastAPI answers 400 for a body it cannot even decode (not UTF-8, say);
    # to a client that is one more malformed body: a 422 like the others.
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        return JSONResponse({"detail": [{"field": "body", "msg": "the body is not valid JSON (or not UTF-8)",
                                         "type": "json_invalid", "loc": ["body"]}]}, status_code=422)
    if exc.status_code == 404 and _wants_a_page(request):
        from app.api.routes.pages import page_context, templates

        return templates.TemplateResponse(request, "404.html", page_context(
            page="404", message=f"There is no page at {request.url.path}."), status_code=404)
    return await http_exception_handler(request, exc)


def _wants_a_page(request: Request) -> bool:
    """A person's browser on a mistyped address gets the site's Not found page; API clients keep JSON."""
    path = request.url.path
    return (request.method in ("GET", "HEAD") and "text/html" in request.headers.get("accept", "")
            and not path.startswith(("/api/", "/static/", "/openapi")))


async def _storage_unavailable(_request: Request, exc: StorageUnavailable) -> JSONResponse:
    return JSONResponse({"detail": str(exc), "retry": True}, status_code=503, headers={"Retry-After": "5"})


async def _queue_unavailable(_request: Request, exc: QueueUnavailable) -> JSONResponse:
    return JSONResponse({"detail": f"{exc}; nothing stored is lost: queued runs are sent once the broker is back",
                         "retry": True}, status_code=503, headers={"Retry-After": "5"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(StorageUnavailable, _storage_unavailable)
    app.add_exception_handler(QueueUnavailable, _queue_unavailable)
