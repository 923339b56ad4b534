"""Order groups: bracket, OCO and OTO legs, from building them to cancelling them together.

An order's end (fill, cancel, expiry) ripples through its group: a filled bracket parent wakes its
held legs, a filled or canceled exit leg cancels its sibling. That rippling is this module's one job.
"""

from __future__ import annotations

import pandas as pd

from bot.sandbox.book import OrderBook
from bot.sandbox.funds import Funds
from bot.sandbox.market import MarketData
from bot.sandbox.orders import LegSpec, Order, OrderSpec
from bot.sandbox.timeline import Timeline, order_expiry
from bot.sandbox.updates import Updates


class Legs:
    def __init__(
        self, market: MarketData, book: OrderBook, funds: Funds, updates: Updates, timeline: Timeline
    ) -> None:
        self.market = market
        self.book = book
        self.funds = funds
        self.updates = updates
        self.timeline = timeline

    def build(self, spec: OrderSpec, parent: Order, now: pd.Timestamp) -> list[Order]:
        """The legs a new order request asks for: held until the parent fills, except an OCO's."""
        if spec.order_class in ("", None):
            return []
        exit_side = "sell" if spec.side == "buy" else "buy"
        specs: list[LegSpec] = []
        if spec.order_class == "oco":
            exit_side = spec.side
            specs = [spec.stop_loss] if spec.stop_loss else []
        else:
            specs = [s for s in (spec.take_profit, spec.stop_loss) if s is not None]
        legs = []
        for ls in specs:
            seq = self.book.next_seq()
            status = parent.status if spec.order_class == "oco" else "held"
            leg = Order(
                id=self.book.new_id(),
                client_order_id=self.book.new_id(),
                symbol=spec.symbol,
                side=exit_side,
                type=ls.type,
                time_in_force=spec.time_in_force,
                created_at=now,
                qty=spec.qty,
                limit_price=ls.limit_price,
                stop_price=ls.stop_price,
                order_class=spec.order_class,
                status=status,
                updated_at=now,
                eligible_after=now,
                parent_id=parent.id,
                seq=seq,
            )
            leg.expires_at = parent.expires_at
            parent.leg_ids.append(leg.id)
            legs.append(leg)
        return legs

    def activate(self, parent: Order, after: pd.Timestamp) -> None:
        """Wake a parent's held legs for its filled quantity; they trade on bars after `after`."""
        for leg in self.book.legs(parent):
            if leg.status != "held":
                continue
            leg.qty = parent.filled_qty
            leg.eligible_after = after
            leg.expires_at = order_expiry(self.market, leg.time_in_force, after)
            if leg.type == "trailing_stop" and leg.hwm is None:
                leg.hwm = self.funds.last(leg.symbol)
            self.book.set_status(leg, "new", self.timeline.t)
            self.updates.emit("new", leg)

    def after_fill(self, o: Order, bar_start: pd.Timestamp) -> None:
        """A filled parent wakes its legs; a filled leg (or OCO parent) cancels the rest of its group."""
        if o.order_class in ("bracket", "oto") and o.parent_id is None:
            self.activate(o, bar_start)
        else:
            for sib in self.book.exit_group(o):
                if sib is not o and sib.is_open:
                    self.finish(sib, "canceled")

    def finish(self, o: Order, status: str) -> None:
        """Cancel or expire an order and whatever depends on it."""
        t = self.timeline.t
        self.book.set_status(o, status, t)
        if status == "canceled":
            o.canceled_at = t
        elif status == "expired":
            o.expired_at = t
        self.updates.emit(status, o)
        root = self.book.group_root(o)
        if o is root and o.order_class in ("bracket", "oto"):
            if o.filled_qty > 0:
                self.activate(o, t)
            else:
                for leg in self.book.legs(o):
                    if leg.is_open:
                        self.finish(leg, "canceled")
        else:
            for sib in self.book.exit_group(o):
                if sib is not o and sib.is_open and status == "canceled":
                    self.finish(sib, "canceled")
