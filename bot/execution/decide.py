"""Turning a new direction into orders: close what is held if it is not the target, then open the
target (bull on +1, bear on -1, nothing on 0) once the close has filled, so both are never held at
once. Entries are blocked while a lock is on, on bars flagged not tradable, when the size is 0 and
when a leveraged fund's expected decay over the planned hold exceeds `[risk] max_expected_decay_pct`
(bot/risk/decay_gate.py); each block is journaled with its reason and figures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from bot.core.events import ExitReason, Intent, OrderIntent, OrderType, Side
from bot.execution.position import PendingOpen
from bot.risk import stops
from bot.risk.regime import regime_block
from bot.risk.sizing import position_qty
from bot.signals.regime import Regime

if TYPE_CHECKING:
    from bot.execution.engine import Engine


def decide(
    e: Engine, ts: pd.Timestamp, d: int, tradable: bool, reason: str, regime: Regime | None = None
) -> None:
    prev = e.last_dir
    e.last_dir = d
    if prev is not None and d == prev:
        return
    target = e.bull if d > 0 else e.bear if d < 0 else ""
    pos = e.pos
    if pos is not None and pos.symbol != target and not pos.closing:
        e.close(pos, ExitReason.SIGNAL, f"direction {prev} -> {d}: {reason}")
    e.pending_open = None
    if not target or (pos is not None and pos.symbol == target and not pos.closing):
        return
    why_not = e.locked or (None if tradable else "bar not tradable (follows a data gap)")
    if why_not:
        e.verdict("block", f"no entry into {target}: {why_not}", direction=d)
        return
    gate = e.gates.get(target)
    if gate is not None:  # the side's regime gate ([risk.bull] / [risk.bear] regime_*)
        blocked = regime_block(gate[1], gate[0], e.cfg.universe.signal, regime)
        if blocked is not None:
            e.verdict("block", f"no entry into {target}: {blocked[0]}", direction=d, **blocked[1])
            return
    if e.pos is not None:  # closing: open once the close has filled (never hold both)
        e.pending_open = PendingOpen(target, ts, reason)
        return
    h = e.hedge
    if h is not None and target == e.bull and (h.qty > 0 or h.working):  # never beside the hedge
        e.pending_open = PendingOpen(target, ts, reason)
        e.verdict("hedge", f"entry into {target} waits for the {h.symbol} hedge to be closed", direction=d)
        return
    open_(e, target, ts, reason, e.last_close.get(target))


def open_(
    e: Engine,
    symbol: str,
    signal_ts: pd.Timestamp,
    reason: str,
    ref_price: float | None,
    on_fill: bool = False,
) -> None:
    """`on_fill`: sent as a flip's close fills (not at a bar's decision), which is when event blackouts
    judge it."""
    if ref_price is None or not ref_price > 0:
        e.verdict("block", f"no entry into {symbol}: no price yet")
        return
    late = e.entry_block or (e.close_guard.blocked(e.now) if e.close_guard is not None else None)
    if late:  # flat by close: it would be held over the close (also a flip's pending half)
        e.verdict("block", f"no entry into {symbol}: {late}", direction=e.last_dir)
        return
    factor, why_smaller = 1.0, ""
    if e.events is not None:  # [events] blackouts (bot/risk/events.py)
        ev = e.events
        at = (ev.fill_ns if on_fill else ev.decision_ns)(e._now, e.session)  # type: ignore[arg-type]
        blocked, factor, why_smaller = ev.entry(at)
        if blocked:
            e.event_blocks += 1
            e.verdict("block", f"no entry into {symbol}: {blocked}", direction=e.last_dir)
            return
    if e.decay is not None:
        blocked = e.decay.check(symbol, e.now.date())
        if blocked is not None:
            e.verdict("block", blocked[0], **blocked[1])
            return
    risk = e.risk_of(symbol)
    a = e.atr.get(symbol)
    atr = a.value if a is not None else None
    equity = e.equity_now
    if e.ix is None:
        stop_est = stops.estimated_stop(risk, ref_price, atr)
        qty = position_qty(risk, equity, e.cash, ref_price, stop_est, notional=symbol in e.notional)
    else:  # stops and sizes in the index's terms (`bot/risk/index.py`)
        t = e.ix.terms(symbol)
        missing = e.ix.missing(symbol, t, risk)
        if missing:
            e.verdict("block", f"no entry into {symbol}: {missing}", direction=e.last_dir)
            return
        stop_est = stops.estimated_stop(risk, ref_price, atr, t.sigma, t.lev, t.atr_frac)
        qty = position_qty(
            risk, equity, e.cash, ref_price, stop_est, t.sigma, t.lev, t.gap, notional=symbol in e.notional
        )
    if factor < 1.0 and qty > 0:
        q = qty * factor
        qty = q if (risk.fractional or symbol in e.notional) else float(int(q))
    if qty <= 0:
        e.size_zero[symbol] = e.size_zero.get(symbol, 0) + 1
        e.verdict(
            "block",
            f"no entry into {symbol}: size is 0",
            equity=round(equity, 2),
            cash=round(e.cash, 2),
            price=ref_price,
        )
        return
    if e.journal is not None or e.on_event is not None:  # its text only when someone reads it
        e.verdict(
            "allow",
            f"enter {symbol}: {risk.sizing} qty {qty:g} at ~{ref_price:.4g}"
            + (f" ({why_smaller})" if why_smaller else ""),
            qty=qty,
            stop=stop_est,
        )
    cid = e.desk.cid(symbol, signal_ts, Intent.OPEN)
    e.desk.send(
        OrderIntent(cid, e.now, symbol, Side.BUY, qty, OrderType.MARKET, Intent.OPEN, reason)  # type: ignore[arg-type]
    )
