"""Quiet bars in bulk, for the event-skipping backtest driver (`bot/run/eventskip.py`): the driver has
made sure nothing can happen on bars a..f-1 of the tape (no fill, no trailing raise, no limit, no new
direction), and these functions leave the engine as stepping each of them would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bot.broker.base import BarTuple

if TYPE_CHECKING:
    from bot.data.tape import Tape
    from bot.execution.engine import Engine


def quiet_marks(e: Engine, tape: Tape, a: int, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What `step` would mark on bars a..f-1 of `tape` if nothing happened on them: per bar the
    position value (qty x the last close seen), the equity (cash + that) and whether the bar opens
    a new session."""
    new = tape.new_session[a:f].copy()
    if f > a:
        new[0] = int(tape.sessions[a]) != e.session
    pos = e.pos
    if pos is None:
        zeros = np.zeros(f - a)
        return zeros, e.cash + zeros, new
    before = e.last_close.get(pos.symbol, pos.entry_price)
    closes = tape.closes_over(pos.symbol, np.arange(a, f), np.full(f - a, a), np.full(f - a, before))
    pos_value = pos.qty * closes
    return pos_value, e.cash + pos_value, new


def advance(e: Engine, tape: Tape, a: int, f: int) -> None:
    """Bars a..f-1 at once: sessions are counted, the last closes and the ATR follow the bars, the
    equity curve gets its points (filled in by `EquityLog.frame`). Decides nothing. For backtests: a
    driver that journals equity bar by bar steps every bar."""
    if f <= a:
        return
    if e.journal_equity and e.journal is not None:
        raise RuntimeError("Engine.advance: equity is journaled bar by bar here; step every bar")
    last = f - 1
    lim = e.limits
    first_new = int(tape.sessions[a]) != e.session
    new_sessions = int(tape.starts[last] - tape.starts[a]) + first_new
    began = int(tape.first[last])  # the last bar's session began on this bar
    e.n_bars += f - a
    e._now = int(tape.keys[last])
    e.session = int(tape.sessions[last])
    cash = e.cash
    pos = e.pos
    if e._idle and pos is None:  # `step`'s short path: nothing but the equity point
        if new_sessions:
            lim.day_start_equity = e.equity_now
        _log_quiet(e, tape, a, f, None, 0.0, cash)
        return
    if pos is None:
        symbol, qty, before = None, 0.0, cash + 0.0  # flat: equity = cash + a position value of 0.0
    else:
        symbol, qty = pos.symbol, pos.qty
        before = e.last_close.get(symbol, pos.entry_price)

    def equity_at(k: int) -> float:
        if symbol is None:
            return before
        return cash + qty * tape.close_at(symbol, k, a, before)

    if new_sessions:
        lim.day_start_equity = equity_at(began - 1) if began > a else e.equity_now
        if pos is not None:
            pos.sessions += new_sessions
    if lim.on:
        peak = float(quiet_marks(e, tape, a, f)[1].max())
        if peak > lim.peak_equity:
            lim.peak_equity = peak
    e.equity_now = equity_at(last)
    bars: dict[str, BarTuple] = {}
    for sym, rows in tape.ohlc.items():
        j = int(tape.seen[sym][last])
        if j >= a:
            e.last_close[sym] = float(rows[j, 3])
            if j == last:
                bars[sym] = tuple(rows[j].tolist())  # type: ignore[assignment]
        atr = e.atr.get(sym)
        if atr is not None:
            span = rows[a:f]
            for h, lo, c in span[~np.isnan(span[:, 3]), 1:].tolist():
                atr.update(h, lo, c)
        if e.decay is not None:
            closes = rows[a:f, 3]
            e.decay.update_closes(sym, closes[~np.isnan(closes)].tolist())
    ix = e.ix
    if ix is not None:  # the index's measures follow every bar, as `step` feeds them
        index = tape.index[a:f].tolist() if tape.index is not None else None
        ix.advance(tape.sessions[a:f].tolist(), index, {s: tape.ohlc[s][a:f].tolist() for s in ix.gaps})
    e._bars = bars
    _log_quiet(e, tape, a, f, symbol, qty, before)


def _log_quiet(e: Engine, tape: Tape, a: int, f: int, symbol: str | None, qty: float, before: float) -> None:
    if e.keep_equity:
        e.equity_log.add_quiet(tape, a, f, e.cash, symbol, qty, before)
