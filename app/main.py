"""create_app(): settings, routers, static files and error translation."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api import catalog, dashboard, diagnostics, exports, failures, health, pages, runs, studies, theory
from app.queue import QueueUnavailable
from app.security import TokenGuard
from app.settings import get_settings
from app.storage.db import StorageUnavailable


def _field_path(loc: tuple) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path")]
    return ".".join(parts) or "body"


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's own shape, plus a dotted "field" so a person (and the form) can
    # tell at a glance which field broke which rule.
    detail = [
        {"field": "body" if err.get("type") == "json_invalid" else _field_path(tuple(err.get("loc", ()))),
         "msg": err.get("msg", "") + (f": {err['ctx']['error']}" if err.get("type") == "json_invalid" and err.get("ctx") else ""), "type": err.get("type", ""),
         "loc": list(err.get("loc", ()))}
        for err in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    # FastAPI answers 400 for a body it cannot even decode (not UTF-8, say);
    # to a client that is one more malformed body: a 422 like the others.
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        return JSONResponse({"detail": [{"field": "body", "msg": "the body is not valid JSON (or not UTF-8)",
                                         "type": "json_invalid", "loc": ["body"]}]}, status_code=422)
    return await http_exception_handler(request, exc)


async def _storage_unavailable(_request: Request, exc: StorageUnavailable) -> JSONResponse:
    return JSONResponse({"detail": str(exc), "retry": True}, status_code=503, headers={"Retry-After": "5"})


async def _queue_unavailable(_request: Request, exc: QueueUnavailable) -> JSONResponse:
    return JSONResponse({"detail": f"{exc}; nothing is lost: the runs stay queued and are sent once the broker is back", "retry": True},
                        status_code=503, headers={"Retry-After": "5"})


def create_app() -> FastAPI:
    app = FastAPI(
        title="initlab",
        description="Measure how weight initialization shapes neural-network training.",
        version="0.1.0",
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(StorageUnavailable, _storage_unavailable)
    app.add_exception_handler(QueueUnavailable, _queue_unavailable)
    for module in (studies, runs, catalog, health, pages, dashboard, diagnostics, failures, exports, theory):
        app.include_router(module.router)
    pages.mount_static(app)
    settings = get_settings()
    if settings.cors_origins:  # closed unless configured
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["Authorization", "Content-Type", "Idempotency-Key"])
    app.add_middleware(TokenGuard)
    return app


app = create_app()
