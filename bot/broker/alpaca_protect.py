"""Protective orders live at the broker, so a dead bot still has them. A stop and a take-profit the
engine sends together are held until its callback returns and then become one OCO exit (Alpaca refuses
two separate sells on the same shares); a lone stop is a GTC stop. Broker-side stop orders take whole
shares only.

A stop refused with "insufficient qty available" means the shares are already held by another sell:
most often our own protective order that the book lost sight of. That is looked at before the refusal
reaches the engine (which would flatten a protected position): our working stop on the symbol, once
found, is moved to the new stop instead."""

from __future__ import annotations

import math

from bot.broker.alpaca_book import OrderBook
from bot.broker.alpaca_orders import order_request
from bot.broker.alpaca_replace import StopMover
from bot.broker.alpaca_send import Sender
from bot.broker.alpaca_types import EPS, Tracked, with_qty
from bot.core.events import Intent, OrderIntent
from bot.core.log import get

log = get("soxbot.alpaca")


class Protector:
    """Holds the engine's stop/take-profit intents (`pending`) and places them, paired where it can."""

    def __init__(self, book: OrderBook, sender: Sender, mover: StopMover) -> None:
        self.book = book
        self.sender = sender
        self.mover = mover
        self.pending: list[OrderIntent] = []

    def drop(self, client_order_id: str) -> None:
        """Forget a held intent the engine canceled before it was placed."""
        self.pending = [p for p in self.pending if p.client_order_id != client_order_id]

    def flush(self) -> None:
        """Place every held intent: a stop and a take-profit on the same symbol and side as one OCO."""
        while self.pending:
            first = self.pending.pop(0)
            partner = next(
                (
                    p
                    for p in self.pending
                    if p.symbol == first.symbol and p.intent is not first.intent and p.side is first.side
                ),
                None,
            )
            if partner is not None:
                self.pending.remove(partner)
                stop, tp = (first, partner) if first.intent is Intent.STOP else (partner, first)
                self._place_oco(stop, tp)
            else:
                self._place_one(first)

    def _place_one(self, intent: OrderIntent) -> None:
        tr = self.book.track(intent)
        qty = intent.qty
        if abs(qty - round(qty)) > EPS:  # Alpaca takes fractional qty only on market/limit DAY orders
            qty = float(math.floor(qty))
            log.warning("protective order covers whole shares only", cid=intent.client_order_id, qty=qty)
            if qty <= 0:
                self.book.reject(tr, "protective order needs at least one whole share")
                return
            tr.intent = with_qty(intent, qty)
        self.sender.send(tr, order_request(tr.intent), refused=self._already_protected)

    def _already_protected(self, tr: Tracked, reason: str) -> bool:
        """A refused stop: True when our own working stop holds the shares and has been moved to `tr`'s
        level and id instead (the refusal then never reaches the engine)."""
        if tr.intent.intent is not Intent.STOP or "insufficient qty" not in reason.lower():
            return False
        holder = self._working_stop(tr)
        if holder is None:
            log.warning("stop refused and no order of ours holds the shares", cid=tr.cid, reason=reason)
            return False
        log.warning(
            "stop refused: our own stop already protects the shares; it is moved instead",
            cid=tr.cid,
            holder=holder.cid,
            reason=reason,
        )
        self.mover.move(holder, tr.intent)
        return True

    def _working_stop(self, tr: Tracked) -> Tracked | None:
        """Our other stop on `tr`'s symbol that is working at the broker (looked up when its broker id
        was never seen, e.g. the stop leg of an OCO whose submit answer was lost)."""
        for other in list(self.book.orders.values()):
            if other is tr or other.done or other.intent.intent is not Intent.STOP:
                continue
            if other.intent.symbol != tr.intent.symbol:
                continue
            if other.broker_id is None:
                self.book.look(other)
            if other.broker_id is not None and not other.done:
                return other
        return None

    def _place_oco(self, stop: OrderIntent, tp: OrderIntent) -> None:
        s = self.book.track(stop, oco_with=tp.client_order_id)
        t = self.book.track(tp, oco_with=stop.client_order_id)
        s.oco_with, t.oco_with = tp.client_order_id, stop.client_order_id
        self.sender.send(t, self.sender.request_for(t))
        if t.done and not s.done:  # the OCO was refused: so is its stop leg (the engine flattens)
            self.book.reject(s, "OCO exit refused")
