"""REST calls that may be repeated safely: reads, the look-up of an order by its client_order_id and a
cancel. An ambiguous answer (timeout, connection error, 5xx, 429) is retried with bounded backoff; any
other answer is final. Sending an order is not here: that is never repeated blindly (see alpaca_send)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from alpaca.trading.client import TradingClient

from bot.broker.alpaca_errors import error_kind, error_message
from bot.broker.alpaca_types import Stats


class RestRetry:
    """Idempotent Alpaca calls with retries on ambiguous answers only."""

    def __init__(self, client: TradingClient, backoff: tuple[float, ...], stats: Stats) -> None:
        self.client = client
        self.backoff = backoff
        self.stats = stats

    def get(self, fn: Callable[[], Any]) -> Any:
        """`fn()`, retried while the answer is ambiguous; the last failure (or any other) is raised."""
        for i in range(len(self.backoff) + 1):
            try:
                return fn()
            except Exception as exc:
                if error_kind(exc) != "ambiguous" or i == len(self.backoff):
                    raise
                time.sleep(self.backoff[i])
        raise AssertionError("unreachable")

    def get_order(self, order_id: str) -> dict[str, Any] | None:
        """The order with this broker id; None when it cannot be had."""
        for i in range(len(self.backoff) + 1):
            try:
                return self.client.get_order_by_id(order_id)
            except Exception as exc:
                if error_kind(exc) != "ambiguous":
                    return None
                if i < len(self.backoff):
                    time.sleep(self.backoff[i])
        return None

    def lookup(self, cid: str) -> dict[str, Any] | None:
        """The order with this client_order_id; None when the broker says it does not exist. Raises
        TimeoutError when the broker cannot be asked (the outcome stays unknown)."""
        for i in range(len(self.backoff) + 1):
            try:
                return self.client.get_order_by_client_id(cid)
            except Exception as exc:
                kind = error_kind(exc)
                if kind == "not_found":
                    return None
                if kind != "ambiguous":
                    raise TimeoutError(error_message(exc)) from exc
                if i < len(self.backoff):
                    time.sleep(self.backoff[i])
        raise TimeoutError(f"could not look up {cid}")

    def lookup_quiet(self, cid: str) -> dict[str, Any] | None:
        """`lookup`, with "cannot be asked" read as None."""
        try:
            return self.lookup(cid)
        except TimeoutError:
            return None

    def cancel(self, broker_id: str | None) -> None:
        """Ask for a cancel. A 404/422 means already terminal; the order's state (read after) says which."""
        for i in range(len(self.backoff) + 1):
            try:
                self.client.cancel_order_by_id(broker_id)
                break
            except Exception as exc:
                kind = error_kind(exc)
                if kind != "ambiguous":  # 404/422: already terminal; the state below says which
                    break
                self.stats.ambiguous += 1
                if i < len(self.backoff):
                    time.sleep(self.backoff[i])
