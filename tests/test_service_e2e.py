"""The real service on the sandbox over several simulated sessions that include a DST change
(2024-11-03), the Thanksgiving holiday (2024-11-28) and the 13:00 early close after it: the bot
decides exactly at the scheduled bar closes (16:00 ET, 13:00 on the half day), once per session, on
that session's bar, and never outside a session. Along the way its /healthz and /metrics answer, and
its webhook alerts (fills, daily summaries) reach a local Slack-style receiver."""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from bot.data.calendar import session_bounds, sessions
from tests.alpaca_support import Sandbox, bot_process, wait_until
from tests.alpaca_support import bot_config as config

pytestmark = pytest.mark.e2e
NY = "America/New_York"


def webhook_receiver() -> tuple[ThreadingHTTPServer, list[dict]]:
    got: list[dict] = []

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, got


def test_decisions_at_scheduled_closes_across_dst_holiday_and_early_close(tmp_path):
    hook, alerts = webhook_receiver()
    sb = Sandbox(
        tmp_path, 60000, "--hold-clock", "--start", "2024-10-30"
    )  # 09:00, held until the bot is ready
    try:
        cfg = config(
            tmp_path, sb.url, extra=f'[alerts]\nwebhook_url = "http://127.0.0.1:{hook.server_port}/hook"\n'
        )
        with bot_process(tmp_path, cfg) as proc:
            last = "event='decision' at='2024-12-03T16:00:00-05:00'"  # the bot's pace, not the sandbox's
            wait_until(proc, lambda: last in (tmp_path / "bot.log").read_text(), 180)
            out = (tmp_path / "bot.log").read_text()
            assert proc.poll() is None, out[-3000:]
            health = re.search(r"health='(http://127\.0\.0\.1:\d+)/healthz'", out)
            assert health, out[-2000:]
            with urllib.request.urlopen(health.group(1) + "/healthz", timeout=5) as r:
                assert r.status == 200  # decisions ran on time
            with urllib.request.urlopen(health.group(1) + "/metrics", timeout=5) as r:
                metrics = r.read().decode()
            decisions = sum(float(x) for x in re.findall(r"^soxbot_decisions_total (\S+)$", metrics, re.M))
            assert decisions >= 15
    finally:
        sb.stop()
        hook.shutdown()
    out = (tmp_path / "bot.log").read_text()
    decided = [
        (pd.Timestamp(m.group(1)), m.group(2))
        for m in re.finditer(r"event='decision'.*?at='([^']+)'.*?bar='([^']+)'", out)
    ]
    days = sessions(pd.Timestamp("2024-10-30"), pd.Timestamp("2024-12-03"))
    planned = [session_bounds(d)[1] for d in days]  # the daily decision: at the session close
    got = [t for t, _ in decided]
    assert got[: len(planned)] == planned, out[-3000:]  # from the first session on: the clock waited
    assert pd.Timestamp("2024-11-28") not in {t.normalize().tz_localize(None) for t in got}
    half = [t for t in got if t.date() == pd.Timestamp("2024-11-29").date()]
    assert half and half[0].hour == 13 and half[0].minute == 0
    dst = {t.date(): t.utcoffset() for t in got}
    assert dst[pd.Timestamp("2024-11-01").date()] != dst[pd.Timestamp("2024-11-04").date()]
    assert out.count("event='pre-open check ok'") >= 15 and "job failed" not in out
    texts = [a["text"] for a in alerts]
    assert all(a["text"] == a["content"] for a in alerts)  # Slack reads "text", Discord "content"
    assert any("DAILY 2024-11-29" in t for t in texts) and any("ENTRY" in t for t in texts), texts[:5]
    assert not any("PKE2E" in t or "S3CRET" in t for t in texts)
    for t, bar in decided:  # each decision acted on its own session's bar, never a stale one
        if bar != "none":
            assert pd.Timestamp(bar[:10]).date() == t.date()


# The bot's start-up answered slowly: its first bar request (the warm-up's history) takes 3 s, 20 minutes
# of market time at 400x, and the sandbox stands 10 minutes before the decision.
SLOW_WARM_UP = ("--fault-delay", "3", "--fault-routes", "GET /v2/stocks/bars", "--fault-times", "1")


def half_day_run(tmp_path, *sandbox_args: str) -> str:
    """The service with `daily_decision_offset_minutes = 10` against a 400x sandbox of 1-minute bars that
    starts at 12:40 ET on the 2024-11-29 half day (13:00 close), until its end of day; the bot's log."""
    sb = Sandbox(tmp_path, 400, "--timeframe", "1m", "--start", "2024-11-29T12:40:00-05:00",
                 "--synthetic-years", "1.3", *SLOW_WARM_UP, *sandbox_args)  # fmt: skip
    try:
        cfg = config(tmp_path, sb.url, ma=(2, 3), service="daily_decision_offset_minutes = 10")
        with bot_process(tmp_path, cfg) as proc:
            wait_until(proc, lambda: "event='end of day'" in (tmp_path / "bot.log").read_text(), 60)
        assert sb.state()["faults"]["times"] == 0, "the slow answer was not served"
    finally:
        sb.stop()
    return (tmp_path / "bot.log").read_text()


def test_a_daily_decision_ten_minutes_before_the_half_day_close_reads_the_day_so_far(tmp_path):
    """The scheduler runs the decision at 12:50 ET (not 15:50, not 13:00) on the day's bar built from the
    200 one-minute bars 09:30-12:50. However slow the bot's start (here a warm-up slowed by 20 market
    minutes, past 12:50), the sandbox's clock is held (`--hold-clock`) until the service has planned
    its jobs and releases it: the start costs no market time and no job is lost."""
    out = half_day_run(tmp_path, "--hold-clock")
    decided = re.findall(r"event='decision' at='([^']+)'", out)
    assert decided == ["2024-11-29T12:50:00-05:00"], out[-3000:]
    so_far = re.search(r"event='day so far' ts='2024-11-29' minute_bars=(\d+)", out)
    assert so_far and int(so_far.group(1)) == 200, out[-3000:]
    released = re.search(r"event='sandbox clock released' at='([^']+)'", out)
    assert released and pd.Timestamp(released.group(1)) == pd.Timestamp("2024-11-29 12:40", tz=NY)
    assert "event='end of day'" in out and "job failed" not in out


def test_what_a_restart_finds_at_the_broker_is_alerted_through_the_webhook(tmp_path):
    """A position in a traded symbol that the bot did not open is found while reconciling at start, before
    the schedule runs: the owner hears of it through the webhook, not only in the log."""
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    hook, alerts = webhook_receiver()
    sb = Sandbox(tmp_path, 1, "--start", "2024-11-04T10:00:00-05:00")
    try:
        t = TradingClient("PKE2E", "S3CRET", url_override=sb.url)
        t.submit_order(
            MarketOrderRequest(symbol="SOXL", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
        )
        sb.advance(to="next_close")
        sb.advance(to="next_open")
        sb.advance(minutes=1)  # filled at the next bar's open: someone else's position
        assert float(t.get_open_position("SOXL").qty) == 3
        hook_url = f"http://127.0.0.1:{hook.server_port}/h"
        cfg = config(tmp_path, sb.url, extra=f'[alerts]\nwebhook_url = "{hook_url}"\n')
        with bot_process(tmp_path, cfg) as proc:
            wait_until(proc, lambda: bool(alerts), 30)
    finally:
        sb.stop()
        hook.shutdown()
    texts = [a["text"] for a in alerts]
    assert any("3 SOXL held at the broker without this bot's orders" in x for x in texts), (
        texts,
        (tmp_path / "bot.log").read_text()[-2000:],
    )
