"""Placing an order exactly once. alpaca-py's own retry is off, so a submit is sent once; an ambiguous
answer is resolved by looking the client_order_id up, never by sending blindly. Only a 404 there (not
created) allows a re-send with the SAME id (bounded, with backoff); a 422 "client_order_id must be
unique" means it was sent already, and the existing order is adopted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alpaca.trading.client import TradingClient

from bot.broker.alpaca_book import OrderBook
from bot.broker.alpaca_errors import error_kind, error_message
from bot.broker.alpaca_orders import oco_request, order_request
from bot.broker.alpaca_retry import RestRetry, pause
from bot.broker.alpaca_types import Stats, Tracked
from bot.core.events import Intent
from bot.core.log import get

log = get("soxbot.alpaca")
Refusal = Callable[[Tracked, str], bool]  # (the refused order, the broker's reason) -> handled


class Sender:
    """Sends an order, and resolves (adopts or re-sends) one whose outcome is unknown."""

    def __init__(
        self,
        client: TradingClient,
        book: OrderBook,
        rest: RestRetry,
        stats: Stats,
        backoff: tuple[float, ...],
        max_sends: int,
    ) -> None:
        self.client = client
        self.book = book
        self.rest = rest
        self.stats = stats
        self.backoff = backoff
        self.max_sends = max_sends

    def request_for(self, tr: Tracked) -> Any:
        """The request that places `tr`: the shared OCO for an exit pair, else its own order."""
        if tr.oco_with:
            stop, tp = self.book.oco_pair(tr)
            return oco_request(stop.intent, tp.intent)
        return order_request(tr.intent)

    def send(self, tr: Tracked, req: Any, refused: Refusal | None = None) -> None:
        """Send once; resolve any ambiguous answer by looking the id up; re-send only after a 404.
        A refusal rejects `tr`, unless `refused(tr, reason)` dealt with it (and returned True)."""
        for i in range(self.max_sends):
            if tr.sends >= self.max_sends:
                break
            tr.sends += 1
            self.stats.sends += 1
            if tr.sends > 1:
                self.stats.resends += 1
            try:
                order = self.client.submit_order(req)
            except Exception as exc:
                kind = error_kind(exc)
                if kind == "rejected":
                    if refused is None or not refused(tr, error_message(exc)):
                        self.book.reject(tr, error_message(exc))
                    return
                if kind == "duplicate":
                    self.stats.adopted += 1
                    log.info("order already at the broker: adopted", cid=tr.cid)
                else:
                    self.stats.ambiguous += 1
                    log.warning("ambiguous order answer; looking it up", cid=tr.cid, error=error_message(exc))
                try:
                    order = self.rest.lookup(tr.cid)
                except TimeoutError:
                    tr.unresolved = True
                    log.warning("order outcome unknown; will reconcile", cid=tr.cid)
                    return
                if order is None:
                    if kind == "duplicate":  # duplicate but not found: never guess, leave it to polling
                        tr.unresolved = True
                        return
                    if i < len(self.backoff):
                        pause(self.backoff[i], f"order {tr.cid}: not at the broker, sending it again")
                    continue  # not created: the same client_order_id is safe to send again
            self.book.register(tr, order)
            self.book.status(tr.cid, "submitted", tr.broker_id)
            self.book.apply(order, "submit")
            return
        tr.unresolved = True
        log.warning("order not confirmed after retries; will reconcile", cid=tr.cid)

    def resolve(self, tr: Tracked) -> bool:
        """An order whose submit outcome is unknown: adopt it if it exists, send it again if it does not."""
        if tr.oco_with and tr.intent.intent is Intent.STOP:  # an OCO is known by its take-profit's id
            parent = self.book.orders[tr.oco_with]
            if parent.broker_id is not None:
                self.book.refresh(parent)
                return tr.broker_id is not None
            tr = parent
        try:
            order = self.rest.lookup(tr.cid)
        except TimeoutError:
            return False
        if order is not None:
            self.stats.adopted += 1
            self.book.register(tr, order)
            self.book.status(tr.cid, "submitted", tr.broker_id)
            self.book.apply(order, "poll")
            return True
        if tr.sends >= self.max_sends:
            self.book.reject(tr, f"could not place the order after {tr.sends} attempts (broker unreachable)")
            return False
        self.send(tr, self.request_for(tr))
        return tr.broker_id is not None
