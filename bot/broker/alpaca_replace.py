"""Moving a live protective order (a trailing raise): one PATCH with a new client_order_id, under the same
ambiguity rules as a submit. A refused or unresolved move keeps the old order working and routes the new
id to it, so the engine's later cancel or move still reaches the order that protects the shares."""

from __future__ import annotations

from typing import Any

from alpaca.trading.client import TradingClient

from bot.broker.alpaca_book import OrderBook
from bot.broker.alpaca_errors import error_kind, error_message
from bot.broker.alpaca_orders import replace_fields, replace_request
from bot.broker.alpaca_retry import RestRetry, pause
from bot.broker.alpaca_types import Stats, Tracked, with_qty
from bot.core.events import OrderCanceled, OrderIntent
from bot.core.log import get

log = get("soxbot.alpaca")


class StopMover:
    """PATCHes a live order to a new price/qty/id and re-keys the book on success."""

    def __init__(
        self,
        client: TradingClient,
        book: OrderBook,
        rest: RestRetry,
        stats: Stats,
        backoff: tuple[float, ...],
    ) -> None:
        self.client = client
        self.book = book
        self.rest = rest
        self.stats = stats
        self.backoff = backoff

    def move(self, old: Tracked, new: OrderIntent) -> None:
        """Replace `old` (live at the broker, `broker_id` known) by `new`."""
        fields = replace_fields(new, old.intent.qty)
        req = replace_request(fields)
        order = self._patch(old, new, req)
        if order is None:
            return
        if "qty" not in fields:
            new = with_qty(new, old.intent.qty)
        self._rekey(old, new, order)

    def _patch(self, old: Tracked, new: OrderIntent, req: Any) -> dict[str, Any] | None:
        """The replacing order, or None when the move did not happen (the new id then routes to `old`)."""
        book = self.book
        order: dict[str, Any] | None = None
        for i in range(len(self.backoff) + 1):
            try:
                order = self.client.replace_order_by_id(old.broker_id, req)
                break
            except Exception as exc:
                kind = error_kind(exc)
                if kind == "duplicate":
                    order = self.rest.lookup_quiet(new.client_order_id)
                    break
                if kind != "ambiguous":
                    log.warning(
                        "move refused; the previous order stays", cid=old.cid, reason=error_message(exc)
                    )
                    book.alias[new.client_order_id] = old.cid
                    book.status(new.client_order_id, "replace_refused", None, error_message(exc))
                    book.refresh(old)
                    return None
                self.stats.ambiguous += 1
                order = self.rest.lookup_quiet(new.client_order_id)
                if order is not None:
                    break
                book.refresh(old)
                if old.done:  # it filled (or went) meanwhile: nothing left to move
                    book.alias[new.client_order_id] = old.cid
                    return None
                if i < len(self.backoff):
                    pause(self.backoff[i], f"move of {old.cid} to {new.client_order_id}: trying again")
        if order is None:
            log.warning("move unresolved; the previous order stays", cid=old.cid)
            book.alias[new.client_order_id] = old.cid
        return order

    def _rekey(self, old: Tracked, new: OrderIntent, order: dict[str, Any]) -> None:
        """Track the replacing order under the new id; the old id ends as 'replaced by ...'."""
        book = self.book
        tr = Tracked(new, oco_with=old.oco_with)
        book.orders[new.client_order_id] = tr
        if old.oco_with and old.oco_with in book.orders:
            book.orders[old.oco_with].oco_with = new.client_order_id
        for alias, target in list(book.alias.items()):
            if target == old.cid:
                book.alias[alias] = new.client_order_id
        book.register(tr, order)
        book.status(new.client_order_id, "submitted", tr.broker_id)
        old.done = True
        book.out.append(
            OrderCanceled(old.cid, new.ts, old.intent.symbol, f"replaced by {new.client_order_id}")
        )
        book.apply(order, "submit")
