"""The position's books: what an entry or exit fill does to it. An entry creates the position (or
grows it on a further partial fill) and places its protective orders; the last exit fill records the
trade, cancels the other protective leg and opens a pending entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core.events import ExitReason, OrderFilled, OrderIntent
from bot.execution.decide import open_
from bot.execution.position import Position
from bot.risk import stops

if TYPE_CHECKING:
    from bot.execution.engine import Engine


def entry_filled(e: Engine, f: OrderFilled, intent: OrderIntent | None) -> None:
    pos = e.pos
    if pos is not None and pos.symbol == f.symbol:  # a further partial fill of the same entry
        total = pos.qty + f.qty
        pos.entry_price = (pos.entry_price * pos.qty + f.price * f.qty) / total
        pos.qty = total
        pos.entry_commission += f.commission
        e.protect(pos, f.ts)  # resize the protective orders to the whole position
        return
    signal_ts = intent.ts if intent is not None else f.ts
    pos = Position(f.symbol, f.qty, f.price, f.ts, signal_ts, f.commission)
    e.pos = pos
    pos.stop = e.stop_for(f.symbol, f.price)
    pos.take_profit = stops.take_profit(e.risk_of(f.symbol), f.price)
    e.protect(pos, f.ts)


def exit_filled(e: Engine, f: OrderFilled, intent: OrderIntent | None) -> None:
    pos = e.pos
    if pos is None or pos.symbol != f.symbol:
        e.verdict("alert", f"sell fill for {f.symbol} with no position in the engine", cid=f.client_order_id)
        return
    pos.exit_qty += f.qty
    pos.exit_value += f.qty * f.price
    pos.exit_commission += f.commission
    pos.qty -= f.qty
    if pos.qty > 1e-9:
        return
    reason = intent.exit_reason if intent is not None and intent.exit_reason else ExitReason.SIGNAL
    e.desk.cancel_other_leg(pos, f.client_order_id)
    e.trades.append(pos.closed(f.ts, reason))
    e.pos = None
    e.last_close[f.symbol] = e.last_close.get(f.symbol, f.price)
    open_pending(e)


def open_pending(e: Engine) -> None:
    """The entry that waited for a close (a flip, or the hedge making way for the bull fund)."""
    p = e.pending_open
    if p is not None:
        if e.hedge is not None and p.symbol == e.bull and (e.hedge.qty > 0 or e.hedge.working):
            return  # the hedge's close has not filled yet: it opens this then
        e.pending_open = None
        bar = e._bars.get(p.symbol)
        ref = bar[3 if e._close_fills else 0] if bar is not None else e.last_close.get(p.symbol)
        open_(e, p.symbol, p.signal_ts, p.reason, ref, on_fill=True)
