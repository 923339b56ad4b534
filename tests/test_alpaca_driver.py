"""The Alpaca driver's start-up against the real sandbox: a restart adopts the bot's own position with its
broker-side stop (and will not re-enter), leaves anyone else's alone, and warms up without trading."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest, StopOrderRequest

from bot.core.config import load_config
from bot.core.ids import client_order_id
from bot.journal.journal import Journal
from bot.risk.stops import initial_stop
from bot.run.alpaca import AlpacaRun
from bot.run.backtest import set_id_for
from bot.run.service.status import status_report
from bot.sandbox.app import SandboxServer
from tests.alpaca_support import bot_config, in_process_run
from tests.sandbox_support import admin, at, daily_bars, serving, write_bars

BARS = daily_bars()
UNIVERSE = ("AAA", "BBB", "")
KEYS = ("PKTEST", "SECRET")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("driver-daily"), BARS, "1d", "2024-06-03") as s:
        yield s


@pytest.fixture
def run(srv, tmp_path):
    admin(srv, "reset", {"start": at("2024-06-03 09:00")})
    cfg_file = bot_config(tmp_path, srv.url, universe=UNIVERSE, keys=KEYS, cash=50000)
    cfg = load_config(cfg_file)
    made = []

    def _make() -> AlpacaRun:
        j = Journal(cfg.journal.path)
        made.append(j)
        return in_process_run(cfg, j)

    yield cfg, _make
    for j in made:
        j.close()


def tc(srv) -> TradingClient:
    return TradingClient("PKTEST", "SECRET", url_override=srv.url)


def test_restart_adopts_its_own_position_and_stop(srv, run):
    cfg, make = run
    sid = set_id_for(cfg)
    signal_ts = pd.Timestamp("2024-05-31")
    t = tc(srv)
    t.submit_order(
        MarketOrderRequest(symbol="BBB", qty=40, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
                           client_order_id=client_order_id(sid, "BBB", signal_ts, "open"))
    )  # fmt: skip  # what an earlier run of the same strategy set did
    admin(srv, "advance", {"to": at("2024-06-03 09:31")})
    stop_cid = client_order_id(sid, "BBB", signal_ts, "stop", 2)  # raised twice already
    t.submit_order(
        StopOrderRequest(symbol="BBB", qty=40, side=OrderSide.SELL, time_in_force=TimeInForce.GTC,
                         stop_price=40.0, client_order_id=stop_cid)
    )  # fmt: skip
    r = make()
    rec = r.reconcile()
    pos = r.engine.pos
    assert pos is not None and (pos.symbol, pos.qty, pos.stop, pos.stop_cid) == ("BBB", 40, 40.0, stop_cid)
    assert pos.entry_price == pytest.approx(BARS["BBB"].loc["2024-06-03", "open"])
    assert pos.stop_rev == 2 and pos.signal_ts == signal_ts  # later raises continue the id sequence
    assert r.engine.last_dir == 1  # holding the bull side: no blind re-entry
    assert rec.positions["BBB"][0] == 40 and not r.foreign
    assert r.engine.cash <= cfg.broker.starting_cash
    r.warm_up()
    assert r.engine.pos is pos and r.engine.last_dir == 1
    assert r.live.count == len(BARS["AAA"].loc[:"2024-05-31"])  # every completed bar, no more
    assert r.expected == (
        pd.Timestamp("2024-06-03"),
        pd.Timestamp("2024-06-03 16:00", tz="America/New_York"),
    )
    assert not admin(srv, "state")["orders"][2:]  # warming up sent nothing


def test_someone_elses_position_is_left_alone_and_blocks_entries(srv, run):
    _cfg, make = run
    t = tc(srv)
    t.submit_order(MarketOrderRequest(symbol="BBB", qty=5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    admin(srv, "advance", {"to": at("2024-06-03 09:31")})
    r = make()
    r.reconcile()
    assert r.engine.pos is None and r.foreign == {"BBB"}
    r.warm_up()
    assert len(admin(srv, "state")["orders"]) == 1  # nothing sent, nothing canceled


def test_with_foreign_positions_adopt_someone_elses_position_is_managed_with_a_stop(srv, run):
    cfg, make = run
    cfg.broker.foreign_positions = "adopt"
    t = tc(srv)
    t.submit_order(MarketOrderRequest(symbol="BBB", qty=5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    admin(srv, "advance", {"to": at("2024-06-05 09:31")})  # the price has moved on since the buy
    price = float(t.get_open_position("BBB").current_price)
    assert price != pytest.approx(float(t.get_open_position("BBB").avg_entry_price), abs=0.05)
    r = make()
    r.reconcile()
    pos = r.engine.pos
    assert pos is not None and (pos.symbol, pos.qty) == ("BBB", 5) and not r.foreign
    assert r.engine.last_dir == 1  # holding the bull side: no blind re-entry
    stops = [o for o in admin(srv, "state")["orders"] if o["type"] == "stop" and o["status"] == "new"]
    assert len(stops) == 1 and stops[0]["client_order_id"] == pos.stop_cid
    want = initial_stop(cfg.risk, price, None)  # the stop rule applied to today's price, not an old entry
    assert want is not None and float(stops[0]["stop_price"]) == pytest.approx(want, abs=0.01)
    verdicts = r.journal.db.execute("SELECT reason FROM risk WHERE action='alert'").fetchall()
    assert any("adopted" in v[0] for v in verdicts)


def test_a_position_closed_by_hand_is_an_unknown_state_at_the_end_of_day(srv, run):
    """The engine holds BBB; someone sells it at the broker during the day. The end-of-day check sees
    the difference, alerts, and blocks new entries instead of guessing."""
    cfg, make = run
    cfg.broker.foreign_positions = "adopt"  # the quickest way to a position the engine holds
    t = tc(srv)
    t.submit_order(MarketOrderRequest(symbol="BBB", qty=5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    admin(srv, "advance", {"to": at("2024-06-03 09:31")})
    r = make()
    r.journal.start_run("paper-alpaca", r.set_id, json.loads(cfg.model_dump_json()), False)
    r.reconcile()
    assert r.check_positions("at end of day") is None and not r.unknown  # in step: nothing to say
    t.cancel_orders()
    t.close_position("BBB")
    admin(srv, "advance", {"to": at("2024-06-04 09:31")})  # filled at the next bar's open
    what = r.check_positions("at end of day")
    assert what == "the engine holds 5 BBB, the broker flat" and r.unknown == [what]
    verdicts = r.journal.db.execute("SELECT reason FROM risk WHERE action='alert'").fetchall()
    assert any("unknown state at end of day" in v[0] for v in verdicts)
    r.journal.flush()
    locks = next(x for x in status_report(cfg.journal.path).splitlines() if x.startswith("locks:"))
    assert "new entries blocked (unknown state at end of day: the engine holds 5 BBB" in locks


def test_missing_bars_are_reported_and_block_entries_until_data_is_back(tmp_path, capsys):
    frames = {s: df.copy() for s, df in BARS.items()}
    frames["AAA"] = frames["AAA"].drop([pd.Timestamp("2024-06-05"), pd.Timestamp("2024-06-06")])
    d = write_bars(tmp_path / "gap", frames, "1d")
    with SandboxServer(data_dir=d, timeframe="1d", speed=0, start="2024-06-03") as s:
        cfg_file = bot_config(tmp_path, s.url, ma=None, universe=UNIVERSE, keys=KEYS)
        cfg = load_config(cfg_file)
        j = Journal(cfg.journal.path)
        r = in_process_run(cfg, j, resync=0.5)
        r.clock.calibrate(0.2)
        r.reconcile()
        r.warm_up()
        admin(s, "advance", {"seconds": 1, "speed": 120000})  # now let the market run
        r.run(max_bars=3)  # 06-03, 06-04, then 06-07 after the two missing days
        j.close()
    out = capsys.readouterr().out
    assert out.count("bar missing") == 2
    assert "data stale" in out
    last = [line for line in out.splitlines() if "2024-06-07" in line and "bar" in line][-1]
    assert "gap of 2 bars" in last and "feed was stale" in last
    assert r.prev == pd.Timestamp("2024-06-07") and not r.stale, out


def test_an_adopted_position_whose_stop_needs_the_index_sigma_gets_it_once_warmed_up(srv, run):
    """The only stop rule is k x sigma x |L| of the signal symbol: at reconcile sigma is not known yet, so
    the stop is placed as soon as the warm-up has fed sigma, at the level a backtest would compute."""
    from bot.core.config import LeveragedFund
    from bot.risk.index import DailyVol

    cfg, make = run
    cfg.broker.foreign_positions = "adopt"
    cfg.leveraged.funds = [LeveragedFund(symbol="BBB", leverage=3.0, underlying="AAA")]
    cfg.risk.trailing_stop_pct = 0.0
    cfg.risk.stop_sigma_mult = 2.5
    cfg.risk.stop_loss_pct = 0.0
    t = tc(srv)
    t.submit_order(MarketOrderRequest(symbol="BBB", qty=5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    admin(srv, "advance", {"to": at("2024-06-05 09:31")})
    price = float(t.get_open_position("BBB").current_price)
    r = make()
    r.reconcile()
    assert r.engine.pos is not None and r.engine.pos.stop is None  # sigma not known yet: no level
    r.warm_up()
    v = DailyVol(cfg.risk.vol_lookback)
    for i, c in enumerate(BARS["AAA"].loc[:"2024-06-04", "close"]):
        v.update(i, float(c))
    want = price * (1 - 2.5 * v.value * 3)
    pos = r.engine.pos
    assert pos is not None and pos.stop == pytest.approx(want, rel=1e-9)
    stops = [o for o in admin(srv, "state")["orders"] if o["type"] == "stop" and o["status"] == "new"]
    assert len(stops) == 1 and stops[0]["client_order_id"] == pos.stop_cid
    assert float(stops[0]["stop_price"]) == pytest.approx(want, abs=0.01)


def test_a_side_the_account_cannot_buy_one_share_of_is_said_once_at_start(srv, run, capsys):
    cfg, make = run
    cfg.broker.starting_cash = 40.0  # BBB trades near 50: not one whole share
    r = make()
    r.reconcile()
    r.warm_up()
    out = capsys.readouterr().out
    assert out.count("bull BBB cannot be sized") == 1, out
    assert "Fix: set [risk] fractional = true" in out
