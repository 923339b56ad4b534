"""A restart of the service with a position open, against the real sandbox: what the owner reads after
it (the daily summary through the webhook) and what the journal keeps (the stop's status).

The previous runs are made as in test_crash_safety: an entry journaled and sent with alpaca-py's own
calls, then a run of the real driver that places its protective stop and stops. The service run is
the real `ServiceLoop.serve` on the real `AlpacaRun`; the sandbox's clock is frozen and moved by the
test, which plays the scheduler's part: it puts each job on the service's queue once the sandbox's
clock has passed the job's time, so nothing races a clock.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from bot.core.config import Settings, load_config
from bot.core.events import Intent, OrderFilled, OrderIntent, OrderType, Side
from bot.core.ids import client_order_id
from bot.data.calendar import sessions
from bot.journal.journal import Journal
from bot.run.alpaca import AlpacaRun
from bot.run.backtest import set_id_for
from bot.run.service.runner import ServiceLoop
from bot.sandbox.app import SandboxServer
from tests.alpaca_support import bot_config, in_process_run
from tests.sandbox_support import NY, admin, at, write_bars

KEYS = ("PKTEST", "SECRET")
SIGNAL_TS = pd.Timestamp("2024-05-31")
QTY = 1000
STOP_PCT = 0.04  # entry 50.00 -> stop 48.00: not reached on 06-04 (low 49), reached on 06-05 (low 47)
# BBB's bars from 06-03 on (open, high, low, close); every session before is (50, 50.5, 49.5, 50)
BBB_PATH = {
    "2024-06-03": (50.00, 50.50, 49.50, 50.20),  # the entry fills at the open
    "2024-06-04": (50.40, 51.50, 49.00, 51.00),  # the service restarts at midday (price: the open)
    "2024-06-05": (51.00, 51.20, 47.00, 47.50),  # the stop fills
}


def bars() -> dict[str, pd.DataFrame]:
    """AAA rises every session (the moving-average cross stays long: no exit signal, no new entry);
    BBB is flat until the path above, then flat again at 47.50."""
    days = sessions(pd.Timestamp("2024-01-02"), pd.Timestamp("2024-06-28"))
    n = len(days)
    aaa = 100.0 + 0.1 * np.arange(n)
    out = {"AAA": pd.DataFrame({"open": aaa - 0.05, "high": aaa + 0.5, "low": aaa - 0.5, "close": aaa})}
    rows = []
    for d in days:
        key = str(d.date())
        flat = 50.0 if key < "2024-06-03" else 47.5
        rows.append(BBB_PATH.get(key, (flat, flat + 0.5, flat - 0.5, flat)))
    out["BBB"] = pd.DataFrame(rows, columns=["open", "high", "low", "close"])
    for df in out.values():
        df.index = pd.DatetimeIndex(days, name="timestamp")
        df["volume"] = 1000
    return out


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Iterator[SandboxServer]:
    d = write_bars(tmp_path_factory.mktemp("restart-daily"), bars(), "1d")
    with SandboxServer(data_dir=d, timeframe="1d", speed=0, start="2024-06-03") as s:
        yield s


class Webhook:
    """A Slack-style receiver on 127.0.0.1: the texts it was sent."""

    def __init__(self) -> None:
        got: list[str] = []

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["text"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        self.texts = got
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, prefix: str, timeout: float = 30.0) -> str:
        """The first text starting with `prefix` (the alert thread posts it soon after the job ran)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            hit = [t for t in list(self.texts) if t.startswith(prefix)]
            if hit:
                return hit[0]
            time.sleep(0.02)
        raise AssertionError(f"no {prefix!r} alert; got {self.texts}")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hook() -> Iterator[Webhook]:
    h = Webhook()
    yield h
    h.close()


@pytest.fixture
def cfg(srv, tmp_path, hook) -> Settings:
    admin(srv, "reset", {"start": at("2024-06-03 09:00")})
    alerts = f'[alerts]\nwebhook_url = "{hook.url}"\nevents = ["daily"]\n'
    path = bot_config(tmp_path, srv.url, ma=(2, 5), stops=(STOP_PCT, 0.0), universe=("AAA", "BBB", ""),
                      keys=KEYS, extra=alerts)  # fmt: skip
    return load_config(path)


def tc(srv: SandboxServer) -> TradingClient:
    return TradingClient(*KEYS, raw_data=True, url_override=srv.url)


def cid(cfg: Settings, intent: str) -> str:
    return client_order_id(set_id_for(cfg), "BBB", SIGNAL_TS, intent)


def journal(cfg: Settings) -> Journal:
    j = Journal(cfg.journal.path)
    j.start_run("paper-alpaca", set_id_for(cfg), {})
    return j


def driver(cfg: Settings, j: Journal) -> AlpacaRun:
    """The driver as `soxbot run` builds it; its clock asks the (frozen, hand-moved) sandbox every time."""
    return in_process_run(cfg, j, resync=0, on_status=lambda c, st, b, d: j.order_status(c, st, b, d))


def entered_and_protected(cfg: Settings, srv: SandboxServer) -> None:
    """The runs before: one journaled and sent the entry, which filled at the 06-03 open, and died; the
    next reconciled, placed the protective stop through the engine's own path, and stopped."""
    j = journal(cfg)
    entry = cid(cfg, "open")
    j.order_intent(OrderIntent(entry, SIGNAL_TS, "BBB", Side.BUY, QTY, OrderType.MARKET, Intent.OPEN, "x"))
    order = MarketOrderRequest(
        symbol="BBB", qty=QTY, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, client_order_id=entry
    )
    tc(srv).submit_order(order)
    admin(srv, "advance", {"to": at("2024-06-03 09:31")})
    px = BBB_PATH["2024-06-03"][0]
    j.order_status(entry, "filled")
    j.fill(OrderFilled(entry, pd.Timestamp("2024-06-03 09:30", tz=NY), "BBB", Side.BUY, QTY, px))
    j.end_run("killed")
    j.close()
    j = journal(cfg)
    r = driver(cfg, j)
    r.reconcile()
    assert r.engine.pos is not None and r.broker.working(cid(cfg, "stop"))
    r.broker.close()
    j.end_run("stopped")
    j.close()


class Service:
    """The service's main loop on a thread; the test puts the scheduler's jobs on its queue."""

    def __init__(self, cfg: Settings, srv: SandboxServer) -> None:
        self.srv = srv
        self.journal = journal(cfg)
        self.run = driver(cfg, self.journal)
        self.loop = ServiceLoop(self.run, cfg)  # before reconciling, as `soxbot run` does
        self.run.reconcile()
        self.run.warm_up()
        self.thread = threading.Thread(target=self.loop.serve, daemon=True)
        self.thread.start()

    def session(self, day: str) -> None:
        """The sandbox moves past `day`'s close; the day's decision (16:00) and end of day (16:05) run."""
        admin(self.srv, "advance", {"to": at(f"{day} 16:06")})
        for kind, hhmm in (("decision", "16:00"), ("end_of_day", "16:05")):
            self.loop.jobs.put((kind, pd.Timestamp(f"{day} {hhmm}", tz=NY).to_pydatetime()))

    def stop(self) -> None:
        self.run.stop.event.set()
        self.thread.join(10)
        self.run.broker.close()
        self.journal.close()


@pytest.fixture
def service(cfg, srv) -> Iterator[Callable[[], Service]]:
    made: list[Service] = []

    def start() -> Service:
        s = Service(cfg, srv)
        made.append(s)
        return s

    yield start
    for s in made:
        s.stop()


def daily(text: str) -> tuple[float, float, int]:
    """(equity, the day's P&L, trades closed today) of a DAILY text."""
    m = re.search(r"DAILY \S+: equity ([\d,.-]+) \(([+-][\d,.]+), .*trades closed today (\d+)", text)
    assert m, text
    return float(m.group(1).replace(",", "")), float(m.group(2).replace(",", "")), int(m.group(3))


def broker_equity(srv: SandboxServer) -> float:
    return float(tc(srv).get_account()["equity"])


def test_the_daily_summary_after_a_restart_with_a_position_open_counts_the_position(cfg, srv, hook, service):
    """Defect: `DAILY ...: equity 98,689.89 (+94,438.23, +2221.21%)`: the day's starting equity was the
    cash alone. The bot's equity is its cash and its position at the current price, as the broker's."""
    entered_and_protected(cfg, srv)
    admin(srv, "advance", {"to": at("2024-06-04 12:00")})  # the service restarts at midday, holding
    at_restart = broker_equity(srv)
    s = service()
    assert s.run.engine.pos is not None and s.run.engine.pos.qty == QTY
    s.session("2024-06-04")
    equity, pnl, trades = daily(hook.wait_for("[soxbot] DAILY 2024-06-04"))
    at_close = broker_equity(srv)
    assert equity == pytest.approx(at_close, abs=0.01)
    assert pnl == pytest.approx(at_close - at_restart, abs=0.01)  # the position's move since the restart
    assert trades == 0


def test_trades_closed_today_counts_the_session_not_the_run(cfg, srv, hook, service):
    """Defect: "trades closed today" counted every trade of the run. The stop fills on 06-05: one trade
    that day, none the next. Each day's equity and P&L are the broker's, a stop filled after the day's
    bar included."""
    entered_and_protected(cfg, srv)
    admin(srv, "advance", {"to": at("2024-06-04 12:00")})
    s = service()
    got, broker = [], [broker_equity(srv)]
    for day in ("2024-06-04", "2024-06-05", "2024-06-06"):
        s.session(day)
        got.append(daily(hook.wait_for(f"[soxbot] DAILY {day}")))
        broker.append(broker_equity(srv))
    assert [trades for _, _, trades in got] == [0, 1, 0]
    assert [(equity, pnl) for equity, pnl, _ in got] == [
        (pytest.approx(now, abs=0.01), pytest.approx(now - before, abs=0.01))
        for before, now in itertools.pairwise(broker)
    ]
    assert s.run.engine.pos is None and not s.run.unknown


def test_a_stop_placed_before_a_restart_that_fills_after_it_is_journaled_filled(cfg, srv, hook, service):
    """Defect: `orders` kept the stop as 'submitted' while `fills` had its fill: the stop's row belongs to
    the run that placed it, and the fill came in a later run."""
    entered_and_protected(cfg, srv)
    admin(srv, "advance", {"to": at("2024-06-04 12:00")})
    s = service()
    for day in ("2024-06-04", "2024-06-05"):  # the stop fills on 06-05, the restarted bot up
        s.session(day)
        hook.wait_for(f"[soxbot] DAILY {day}")
    stop = cid(cfg, "stop")
    rows = s.journal.db.execute(
        "SELECT run_id, status FROM orders WHERE client_order_id=?", (stop,)
    ).fetchall()
    fills = s.journal.db.execute("SELECT run_id, qty FROM fills WHERE client_order_id=?", (stop,)).fetchall()
    assert rows == [(s.journal.run_id - 1, "filled")] and fills == [(s.journal.run_id, QTY)]


def test_a_day_s_summary_counts_the_decisions_skipped_that_day_not_the_run_s(cfg, srv, hook, service):
    """Defect: "N decision(s) skipped" was the run's running total, so one late decision on Tuesday was
    still reported on every later day. The scheduler skips a stale 15:00 decision on 06-04 (it reports
    the misfire as APScheduler's listener does); 06-05 had none."""
    from bot.run.service.schedule import Job

    entered_and_protected(cfg, srv)
    admin(srv, "advance", {"to": at("2024-06-04 12:00")})
    s = service()
    late = pd.Timestamp("2024-06-04 15:00", tz=NY).to_pydatetime()
    s.loop.sched._skip(Job("decision", late, late.date()), lateness=400.0)
    s.session("2024-06-04")
    assert "; 1 decision(s) skipped as too late" in hook.wait_for("[soxbot] DAILY 2024-06-04")
    s.session("2024-06-05")
    assert "skipped" not in hook.wait_for("[soxbot] DAILY 2024-06-05")
