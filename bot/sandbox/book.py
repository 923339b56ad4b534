"""The order book: every order by id and client id, the open ones indexed, and how orders group.

One store that every other part of the exchange reads, so the open-order index (which keeps bar
events from scanning history) and the parent/leg links are kept right in a single place.
"""

from __future__ import annotations

import random
import uuid

import pandas as pd

from bot.sandbox.orders import ApiError, Order

GROUP_CLASSES = ("oco", "bracket", "oto")


class OrderBook:
    def __init__(self, seed: int) -> None:
        self.orders: dict[str, Order] = {}
        self.open: dict[str, Order] = {}  # open orders by id, so bar events do not scan history
        self.by_client_id: dict[str, str] = {}
        self._ids = random.Random(seed)
        self._seq = 0

    # ------------------------------------------------------------ ids

    def new_id(self) -> str:
        """A UUID4 from the seeded generator, so a replay hands out the same ids."""
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # ------------------------------------------------------------ store

    def register(self, o: Order) -> None:
        self.orders[o.id] = o
        if o.is_open:
            self.open[o.id] = o
        self.by_client_id[o.client_order_id] = o.id

    def get(self, order_id: str) -> Order:
        o = self.orders.get(order_id)
        if o is None:
            raise ApiError(404, 40410000, "order not found")
        return o

    def get_by_client_id(self, cid: str) -> Order:
        oid = self.by_client_id.get(cid)
        if oid is None:
            raise ApiError(404, 40410000, "order not found")
        return self.orders[oid]

    def set_status(self, o: Order, status: str, at: pd.Timestamp) -> None:
        o.status = status
        o.updated_at = at
        if o.is_open:
            self.open.setdefault(o.id, o)
        else:
            self.open.pop(o.id, None)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self.open.values() if symbol is None or o.symbol == symbol]

    def select(
        self,
        status: str,
        after: pd.Timestamp | None,
        until: pd.Timestamp | None,
        nested: bool,
        side: str | None,
        symbols: list[str] | None,
    ) -> list[Order]:
        """The orders GET /v2/orders lists, unsorted (legs only under their parent when nested)."""
        rows = []
        for o in self.orders.values():
            if nested and o.parent_id:
                continue
            if (status == "open" and not o.is_open) or (status == "closed" and o.is_open):
                continue
            if after is not None and not o.created_at > after:
                continue
            if until is not None and not o.created_at < until:
                continue
            if side and o.side != side:
                continue
            if symbols and o.symbol not in symbols:
                continue
            rows.append(o)
        return rows

    # ------------------------------------------------------------ groups

    def group_root(self, o: Order) -> Order:
        return self.orders[o.parent_id] if o.parent_id else o

    def legs(self, o: Order) -> list[Order]:
        return [self.orders[i] for i in o.leg_ids]

    def listed_legs(self, o: Order) -> list[Order]:
        """The legs a nested view shows: the working ones and those replaced since, oldest first (a
        replaced leg stays part of its group's history, as at Alpaca)."""
        return sorted((self.orders[i] for i in (*o.past_leg_ids, *o.leg_ids)), key=lambda leg: leg.seq)

    def exit_group(self, o: Order) -> list[Order]:
        """The orders that cancel each other: bracket/OTO legs, or an OCO's parent and leg."""
        root = self.group_root(o)
        if root.order_class == "oco":
            return [root, *self.legs(root)]
        if root.order_class in ("bracket", "oto") and o is not root:
            return self.legs(root)
        return [o]
