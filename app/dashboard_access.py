"""Who may look at the dashboard, and who may cancel runs from it.

On a loopback address without a read token, anyone who reaches the port may look (only
this machine can). Bound beyond loopback, or with a read token set, viewing needs a token:
the read token (``CHUNKSUM_DASHBOARD_READ_TOKEN``) or the cancel token
(``CHUNKSUM_DASHBOARD_TOKEN``), unless the dashboard was started with ``--public``; beyond
loopback with neither token nor ``--public``, it refuses to start.

A request shows its token as ``Authorization: Bearer <token>`` (scripts, Prometheus), or
as the cookie the sign-in form sets (browsers: an ``EventSource`` can't send headers). Any
other request gets 401 and no data: the page, the API, the event stream, and ``/metrics``
unless ``--public-metrics`` opens that alone. Cancelling always needs the cancel token as a
bearer token, never the cookie, so no other site can make a browser cancel.
"""

import hashlib
import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import SettingsError
from app.settings import Settings

COOKIE = "chunksum-dashboard"
SIGN_IN_PATH = "/sign-in"
METRICS_PATH = "/metrics"
MAX_SIGN_IN_BYTES = 4096  # a sign-in form's body: room for any token
SIGN_IN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>chunksum: sign in</title><link rel="icon" href="data:,"></head>
<body style="font: 14px system-ui, sans-serif; margin: 3rem auto; max-width: 26rem">
<h1 style="font-size: 1.2rem">chunksum dashboard</h1><p>{note}</p>
<form method="post" action="/sign-in"><label>Token <input name="token" type="password"
autofocus required></label> <button>Sign in</button></form></body></html>"""


@dataclass(frozen=True, slots=True)
class Access:
    """The tokens a dashboard asks for; no view tokens: anyone may view."""

    view_tokens: tuple[str, ...] = field(default=(), repr=False)
    cancel_token: str | None = field(default=None, repr=False)
    open_metrics: bool = False  # /metrics needs no token, whatever the rest needs

    @classmethod
    def for_host(
        cls, settings: Settings, host: str, *, public: bool, public_metrics: bool = False
    ) -> "Access":
        """Return the access rules of a dashboard served on ``host``; raise SettingsError
        if it is bound beyond loopback with no token to ask for and not ``public``."""
        read, cancel = settings.dashboard_read_token, settings.dashboard_token
        needed = not public and (read is not None or not _is_loopback(host))
        tokens = tuple(token for token in (read, cancel) if token is not None) if needed else ()
        if needed and not tokens:
            raise SettingsError(
                f"the dashboard on {host!r} would show every run to anyone who reaches it: set "
                "CHUNKSUM_DASHBOARD_READ_TOKEN (and give it to the people who may look), or "
                "pass --public to serve it without a token, or bind it to 127.0.0.1"
            )
        return cls(view_tokens=tokens, cancel_token=cancel, open_metrics=public_metrics)

    @property
    def guarded(self) -> bool:
        """Return whether viewing needs a token."""
        return bool(self.view_tokens)

    def may_view(self, request: Request) -> bool:
        """Return whether the request may see the dashboard's data."""
        if not self.guarded:
            return True
        cookie = request.cookies.get(COOKIE, "")
        return _bearer_matches(request, self.view_tokens) or any(
            hmac.compare_digest(cookie.encode(), _cookie_value(token).encode())
            for token in self.view_tokens
        )

    def may_cancel(self, request: Request) -> bool:
        """Return whether the request carries the cancel token as a bearer token."""
        return self.cancel_token is not None and _bearer_matches(request, [self.cancel_token])

    async def sign_in(self, request: Request) -> Response:
        """Set the viewing cookie for a right token posted by the sign-in form."""
        body = b""
        async for piece in request.stream():  # read no more than a form with a token
            body += piece
            if len(body) > MAX_SIGN_IN_BYTES:
                note = f"A sign-in form holds a token, at most {MAX_SIGN_IN_BYTES:,} bytes."
                return HTMLResponse(SIGN_IN_PAGE.format(note=note), status_code=413)
        form = parse_qs(body.decode(errors="replace"))
        token = form.get("token", [""])[0]
        for candidate in self.view_tokens:
            if hmac.compare_digest(token.encode(), candidate.encode()):
                reply = RedirectResponse("/", status_code=303)
                secure = request.url.scheme == "https"
                reply.set_cookie(
                    COOKIE,
                    _cookie_value(candidate),
                    httponly=True,
                    samesite="strict",
                    secure=secure,
                )
                return reply
        return HTMLResponse(SIGN_IN_PAGE.format(note="That token is not right."), status_code=401)


class RequireViewer:
    """ASGI middleware: answer 401, with no data, to requests that may not view."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on if it may view (or signs in); else refuse it."""
        if scope["type"] != "http" or self._lets_through(Request(scope)):
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/":
            note = "This dashboard needs a token to view (CHUNKSUM_DASHBOARD_READ_TOKEN)."
            refusal: Response = HTMLResponse(SIGN_IN_PAGE.format(note=note), status_code=401)
        else:
            error = {"error": "a valid token is needed: Authorization: Bearer <token>"}
            refusal = JSONResponse(error, status_code=401)
        refusal.headers["WWW-Authenticate"] = 'Bearer realm="chunksum"'
        await refusal(scope, receive, send)

    def _lets_through(self, request: Request) -> bool:
        path = request.url.path
        if path == SIGN_IN_PATH or (path == METRICS_PATH and self.access.open_metrics):
            return True
        return self.access.may_view(request)


def _bearer_matches(request: Request, tokens: Sequence[str]) -> bool:
    given = request.headers.get("authorization", "").encode()
    return any(hmac.compare_digest(given, f"Bearer {token}".encode()) for token in tokens)


def _cookie_value(token: str) -> str:
    """Return the cookie that stands for ``token``: derived from it, so that the browser
    never stores the token itself."""
    return hmac.new(token.encode(), b"chunksum dashboard viewer", hashlib.sha256).hexdigest()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False
