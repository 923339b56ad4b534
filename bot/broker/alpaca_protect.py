"""Protective orders live at the broker, so a dead bot still has them. A stop and a take-profit the
engine sends together are held until its callback returns and then become one OCO exit (Alpaca refuses
two separate sells on the same shares); a lone stop is a GTC stop. Broker-side stop orders take whole
shares only."""

from __future__ import annotations

import math

from bot.broker.alpaca_book import OrderBook
from bot.broker.alpaca_orders import order_request
from bot.broker.alpaca_send import Sender
from bot.broker.alpaca_types import EPS, with_qty
from bot.core.events import Intent, OrderIntent
from bot.core.log import get

log = get("soxbot.alpaca")


class Protector:
    """Holds the engine's stop/take-profit intents (`pending`) and places them, paired where it can."""

    def __init__(self, book: OrderBook, sender: Sender) -> None:
        self.book = book
        self.sender = sender
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
        self.sender.send(tr, order_request(tr.intent))

    def _place_oco(self, stop: OrderIntent, tp: OrderIntent) -> None:
        s = self.book.track(stop, oco_with=tp.client_order_id)
        t = self.book.track(tp, oco_with=stop.client_order_id)
        s.oco_with, t.oco_with = tp.client_order_id, stop.client_order_id
        self.sender.send(t, self.sender.request_for(t))
        if t.done and not s.done:  # the OCO was refused: so is its stop leg (the engine flattens)
            self.book.reject(s, "OCO exit refused")
