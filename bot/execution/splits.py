"""A split while the engine trades, as a broker applies it: the position's quantity times the ratio
and its prices (entry, stop, take-profit) divided by it, the working orders the same, the last close
and the ATR on the new basis. What is left below one share (whole shares, a reverse split) becomes
cash in lieu at the split-adjusted last close, so equity is continuous across the split.

The protective legs are placed again at the new prices under the next revision of their ids: at a
broker that canceled them on the split (what a reverse split usually does to open orders) that
re-protects the position, and at one that adjusted them it moves them to the engine's own levels.
Every split is journaled as a risk verdict `split` with the figures before and after.

Backtests call `apply_split` on the split's date before its first bar; live, the Alpaca adapter
reports a split it found (`SplitDetected`) and `split_detected` checks it against the engine's own
quantity before applying it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from bot.core.events import ExitReason, SplitDetected
from bot.core.splits import explains, split_order, split_qty

if TYPE_CHECKING:
    from bot.execution.engine import Engine


def ratio_text(ratio: float) -> str:
    """'1:10' for 0.1, '4:1' for 4.0, else the number."""
    if ratio >= 1 and abs(ratio - round(ratio)) < 1e-9:
        return f"{round(ratio)}:1"
    inv = 1.0 / ratio
    if abs(inv - round(inv)) < 1e-6:
        return f"1:{round(inv)}"
    return f"{ratio:g}"


def apply_split(
    e: Engine,
    ts: pd.Timestamp | int,
    symbol: str,
    ratio: float,
    qty_after: float | None = None,
    source: str = "",
) -> None:
    """`symbol` splits `ratio` new shares per old one, effective now. `qty_after`: what the broker holds
    after it (live: the broker's count is the truth); otherwise the engine's rule (whole shares unless
    fractional or sized by notional)."""
    e._now = ts
    inv = 1.0 / ratio
    whole = not (e.risk.fractional or symbol in e.notional)
    close = e.last_close.get(symbol)
    if close is not None:
        e.last_close[symbol] = close * inv
    atr = e.atr.get(symbol)
    if atr is not None:
        atr.rescale(inv)
    n_orders = 0
    for cid, o in list(e.orders.items()):
        if o.symbol == symbol:
            e.orders[cid] = split_order(o, ratio, whole)
            n_orders += 1
    how = f"{symbol} split {ratio_text(ratio)}" + (f" ({source})" if source else "")
    pos = e.pos
    if pos is None or pos.symbol != symbol:
        _broker_books(e, symbol, ratio, close)
        e.verdict("split", f"{how}: no position held; {n_orders} working order(s) adjusted",
                  symbol=symbol, ratio=ratio, orders=n_orders)  # fmt: skip
        return
    before: dict[str, Any] = {"qty": pos.qty, "stop": pos.stop, "take_profit": pos.take_profit}
    kept, rest = split_qty(pos.qty, ratio, whole)
    if qty_after is not None:
        kept, rest = qty_after, max(pos.qty * ratio - qty_after, 0.0)
    price = close * inv if close is not None else pos.entry_price * inv
    lieu = rest * price
    pos.qty = kept
    pos.entry_price *= inv
    pos.stop = pos.stop * inv if pos.stop is not None else None
    pos.take_profit = pos.take_profit * inv if pos.take_profit is not None else None
    pos.exit_qty *= ratio
    if rest > 0:  # the part below one share is sold to the broker at the adjusted price
        pos.exit_qty += rest
        pos.exit_value += lieu
        e.cash += lieu
    stop = f"stop {_px(before['stop'])} -> {_px(pos.stop)}" if pos.stop is not None else "no stop"
    text = (
        f"{how}: {before['qty']:g} -> {kept:g} shares, entry {pos.entry_price * ratio:.4g} -> "
        f"{pos.entry_price:.4g}, {stop}" + (f", cash in lieu {lieu:.2f}" if rest > 0 else "")
    )
    details = {
        "symbol": symbol, "ratio": ratio, "qty_before": before["qty"], "qty_after": kept,
        "stop_before": before["stop"], "stop_after": pos.stop, "take_profit_before": before["take_profit"],
        "take_profit_after": pos.take_profit, "cash_in_lieu": lieu, "orders": n_orders, "source": source,
    }  # fmt: skip
    if kept <= 1e-9:
        e.verdict("split", f"{text}: nothing left, the position is closed", **details)
        _closed_by_split(e, pos)
        _broker_books(e, symbol, ratio, close)
        return
    _broker_books(e, symbol, ratio, close)
    if not pos.closing and (pos.stop_cid is not None or pos.tp_cid is not None):
        e.verdict("split", f"{text}; position kept, protective orders placed again at the new prices",
                  **details)  # fmt: skip
        e.protect(pos, e.now, why=f"placed again after the {ratio_text(ratio)} split")
    else:
        e.verdict("split", text, **details)


def _broker_books(e: Engine, symbol: str, ratio: float, close: float | None) -> None:
    """The in-process broker splits its own books (a remote broker has done so already)."""
    hook = getattr(e.broker, "apply_split", None)
    if hook is not None:
        hook(symbol, ratio, close / ratio if close is not None else None)


def _px(p: float | None) -> str:
    return "-" if p is None else f"{p:.4g}"


def _closed_by_split(e: Engine, pos: Any) -> None:
    """A reverse split left less than one share: the whole position went out as cash in lieu."""
    for cid in (pos.stop_cid, pos.tp_cid):
        if cid is not None:
            e.broker.cancel(cid)
    e.trades.append(pos.closed(e.now, ExitReason.SPLIT))
    e.pos = None


def split_detected(e: Engine, u: SplitDetected) -> None:
    """A split the broker reports: applied when the engine's quantity times the ratio is what the
    broker holds now (less than one share apart: cash in lieu); otherwise only an alert."""
    pos = e.pos
    if pos is None or pos.symbol != u.symbol:
        apply_split(e, u.ts, u.symbol, u.ratio, source=u.source)
        return
    if not explains(pos.qty, u.qty_after, u.ratio):
        e.verdict("alert", f"{u.symbol}: the broker reports a {ratio_text(u.ratio)} split and holds "
                  f"{u.qty_after:g}, but {pos.qty:g} x {u.ratio:g} = {pos.qty * u.ratio:g}: not applied; "
                  "the position check will say more", symbol=u.symbol)  # fmt: skip
        return
    apply_split(e, u.ts, u.symbol, u.ratio, u.qty_after, u.source)
