"""Alerts through a real local webhook server: delivered, retried, dropped, never blocking the caller."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from bot.core.config import AlertsConfig, load_config
from bot.core.events import OrderFilled, OrderRejected, Side
from bot.core.ids import client_order_id
from bot.run.service.alerts import EVENTS, AlertSender, daily_text, engine_alert


class Webhook:
    """A Slack/Discord-like endpoint on 127.0.0.1: records bodies; answers `codes` in turn, then 200."""

    def __init__(self, codes: list[int] | None = None, delay: float = 0.0) -> None:
        self.bodies: list[dict] = []
        self.hits = 0
        self.codes = list(codes or [])
        self.delay = delay
        self.lock = threading.Lock()
        hook = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n))
                with hook.lock:
                    hook.hits += 1
                    code = hook.codes.pop(0) if hook.codes else 200
                    if code == 200:
                        hook.bodies.append(body)
                if hook.delay:
                    time.sleep(hook.delay)
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the client gave up (timeout): expected in the slow-server test
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/T000/B000/SECRETPART"
        threading.Thread(target=lambda: self.httpd.serve_forever(poll_interval=0.05), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def webhook():
    hooks: list[Webhook] = []

    def make(**kw) -> Webhook:
        h = Webhook(**kw)
        hooks.append(h)
        return h

    yield make
    for h in hooks:
        h.close()


def wait_for(pred, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def test_off_by_default():
    cfg = load_config()
    assert cfg.alerts.webhook_url is None and cfg.alerts.events == list(EVENTS)
    sender = AlertSender.from_settings(cfg.alerts)
    assert not sender.enabled and sender.send("fill", "x") is False
    assert threading.active_count() >= 1 and not any(
        t.name.startswith("soxbot-alerts") for t in threading.enumerate()
    )


def test_delivered_as_slack_and_discord_json(webhook):
    hook = webhook()
    sender = AlertSender(hook.url, events=["fill", "lock"])
    try:
        assert sender.send("fill", "ENTRY: BUY 10 SOXL @ 31.2000")
        assert sender.send("stop", "not wanted") is False  # not in events
        assert sender.send("lock", "LOCK: daily loss 3.1% >= limit 3.0%")
        assert wait_for(lambda: sender.sent == 2)
    finally:
        sender.close()
    assert [b["text"] for b in hook.bodies] == [
        "[soxbot] ENTRY: BUY 10 SOXL @ 31.2000",
        "[soxbot] LOCK: daily loss 3.1% >= limit 3.0%",
    ]
    assert all(b["content"] == b["text"] for b in hook.bodies)
    long = AlertSender(hook.url)
    long.send("error", "x" * 5000)
    assert wait_for(lambda: long.sent == 1)
    long.close()
    assert len(hook.bodies[-1]["content"]) <= 2000


def test_retries_on_5xx_and_429_not_on_4xx(webhook):
    hook = webhook(codes=[500, 429])
    sender = AlertSender(hook.url, backoff=0.01)
    sender.send("error", "first")
    assert wait_for(lambda: sender.sent == 1)
    assert hook.hits == 3 and [b["text"] for b in hook.bodies] == ["[soxbot] first"]
    hook.codes = [400]
    sender.send("error", "refused")
    assert wait_for(lambda: sender.failed == 1)  # counted once its last attempt was answered
    assert hook.hits == 4  # a 400 is not retried (retries would come before `failed` counts it)
    sender.close()


def test_slow_server_never_blocks_the_caller_and_a_full_queue_drops(webhook):
    hook = webhook(delay=1.0)
    outcomes: list[str] = []
    sender = AlertSender(hook.url, queue_size=5, timeout=0.2, retries=0, on_outcome=outcomes.append)
    worst = 0.0
    accepted = 0
    for i in range(50):
        t0 = time.perf_counter()
        accepted += sender.send("fill", f"fill {i}")
        worst = max(worst, time.perf_counter() - t0)
    assert worst < 0.01, f"send blocked for {worst:.3f} s"
    # the worker holds at most one alert in hand; the queue holds 5; the rest are dropped and counted
    assert 5 <= accepted <= 6 and sender.dropped == 50 - accepted
    assert outcomes.count("dropped") == sender.dropped
    t0 = time.perf_counter()
    sender.close(timeout=0.5)
    assert time.perf_counter() - t0 < 0.8  # shutdown is bounded too
    assert sender.send("fill", "after close") is False


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_down_server_fails_quietly_and_never_logs_the_url():
    url = f"http://127.0.0.1:{free_port()}/hooks/T000/B000/SECRETPART"
    with capture_logs() as logs:
        sender = AlertSender(url, timeout=0.5, retries=2, backoff=0.01)
        t0 = time.perf_counter()
        assert sender.send("error", "engine error")
        assert time.perf_counter() - t0 < 0.01
        assert wait_for(lambda: sender.failed == 1)
        sender.close()
    assert sender.sent == 0
    (warn,) = [e for e in logs if e["event"] == "alert not delivered"]
    assert "Connection" in warn["error"] or "refused" in warn["error"]
    assert "SECRETPART" not in repr(logs) and "SECRETPART" not in repr(sender)


def test_config_keeps_the_url_secret():
    cfg = AlertsConfig(webhook_url="https://hooks.slack.com/services/T0/B0/SECRETPART", events=["daily"])
    assert "SECRETPART" not in repr(cfg) and "SECRETPART" not in cfg.model_dump_json()
    with pytest.raises(ValidationError):
        AlertsConfig(events=["fills"])
    with pytest.raises(ValueError, match="unknown alert events"):
        AlertSender(None, events=["fills"])


def test_engine_events_become_alerts():
    ts = pd.Timestamp("2024-07-05 15:50", tz="America/New_York")
    stop_cid = client_order_id("abcd1234", "SOXL", ts, "stop", 2)
    a = engine_alert("fill", {"fill": OrderFilled(stop_cid, ts, "SOXL", Side.SELL, 10, 29.5)})
    assert a is not None and a.event == "stop" and a.text.startswith("STOP HIT: SELL 10 SOXL @ 29.5000")
    open_cid = client_order_id("abcd1234", "SOXL", ts, "open")
    a = engine_alert("fill", {"fill": OrderFilled(open_cid, ts, "SOXL", Side.BUY, 10, 31.2)})
    assert a is not None and (a.event, a.text.split(":")[0]) == ("fill", "ENTRY")
    a = engine_alert("risk", {"action": "kill", "reason": "drawdown 25% >= 25%"})
    assert a is not None and (a.event, a.text) == ("lock", "KILL: drawdown 25% >= 25%")
    a = engine_alert("risk", {"action": "flatten", "reason": "protective stop could not be placed"})
    assert a is not None and a.event == "error"
    assert engine_alert("risk", {"action": "allow", "reason": "enter SOXL"}) is None
    a = engine_alert("rejected", {"update": OrderRejected(open_cid, ts, "SOXL", "insufficient buying power")})
    assert a is not None and a.event == "error" and "insufficient buying power" in a.text
    assert engine_alert("order", {"order": None}) is None


def test_daily_text():
    text = daily_text("2024-07-05", 101_000.0, 1_000.0, "10 SOXL", trades=2, skipped=1)
    assert text.startswith("DAILY 2024-07-05: equity 101,000.00 (+1,000.00, +1.00%)")
    assert "position 10 SOXL" in text and "1 decision(s) skipped" in text
