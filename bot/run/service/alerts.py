"""Tell the owner what the bot does: fills, stops, locks, errors and the daily summary, by webhook.

Off unless a webhook URL is set. Never in the way of trading: `send` only puts the message on a
bounded queue (a full queue drops it and counts the drop); one daemon thread posts, with a timeout
and a few retries on 429/5xx/network errors. The body carries the text as both "text" (Slack) and
"content" (Discord). The URL is a secret: it is never logged, and error messages are scrubbed of it.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from bot.core.log import get

EVENTS = ("fill", "stop", "lock", "error", "daily")
MAX_TEXT = 1900  # Discord's content limit is 2000 characters


@dataclass(frozen=True, slots=True)
class Alert:
    event: str
    text: str


class AlertSender:
    """`send(event, text) -> bool` never blocks; `close()` drains what it can within a timeout."""

    def __init__(
        self,
        webhook_url: SecretStr | str | None,
        events: Iterable[str] = EVENTS,
        *,
        queue_size: int = 100,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 1.0,
        prefix: str = "soxbot",
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        url = webhook_url.get_secret_value() if isinstance(webhook_url, SecretStr) else webhook_url
        self._url = url or None
        unknown = set(events) - set(EVENTS)
        if unknown:
            raise ValueError(f"unknown alert events {sorted(unknown)}; known: {', '.join(EVENTS)}")
        self.events = frozenset(events)
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.prefix = prefix
        self.on_outcome = on_outcome
        self.sent = self.dropped = self.failed = 0
        self._count_lock = threading.Lock()
        self._q: queue.Queue[Alert | None] = queue.Queue(maxsize=queue_size)
        self._closing = threading.Event()
        self._deadline = float("inf")
        self._thread: threading.Thread | None = None
        self.log = get("soxbot.alerts")
        if self._url is not None:
            self._thread = threading.Thread(target=self._worker, name="soxbot-alerts", daemon=True)
            self._thread.start()

    @classmethod
    def from_settings(cls, alerts: Any, **kw: Any) -> AlertSender:
        """From an `[alerts]` section (`bot.core.config.AlertsConfig`)."""
        return cls(alerts.webhook_url, alerts.events, **kw)

    @property
    def enabled(self) -> bool:
        return self._url is not None

    def __repr__(self) -> str:  # never show the URL
        return f"AlertSender(enabled={self.enabled}, events={sorted(self.events)})"

    # -- the caller's side -----------------------------------------------------------------
    def send(self, event: str, text: str) -> bool:
        """Queue an alert. False when alerts are off, the event is not wanted, or the queue is full."""
        if self._url is None or event not in self.events or self._closing.is_set():
            return False
        try:
            self._q.put_nowait(Alert(event, text))
        except queue.Full:
            self._count("dropped")
            return False
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking alerts and give the queued ones up to `timeout` seconds to go out."""
        deadline = time.monotonic() + timeout
        self._deadline = deadline
        self._closing.set()
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._q.put(None, timeout=timeout)
        self._thread.join(max(0.0, deadline - time.monotonic()))

    # -- the worker ------------------------------------------------------------------------
    def _count(self, outcome: str) -> None:
        with self._count_lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
        if self.on_outcome is not None:
            with contextlib.suppress(Exception):
                self.on_outcome(outcome)

    def _scrub(self, msg: str) -> str:
        return msg.replace(self._url, "<webhook>") if self._url else msg

    def _post(self, alert: Alert) -> None:
        text = f"[{self.prefix}] {alert.text}"
        if len(text) > MAX_TEXT:
            text = text[: MAX_TEXT - 1] + "…"
        body = json.dumps({"text": text, "content": text}).encode()
        req = urllib.request.Request(
            self._url or "",
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": "soxbot-alerts"},
            method="POST",
        )
        why = ""
        for attempt in range(self.retries + 1):
            if attempt and self._closing.wait(min(self.backoff * 2 ** (attempt - 1), 30.0)):
                break  # closing: do not hold shutdown up with back-off waits
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    resp.read()
                self._count("sent")
                return
            except urllib.error.HTTPError as exc:
                why = f"HTTP {exc.code}"
                if exc.code != 429 and exc.code < 500:
                    break  # the webhook refuses this message; retrying will not help
            except Exception as exc:  # timeouts, refused connections, DNS
                why = self._scrub(f"{type(exc).__name__}: {exc}")
        self._count("failed")
        self.log.warning("alert not delivered", kind=alert.event, error=why)

    def _worker(self) -> None:
        while True:
            alert = self._q.get()
            if alert is None:
                return
            if self._closing.is_set() and time.monotonic() > self._deadline:
                self._count("dropped")  # close() has given up waiting: do not keep posting
                continue
            try:
                self._post(alert)
            except Exception as exc:  # the worker must survive anything
                self._count("failed")
                self.log.error("alert worker error", error=self._scrub(repr(exc)))


# -- wording ---------------------------------------------------------------------------------
def _intent_of(client_order_id: str) -> str:
    """'sx-<set>-<SYM>-<stamp>-<intent>[-rN]' -> intent (see bot/core/ids.py)."""
    parts = client_order_id.split("-")
    return parts[4] if len(parts) >= 5 else ""


def engine_alert(kind: str, data: Mapping[str, Any]) -> Alert | None:
    """Turn an engine `on_event(kind, data)` into an alert, or None for events not worth a message."""
    if kind == "fill":
        f = data["fill"]
        intent = _intent_of(f.client_order_id)
        event = "stop" if intent == "stop" else "fill"
        what = {"stop": "STOP HIT", "tp": "TAKE PROFIT", "open": "ENTRY", "close": "EXIT"}.get(intent, "FILL")
        return Alert(
            event,
            f"{what}: {f.side.value.upper()} {f.qty:g} {f.symbol} @ {f.price:.4f} ({f.client_order_id})",
        )
    if kind == "risk":
        action, reason = data.get("action", ""), data.get("reason", "")
        if action in ("lock", "kill", "unlock"):
            return Alert("lock", f"{action.upper()}: {reason}")
        if action in ("alert", "flatten"):
            return Alert("error", f"{action.upper()}: {reason}")
        return None
    if kind == "rejected":
        u = data["update"]
        return Alert("error", f"ORDER REJECTED {u.client_order_id} {u.symbol}: {u.reason}")
    return None


def daily_text(
    session: str,
    equity: float,
    day_pnl: float,
    position: str = "flat",
    trades: int = 0,
    locks: str = "",
    skipped: int = 0,
) -> str:
    """The end-of-day message."""
    start = equity - day_pnl
    pct = day_pnl / start if start else 0.0
    out = (
        f"DAILY {session}: equity {equity:,.2f} ({day_pnl:+,.2f}, {pct:+.2%}); position {position}; "
        f"trades closed today {trades}"
    )
    if skipped:
        out += f"; {skipped} decision(s) skipped as too late"
    if locks:
        out += f"; locks: {locks}"
    return out
