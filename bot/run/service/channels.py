"""Where an alert goes: a Slack/Discord-style webhook, or any chat service apprise knows (Telegram,
Discord, Slack, e-mail, ...). Each channel delivers one message or raises `Undelivered`; the sender in
`alerts.py` calls it from the channel's own thread, so a slow or dead service delays nobody.

Channel URLs carry tokens and passwords: a channel is named by its kind only ("webhook",
"apprise:tgram#1"), and every error text is scrubbed of the URL and of each piece of it before it is
logged. apprise's own log lines name hosts and, at debug level, whole URLs: they are kept off the
process's logs and only surface, scrubbed, as the reason of a failed delivery; the HTTP library's
debug lines (request paths) are dropped while apprise delivers.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from pydantic import SecretStr

from bot.core.config import ConfigError

CHAT_EXTRA_HINT = "pip install 'soxbot[chat]'"


class Undelivered(Exception):
    """A delivery failed; `retry` says whether trying again may help. The text is already scrubbed."""

    def __init__(self, why: str, retry: bool = True) -> None:
        super().__init__(why)
        self.retry = retry


class Channel(Protocol):
    name: str  # safe to log: never the URL

    def deliver(self, title: str, text: str) -> None: ...

    def scrub(self, msg: str) -> str: ...


def _reveal(url: SecretStr | str) -> str:
    return url.get_secret_value() if isinstance(url, SecretStr) else url


def secret_parts(url: str) -> list[str]:
    """The URL and every piece of it long enough to be a token, user or password, longest first."""
    rest = url.split("://", 1)[-1]
    parts = {url, rest}
    for piece in re.split(r"[/:@?&=#,;+]+", rest):
        for p in (piece, urllib.parse.unquote(piece)):
            if len(p) >= 4:
                parts.add(p)
    return sorted(parts, key=len, reverse=True)


class _Scrubber:
    def __init__(self, urls: Iterable[str]) -> None:
        self._parts = sorted({p for u in urls for p in secret_parts(u)}, key=len, reverse=True)

    def __call__(self, msg: str) -> str:
        for p in self._parts:
            msg = msg.replace(p, "<secret>")
        return msg


class WebhookChannel:
    """POST {"text": ..., "content": ...} (Slack reads "text", Discord "content") with a timeout."""

    name = "webhook"

    def __init__(self, url: SecretStr | str, timeout: float = 5.0) -> None:
        self._url = _reveal(url)
        self.timeout = timeout
        self.scrub = _Scrubber([self._url])

    def deliver(self, title: str, text: str) -> None:
        body = json.dumps({"text": f"[{title}] {text}", "content": f"[{title}] {text}"}).encode()
        req = urllib.request.Request(
            self._url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": "soxbot-alerts"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:  # 429 and 5xx may pass; another 4xx refuses this message
            raise Undelivered(f"HTTP {exc.code}", retry=exc.code == 429 or exc.code >= 500) from None
        except Exception as exc:  # timeouts, refused connections, DNS
            raise Undelivered(self.scrub(f"{type(exc).__name__}: {exc}")) from None


class _AppriseLog(logging.Handler):
    """Collects apprise's warnings for the delivery under way, so a channel can tell why it failed.
    A context variable, not the thread, marks the delivery: apprise may notify from its own pool
    threads, and it carries the caller's context there."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._lines: ContextVar[list[str] | None] = ContextVar("soxbot_apprise_lines", default=None)

    def emit(self, record: logging.LogRecord) -> None:
        lines = self._lines.get()
        if lines is not None:
            try:
                lines.append(record.getMessage())
            except Exception:  # a record that cannot format: keep going
                lines.append(record.levelname)

    def during_delivery(self) -> bool:
        return self._lines.get() is not None

    @contextmanager
    def capture(self) -> Iterator[list[str]]:
        lines: list[str] = []
        token = self._lines.set(lines)
        try:
            yield lines
        finally:
            self._lines.reset(token)


# The HTTP library under apprise logs request paths (tokens) at debug level: while an apprise delivery
# is under way, its records are dropped whatever level the process logs at.
_HTTP_LOGGERS = ("urllib3", "urllib3.connectionpool", "urllib3.connection", "urllib3.poolmanager",
                 "urllib3.response", "urllib3.util.retry", "requests")  # fmt: skip


_apprise_log: _AppriseLog | None = None
_apprise_lock = threading.Lock()


def _quiet_apprise() -> _AppriseLog:
    """apprise's logger stops reaching the process's handlers (it names hosts, at debug whole URLs);
    its warnings go to our per-thread capture instead."""
    global _apprise_log
    with _apprise_lock:
        if _apprise_log is None:
            lg = logging.getLogger("apprise")
            _apprise_log = _AppriseLog()
            lg.addHandler(_apprise_log)
            lg.propagate = False
            lg.setLevel(logging.WARNING)
            during = _apprise_log.during_delivery
            for name in _HTTP_LOGGERS:
                logging.getLogger(name).addFilter(lambda _record: not during())
        return _apprise_log


def import_apprise() -> Any:
    """apprise, or a ConfigError saying how to install it (it is the optional `chat` extra)."""
    try:
        import apprise
    except ImportError:
        raise ConfigError(
            f"[alerts] apprise_urls is set but apprise is not installed. Fix: {CHAT_EXTRA_HINT} "
            "(or remove apprise_urls)."
        ) from None
    return apprise


def _asset(apprise: Any) -> Any:
    """Deliver on the caller's thread (the channel's daemon thread), never on apprise's thread pool:
    the interpreter waits for pool threads at exit, so a hung service would hold a stop up. apprise 2
    also runs a service with a deadline (`service_timeout`) on its pool: off; the URL's own connect
    and read timeouts (cto, rto; 4 s by default) bound a delivery."""
    kw: dict[str, Any] = {"async_mode": False}
    if hasattr(apprise.AppriseAsset, "_service_timeout"):
        kw["service_timeout"] = 0
    return apprise.AppriseAsset(**kw)


class AppriseChannel:
    """One apprise URL (e.g. tgram://TOKEN/CHAT, discord://ID/TOKEN, mailtos://user:pass@host)."""

    def __init__(self, url: SecretStr | str, index: int = 0) -> None:
        apprise = import_apprise()
        raw = _reveal(url).strip()
        scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
        self.name = f"apprise:{scheme or '?'}#{index}"
        self.scrub = _Scrubber([raw])
        self._log = _quiet_apprise()
        self._apprise = apprise.Apprise(asset=_asset(apprise))
        with self._log.capture():  # apprise names a URL it cannot parse: keep that line to ourselves
            ok = self._apprise.add(raw)
        if not ok:
            what = f"scheme {scheme!r}" if scheme else "no scheme://"
            raise ConfigError(
                f"[alerts] apprise_urls[{index}]: apprise does not understand this URL ({what}). "
                "Fix: write it as apprise's list of services shows (e.g. tgram://bottoken/chatid)."
            )

    def deliver(self, title: str, text: str) -> None:
        with self._log.capture() as lines:
            try:
                ok = bool(self._apprise.notify(body=text, title=title))
            except Exception as exc:
                raise Undelivered(self.scrub(f"{type(exc).__name__}: {exc}")) from None
        if not ok:
            raise Undelivered(self.scrub("; ".join(lines[-2:]) or "apprise reported a failure"))


def chat_channels(apprise_urls: Iterable[SecretStr | str]) -> list[AppriseChannel]:
    """One channel per configured apprise URL; a ConfigError when apprise is missing or a URL is not
    one it knows (at start, before the bot trades)."""
    urls = [(i, u) for i, u in enumerate(apprise_urls) if _reveal(u).strip()]
    if urls:
        import_apprise()
    return [AppriseChannel(u, i) for i, u in urls]
