"""Order bookkeeping: which engine order is which broker order, and the one place broker state becomes
engine events. Stream updates, REST polls and submit answers all go through `apply`, which compares the
broker's filled_qty with what was delivered and queues the difference once; `out` is the queue that
`AlpacaBroker.drain` delivers on the driver's thread."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from bot.broker.alpaca_retry import RestRetry
from bot.broker.alpaca_types import EPS, TERMINAL, Stats, Tracked, num, ny_time
from bot.core.events import Intent, OrderCanceled, OrderFilled, OrderIntent, OrderRejected
from bot.core.log import get

log = get("soxbot.alpaca")

StatusListener = Callable[[str, str, str | None, str], None]


class OrderBook:
    """Our orders by engine id (`orders`), by broker id and by alias (a refused stop move's new id), and
    the events waiting for delivery."""

    def __init__(self, rest: RestRetry, stats: Stats, on_status: StatusListener | None = None) -> None:
        self.rest = rest
        self.stats = stats
        self.on_status = on_status
        self.orders: dict[str, Tracked] = {}
        self.by_broker: dict[str, str] = {}
        self.alias: dict[str, str] = {}
        self.out: deque[OrderFilled | OrderRejected | OrderCanceled] = deque()

    def track(self, intent: OrderIntent, oco_with: str | None = None) -> Tracked:
        tr = self.orders.get(intent.client_order_id)
        if tr is None:
            tr = Tracked(intent, oco_with=oco_with)
            self.orders[intent.client_order_id] = tr
        return tr

    def get(self, cid: str) -> Tracked | None:
        return self.orders.get(self.alias.get(cid, cid))

    def open_intents(self) -> list[OrderIntent]:
        return [t.intent for t in self.orders.values() if not t.done]

    def live(self) -> bool:
        return any(not t.done for t in self.orders.values())

    def unresolved(self) -> bool:
        return any(t.unresolved for t in self.orders.values())

    def oco_pair(self, tr: Tracked) -> tuple[Tracked, Tracked]:
        """(stop, take-profit) of the OCO exit `tr` belongs to."""
        other = self.orders[tr.oco_with or ""]
        return (tr, other) if tr.intent.intent is Intent.STOP else (other, tr)

    def status(self, cid: str, status: str, broker_id: str | None, detail: str = "") -> None:
        if self.on_status is not None:
            self.on_status(cid, status, broker_id, detail)

    def reject(self, tr: Tracked, reason: str) -> None:
        tr.done = True
        tr.unresolved = False
        log.warning("order rejected", cid=tr.cid, reason=reason)
        self.out.append(OrderRejected(tr.cid, tr.intent.ts, tr.intent.symbol, reason))

    def register(self, tr: Tracked, order: dict[str, Any]) -> None:
        """Note the broker's id for `tr` (and for its stop leg when it is an OCO's take-profit)."""
        tr.broker_id = str(order.get("id"))
        tr.unresolved = False
        self.by_broker[tr.broker_id] = tr.cid
        if tr.oco_with and order.get("order_class") == "oco" and tr.intent.intent is Intent.TAKE_PROFIT:
            stop = self.orders.get(tr.oco_with)
            legs = [leg for leg in order.get("legs") or () if isinstance(leg, dict)]
            if stop is not None and legs:
                stop.broker_id = str(legs[0].get("id"))
                stop.unresolved = False
                self.by_broker[stop.broker_id] = stop.cid

    def refresh(self, tr: Tracked) -> None:
        if tr.broker_id is None:
            return
        order = self.rest.get_order(tr.broker_id)
        if order is not None:
            self.apply(order, "poll")

    def apply(self, order: dict[str, Any], source: str) -> None:
        """Queue what this broker order says that the engine has not had yet: new fills, its end."""
        for leg in order.get("legs") or ():
            if isinstance(leg, dict):
                self.apply(leg, source)
        cid = self.by_broker.get(str(order.get("id")))
        if cid is None:
            cid = order.get("client_order_id")
            tr = self.orders.get(cid) if cid else None
            if tr is None or (tr.broker_id is not None and tr.broker_id != str(order.get("id"))):
                return  # not ours (or an old incarnation of ours)
            self.register(tr, order)
        tr = self.orders[cid]
        if tr.done and tr.filled_qty > 0 and num(order.get("filled_qty")) <= tr.filled_qty + EPS:
            return
        filled = num(order.get("filled_qty"))
        if filled > tr.filled_qty + EPS:
            avg = num(order.get("filled_avg_price"))
            value = filled * avg
            dq = filled - tr.filled_qty
            px = (value - tr.filled_value) / dq if dq > 0 else avg
            if not px > 0:
                px = avg
            tr.filled_qty, tr.filled_value = filled, value
            ts = ny_time(order.get("filled_at") or order.get("updated_at"))
            partial = order.get("status") != "filled"
            fill = OrderFilled(
                tr.cid, ts, tr.intent.symbol, tr.intent.side, round(dq, 9), px, partial=partial
            )
            self.out.append(fill)
            setattr(self.stats, f"fills_{source}", getattr(self.stats, f"fills_{source}") + 1)
        status = str(order.get("status") or "")
        if status == "replaced" and not tr.done:
            new_id = order.get("replaced_by")
            if new_id:  # replaced by someone else: follow the new order under the same engine id
                self.by_broker[str(new_id)] = tr.cid
                tr.broker_id = str(new_id)
                fresh = self.rest.get_order(str(new_id))
                if fresh is not None:
                    self.apply(fresh, source)
            return
        if status in TERMINAL and not tr.done:
            tr.done = True
            tr.unresolved = False
            ts = ny_time(order.get("updated_at"))
            if status == "rejected":
                self.out.append(OrderRejected(tr.cid, ts, tr.intent.symbol, "rejected by the broker"))
            elif status != "filled":
                self.out.append(OrderCanceled(tr.cid, ts, tr.intent.symbol, status))
