"""Fail-closed access control for the dashboard.

- **Bind address.** Loopback by default. Any other address needs an access token
  (:func:`check_bind` refuses to start without one).
- **Access token.** When set, every request (pages, API, static files) must carry it:
  ``Authorization: Bearer TOKEN``, the cookie set after the first visit, or
  ``?token=TOKEN`` on a GET, which sets that cookie and redirects to the same URL
  without the token. Anything else is 401.
- **Host header.** On a loopback bind without a token, only loopback host names are
  accepted, so a web page cannot reach the dashboard through DNS rebinding.
- **CSRF.** Every POST must carry the server's CSRF token (a form field or the
  ``X-CSRF-Token`` header) and must not come from another origin.
- **Headers.** A strict Content-Security-Policy (scripts, styles, fonts and data from
  this server only; no inline script), ``nosniff``, no framing, no referrer.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

from theseus.errors import TheseusError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("localhost",)
TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~-]{16,}")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; font-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses."""
    name = host.strip("[]")
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    """A random access or CSRF token."""
    return secrets.token_urlsafe(24)


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve on a non-loopback address without an access token."""
    if not is_loopback(host) and not token:
        raise TheseusError(
            f"--host {host} exposes the dashboard beyond this machine: give --token TOKEN "
            "(or --generate-token) so every request must carry it"
        )
    if token is not None and not TOKEN_CHARS.fullmatch(token):
        raise TheseusError("--token must be at least 16 characters of A-Z a-z 0-9 . _ ~ -")


def same(a: str | None, b: str) -> bool:
    """Constant-time comparison of a received token with the expected one."""
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[: host_header.find("]") + 1]
    return host_header.rsplit(":", 1)[0]


async def _plain(send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = (text + "\n").encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + HEADERS + (extra or [])})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: Host check, access token, security headers (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, token: str | None, port: int) -> None:
        self.app = app
        self.token = token
        self.cookie = f"theseus_token_{port}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.token is None:
            host = _header(scope, b"host") or ""
            if not is_loopback(_host_name(host)):
                await _plain(send, 403, "forbidden: this dashboard answers only to a loopback host name")
                return
        else:
            verdict = self._authorize(scope)
            if verdict == "redirect":
                query = urlencode([(k, v) for k, v in parse_qsl(_query(scope)) if k != "token"])
                location = scope.get("root_path", "") + scope["path"] + (f"?{query}" if query else "")
                cookie = f"{self.cookie}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                await _plain(send, 303, "see other", [(b"location", location.encode()),
                                                      (b"set-cookie", cookie.encode())])
                return
            if verdict != "ok":
                await _plain(send, 401, "unauthorized: open the URL that `theseus web` printed (it carries the token)")
                return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)

    def _authorize(self, scope: Scope) -> str:
        assert self.token is not None
        auth = _header(scope, b"authorization") or ""
        if auth.lower().startswith("bearer ") and same(auth[7:].strip(), self.token):
            return "ok"
        cookie = SimpleCookie()
        try:
            cookie.load(_header(scope, b"cookie") or "")
        except Exception:  # a malformed cookie header is just no cookie
            cookie = SimpleCookie()
        if self.cookie in cookie and same(cookie[self.cookie].value, self.token):
            return "ok"
        given = [v for k, v in parse_qsl(_query(scope)) if k == "token"]
        if given and scope.get("method") == "GET" and same(given[0], self.token):
            return "redirect"
        return "denied"


def _query(scope: Scope) -> str:
    return bytes(scope.get("query_string", b"")).decode("latin-1")


class Csrf:
    """The CSRF token of this server and the check every POST goes through."""

    FIELD = "csrf"
    HEADER = "x-csrf-token"

    def __init__(self) -> None:
        self.token = new_token()

    def valid(self, given: str | None, origin: str | None, host: str | None) -> bool:
        """True when ``given`` is this server's token and the request did not come from another origin."""
        if origin is not None and (host is None or origin.split("://", 1)[-1] != host):
            return False
        return same(given, self.token)
