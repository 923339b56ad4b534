"""Order entry: turns a new-order or replace request into registered orders and their first updates.

The steps run in Alpaca's order (validate, build, check funds, register, announce), and a refused
request raises before anything is registered, so the book never holds half an order.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd

from bot.sandbox.book import OrderBook
from bot.sandbox.funds import Funds
from bot.sandbox.legs import Legs
from bot.sandbox.market import MarketData
from bot.sandbox.orders import ApiError, Order, OrderSpec, parse_order
from bot.sandbox.timeline import Timeline, order_expiry
from bot.sandbox.updates import Updates
from bot.sandbox.validate import check_asset_and_id, check_bracket_base, parse_replacement


class OrderEntry:
    def __init__(
        self,
        market: MarketData,
        book: OrderBook,
        funds: Funds,
        legs: Legs,
        updates: Updates,
        timeline: Timeline,
        reject_next: int,
        reject_mode: str,
    ) -> None:
        self.market = market
        self.book = book
        self.funds = funds
        self.legs = legs
        self.updates = updates
        self.timeline = timeline
        self.submissions: Counter[str] = Counter()  # requests per client_order_id, refused ones too
        self.reject_next = reject_next  # fault injection: refuse this many of the next orders
        self.reject_mode = reject_mode  # "event": 200 then a `rejected` update; "http": 403, nothing created

    def submit(self, body: Any) -> Order:
        now = self.timeline.t
        if isinstance(body, dict) and body.get("client_order_id"):
            self.submissions[str(body["client_order_id"])] += 1
        spec = parse_order(body)
        check_asset_and_id(spec, self.market.bars, self.book.by_client_id)
        if self.reject_next > 0 and self.reject_mode == "http":
            self.reject_next -= 1
            raise ApiError(403, 40310000, "order rejected (sandbox fault: reject_next)")
        last = self.funds.last(spec.symbol)
        if spec.order_class == "bracket":
            check_bracket_base(spec, last)
        order = self._build(spec, now)
        legs = self.legs.build(spec, order, now)
        self.funds.check_new(order)
        self.book.register(order)
        for leg in legs:
            self.book.register(leg)
        if self.reject_next > 0:
            self.reject_next -= 1
            order.failed_at = now
            self.book.set_status(order, "rejected", now)
            for leg in legs:
                self.book.set_status(leg, "rejected", now)
            self.updates.emit("rejected", order)
            return order
        self.updates.emit(order.status, order)
        for leg in legs:
            if leg.status == "new":
                self.updates.emit("new", leg)
        return order

    def _build(self, spec: OrderSpec, now: pd.Timestamp) -> Order:
        seq = self.book.next_seq()
        in_session = self.market.calendar.is_open(now)
        status = "new" if in_session or spec.extended_hours else "accepted"
        o = Order(
            id=self.book.new_id(),
            client_order_id=spec.client_order_id or self.book.new_id(),
            symbol=spec.symbol,
            side=spec.side,
            type=spec.type,
            time_in_force=spec.time_in_force,
            created_at=now,
            qty=spec.qty,
            notional=spec.notional,
            limit_price=spec.limit_price,
            stop_price=spec.stop_price,
            trail_price=spec.trail_price,
            trail_percent=spec.trail_percent,
            extended_hours=spec.extended_hours,
            order_class=spec.order_class,
            status=status,
            updated_at=now,
            eligible_after=now,
            seq=seq,
        )
        o.expires_at = order_expiry(self.market, o.time_in_force, now)
        if o.type == "trailing_stop":
            o.hwm = self.funds.last(o.symbol)
        return o

    def replace(self, old: Order, body: Any) -> Order:
        """A new order takes `old`'s place (and its place in a group); `old` ends as `replaced`."""
        r = parse_replacement(old, body)
        cid = body.get("client_order_id")
        if cid is not None:
            cid = str(cid)
            self.submissions[cid] += 1
            if cid in self.book.by_client_id:
                raise ApiError(422, 40010001, "client_order_id must be unique")
        now = self.timeline.t
        seq = self.book.next_seq()
        new = Order(
            id=self.book.new_id(),
            client_order_id=cid or self.book.new_id(),
            symbol=old.symbol,
            side=old.side,
            type=old.type,
            time_in_force=r.time_in_force,
            created_at=now,
            qty=r.qty if r.qty is not None else old.remaining,
            limit_price=r.limit_price if r.limit_price is not None else old.limit_price,
            stop_price=r.stop_price if r.stop_price is not None else old.stop_price,
            trail_price=old.trail_price if r.trail is None or old.trail_price is None else r.trail,
            trail_percent=old.trail_percent if r.trail is None or old.trail_percent is None else r.trail,
            hwm=old.hwm,
            extended_hours=old.extended_hours,
            order_class=old.order_class,
            status="new",
            updated_at=now,
            eligible_after=now,
            replaces=old.id,
            parent_id=old.parent_id,
            triggered=old.triggered,
            seq=seq,
        )
        new.expires_at = order_expiry(self.market, r.time_in_force, now)
        self.funds.check_replacement(old, new)
        # the new order takes the old one's place in its group
        orders = self.book.orders
        if old.parent_id:
            parent = orders[old.parent_id]
            parent.leg_ids = [new.id if i == old.id else i for i in parent.leg_ids]
            parent.past_leg_ids.append(old.id)  # Alpaca keeps listing a replaced leg under its parent
        new.leg_ids = list(old.leg_ids)
        new.past_leg_ids = list(old.past_leg_ids)
        for leg_id in new.leg_ids:
            orders[leg_id].parent_id = new.id
        old.replaced_by = new.id
        old.replaced_at = now
        self.book.set_status(old, "replaced", now)
        self.book.register(new)
        self.updates.emit("replaced", old)
        self.updates.emit("new", new)
        return new
