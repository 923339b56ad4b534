"""A split while the bot holds a position at Alpaca, against the real sandbox through alpaca-py: the
sandbox applies it as Alpaca does (quantity x ratio, open orders canceled, the split announced), and
afterwards the bot still holds the position as its own, its protective stop is at the broker again at
the new price for the new quantity, and the journal says what happened. Found three ways: the stop's
cancel (Alpaca's corporate actions say why), the bot's own splits table when Alpaca has not announced
it yet, and a restart after a split that happened while the bot was down."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from alpaca.trading.client import TradingClient

from bot.core.config import load_config
from bot.execution.decide import open_
from bot.journal.journal import Journal
from bot.run.alpaca import AlpacaRun
from bot.run.service.alerts import engine_alert
from tests.alpaca_support import bot_config, in_process_run
from tests.sandbox_support import admin, at, daily_bars, serving

BARS = daily_bars()
BBB = BARS["BBB"]
UNIVERSE = ("AAA", "BBB", "")
KEYS = ("PKTEST", "SECRET")
NY = "America/New_York"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("alpaca-splits"), BARS, "1d", "2024-06-03") as s:
        yield s


@pytest.fixture
def setup(srv, tmp_path):
    admin(srv, "reset", {"start": at("2024-06-03 09:00")})
    made: list[Journal] = []

    def make(splits: str = "") -> AlpacaRun:
        p = bot_config(tmp_path, srv.url, universe=UNIVERSE, keys=KEYS, cash=50000, stops=(0.10, 0.0))
        if splits:  # the bot's own splits table
            (tmp_path / "splits.csv").write_text(splits)
            p.write_text(
                p.read_text().replace("[data]\n", f'[data]\nsplits_file = "{tmp_path / "splits.csv"}"\n', 1)
            )
        cfg = load_config(p)
        j = Journal(cfg.journal.path)
        made.append(j)
        j.start_run("paper-alpaca", "x", json.loads(cfg.model_dump_json()), False)
        return in_process_run(cfg, j, resync=0)

    yield make
    for j in made:
        j.close()


def tc(srv) -> TradingClient:
    return TradingClient(*KEYS, url_override=srv.url)


def enter(r: AlpacaRun, srv) -> tuple[float, float, str]:
    """The bot buys BBB through its own entry path at the 2024-06-03 open; its stop goes to the broker."""
    r.reconcile()
    e = r.engine
    e.set_time(pd.Timestamp("2024-06-03 09:00", tz=NY))
    open_(e, "BBB", pd.Timestamp("2024-05-31"), "test entry", float(BBB.loc["2024-05-31", "close"]))
    admin(srv, "advance", {"to": at("2024-06-03 09:31")})
    r.broker.drain(poll=True)
    pos = e.pos
    assert pos is not None and pos.symbol == "BBB" and pos.stop_cid is not None
    assert r.broker.working(pos.stop_cid)
    return pos.qty, pos.stop, pos.stop_cid  # type: ignore[return-value]


def split(srv, announce: bool = True) -> None:
    """A 1-for-4 reverse split of BBB, applied before the 2024-06-04 open."""
    admin(srv, "advance", {"to": at("2024-06-04 08:00")})
    admin(srv, "split", {"symbol": "BBB", "new_rate": 1, "old_rate": 4, "announce": announce})


def check_after(r: AlpacaRun, srv, qty: float, stop: float, stop_cid: str, source: str) -> None:
    """Position, stop at the broker and journal after the split."""
    pos = r.engine.pos
    assert pos is not None and pos.qty == pytest.approx(qty / 4) and pos.stop == pytest.approx(stop * 4)
    broker_qty = float(tc(srv).get_open_position("BBB").qty)
    assert broker_qty == pytest.approx(qty / 4)
    live = [
        o
        for o in admin(srv, "state")["orders"]
        if o["symbol"] == "BBB" and o["status"] in ("new", "accepted")
    ]
    assert len(live) == 1, live
    o = live[0]
    assert (o["type"], o["side"], o["client_order_id"]) == ("stop", "sell", stop_cid + "-r1")
    assert float(o["qty"]) == math.floor(qty / 4 + 1e-9)  # broker-side stops cover whole shares
    assert float(o["stop_price"]) == pytest.approx(stop * 4, abs=0.01)
    j = r.journal
    j.flush()
    rows = j.db.execute("SELECT reason, details FROM risk WHERE action='split'").fetchall()
    assert len(rows) == 1 and "position kept, protective orders placed again" in rows[0][0]
    d = json.loads(rows[0][1])
    assert (d["qty_before"], d["qty_after"]) == (qty, pytest.approx(qty / 4)) and source in d["source"]
    status = dict(j.db.execute("SELECT client_order_id, status FROM orders WHERE intent='stop'").fetchall())
    assert status[stop_cid] == "canceled" and stop_cid + "-r1" in status
    assert r.check_positions("at end of day") is None and not r.unknown  # nothing unexplained
    alert = engine_alert("risk", {"action": "split", "reason": rows[0][0]})
    assert alert is not None and alert.text.startswith("SPLIT: BBB split 1:4")
    # the day trades on the new basis, above the new stop: nothing fills, the position stays
    admin(srv, "advance", {"to": at("2024-06-04 16:30")})
    r.broker.drain(poll=True)
    assert r.engine.pos is pos and r.broker.working(pos.stop_cid)  # type: ignore[arg-type]


def test_a_split_announced_by_alpaca_is_found_when_the_broker_cancels_the_stop(srv, setup):
    r = setup()
    qty, stop, stop_cid = enter(r, srv)
    split(srv)
    r.broker.drain(poll=True)  # the stop's cancel arrives; the split behind it goes first
    check_after(r, srv, qty, stop, stop_cid, "Alpaca corporate actions")


def test_a_split_alpaca_has_not_announced_is_found_in_the_bots_splits_table(srv, setup):
    r = setup("symbol,date,ratio,source\nBBB,2024-06-04,1:4,the fund's press release\n")
    qty, stop, stop_cid = enter(r, srv)
    split(srv, announce=False)
    assert r.check_positions("before the open") is None  # the pre-open check finds and books it
    check_after(r, srv, qty, stop, stop_cid, "splits.csv line 2")


def test_a_restart_after_a_split_while_the_bot_was_down(srv, setup):
    r = setup()
    qty, stop, stop_cid = enter(r, srv)
    r.journal.flush()
    split(srv)  # the bot is down: nobody sees the stop canceled
    again = setup()  # a new process on the same journal
    again.reconcile()
    assert not again.unknown and not again.foreign
    check_after(again, srv, qty, stop, stop_cid, "Alpaca corporate actions")
