"""`create_app`: the FastAPI application of the web workspace, and `serve`, which runs it with uvicorn."""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from medcoder.audit.store import AuditError
from medcoder.errors import MedcoderError, StorageError, UnknownCodeError
from medcoder.notetext import NoteError
from medcoder.session import SessionError
from medcoder.web import api, pages
from medcoder.web.security import Guard
from medcoder.web.workspace import Conflict, NotFound, Workspace

logger = logging.getLogger(__name__)

_STATUS: list[tuple[type[Exception], int]] = [
    (NotFound, 404),
    (AuditError, 404),
    (Conflict, 409),
    (NoteError, 422),
    (SessionError, 422),
    (UnknownCodeError, 422),
    (StorageError, 503),
    (MedcoderError, 400),
]


def create_app(workspace: Workspace, guard: Guard | None = None) -> FastAPI:
    """The workspace's pages and JSON API over one Workspace; `guard` holds the token and the CSRF key."""
    # deferred: medcoder's version only for the API description
    from importlib.metadata import version

    app = FastAPI(
        title="medcoder workspace",
        version=version("medcoder"),
        docs_url=None,
        redoc_url=None,
        description="Review computer-assisted ICD-10-CM and ATC codes: the same operations as "
        "medcoder.session.Session and medcoder.web.Workspace.",
    )
    app.state.workspace = workspace
    app.state.guard = guard or Guard()
    app.middleware("http")(app.state.guard)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=str(resources.files("medcoder.web") / "static")), name="static")

    async def medcoder_error(request: Request, exc: Exception) -> Response:
        status = next(code for cls, code in _STATUS if isinstance(exc, cls))
        message = str(exc)
        if isinstance(exc, StorageError):
            logger.error("storage: %s", message)
        if request.url.path.startswith("/api/"):
            extra = {"version": exc.version} if isinstance(exc, Conflict) else {}
            return JSONResponse({"detail": message, **extra}, status_code=status)
        return pages.render(request, "error.html", status_code=status, status=status, message=message)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return pages.render(
            request, "error.html", status_code=exc.status_code, status=exc.status_code, message=str(exc.detail)
        )

    app.add_exception_handler(MedcoderError, medcoder_error)
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
    return app


def serve(
    workspace: Workspace, host: str = "127.0.0.1", port: int = 8000, guard: Guard | None = None, **uvicorn_options: Any
) -> None:
    """Run the workspace until interrupted. uvicorn's access log is off: the guard logs each request as
    method, route and status, without its query string."""
    import uvicorn  # deferred: the server only when serving

    uvicorn.run(
        create_app(workspace, guard), host=host, port=port, access_log=False, log_level="warning", **uvicorn_options
    )
