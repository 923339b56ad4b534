"""What an outside kill -9 soak against the sandbox found, each reproduced on its own: the real Alpaca
driver (engine, journal, adapter through alpaca-py) against the in-process sandbox on a frozen clock,
with the sandbox's own fault switches for the broker's bad moments.

1. an OCO exit whose POST answer was lost (one 504): its stop leg is still found and moved (a stop
   refused because our own order holds the shares: tests/test_alpaca_broker.py);
2. a stop that fills while the restart reads the broker leaves no phantom position; a fill the order
   poll cannot read is settled from the account's fills;
3. a take-profit fill reaches the engine before its stop leg's cancel (no re-placed stop, no alert);
4. waits on the driver's thread say what they wait for;
5. no journal row stays 'intent' once its order is seen at the broker.
"""

from __future__ import annotations

import pandas as pd
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, TimeInForce
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
)

from bot.core.config import load_config
from bot.core.events import ExitReason, Intent, OrderIntent, OrderType, Side
from bot.journal.journal import Journal
from bot.run.alpaca import AlpacaRun
from bot.run.backtest import set_id_for
from bot.sandbox.app import SandboxServer
from tests.alpaca_support import bot_config, in_process_run
from tests.sandbox_support import admin, at, write_bars
from tests.test_crash_safety import (
    BARS,
    KEYS,
    SIGNAL_TS,
    STOPS,
    _at_broker,
    _bar_step,
    _cid,
    _entered,
    _entry_filled_by_the_engine,
    _stop_intent,
    _working_sells,
)

FAST = {"backoff": (0.01, 0.01, 0.01, 0.01)}  # the adapter's retries without seconds of sleep
TAKE_PROFIT = {"risk": "take_profit_pct = 0.05"}  # 56.26 over the 06-03 entry (53.58): out of reach


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = write_bars(tmp_path_factory.mktemp("kill9-daily"), BARS, "1d")
    with SandboxServer(data_dir=d, timeframe="1d", speed=0, start="2024-06-03") as s:
        yield s


@pytest.fixture
def world(srv, tmp_path, request):
    """(config, a previous run's journal, a TradingClient, restart(**broker args)) on a fresh account.
    Parametrized indirectly with more `bot_config` arguments."""
    admin(srv, "reset", {"start": at("2024-06-03 09:00")})
    admin(srv, "faults", {"clear": True})
    more = {"stops": STOPS, **getattr(request, "param", {})}
    cfg = load_config(bot_config(tmp_path, srv.url, universe=("AAA", "BBB", ""), keys=KEYS, **more))
    before = Journal(cfg.journal.path)
    before.start_run("paper-alpaca", set_id_for(cfg), {})
    opened: list[Journal] = [before]

    def restart(**broker) -> AlpacaRun:
        j = Journal(cfg.journal.path)
        opened.append(j)
        j.start_run("paper-alpaca", set_id_for(cfg), {})
        run = in_process_run(cfg, j, on_status=lambda c, st, b, d: j.order_status(c, st, b, d), **broker)
        run.reconcile()
        return run

    yield cfg, before, TradingClient("PKTEST", "SECRET", raw_data=True, url_override=srv.url), restart
    for j in opened:
        j.close()


def _holding_with_engine(cfg, before: Journal, t: TradingClient, srv, restart, **broker) -> AlpacaRun:
    """The previous run's entry (40 BBB) filled at the 06-03 open; this run's engine protects it."""
    _entered(cfg, before, t, srv)
    return restart(**broker)


def _verdicts(r: AlpacaRun) -> list[tuple[str, str]]:
    rows = r.journal.db.execute("SELECT action, reason FROM risk WHERE run_id=?", (r.journal.run_id,))
    return [tuple(x) for x in rows.fetchall()]


def _oco_with_a_lost_answer(cfg, before, t, srv, restart) -> AlpacaRun:
    """The engine's entry fills and it sends its stop + take-profit as one OCO; the broker takes the OCO
    but its answer is a 504. The adapter looks the OCO up by client_order_id (no legs in that answer)."""
    cid = _cid(cfg, "open")
    before.order_intent(OrderIntent(cid, SIGNAL_TS, "BBB", Side.BUY, 40, OrderType.MARKET, Intent.OPEN, "x"))
    t.submit_order(MarketOrderRequest(symbol="BBB", qty=40, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
                                      client_order_id=cid))  # fmt: skip
    r = restart(**FAST)
    admin(srv, "advance", {"to": at("2024-06-03 09:31")})  # the entry fills at the open
    admin(srv, "faults", {"rate_504": 1.0, "routes": ["POST /v2/orders"], "when": "after", "times": 1})
    r.broker.drain(poll=True)  # entry fill -> OCO sent -> 504 after the broker took it
    assert admin(srv, "state")["injected"] == {"504": 1}
    pos = r.engine.pos
    assert pos is not None and (pos.stop_cid, pos.tp_cid) == (_cid(cfg, "stop"), _cid(cfg, "tp"))
    return r


# -- 1. a lost OCO answer ------------------------------------------------------------------------------
@pytest.mark.parametrize("world", [TAKE_PROFIT], indirect=True)
def test_a_trailing_raise_after_a_lost_oco_answer_moves_the_stop_leg_and_never_flattens(srv, world):
    cfg, before, t, restart = world
    r = _oco_with_a_lost_answer(cfg, before, t, srv, restart)
    admin(srv, "advance", {"to": at("2024-06-03 16:01")})
    _bar_step(r, "2024-06-03", 1)  # high 54.58: the 8% trailing stop rises from 49.29 to 50.21
    r.broker.drain(poll=True)
    raised = _cid(cfg, "stop", 1)
    assert sorted(_working_sells(srv)) == [(raised, "stop", 40.0), (_cid(cfg, "tp"), "limit", 40.0)]
    leg = next(o for o in _at_broker(srv) if o["client_order_id"] == raised)
    assert leg["replaces"] is not None and leg["order_class"] == "oco"  # the OCO's leg, moved
    assert float(leg["stop_price"]) == pytest.approx(54.58 * (1 - STOPS[1]), abs=0.005)
    e = r.engine
    assert e.pos is not None and not e.pos.closing and e.pos.stop_cid == raised
    assert _verdicts(r) == []  # no "could not be placed: flatten", no alert
    assert not any(o["client_order_id"].endswith("-close") for o in _at_broker(srv))


# -- 2. orders and positions read at different moments -------------------------------------------------
def test_a_stop_that_fills_while_the_restart_reads_the_broker_leaves_no_phantom_position(srv, world):
    cfg, before, t, restart = world
    px = _entered(cfg, before, t, srv)
    stop = round(float(BARS["BBB"].loc["2024-06-04", "low"]) + 0.5, 2)  # the 06-04 bar crosses it
    before.order_intent(_stop_intent(cfg, stop, pd.Timestamp("2024-06-03 09:30", tz="America/New_York")))
    gtc = {"symbol": "BBB", "qty": 40, "side": OrderSide.SELL, "time_in_force": TimeInForce.GTC}
    o = t.submit_order(StopOrderRequest(**gtc, stop_price=stop, client_order_id=_cid(cfg, "stop")))
    before.order_status(_cid(cfg, "stop"), "submitted", str(o["id"]))
    admin(srv, "advance", {"to": at("2024-06-04 15:59")})
    # the 06-04 bar closes (and the stop fills) after the restart has read the positions, before it
    # reads the orders: the first order listing moves the market on by two minutes
    admin(srv, "faults", {"advance": 120, "routes": ["GET /v2/orders"], "times": 1})
    r = restart()
    assert admin(srv, "state")["injected"] == {"advance": 1}
    e = r.engine
    assert e.pos is None and not r.foreign and not r.unknown, (r.foreign, r.unknown)
    assert [(tr.exit_reason, tr.qty, tr.entry_price) for tr in e.trades] == [(ExitReason.STOP_LOSS, 40, px)]
    assert not [v for v in _verdicts(r) if v[0] in ("alert", "flatten")]
    assert admin(srv, "state")["positions"] == {} and _working_sells(srv) == []
    assert r.check_positions("pre-open") is None


@pytest.mark.parametrize("world", [{"stops": (0.02, 0.0)}], indirect=True)
def test_a_fill_the_order_poll_cannot_read_is_settled_from_the_accounts_fills(srv, world):
    cfg, before, t, restart = world
    _entered(cfg, before, t, srv)
    r = restart(down_poll_interval=3600.0, **FAST)  # polls only when asked: the test decides when
    pos = r.engine.pos
    assert pos is not None and pos.stop == pytest.approx(53.58 * 0.98)  # 52.51: the 06-04 low is 52.19
    admin(srv, "advance", {"to": at("2024-06-04 16:01")})  # the stop fills; nobody has told the bot
    # at the pre-open check every read of an order by its id fails (all 5 tries of the poll)
    admin(srv, "faults", {"rate_500": 1.0, "routes": ["GET /v2/orders/"], "times": 5})
    assert r.check_positions("pre-open") is None and not r.unknown
    assert admin(srv, "state")["injected"] == {"500": 5}
    assert r.engine.pos is None and [tr.exit_reason for tr in r.engine.trades] == [ExitReason.STOP_LOSS]
    fills = r.journal.query(
        "SELECT client_order_id, side, qty FROM fills WHERE run_id=?", (r.journal.run_id,)
    )
    assert fills.values.tolist() == [[_cid(cfg, "stop"), "sell", 40]]


# -- 3. a take-profit fill and its stop's cancel --------------------------------------------------------
@pytest.mark.parametrize("world", [{"risk": "take_profit_pct = 0.01"}], indirect=True)
def test_a_take_profit_fill_reaches_the_engine_before_its_stop_legs_cancel(srv, world):
    cfg, before, t, restart = world
    r = _entry_filled_by_the_engine(cfg, before, t, srv, restart)  # its exit: one OCO (tp 54.12)
    assert (r.engine.pos.stop_cid, r.engine.pos.tp_cid) == (_cid(cfg, "stop"), _cid(cfg, "tp"))
    admin(srv, "advance", {"to": at("2024-06-04 16:01")})  # high 54.40: the take-profit fills
    r.broker.drain(poll=True)
    e = r.engine
    assert e.pos is None and [tr.exit_reason for tr in e.trades] == [ExitReason.TAKE_PROFIT]
    assert _verdicts(r) == []  # no "protective stop ... placed again", no refused stop, no alert
    assert [o["client_order_id"] for o in _at_broker(srv) if o["type"] == "stop"] == []  # no new stop
    status = dict(r.journal.db.execute("SELECT client_order_id, status FROM orders").fetchall())
    assert (status[_cid(cfg, "tp")], status[_cid(cfg, "stop")]) == ("filled", "canceled")


# -- 4. waits on the driver's thread -------------------------------------------------------------------
@pytest.mark.parametrize("world", [{"stops": (0.1, 0.0)}], indirect=True)  # no trailing raise
def test_waits_on_the_drivers_thread_say_what_they_wait_for(srv, world, capsys):
    cfg, before, t, restart = world
    r = _holding_with_engine(cfg, before, t, srv, restart, **FAST)
    stop_cid = r.engine.pos.stop_cid
    stop_id = next(o["id"] for o in _at_broker(srv) if o["client_order_id"] == stop_cid)
    capsys.readouterr()
    # the signal leaves BBB: the engine cancels the stop (the broker fails every try) and sells
    admin(srv, "faults", {"rate_500": 1.0, "routes": ["DELETE /v2/orders"], "times": 5})
    _bar_step(r, "2024-06-03", 0)
    out = capsys.readouterr().out
    waits = [line for line in out.splitlines() if "waiting" in line]
    assert sum(f"cancel of order {stop_id}: asking again" in w for w in waits) == 4, out
    assert sum(f"end of {stop_cid} before selling" in w for w in waits) == 1, out
    assert "still working at the broker" in out
    r.broker.drain(poll=True)
    e = r.engine
    assert e.pos is not None and not e.pos.closing  # the sell was refused: held again, and protected
    working = _working_sells(srv)
    assert len(working) == 1 and working[0][1:] == ("stop", 40.0), working


# -- 5. journal rows stuck in 'intent' -----------------------------------------------------------------
@pytest.mark.parametrize("world", [TAKE_PROFIT], indirect=True)
def test_an_oco_stop_legs_journal_row_follows_the_leg_after_a_lost_answer(srv, world):
    cfg, before, t, restart = world
    r = _oco_with_a_lost_answer(cfg, before, t, srv, restart)
    status = dict(r.journal.db.execute("SELECT client_order_id, status FROM orders WHERE run_id=?",
                                       (r.journal.run_id,)).fetchall())  # fmt: skip
    assert status[_cid(cfg, "stop")] == "submitted"  # the leg was seen at the broker
    _bar_step(r, "2024-06-03", 0)  # the signal leaves: the OCO is canceled and the position sold
    r.broker.drain(poll=True)
    status = dict(r.journal.db.execute("SELECT client_order_id, status FROM orders WHERE run_id=?",
                                       (r.journal.run_id,)).fetchall())  # fmt: skip
    assert (status[_cid(cfg, "tp")], status[_cid(cfg, "stop")]) == ("canceled", "canceled")


@pytest.mark.parametrize("world", [TAKE_PROFIT], indirect=True)
def test_a_restart_settles_the_rows_of_orders_it_finds_working_at_the_broker(srv, world):
    cfg, before, t, restart = world
    _entered(cfg, before, t, srv)
    now = pd.Timestamp("2024-06-03 09:30", tz="America/New_York")
    stop = _stop_intent(cfg, 49.29, now)
    tp = OrderIntent(_cid(cfg, "tp"), now, "BBB", Side.SELL, 40, OrderType.LIMIT, Intent.TAKE_PROFIT,
                     "take profit", limit_price=56.26, exit_reason=ExitReason.TAKE_PROFIT)  # fmt: skip
    before.order_intent(stop)  # journaled, sent as one OCO, and the run died before the answer
    before.order_intent(tp)
    gtc = {"symbol": "BBB", "qty": 40, "side": OrderSide.SELL, "time_in_force": TimeInForce.GTC}
    oco = {
        "take_profit": TakeProfitRequest(limit_price=56.26),
        "stop_loss": StopLossRequest(stop_price=49.29),
    }
    t.submit_order(
        LimitOrderRequest(**gtc, order_class=OrderClass.OCO, client_order_id=tp.client_order_id, **oco)
    )
    r = restart()
    assert r.engine.pos is not None and r.engine.pos.stop_cid == stop.client_order_id
    assert _rows(r) == {stop.client_order_id: "submitted", tp.client_order_id: "submitted"}  # seen working
    _bar_step(r, "2024-06-03", 1)  # a trailing raise moves the OCO's stop leg: '-stop' is replaced
    raised = _cid(cfg, "stop", 1)
    assert r.engine.pos.stop_cid == raised
    r = restart()  # the replaced leg is still listed under its working OCO: its row is settled from it
    rows = _rows(r)
    assert rows[stop.client_order_id] == "replaced" and "intent" not in rows.values(), rows
    assert r.engine.pos is not None and r.engine.pos.stop_cid == raised


def _rows(r: AlpacaRun) -> dict[str, str]:
    """The latest journal status of each of our protective orders (any run)."""
    rows = r.journal.db.execute(
        "SELECT client_order_id, status FROM orders WHERE intent IN ('stop', 'tp') ORDER BY run_id"
    ).fetchall()
    return dict(rows)
