"""The engine's trading rules on hand-built bars, with the real in-process broker."""

from __future__ import annotations

import pandas as pd
import pytest

from bot.core.events import ExitReason
from bot.journal.journal import Journal
from tests.helpers import drive, flat, make_cfg, make_engine


def both(bull: float, bear: float) -> dict[str, tuple[float, float, float, float]]:
    return {"SOXL": flat(bull), "SOXS": flat(bear)}


def test_enters_on_first_valid_bar_and_fills_at_next_open():
    cfg = make_cfg(stop_loss_pct=0.0)
    eng, broker = make_engine(cfg)
    rows = [
        (None, both(10, 10)),  # warm-up
        (1, both(10, 10)),  # first valid bar: +1 -> buy bull at next open
        (1, {"SOXL": (11, 11.5, 10.5, 11), "SOXS": flat(9)}),
    ]
    drive(eng, broker, rows)
    assert eng.pos is not None and eng.pos.symbol == "SOXL"
    assert eng.pos.entry_price == 11  # the next bar's open, not the signal close
    # sized at the signal close (10000 shares at 10), but 10000 at the 11 open costs more than the
    # cash: the broker shrinks the order to what the cash pays for
    assert eng.pos.qty == 100000 // 11
    assert broker.cash >= 0


def test_qty_shrinks_to_cash_on_gap_up():
    cfg = make_cfg(stop_loss_pct=0.0)
    eng, broker = make_engine(cfg)
    drive(eng, broker, [(1, both(10, 10)), (1, {"SOXL": flat(12.5), "SOXS": flat(8)})])
    assert eng.pos.qty == 100000 // 12.5
    assert broker.cash >= 0 and abs(eng.cash - broker.cash) < 1e-6


def test_flip_closes_first_then_opens_never_both():
    cfg = make_cfg(stop_loss_pct=0.0)
    eng, broker = make_engine(cfg)
    rows = [(1, both(10, 10)), (1, both(10, 10)), (-1, both(10, 10)), (-1, both(11, 9)), (-1, both(11, 9))]
    drive(eng, broker, rows)  # asserts never both at every bar
    assert eng.pos.symbol == "SOXS"
    assert [t.symbol for t in eng.trades] == ["SOXL"]
    assert eng.trades[0].exit_reason is ExitReason.SIGNAL
    assert eng.trades[0].exit_time == eng.pos.entry_time  # same open: the close filled first


def test_stop_fills_at_stop_inside_bar_and_at_open_on_gap():
    cfg = make_cfg(stop_loss_pct=0.10)
    # intrabar: entry 100, stop 90, bar trades 95..85 -> fill at 90
    eng, broker = make_engine(cfg)
    drive(
        eng,
        broker,
        [(1, both(100, 10)), (1, both(100, 10)), (1, {"SOXL": (95, 96, 85, 88), "SOXS": flat(10)})],
    )
    t = eng.trades[0]
    assert (t.exit_price, t.exit_reason) == (90.0, ExitReason.STOP_LOSS)
    # gap: next bar opens at 80, below the stop -> fill at the open, not at the stop
    eng, broker = make_engine(cfg)
    drive(
        eng,
        broker,
        [(1, both(100, 10)), (1, both(100, 10)), (1, {"SOXL": (80, 82, 78, 81), "SOXS": flat(10)})],
    )
    t = eng.trades[0]
    assert (t.exit_price, t.exit_reason) == (80.0, ExitReason.STOP_LOSS)


def test_stop_is_live_on_the_entry_bar():
    cfg = make_cfg(stop_loss_pct=0.05)
    eng, broker = make_engine(cfg)
    drive(eng, broker, [(1, both(100, 10)), (1, {"SOXL": (100, 101, 90, 92), "SOXS": flat(10)})])
    assert eng.trades and eng.trades[0].exit_reason is ExitReason.STOP_LOSS
    assert eng.trades[0].exit_price == pytest.approx(95.0)
    assert eng.trades[0].entry_time == eng.trades[0].exit_time


def test_no_reentry_after_stop_until_direction_changes():
    cfg = make_cfg(stop_loss_pct=0.05)
    eng, broker = make_engine(cfg)
    rows = [(1, both(100, 10)), (1, {"SOXL": (100, 100, 90, 92), "SOXS": flat(10)})]
    rows += [(1, both(95, 10))] * 5  # still +1: stay out
    drive(eng, broker, rows)
    assert eng.pos is None and len(eng.trades) == 1
    rows2 = [(0, both(95, 10)), (1, both(95, 10)), (1, both(96, 10))]
    drive(eng, broker, rows2, start="2024-03-01")
    assert eng.pos is not None and eng.pos.symbol == "SOXL"


def test_take_profit_and_oco_cancels_stop():
    cfg = make_cfg(stop_loss_pct=0.05, take_profit_pct=0.10)
    eng, broker = make_engine(cfg)
    drive(
        eng,
        broker,
        [(1, both(100, 10)), (1, both(100, 10)), (1, {"SOXL": (105, 112, 104, 111), "SOXS": flat(10)})],
    )
    t = eng.trades[0]
    assert (t.exit_price, t.exit_reason) == (pytest.approx(110.0), ExitReason.TAKE_PROFIT)
    assert broker.open_orders() == []  # the stop leg was cancelled


def test_trailing_stop_ratchets_up_and_exits():
    cfg = make_cfg(stop_loss_pct=0.0, trailing_stop_pct=0.10)
    eng, broker = make_engine(cfg)
    rows = [
        (1, both(100, 10)),
        (1, both(100, 10)),
        (1, {"SOXL": (100, 120, 100, 119), "SOXS": flat(10)}),  # high 120 -> stop 108 from next bar
        (1, {"SOXL": (115, 116, 107, 110), "SOXS": flat(10)}),
    ]  # trades through 108
    drive(eng, broker, rows)
    t = eng.trades[0]
    assert t.exit_reason is ExitReason.STOP_LOSS and t.exit_price == pytest.approx(108.0)
    assert len([o for o in broker.open_orders()]) == 0


def test_max_hold_exits_after_n_sessions():
    cfg = make_cfg(stop_loss_pct=0.0, max_hold_days=3)
    eng, broker = make_engine(cfg)
    drive(eng, broker, [(1, both(100, 10))] + [(1, both(100 + i, 10)) for i in range(1, 8)])
    t = eng.trades[0]
    assert t.exit_reason is ExitReason.MAX_HOLD
    held = pd.bdate_range(t.entry_time, t.exit_time)
    assert len(held) - 1 == 3  # entered at one open, out at the open 3 sessions later


def test_daily_loss_limit_flattens_and_locks_until_next_session():
    cfg = make_cfg(stop_loss_pct=0.0, daily_loss_limit_pct=0.05)
    eng, broker = make_engine(cfg)
    rows = [(1, both(100, 10)), (1, both(100, 10)), (1, {"SOXL": (100, 100, 90, 90), "SOXS": flat(10)})]
    drive(eng, broker, rows)
    assert eng.locked is not None and eng.pos.closing
    # next session: the flatten fills at the open; lock lifted; a new direction may enter again
    drive(eng, broker, [(-1, both(90, 10)), (-1, both(90, 10))], start="2024-01-08")
    assert eng.trades[0].exit_reason is ExitReason.RISK
    assert eng.pos is not None and eng.pos.symbol == "SOXS"


def test_kill_switch_persists_in_journal_until_rearm(tmp_path):
    cfg = make_cfg(stop_loss_pct=0.0, max_drawdown_pct=0.2)
    j = Journal(tmp_path / "j.db")
    j.start_run("test", "x", {})
    eng, broker = make_engine(cfg, j)
    drive(
        eng,
        broker,
        [(1, both(100, 10)), (1, both(100, 10)), (1, both(70, 10)), (-1, both(70, 10)), (-1, both(70, 10))],
    )
    assert eng.pos is None and eng.trades[0].exit_reason is ExitReason.RISK
    # a new engine on the same journal (a restart) is still locked
    eng2, broker2 = make_engine(cfg, j)
    drive(eng2, broker2, [(1, both(70, 10)), (1, both(70, 10))], start="2024-02-01")
    assert eng2.pos is None and "kill switch" in (eng2.locked or "")
    eng2.rearm()
    drive(eng2, broker2, [(-1, both(70, 10)), (-1, both(70, 10))], start="2024-03-01")
    assert eng2.pos is not None


def test_end_of_data_closes_at_last_close():
    cfg = make_cfg(stop_loss_pct=0.0)
    eng, broker = make_engine(cfg)
    ts = drive(
        eng,
        broker,
        [(1, both(100, 10)), (1, both(100, 10)), (1, {"SOXL": (101, 104, 100, 103), "SOXS": flat(10)})],
    )
    eng.finish(ts[-1])
    t = eng.trades[-1]
    assert (t.exit_reason, t.exit_price) == (ExitReason.END_OF_DATA, 103)
    assert eng.equity_log.equity[-1] == pytest.approx(broker.cash)


def test_intent_is_journaled_before_send_and_ids_are_deterministic(tmp_path):
    cfg = make_cfg(stop_loss_pct=0.05)
    ids = []
    for k in range(2):
        j = Journal(tmp_path / f"j{k}.db")
        j.start_run("test", "x", {})
        eng, broker = make_engine(cfg, j)
        seen_at_submit = []
        orig = broker.submit

        def submit(intent, j=j, orig=orig, seen=seen_at_submit):
            row = j.db.execute(
                "SELECT status FROM orders WHERE client_order_id=?", (intent.client_order_id,)
            ).fetchone()
            seen.append(row)
            orig(intent)

        broker.submit = submit  # observe the real broker; the journal row must already exist
        drive(eng, broker, [(1, both(100, 10)), (1, both(100, 10)), (-1, both(100, 10)), (-1, both(100, 10))])
        assert all(r is not None and r[0] == "intent" for r in seen_at_submit)
        ids.append([r[0] for r in j.db.execute("SELECT client_order_id FROM orders ORDER BY rowid")])
    assert ids[0] == ids[1] and len(ids[0]) == len(set(ids[0])) >= 4


def test_atr_stop_uses_wilder_atr_of_the_traded_symbol():
    cfg = make_cfg(stop_loss_pct=0.0, atr_stop_mult=2.0, atr_period=3)
    eng, broker = make_engine(cfg)
    # ranges of 2 on every bar: TR = 2, ATR(3) = 2 -> stop = entry - 4
    rows = [(None, {"SOXL": (100, 101, 99, 100), "SOXS": flat(10)})] * 4
    rows += [
        (1, {"SOXL": (100, 101, 99, 100), "SOXS": flat(10)}),
        (1, {"SOXL": (100, 101, 99, 100), "SOXS": flat(10)}),
    ]
    drive(eng, broker, rows)
    assert eng.pos is not None and eng.pos.stop == pytest.approx(100 - 2.0 * 2.0)


def test_risk_per_trade_sizes_to_lose_r_at_the_stop():
    cfg = make_cfg(sizing="risk_per_trade", risk_per_trade=0.01, stop_loss_pct=0.10)
    eng, broker = make_engine(cfg)
    drive(
        eng, broker, [(1, both(50, 10)), (1, both(50, 10)), (1, {"SOXL": (50, 50, 40, 41), "SOXS": flat(10)})]
    )
    t = eng.trades[0]
    assert t.qty == 100_000 * 0.01 // (50 * 0.10)  # 200 shares: 1% of equity over a $5 stop distance
    assert t.pnl == pytest.approx(-1000.0)


def test_partial_entry_fills_resize_the_protective_stop():
    """A broker that fills an entry in pieces (Alpaca paper does, 10% of the time): the stop at the
    broker always covers the whole position, and the order stays working until its last piece."""
    from bot.core.events import OrderFilled, Side

    cfg = make_cfg(stop_loss_pct=0.10)
    eng, broker = make_engine(cfg)
    drive(eng, broker, [(1, both(100, 10))])
    (entry,) = broker.open_orders()
    broker._market.clear()  # the "remote" broker below fills it instead
    ts = pd.Timestamp("2024-01-03")
    fill = broker._on_fill  # the engine's listener, as a remote adapter would call it
    fill(OrderFilled(entry.client_order_id, ts, "SOXL", Side.BUY, 300, 100.0, partial=True))
    assert entry.client_order_id in eng.orders
    stops_ = [o for o in broker.open_orders() if o.stop_price]
    assert [o.qty for o in stops_] == [300]
    fill(OrderFilled(entry.client_order_id, ts, "SOXL", Side.BUY, 200, 102.0))
    assert entry.client_order_id not in eng.orders
    stops_ = [o for o in broker.open_orders() if o.stop_price]
    assert [o.qty for o in stops_] == [500] and stops_[0].client_order_id.endswith("-r1")
    assert eng.pos.qty == 500 and eng.pos.entry_price == pytest.approx((300 * 100 + 200 * 102) / 500)
