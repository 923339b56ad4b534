"""What the engine does when an exit does not go through: a close that ends before it sold the whole
position (canceled, expired, refused), or a protective stop the broker ended while the position is
held. Functions on the engine's state; every outcome is journaled as a risk verdict with its reason.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from bot.broker.base import ALREADY_FILLED, NOTHING_HELD
from bot.core.events import ExitReason, Intent, OrderCanceled, OrderIntent, OrderRejected
from bot.core.ids import next_revision, split_revision
from bot.execution.position import Position

if TYPE_CHECKING:
    from bot.execution.engine import Engine

MAX_CLOSE_RESENDS = 3  # a close that ends unfilled is sent again at most this often (ids '-r1'..'-r3')
MAX_EXIT_FAILURES = 6  # failed exits on one position before the engine stops retrying and asks a person


def after_update(e: Engine, intent: OrderIntent | None, u: OrderRejected | OrderCanceled) -> None:
    """An order of the engine's ended without filling: keep the held position protected or closed."""
    if isinstance(u, OrderRejected) and intent is not None:
        e.verdict("alert", f"order {u.client_order_id} rejected: {u.reason}", symbol=u.symbol)
        pos = e.pos
        if intent.intent is Intent.STOP and pos is not None and not pos.closing:
            e.verdict("flatten", "protective stop could not be placed: flatten", symbol=pos.symbol)
            e.close(pos, ExitReason.RISK, "stop rejected")
    pos = e.pos
    if intent is None or pos is None or pos.symbol != intent.symbol or pos.qty <= 1e-9:
        return
    if intent.intent is Intent.CLOSE and pos.closing:
        close_unfilled(e, pos, intent, u)
    elif (
        intent.intent is Intent.STOP
        and isinstance(u, OrderCanceled)
        and u.client_order_id == pos.stop_cid
        and u.reason != ALREADY_FILLED
        and not pos.closing
    ):  # the broker ended the stop of a held position (canceled by someone, expired): place it again
        e.verdict(
            "protect",
            f"protective stop {u.client_order_id} ended at the broker ({u.reason or 'canceled'}) with "
            f"{pos.qty:g} {pos.symbol} held: placed again",
            symbol=pos.symbol,
        )
        e.protect(pos, e.now, why="protective stop placed again")


def close_unfilled(e: Engine, pos: Position, intent: OrderIntent, u: OrderRejected | OrderCanceled) -> None:
    """A close ended (canceled, expired or refused) before it sold the whole position; the close had
    canceled the stop and take-profit, so the rest would be held unprotected. What happens to it:

    - the exit still stands (a risk, max-hold or end-of-data exit always does; a signal exit while the
      direction still points away from the symbol) and the close was canceled or expired, not refused:
      a close for the rest is sent again under the next revision of its id ('...-close-r1'), at most
      MAX_CLOSE_RESENDS times per decision, as a trader re-enters an exit order that ran out;
    - otherwise (refused, re-sends used up, or the direction came back to the symbol) the rest is held
      again with its protective stop (and take-profit) placed at once; a pending entry is dropped
      (never hold two), and later signals or risk exits close it as usual;
    - the broker holds none of it, or MAX_EXIT_FAILURES exits of this position failed: nothing more is
      sent (no loop against a broker that refuses everything); an alert asks a person to look."""
    pos.exit_failures += 1
    cid, sym = u.client_order_id, pos.symbol
    ended = "refused" if isinstance(u, OrderRejected) else (u.reason or "canceled")
    left = f"{pos.qty:g} {sym}"
    if isinstance(u, OrderCanceled) and u.reason == NOTHING_HELD:
        e.verdict("alert", f"close {cid} ended: the broker holds no {sym}, the engine {left}; "
                  "nothing to sell or protect", symbol=sym)  # fmt: skip
        return
    if pos.exit_failures > MAX_EXIT_FAILURES:
        e.verdict("alert", f"close {cid} {ended} with {left} left after {pos.exit_failures} failed "
                  "exits: no more retries, the position needs a person", symbol=sym)  # fmt: skip
        return
    stands = exit_stands(e, pos, intent)
    if stands and isinstance(u, OrderCanceled) and split_revision(cid)[1] < MAX_CLOSE_RESENDS:
        new = next_revision(cid)
        e.verdict("exit", f"close {cid} {ended} with {left} left; {stands}: close sent again as "
                  f"{new}", symbol=sym, qty=pos.qty)  # fmt: skip
        pos.close_cid = new
        e.desk.send(dataclasses.replace(intent, client_order_id=new, ts=e.now, qty=pos.qty))
        return
    if isinstance(u, OrderRejected):
        why = "the broker refused it"
    elif stands:
        why = f"sent {MAX_CLOSE_RESENDS} times again already"
    else:
        why = f"the direction is back to {sym}: the exit no longer stands"
    pos.closing = False
    e.pending_open = None
    stop = f"protective stop at {pos.stop:.4g}" if pos.stop is not None else "no stop rule configured"
    e.verdict("protect", f"close {cid} {ended} with {left} left; {why}: held again, {stop}", symbol=sym)
    e.protect(pos, e.now, why="protective stop after an unfilled close")


def exit_stands(e: Engine, pos: Position, intent: OrderIntent) -> str | None:
    """Why the exit `intent` was sent for still holds, in words; None once it no longer does."""
    if intent.exit_reason is ExitReason.SIGNAL:
        d = e.last_dir
        if (e.bull if d and d > 0 else e.bear if d and d < 0 else "") == pos.symbol:
            return None
        return f"direction {d} still wants out of {pos.symbol}"
    return f"the {intent.exit_reason or 'exit'} exit still stands"
