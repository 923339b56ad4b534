"""Tell the owner what the bot does: fills, stops, locks, errors and the daily summary, by webhook
and by chat (any service apprise knows: Telegram, Discord, Slack, e-mail, ...).

Off unless a webhook URL or an apprise URL is set. Never in the way of trading: `send` only puts the
message on each channel's bounded queue (a full queue drops it and counts the drop); each channel has
its own daemon thread that delivers, with a timeout and a few retries, so a chat service that hangs
delays neither the bot nor the other channels. URLs are secrets: never logged, and error messages
are scrubbed of them (`channels.py`).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from bot.core.log import get
from bot.run.service.channels import Channel, Undelivered, WebhookChannel, chat_channels

EVENTS = ("fill", "stop", "lock", "error", "daily")
MAX_TEXT = 1900  # Discord's content limit is 2000 characters


@dataclass(frozen=True, slots=True)
class Alert:
    event: str
    text: str


class _Lane:
    """One channel's queue and delivery thread."""

    def __init__(self, sender: AlertSender, channel: Channel, queue_size: int) -> None:
        self.sender, self.channel = sender, channel
        self.q: queue.Queue[Alert | None] = queue.Queue(maxsize=queue_size)
        self.thread = threading.Thread(target=self._work, name=f"soxbot-alerts-{channel.name}", daemon=True)
        self.thread.start()

    def _deliver(self, alert: Alert) -> None:
        s, ch = self.sender, self.channel
        text = alert.text
        room = MAX_TEXT - len(s.prefix) - 3
        if len(text) > room:
            text = text[: room - 1] + "…"
        why = ""
        for attempt in range(s.retries + 1):
            if attempt and s._closing.wait(min(s.backoff * 2 ** (attempt - 1), 30.0)):
                break  # closing: do not hold shutdown up with back-off waits
            try:
                ch.deliver(s.prefix, text)
                s._count("sent")
                return
            except Undelivered as exc:
                why = str(exc)
                if not exc.retry:
                    break  # the service refuses this message; retrying will not help
        s._count("failed")
        s.log.warning("alert not delivered", kind=alert.event, channel=ch.name, error=why)

    def _work(self) -> None:
        s = self.sender
        while True:
            alert = self.q.get()
            if alert is None:
                return
            if s._closing.is_set() and time.monotonic() > s._deadline:
                s._count("dropped")  # close() has given up waiting: do not keep delivering
                continue
            try:
                self._deliver(alert)
            except Exception as exc:  # the worker must survive anything
                s._count("failed")
                s.log.error(
                    "alert worker error", channel=self.channel.name, error=self.channel.scrub(repr(exc))
                )


class AlertSender:
    """`send(event, text) -> bool` never blocks; `close()` drains what it can within a timeout.
    Counts (`sent`, `failed`, `dropped`) are per channel delivery."""

    def __init__(
        self,
        webhook_url: SecretStr | str | None,
        events: Iterable[str] = EVENTS,
        *,
        apprise_urls: Iterable[SecretStr | str] = (),
        queue_size: int = 100,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 1.0,
        prefix: str = "soxbot",
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        unknown = set(events) - set(EVENTS)
        if unknown:
            raise ValueError(f"unknown alert events {sorted(unknown)}; known: {', '.join(EVENTS)}")
        self.events = frozenset(events)
        self.retries, self.backoff = retries, backoff
        self.prefix = prefix
        self.on_outcome = on_outcome
        self.sent = self.dropped = self.failed = 0
        self._count_lock = threading.Lock()
        self._closing = threading.Event()
        self._deadline = float("inf")
        self.log = get("soxbot.alerts")
        url = webhook_url.get_secret_value() if isinstance(webhook_url, SecretStr) else webhook_url
        channels: list[Channel] = [WebhookChannel(url, timeout)] if url else []
        channels += chat_channels(apprise_urls)  # ConfigError: apprise missing, or a URL it cannot read
        self._lanes = [_Lane(self, ch, queue_size) for ch in channels]

    @classmethod
    def from_settings(cls, alerts: Any, **kw: Any) -> AlertSender:
        """From an `[alerts]` section (`bot.core.config.AlertsConfig`)."""
        return cls(alerts.webhook_url, alerts.events, apprise_urls=alerts.apprise_urls, **kw)

    @property
    def enabled(self) -> bool:
        return bool(self._lanes)

    @property
    def channels(self) -> list[str]:
        """The channels' names (never their URLs)."""
        return [lane.channel.name for lane in self._lanes]

    def __repr__(self) -> str:  # never show a URL
        return f"AlertSender(channels={self.channels}, events={sorted(self.events)})"

    # -- the caller's side -----------------------------------------------------------------
    def send(self, event: str, text: str) -> bool:
        """Queue an alert on every channel. False when alerts are off, the event is not wanted, or
        every channel's queue is full."""
        if not self._lanes or event not in self.events or self._closing.is_set():
            return False
        alert = Alert(event, text)
        queued = False
        for lane in self._lanes:
            try:
                lane.q.put_nowait(alert)
                queued = True
            except queue.Full:
                self._count("dropped")
        return queued

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking alerts and give the queued ones up to `timeout` seconds in all to go out."""
        deadline = time.monotonic() + timeout
        self._deadline = deadline
        self._closing.set()
        for lane in self._lanes:
            with contextlib.suppress(queue.Full):
                lane.q.put(None, timeout=max(0.0, deadline - time.monotonic()))
        for lane in self._lanes:
            lane.thread.join(max(0.0, deadline - time.monotonic()))

    def _count(self, outcome: str) -> None:
        with self._count_lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
        if self.on_outcome is not None:
            with contextlib.suppress(Exception):
                self.on_outcome(outcome)


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
        what = {
            "stop": "STOP HIT",
            "tp": "TAKE PROFIT",
            "open": "ENTRY",
            "close": "EXIT",
            "hedge": "HEDGE",
        }.get(intent, "FILL")
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
        if action == "split":  # the broker split a traded symbol: position and stop on the new basis
            return Alert("stop", f"SPLIT: {reason}")
        if action == "hedge" and not reason.startswith("hedge waits"):  # hedge mode traded, or made way
            return Alert("fill", f"HEDGE: {reason}")
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
