"""Order bookkeeping: which engine order is which broker order, and the one place broker state becomes
engine events. Stream updates, REST polls and submit answers all go through `apply`, which compares the
broker's filled_qty with what was delivered and queues the difference once; `out` is the queue that
`AlpacaBroker.drain` delivers on the driver's thread."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from bot.broker.alpaca_retry import RestRetry
from bot.broker.alpaca_types import EPS, TERMINAL, Stats, Tracked, num, ny_time, stop_leg
from bot.core.events import Intent, OrderCanceled, OrderFilled, OrderIntent, OrderRejected
from bot.core.log import get

log = get("soxbot.alpaca")

StatusListener = Callable[[str, str, str | None, str], None]
NOT_AT_BROKER = "never reached the broker"  # an order looked up and not found: it holds nothing


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
        self._link_stop(tr, order, fetch=True)

    def _link_stop(self, tp: Tracked, order: dict[str, Any], fetch: bool) -> None:
        """An OCO exit is known by its take-profit's id; its stop leg has a broker-made id, learned from
        the legs. A look-up by client_order_id never carries them (Alpaca's answer has `legs: null`), so
        with `fetch` the order is read again with its legs. Until the leg is seen the stop is unresolved,
        which keeps the poll asking: a stop the book cannot see can be neither moved nor awaited."""
        if not tp.oco_with or tp.intent.intent is not Intent.TAKE_PROFIT or order.get("order_class") != "oco":
            return
        stop = self.orders.get(tp.oco_with)
        if stop is None or stop.done or stop.broker_id is not None:
            return
        if not order.get("legs") and fetch and tp.broker_id is not None:
            order = self.rest.get_order(tp.broker_id) or order
        leg = stop_leg(order)
        if leg is None:
            if fetch:
                stop.unresolved = True
                log.warning("OCO stop leg not seen yet: will look again", cid=stop.cid, oco=tp.cid)
            return
        stop.broker_id = str(leg.get("id"))
        stop.unresolved = False
        self.by_broker[stop.broker_id] = stop.cid
        self.status(stop.cid, "submitted", stop.broker_id)

    def refresh(self, tr: Tracked) -> None:
        if tr.broker_id is None:
            return
        order = self.rest.get_order(tr.broker_id)
        if order is not None:
            self.apply(order, "poll")

    def look(self, tr: Tracked) -> bool:
        """Ask the broker about `tr` without ever sending anything: by its id, through its OCO's
        take-profit (which carries the stop leg) or by its client_order_id. False once it is known to be
        finished or never to have reached the broker (then it ends here); True while it may work."""
        if tr.done:
            return False
        if tr.broker_id is None and tr.oco_with and tr.intent.intent is Intent.STOP:
            parent = self.orders.get(tr.oco_with)
            if parent is not None:  # a leg is never found by the engine's id: its OCO is
                alive = self.look(parent)
                if tr.broker_id is None:
                    if not alive and parent.broker_id is None:  # the OCO never reached the broker
                        self._not_at_broker(tr)
                    return not tr.done
        if tr.broker_id is not None:
            self.refresh(tr)
            return not tr.done
        try:
            order = self.rest.lookup(tr.cid)
        except TimeoutError:
            return True  # cannot tell
        if order is None:
            self._not_at_broker(tr)
            return False
        self.register(tr, order)
        self.apply(order, "poll")
        return not tr.done

    def _not_at_broker(self, tr: Tracked) -> None:
        tr.done, tr.unresolved = True, False
        log.warning("order not at the broker: it holds nothing and is not sent again", cid=tr.cid)
        self.out.append(OrderCanceled(tr.cid, tr.intent.ts, tr.intent.symbol, NOT_AT_BROKER))

    def _ours(self, order: dict[str, Any]) -> Tracked | None:
        """Our order this broker order is (registered when first seen by its client_order_id)."""
        cid = self.by_broker.get(str(order.get("id")))
        if cid is not None:
            return self.orders[cid]
        cid = order.get("client_order_id")
        tr = self.orders.get(cid) if cid else None
        if tr is None or (tr.broker_id is not None and tr.broker_id != str(order.get("id"))):
            return None  # not ours (or an old incarnation of ours)
        self.register(tr, order)
        return tr

    def apply(self, order: dict[str, Any], source: str) -> None:
        """Queue what this broker order says that the engine has not had yet: new fills, its end."""
        tr = self._ours(order)
        if tr is not None:
            self._link_stop(tr, order, fetch=False)
        for leg in order.get("legs") or ():
            if isinstance(leg, dict):
                self.apply(leg, source)
        if tr is None:
            return
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
            if status not in ("filled", "rejected"):
                self._partner_first(tr)
            ts = ny_time(order.get("updated_at"))
            if status == "rejected":
                self.out.append(OrderRejected(tr.cid, ts, tr.intent.symbol, "rejected by the broker"))
            elif status != "filled":
                self.out.append(OrderCanceled(tr.cid, ts, tr.intent.symbol, status))

    def _partner_first(self, tr: Tracked) -> None:
        """One leg of an OCO exit ended unfilled: most often because its partner filled. The partner's
        state is read first, so its fill reaches the engine before this cancel does (the other order
        would read as "a held position lost its stop" and the stop would be placed again)."""
        other = self.orders.get(tr.oco_with) if tr.oco_with else None
        if other is not None and not other.done:
            if other.broker_id is not None:
                self.refresh(other)
            elif other.intent.intent is Intent.STOP:
                self.look(other)
