"""What keeps the workspace safe by default: who may connect, which requests may change anything, what
the browser may run, and what the server log may hold.

- Bound to loopback with no token, only requests addressed to a loopback name are served (a web page
  cannot reach the server by DNS rebinding). Any other binding needs a token: `?token=` once (it
  becomes an HttpOnly, SameSite=Strict cookie and leaves the address bar), a cookie, or
  `Authorization: Bearer`.
- A request that changes something must come from this origin: a cross-origin `Origin` is refused, and
  a form post must carry the page's CSRF token (JSON posts cannot be sent cross-site without a CORS
  preflight, which this server never grants; the pages send the token with them anyway).
- Every page is sent with a Content-Security-Policy that runs only the package's own script: no inline
  script, no handler attribute, nothing from elsewhere.
- The log line of a request is its method, route, status and time: no query string, no body.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from medcoder.llm.serving import is_loopback

logger = logging.getLogger(__name__)

TOKEN_COOKIE = "medcoder_token"
CSRF_FIELD, CSRF_HEADER = "csrf_token", "x-csrf-token"
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def _host_name(host_header: str) -> str:
    """The name in a Host header, without its port (`[::1]:8000` -> `::1`)."""
    if host_header.startswith("["):
        return host_header[1:].split("]")[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


@dataclass
class Guard:
    """The workspace's access rules: the token (None: loopback only) and the key CSRF tokens derive from."""

    token: str | None = None
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @property
    def csrf(self) -> str:
        """The CSRF token the pages carry; derived from a per-server secret, so a restart invalidates old pages."""
        return hmac.new(self.secret, b"medcoder-csrf", hashlib.sha256).hexdigest()

    def csrf_ok(self, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(str(value), self.csrf)

    def _token_ok(self, request: Request) -> bool:
        if self.token is None:
            return True
        auth = request.headers.get("authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else request.cookies.get(TOKEN_COOKIE, "")
        return bool(given) and hmac.compare_digest(given, self.token)

    async def __call__(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await self._dispatch(request, call_next)
        for k, v in _HEADERS.items():
            response.headers.setdefault(k, v)
        ms = (time.perf_counter() - start) * 1000
        response.headers["server-timing"] = f"app;dur={ms:.1f}"
        route = request.scope.get("route")
        logger.info("%s %s %d %.0f ms", request.method, getattr(route, "path", "(no route)"), response.status_code, ms)
        return response

    async def _dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if self.token is None and not is_loopback(_host_name(request.headers.get("host", ""))):
            return PlainTextResponse(
                "this workspace answers only on localhost (start it with a token to serve other hosts)", status_code=421
            )
        if self.token is not None and request.method == "GET" and "token" in request.query_params:
            if not hmac.compare_digest(request.query_params["token"], self.token):
                return PlainTextResponse("wrong token", status_code=401)
            response = RedirectResponse(request.url.remove_query_params("token"), status_code=303)
            response.set_cookie(
                TOKEN_COOKIE, self.token, httponly=True, samesite="strict", secure=request.url.scheme == "https"
            )
            return response
        if not self._token_ok(request):
            return PlainTextResponse(
                "this workspace needs its token: open the address `medcoder serve` printed "
                "(…/?token=…), or send Authorization: Bearer TOKEN",
                status_code=401,
            )
        if request.method in _UNSAFE:
            refusal = self._refuse_cross_site(request)
            if refusal is not None:
                return refusal
        return await call_next(request)

    def _refuse_cross_site(self, request: Request) -> Response | None:
        origin = request.headers.get("origin")
        if origin and origin != "null":
            o = urlsplit(origin)
            if o.netloc != request.headers.get("host", ""):
                return PlainTextResponse("cross-site request refused", status_code=403)
        elif origin == "null":
            return PlainTextResponse("cross-site request refused", status_code=403)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json" or self.csrf_ok(request.headers.get(CSRF_HEADER)):
            return None
        if kind in ("application/x-www-form-urlencoded", "multipart/form-data") and not request.url.path.startswith(
            "/api/"
        ):
            return None  # the pages' forms: their route checks the form's csrf_token field (it reads the body)
        return PlainTextResponse("missing CSRF token", status_code=403)


async def check_form_csrf(request: Request) -> None:
    """Route dependency for form posts: the form's csrf_token must be this server's."""
    from fastapi import HTTPException  # deferred: the security rules import without FastAPI

    guard: Guard = request.app.state.guard
    if guard.csrf_ok(request.headers.get(CSRF_HEADER)):
        return
    form = await request.form()
    if not guard.csrf_ok(str(form.get(CSRF_FIELD, ""))):
        raise HTTPException(status_code=403, detail="missing or stale CSRF token: reload the page and try again")


def token_url(host: str, port: int, token: str | None) -> str:
    """The address to print: the token in it once (the browser trades it for a cookie)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
