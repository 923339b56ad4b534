"""The health server's rule, for the dashboard: a token when one is set (required off loopback).

Accepted as `Authorization: Bearer <token>` or `?token=<token>`, like /healthz; a page opened with
`?token=` also gets it as an HttpOnly, same-site cookie so the browser's next requests (links, htmx
polls, the chart's JSON) carry it without the token in every URL.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "soxbot_token"


class TokenMiddleware:
    def __init__(self, app: ASGIApp, token: str | None = None) -> None:
        self.app = app
        self.want = token.encode() if token else None

    def _ok(self, given: str) -> bool:
        return bool(given) and self.want is not None and hmac.compare_digest(given.encode(), self.want)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.want is None:
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        auth = headers.get("authorization", "")
        query = parse_qs(scope.get("query_string", b"").decode()).get("token", [""])[0]
        cookie = SimpleCookie(headers.get("cookie", "")).get(COOKIE)
        if self._ok(auth[7:].strip() if auth.startswith("Bearer ") else "") or (
            cookie is not None and self._ok(cookie.value)
        ):
            await self.app(scope, receive, send)
            return
        if not self._ok(query):
            body = b'{"error": "token required: ?token=... or Authorization: Bearer ..."}\n'
            await send({"type": "http.response.start", "status": 401, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="soxbot"')]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return
        value = query

        async def with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                c = f"{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/".encode()
                message["headers"] = [*message.get("headers", []), (b"set-cookie", c)]
            await send(message)

        await self.app(scope, receive, with_cookie)
