"""Crash safety of `soxbot run` on Alpaca: `kill -9` at any moment, then a restart, never doubles an
order, never loses a fill and never leaves a position without its protective stop.

One `soxbot sandbox` (a session every ~1.4 s) and one journal; the bot is started, lives a random while
(seeded) and is killed with SIGKILL, over and over: during start-up, just after the broker took an
order, or any time. Most order-changing requests are answered late (the sandbox acts first and then
waits, or waits first), so many kills land between "the bot journaled/sent the order" and "the bot saw
the answer". The broker keeps trading while the bot is down: entries fill, stops trigger.

After every kill, at the broker: no client_order_id twice, one entry per signal bar, never SOXL and
SOXS at once, no entry stacked on a held position, at most one working stop per symbol. Every few
restarts (market frozen once the bot has reconciled and gone quiet), and after a final clean SIGTERM
run: every broker fill is in the journal exactly once, the journal's net position is the broker's, and
each position has a working protective stop (or a pending close order).

Knobs (environment): SOXBOT_CRASH_KILLS (50), SOXBOT_CRASH_SEED, SOXBOT_CRASH_PARTIAL (share of fills
that come in parts; 0 by default), SOXBOT_CRASH_SERVICE ("scheduler = false" for the polling loop).
The numbers found are printed and written to crash-safety.json beside the logs.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import GetOrderByIdRequest, MarketOrderRequest, StopOrderRequest

from bot.core.config import load_config
from bot.core.events import ExitReason, Intent, OrderFilled, OrderIntent, OrderType, Side
from bot.core.ids import client_order_id
from bot.journal.journal import Journal
from bot.run.alpaca import AlpacaRun
from bot.run.backtest import session_labels, set_id_for
from bot.sandbox.app import SandboxServer
from tests.alpaca_support import REPO, SOXBOT, Sandbox, bot_config, bot_env, in_process_run, journal_rows
from tests.sandbox_support import admin, at, daily_bars, write_bars

SPEED = 60000  # sim seconds per second: a daily session every ~1.4 s
KILLS = int(os.environ.get("SOXBOT_CRASH_KILLS", "50"))
SEED = int(os.environ.get("SOXBOT_CRASH_SEED", "4"))
STRONG_EVERY = 5
EPS = 1e-9
WORKING = ("new", "accepted", "pending_new", "partially_filled")
ORDER_ROUTES = ["POST /v2/orders", "PATCH /v2/orders", "DELETE /v2/orders"]
UNANSWERED = "SELECT 1 FROM orders WHERE status='intent' AND run_id=(SELECT max(id) FROM runs)"
PARTIAL = float(os.environ.get("SOXBOT_CRASH_PARTIAL", "0"))
UNKNOWN = "event='unknown state at start"
SERVICE = os.environ.get("SOXBOT_CRASH_SERVICE", "")  # "scheduler = false": the plain polling loop


# -- the bot process -----------------------------------------------------------------------------------
class Bot:
    def __init__(self, cfg: Path, log: Path) -> None:
        self.log_path = log
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [*SOXBOT, "run", "--config", str(cfg)],
            cwd=REPO,
            env=bot_env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, needle: str, timeout: float = 90.0) -> bool:
        """Until `needle` is logged (a bound that only a hung bot meets: start-up alone, imports included,
        took over 15 s on a machine whose two cores were busy)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if needle in self.text():
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.03)
        return needle in self.text()

    def kill(self) -> int | None:
        """SIGKILL; None when the process had already exited (its code otherwise)."""
        code = self.proc.poll()
        if code is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()
        return code

    def term(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self.log.close()
        return code


# -- what the broker says ------------------------------------------------------------------------------
def _parts(cid: str) -> tuple[str, str, str, int] | None:
    """(symbol, signal stamp, intent, revision) of one of the bot's ids."""
    p = cid.split("-")
    if p[0] != "sx" or len(p) not in (5, 6):
        return None
    return p[2], p[3], p[4], int(p[5][1:]) if len(p) == 6 else 0


def _ours(st: dict) -> list[dict]:
    return [o for o in st["orders"] if _parts(o["client_order_id"])]


def check_always(st: dict) -> None:
    """What must hold at the broker at every moment, whether the bot is up or not."""
    assert max(st["orders_per_client_order_id"].values(), default=0) <= 1, "a client_order_id used twice"
    ours = _ours(st)
    parts = {o["client_order_id"]: _parts(o["client_order_id"]) for o in ours}
    opens = Counter(p[1] for p in parts.values() if p[2] == "open")
    assert max(opens.values(), default=0) <= 1, f"one decision, two entries: {opens.most_common(2)}"
    working_stops = Counter(o["symbol"] for o in ours if o["type"] == "stop" and o["status"] in WORKING)
    assert max(working_stops.values(), default=0) <= 1, f"two working stops: {working_stops}"
    # replay the broker's fills: never both sides, never a second entry on top of a held position
    held: dict[str, float] = defaultdict(float)
    entry_of: dict[str, str] = {}
    filled = sorted(
        (o for o in ours if float(o["filled_qty"]) > 0),
        key=lambda o: (o["filled_at"] or o["updated_at"], o["client_order_id"]),
    )
    for o in filled:
        q = float(o["filled_qty"])
        sym = o["symbol"]
        if o["side"] == "buy":
            assert held[sym] < EPS or entry_of.get(sym) == o["client_order_id"], f"entry stacked: {o}"
            entry_of[sym] = o["client_order_id"]
            held[sym] += q
        else:
            held[sym] -= q
        assert not (held["SOXL"] > EPS and held["SOXS"] > EPS), f"SOXL and SOXS held at once after {o}"
    for sym, q in held.items():
        assert abs(q - st["positions"].get(sym, {"qty": 0.0})["qty"]) < 1e-6, (sym, q, st["positions"])


def check_settled(st: dict, journal: Path) -> dict[str, int]:
    """What must hold once the bot has reconciled and is quiet: the journal is the broker's mirror."""
    ours = _ours(st)
    fills = journal_rows(journal, "SELECT client_order_id, symbol, side, qty FROM fills")
    jq: dict[str, float] = defaultdict(float)
    net: dict[str, float] = defaultdict(float)
    for cid, sym, side, qty in fills:
        jq[cid] += qty
        net[sym] += qty if side == "buy" else -qty
    bq = {o["client_order_id"]: float(o["filled_qty"]) for o in ours if float(o["filled_qty"]) > 0}
    lost = {c: q for c, q in bq.items() if abs(jq.get(c, 0.0) - q) > 1e-6}
    extra = {c: q for c, q in jq.items() if c not in bq}
    assert not lost and not extra, f"journal fills != broker fills: broker {lost}, journal-only {extra}"
    held = {s: q for s, q in net.items() if abs(q) > EPS}
    assert held == {s: p["qty"] for s, p in st["positions"].items()}, (held, st["positions"])
    for sym, p in st["positions"].items():
        live = [o for o in ours if o["symbol"] == sym and o["side"] == "sell" and o["status"] in WORKING]
        stop = [o for o in live if o["type"] == "stop"]
        assert stop or live, f"{p['qty']} {sym} held without a protective stop: {live}"
        if stop:
            assert float(stop[0]["qty"]) >= p["qty"] - EPS, (stop, p)
    return {"positions": len(held), "fills": len(fills)}


def settled_state(sb: Sandbox, journal: Path, timeout: float = 20.0) -> dict:
    """The broker's state once the bot has caught up with it (market frozen): nothing journaled waits for
    an answer and the journal mirrors the broker (`check_settled`). Read again until it holds, however
    slow the bot; after `timeout`, the last check's failure."""
    end = time.monotonic() + timeout
    while True:
        st = sb.state()
        try:
            assert not journal_rows(journal, UNANSWERED), "an order journaled and not answered yet"
            check_settled(st, journal)
            return st
        except AssertionError:
            if time.monotonic() >= end:
                raise
        time.sleep(0.2)


def wait_for_order(sb: Sandbox, timeout: float) -> bool:
    """Return as soon as the broker has taken a new order, a replacement or a cancel (the answer to the
    bot is held back by the delay fault); False after `timeout` without one."""

    def mark(st: dict) -> tuple[int, int]:
        return sum(st["submissions_per_client_order_id"].values()), sum(
            o["status"] == "canceled" for o in st["orders"]
        )

    first = mark(sb.state())
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if mark(sb.state()) != first:
            return True
        time.sleep(0.02)
    return False


def wait_for_journaled(journal: Path, timeout: float) -> bool:
    """Return as soon as the bot has journaled a new order (it is sent right after); False after
    `timeout` without one."""
    count = "SELECT count(*) FROM orders"
    first = journal_rows(journal, count)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if journal_rows(journal, count) != first:
            return True
        time.sleep(0.02)
    return False


def _tail(bot: Bot) -> str:
    return "\n".join(bot.text().splitlines()[-40:])


# -- the test ------------------------------------------------------------------------------------------
@pytest.mark.e2e
def test_kill_9_at_any_moment_never_doubles_loses_or_unprotects(tmp_path):
    t_start = time.monotonic()
    sb = Sandbox(tmp_path, SPEED)
    rng = random.Random(SEED)
    journal = tmp_path / "journal.db"
    cfg = bot_config(tmp_path, sb.url, ma=(1, 3), stops=(0.1, 0.08), service=SERVICE)
    found: Counter[str] = Counter()
    bot: Bot | None = None
    try:
        for i in range(KILLS):
            # the late answer comes after the broker acted ("after": a kill leaves an order the bot never
            # saw answered) or before it ("before": a kill leaves an order that never reached the broker)
            when = rng.choice(["after", "after", "before"])
            sb.faults(delay=0.25, delay_rate=0.8, when=when, routes=ORDER_ROUTES, partial_fill_prob=PARTIAL)
            bot = Bot(cfg, tmp_path / f"bot-{i:03d}.log")
            if i % STRONG_EVERY == STRONG_EVERY - 1:  # reconciled and quiet: the journal mirrors the broker
                assert bot.wait_for("warm-up done"), _tail(bot)
                sb.hold()  # the market stands still where it is (an advance could land in the past)
                try:
                    settled_state(sb, journal)
                    found["settled checks"] += 1
                finally:
                    sb.release()
            r = rng.random()
            if r < 0.25:  # anywhere in start-up: imports, reconcile (placing a missing stop), warm-up
                time.sleep(rng.uniform(0.3, 2.0))
            elif r < 0.5:  # just after the bot journaled an order, before or while it is sent
                assert bot.wait_for("warm-up done"), _tail(bot)
                found["kills just after an order was journaled"] += wait_for_journaled(journal, timeout=2.5)
                time.sleep(rng.uniform(0.0, 0.15))
            elif r < 0.75:  # just after the broker took an order the bot has not yet seen answered
                assert bot.wait_for("warm-up done"), _tail(bot)
                found["kills just after an order reached the broker"] += wait_for_order(sb, timeout=2.5)
                time.sleep(rng.uniform(0.0, 0.3))
            else:  # any time while it trades
                assert bot.wait_for("warm-up done"), _tail(bot)
                time.sleep(rng.uniform(0.0, 3.0))
            code = bot.kill()
            assert code is None, f"bot exited by itself ({code}):\n{_tail(bot)}"
            found["kill points"] += 1
            found["kills with an order unanswered"] += bool(journal_rows(journal, UNANSWERED))
            check_always(sb.state())
        # a last, clean run: it reconciles what the last kill left, trades a little and stops on SIGTERM
        bot = Bot(cfg, tmp_path / "bot-final.log")
        assert bot.wait_for("warm-up done"), _tail(bot)
        time.sleep(3.0)
        sb.hold()
        settled_state(sb, journal)
        assert bot.term() == 0, _tail(bot)
        st = sb.state()
    finally:
        if bot is not None and bot.proc.poll() is None:
            bot.kill()
        sb.stop()
    (tmp_path / "broker-state.json").write_text(json.dumps(st, indent=1))  # for a failure's post-mortem
    check_always(st)
    n = check_settled(st, journal)
    logs = "".join(p.read_text() for p in sorted(tmp_path.glob("bot-*.log")))
    for needle in ("stop placed on restart", "fill found at the broker", "not sent", UNKNOWN):
        found[needle] = logs.count(needle)
    ours = _ours(st)
    found["entries filled"] = sum(1 for o in ours if float(o["filled_qty"]) > 0 and o["side"] == "buy")
    found["stops filled"] = sum(1 for o in ours if o["type"] == "stop" and o["filled_at"])
    found["orders"] = len(ours)
    elapsed = time.monotonic() - t_start
    print(f"crash safety: {dict(found)} final {n}; {elapsed:.0f} s")
    (tmp_path / "crash-safety.json").write_text(json.dumps({**found, **n, "seconds": round(elapsed)}))
    assert found["entries filled"] >= 3, "the bot should have traded between the kills"
    assert found[UNKNOWN] == 0, "every state after a kill is explained by the journal and the broker"


# -- each gap on its own: a previous run's journal and broker state, then one restart ------------------
# The state a killed run leaves is made with the journal's and alpaca-py's own calls (what the engine
# does before it dies); the restart is the real AlpacaRun against the in-process sandbox, frozen clock.
BARS = daily_bars()
SIGNAL_TS = pd.Timestamp("2024-05-31")
STOPS = (0.1, 0.08)  # stop_loss_pct, trailing_stop_pct
KEYS = ("PKTEST", "SECRET")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = write_bars(tmp_path_factory.mktemp("crash-daily"), BARS, "1d")
    with SandboxServer(data_dir=d, timeframe="1d", speed=0, start="2024-06-03") as s:
        yield s


@pytest.fixture
def world(srv, tmp_path, request):
    """(config, a previous run's journal, a TradingClient, restart()) on a fresh sandbox account.
    Parametrized indirectly, its parameter is more `bot_config` arguments (e.g. a take-profit)."""
    admin(srv, "reset", {"start": at("2024-06-03 09:00")})
    more = {"stops": STOPS, **getattr(request, "param", {})}
    cfg_file = bot_config(tmp_path, srv.url, universe=("AAA", "BBB", ""), keys=KEYS, **more)
    cfg = load_config(cfg_file)
    before = Journal(cfg.journal.path)
    before.start_run("paper-alpaca", set_id_for(cfg), {})
    opened: list[Journal] = [before]

    def restart() -> AlpacaRun:
        j = Journal(cfg.journal.path)
        opened.append(j)
        j.start_run("paper-alpaca", set_id_for(cfg), {})
        run = in_process_run(cfg, j, on_status=lambda c, st, b, d: j.order_status(c, st, b, d))
        run.reconcile()
        return run

    yield cfg, before, TradingClient("PKTEST", "SECRET", raw_data=True, url_override=srv.url), restart
    for j in opened:
        j.close()


def _cid(cfg, intent: str, rev: int = 0) -> str:
    return client_order_id(set_id_for(cfg), "BBB", SIGNAL_TS, intent, rev)


def _entered(cfg, j: Journal, t: TradingClient, srv, qty: float = 40) -> float:
    """The previous run sent an entry (journaled first) and saw it fill at the 2024-06-03 open."""
    cid = _cid(cfg, "open")
    j.order_intent(OrderIntent(cid, SIGNAL_TS, "BBB", Side.BUY, qty, OrderType.MARKET, Intent.OPEN, "cross"))
    t.submit_order(
        MarketOrderRequest(
            symbol="BBB", qty=qty, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, client_order_id=cid
        )
    )
    admin(srv, "advance", {"to": at("2024-06-03 09:31")})
    px = float(BARS["BBB"].loc["2024-06-03", "open"])
    j.order_status(cid, "filled")
    j.fill(
        OrderFilled(cid, pd.Timestamp("2024-06-03 09:30", tz="America/New_York"), "BBB", Side.BUY, qty, px)
    )
    return px


def _stop_intent(cfg, price: float, ts: pd.Timestamp, rev: int = 0) -> OrderIntent:
    return OrderIntent(
        _cid(cfg, "stop", rev),
        ts,
        "BBB",
        Side.SELL,
        40,
        OrderType.STOP,
        Intent.STOP,
        "protective stop",
        stop_price=price,
        exit_reason=ExitReason.STOP_LOSS,
    )


def _at_broker(srv) -> list[dict]:
    return [o for o in admin(srv, "state")["orders"] if o["client_order_id"].startswith("sx-")]


def test_a_position_whose_stop_was_never_placed_gets_it_on_restart(srv, world):
    cfg, before, t, restart = world
    px = _entered(cfg, before, t, srv)  # ... and died before placing the stop
    r = restart()
    stop = max(px * (1 - STOPS[0]), px * (1 - STOPS[1]))
    working = [o for o in _at_broker(srv) if o["type"] == "stop" and o["status"] == "new"]
    assert [(o["client_order_id"], float(o["qty"])) for o in working] == [(_cid(cfg, "stop"), 40.0)]
    assert float(working[0]["stop_price"]) == pytest.approx(stop, abs=0.005)
    pos = r.engine.pos
    assert (pos.symbol, pos.qty, pos.stop_cid, pos.signal_ts) == ("BBB", 40, _cid(cfg, "stop"), SIGNAL_TS)
    assert r.engine.last_dir == 1 and not r.unknown  # holding the bull side: no blind re-entry


def test_a_stop_the_broker_refuses_on_restart_flattens_and_alerts(srv, world):
    cfg, before, t, restart = world
    _entered(cfg, before, t, srv)
    admin(srv, "faults", {"reject_next": 1, "reject_mode": "http"})
    r = restart()
    closes = [o for o in _at_broker(srv) if o["client_order_id"].endswith("-close")]
    assert [(o["side"], float(o["qty"])) for o in closes] == [("sell", 40.0)]
    alerts = r.journal.query("SELECT action, reason FROM risk WHERE action IN ('alert', 'flatten')")
    assert len(alerts) >= 1 and r.engine.pos is not None and r.engine.pos.closing
    admin(srv, "advance", {"to": at("2024-06-04 09:31")})
    r.broker.drain(poll=True)
    assert r.engine.pos is None and admin(srv, "state")["positions"] == {}


def test_a_stop_that_filled_while_the_bot_was_down_is_journaled_as_a_stop_loss(srv, world):
    cfg, before, t, restart = world
    px = _entered(cfg, before, t, srv)
    stop = round(float(BARS["BBB"].loc["2024-06-04", "open"]) + 1.0, 2)  # above the next open: fills there
    before.order_intent(_stop_intent(cfg, stop, pd.Timestamp("2024-06-03 09:30", tz="America/New_York")))
    o = t.submit_order(
        StopOrderRequest(
            symbol="BBB",
            qty=40,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            stop_price=stop,
            client_order_id=_cid(cfg, "stop"),
        )
    )
    before.order_status(_cid(cfg, "stop"), "submitted", str(o["id"]))
    admin(srv, "advance", {"to": at("2024-06-04 16:01")})  # the bot is down; the stop fills
    exit_px = float(t.get_order_by_client_id(_cid(cfg, "stop"))["filled_avg_price"])
    r = restart()
    e = r.engine
    assert e.pos is None and not r.unknown
    assert [(tr.exit_reason, tr.qty, tr.entry_price, tr.exit_price) for tr in e.trades] == [
        (ExitReason.STOP_LOSS, 40, px, pytest.approx(exit_px))
    ]
    fills = r.journal.query("SELECT client_order_id, side, qty, price FROM fills ORDER BY rowid")
    assert fills.values.tolist() == [
        [_cid(cfg, "open"), "buy", 40, px],
        [_cid(cfg, "stop"), "sell", 40, exit_px],
    ]
    status = r.journal.query("SELECT status FROM orders WHERE client_order_id=?", (_cid(cfg, "stop"),))
    assert status["status"].tolist() == ["filled"]
    restart()  # a second restart journals nothing twice
    assert len(r.journal.query("SELECT * FROM fills")) == 2


def test_an_entry_sent_but_not_filled_is_not_sent_again_nor_doubled(srv, world):
    cfg, before, t, restart = world
    cid = _cid(cfg, "open")
    before.order_intent(OrderIntent(cid, SIGNAL_TS, "BBB", Side.BUY, 40, OrderType.MARKET, Intent.OPEN, "x"))
    t.submit_order(MarketOrderRequest(symbol="BBB", qty=40, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
                                      client_order_id=cid))  # fmt: skip  # sent; killed before the answer
    r = restart()
    e = r.engine
    assert e.pos is None and cid in e.orders and e.last_dir == 1
    r.warm_up()
    assert e.last_dir == 1
    admin(srv, "advance", {"to": at("2024-06-03 09:31")})  # it fills at the open
    r.broker.drain(poll=True)
    assert e.pos is not None and (e.pos.symbol, e.pos.qty, e.pos.signal_ts) == ("BBB", 40, SIGNAL_TS)
    st = admin(srv, "state")
    assert st["submissions_per_client_order_id"][cid] == 1  # never sent again
    assert [o["client_order_id"] for o in _at_broker(srv) if o["side"] == "buy"] == [cid]
    assert [o["client_order_id"] for o in _at_broker(srv) if o["type"] == "stop"] == [_cid(cfg, "stop")]


def test_journaled_orders_the_broker_never_got_are_marked_not_sent_and_never_sent_late(srv, world):
    cfg, before, _, restart = world
    cid = _cid(cfg, "open")
    before.order_intent(OrderIntent(cid, SIGNAL_TS, "BBB", Side.BUY, 40, OrderType.MARKET, Intent.OPEN, "x"))
    r = restart()  # killed between journaling and sending
    assert r.journal.query("SELECT status FROM orders WHERE client_order_id=?", (cid,))[
        "status"
    ].tolist() == ["not_sent"]
    assert r.engine.pos is None and cid not in r.engine.orders
    r.warm_up()
    admin(srv, "advance", {"to": at("2024-06-04 16:01")})
    r.broker.drain(poll=True)
    assert _at_broker(srv) == [] and admin(srv, "state")["submissions_per_client_order_id"] == {}


def _entry_filled_by_the_engine(cfg, j: Journal, t: TradingClient, srv, restart) -> AlpacaRun:
    """The previous run: its entry fills and its engine places the protective orders (with a take-profit:
    one OCO exit, the stop as its leg under a broker-assigned id). Then the bot stops."""
    cid = _cid(cfg, "open")
    j.order_intent(OrderIntent(cid, SIGNAL_TS, "BBB", Side.BUY, 40, OrderType.MARKET, Intent.OPEN, "x"))
    t.submit_order(MarketOrderRequest(symbol="BBB", qty=40, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
                                      client_order_id=cid))  # fmt: skip
    r = restart()
    admin(srv, "advance", {"to": at("2024-06-03 09:31")})  # the entry fills at the open
    r.broker.drain(poll=True)
    return r


# 2024-06-04 (after an entry at the 06-03 open, 53.58): low 52.19, high 54.40. A 2% stop (52.51) with a
# 5% take-profit is left by the stop leg; a 1% take-profit (54.12) with the 10%/8% stop by the take-profit.
OCO_EXITS = [
    ({"stops": (0.02, 0.08), "risk": "take_profit_pct = 0.05"}, "stop", ExitReason.STOP_LOSS),
    ({"stops": STOPS, "risk": "take_profit_pct = 0.01"}, "tp", ExitReason.TAKE_PROFIT),
]


@pytest.mark.parametrize(("world", "leg", "reason"), OCO_EXITS, indirect=["world"], ids=["stop-leg", "tp"])
def test_an_oco_exit_that_filled_while_the_bot_was_down_is_journaled_once_with_its_reason(
    srv, world, leg, reason
):
    cfg, before, t, restart = world
    first = _entry_filled_by_the_engine(cfg, before, t, srv, restart)
    pos = first.engine.pos
    assert pos is not None and (pos.stop_cid, pos.tp_cid) == (_cid(cfg, "stop"), _cid(cfg, "tp"))
    oco = t.get_order_by_id(t.get_order_by_client_id(_cid(cfg, "tp"))["id"], GetOrderByIdRequest(nested=True))
    assert oco["order_class"] == "oco" and not oco["legs"][0]["client_order_id"].startswith("sx-")
    admin(srv, "advance", {"to": at("2024-06-04 16:01")})  # the bot is down; one leg fills
    filled = t.get_order_by_id(oco["legs"][0]["id"] if leg == "stop" else oco["id"])
    assert filled["status"] == "filled" and float(filled["filled_qty"]) == 40
    exit_px = float(filled["filled_avg_price"])
    sent = admin(srv, "state")["submissions_per_client_order_id"]
    r = restart()
    e = r.engine
    assert e.pos is None and not r.unknown and not e.orders
    assert [(tr.exit_reason, tr.qty, tr.exit_price) for tr in e.trades] == [
        (reason, 40, pytest.approx(exit_px))
    ]
    fills = r.journal.query("SELECT client_order_id, side, qty, price FROM fills ORDER BY rowid")
    assert fills.values.tolist()[1:] == [[_cid(cfg, leg), "sell", 40, pytest.approx(exit_px)]]
    status = dict(r.journal.db.execute("SELECT client_order_id, status FROM orders").fetchall())
    other = "tp" if leg == "stop" else "stop"
    assert (status[_cid(cfg, leg)], status[_cid(cfg, other)]) == ("filled", "canceled")
    restart()  # a second restart journals nothing twice
    assert len(r.journal.query("SELECT * FROM fills")) == 2
    st = admin(srv, "state")
    assert st["submissions_per_client_order_id"] == sent and st["positions"] == {}  # nothing re-sent


# -- a close that ends partly filled ------------------------------------------------------------------
def _bar_step(r: AlpacaRun, day: str, direction: int) -> None:
    """The engine's step on `day`'s daily bar with the combined `direction` (what the driver does)."""
    ts = pd.Timestamp(day)
    bar = tuple(float(x) for x in BARS["BBB"].loc[ts, ["open", "high", "low", "close"]])
    r.engine.step(ts, int(session_labels(pd.DatetimeIndex([ts]))[0]), {"BBB": bar}, direction, True, "test")


def _working_sells(srv) -> list[tuple[str, str, float]]:
    return [(o["client_order_id"], o["type"], float(o["qty"])) for o in _at_broker(srv)
            if o["side"] == "sell" and o["status"] in (*WORKING, "accepted")]  # fmt: skip


def _held(srv) -> float:
    return admin(srv, "state")["positions"].get("BBB", {"qty": 0.0})["qty"]


def test_a_close_that_expires_partly_filled_is_sent_again_then_the_rest_keeps_a_stop(srv, world):
    cfg, before, t, restart = world
    _entered(cfg, before, t, srv, qty=1000)
    r = restart()  # holding 1000 with its stop
    admin(srv, "faults", {"partial_fill_prob": 1.0})  # every fill in part: day orders expire part-filled
    _bar_step(r, "2024-06-03", 0)  # the signal leaves: stop canceled, close sent
    close = client_order_id(set_id_for(cfg), "BBB", pd.Timestamp("2024-06-03"), "close")
    assert _working_sells(srv) == [(close, "market", 1000.0)]
    seen = []
    for day in ("2024-06-04", "2024-06-05", "2024-06-06", "2024-06-07"):
        admin(srv, "advance", {"to": at(f"{day} 16:01")})  # part fills at the open, the rest expires
        r.broker.drain(poll=True)
        held, e = _held(srv), r.engine
        assert e.pos is not None and e.pos.qty == held > 0
        working = _working_sells(srv)
        assert len(working) == 1 and working[0][2] == held, working  # the rest is never left bare
        seen.append(working[0][:2])
    stop_cid = seen[-1][0]
    assert seen == [(f"{close}-r1", "market"), (f"{close}-r2", "market"), (f"{close}-r3", "market"),
                    (stop_cid, "stop")]  # fmt: skip
    assert stop_cid.startswith(_cid(cfg, "stop") + "-r") and not r.engine.pos.closing
    verdicts = r.journal.query("SELECT action, reason FROM risk WHERE run_id=?", (r.journal.run_id,))
    assert verdicts["action"].tolist().count("exit") == 3 and "sent again as" in verdicts["reason"].iloc[-2]
    assert verdicts["action"].iloc[-1] == "protect" and "sent 3 times again" in verdicts["reason"].iloc[-1]
    assert max(admin(srv, "state")["submissions_per_client_order_id"].values()) == 1


def test_a_partly_filled_close_whose_signal_came_back_keeps_the_rest_with_its_stop(srv, world):
    cfg, before, t, restart = world
    _entered(cfg, before, t, srv)
    r = restart()
    admin(srv, "faults", {"partial_fill_prob": 1.0})
    _bar_step(r, "2024-06-03", 0)  # close sent
    admin(srv, "advance", {"to": at("2024-06-04 09:31")})  # part of it fills at the open
    r.broker.drain(poll=True)
    assert 0 < _held(srv) < 40
    _bar_step(r, "2024-06-04", 1)  # the direction is back to BBB before the close ran out
    admin(srv, "advance", {"to": at("2024-06-04 16:01")})  # the rest of the close expires
    r.broker.drain(poll=True)
    held, e = _held(srv), r.engine
    assert e.pos is not None and e.pos.qty == held and not e.pos.closing and e.pending_open is None
    [(cid, kind, qty)] = _working_sells(srv)
    assert (kind, qty, cid == e.pos.stop_cid) == ("stop", held, True)
    last = r.journal.query("SELECT action, reason FROM risk ORDER BY rowid DESC LIMIT 1").iloc[0]
    assert last["action"] == "protect" and "exit no longer stands" in last["reason"]


def test_a_stop_canceled_at_the_broker_while_the_position_is_held_is_placed_again(srv, world):
    cfg, before, t, restart = world
    _entered(cfg, before, t, srv)
    r = restart()
    stop = t.get_order_by_client_id(_cid(cfg, "stop"))
    t.cancel_order_by_id(stop["id"])  # someone cancels it at the broker (or its GTC time ran out)
    r.broker.drain(poll=True)
    again = _cid(cfg, "stop", 1)
    assert _working_sells(srv) == [(again, "stop", 40.0)] and r.engine.pos.stop_cid == again
    last = r.journal.query("SELECT action, reason FROM risk ORDER BY rowid DESC LIMIT 1").iloc[0]
    assert last["action"] == "protect" and "placed again" in last["reason"]
