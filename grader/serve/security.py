"""Who may use the grading app, and what a page may do in the browser.

- **Token** (as Jupyter's): the URL printed at start carries ``?token=...``; opening it sets a session
  cookie (HttpOnly, SameSite=Strict) and redirects to the same URL without the token. Scripts may
  send ``Authorization: token ...`` instead. Without either, every page answers 403.
- **CSRF**: every POST carries a token derived from the session (HMAC), as a form field ``csrf`` or a
  header ``X-CSRF-Token``; a POST whose ``Origin`` is not this server is refused as well.
- **Headers**: a Content-Security-Policy on every response (scripts and styles only from this
  server, no inline script, nothing fetched elsewhere; the reports keep their own stricter one),
  ``Referrer-Policy: same-origin`` (a POST then carries its real ``Origin``), ``nosniff``, no framing, no
  caching of pages.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "grader_session"
NAME_COOKIE = "grader_ta"
APP_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
           "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'"
SUMMARY_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
               "frame-ancestors 'none'")
MAX_NAME = 60


@dataclass
class Keys:
    """The server's token (shown to the TA) and its secret (signs cookies and CSRF tokens; never shown)."""

    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def sign(self, value: str) -> str:
        return hmac.new(self.secret, value.encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> str:
        session = secrets.token_urlsafe(18)
        return f"{session}.{self.sign('session:' + session)}"

    def session(self, cookie: str | None) -> str | None:
        """The session id of a valid session cookie, else None."""
        if not cookie or "." not in cookie:
            return None
        session, signature = cookie.rsplit(".", 1)
        return session if hmac.compare_digest(signature, self.sign("session:" + session)) else None

    def csrf(self, session: str) -> str:
        return self.sign("csrf:" + session)

    def token_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given), self.token)


def session_of(connection: HTTPConnection, keys: Keys) -> str | None:
    """The request's session: its cookie, or "token" for a request that sent the token itself."""
    authorization = connection.headers.get("authorization", "")
    if authorization.lower().startswith("token ") and keys.token_ok(authorization[6:].strip()):
        return "token"
    return keys.session(connection.cookies.get(SESSION_COOKIE))


def same_origin(connection: HTTPConnection) -> bool:
    origin = connection.headers.get("origin")
    if origin is None:  # not a browser's cross-site request (browsers send Origin with every POST)
        return True
    host = connection.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def clean_name(name: str) -> str:
    """A TA's name as it is kept: printable, one line, at most MAX_NAME characters."""
    return " ".join("".join(ch for ch in name if ch.isprintable()).split())[:MAX_NAME]


def name_of(connection: HTTPConnection) -> str:
    return clean_name(unquote(connection.cookies.get(NAME_COOKIE, "")))


def name_cookie(name: str) -> str:
    return quote(clean_name(name), safe="")


class SecurityHeaders:
    """Adds the security headers to every response (a route may set its own Content-Security-Policy)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", APP_CSP)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, with_headers)
