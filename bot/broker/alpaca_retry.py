"""REST calls that may be repeated safely: reads, the look-up of an order by its client_order_id and a
cancel. An ambiguous answer (timeout, connection error, 5xx, 429) is retried with bounded backoff; any
other answer is final. Sending an order is not here: that is never repeated blindly (see alpaca_send).

Every wait on the driver's thread says what it waits for (`pause`): a backoff is a moment in which
the bot does nothing else, and a silent one cannot be told apart from a hang."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from alpaca.trading.client import TradingClient
from alpaca.trading.requests import GetOrderByIdRequest

from bot.broker.alpaca_errors import error_kind, error_message
from bot.broker.alpaca_types import Stats
from bot.core.log import get

log = get("soxbot.alpaca")
NESTED = GetOrderByIdRequest(nested=True)  # an OCO's legs come with it (the stop leg's id and state)


def pause(seconds: float, awaited: str, error: BaseException | str | None = None) -> None:
    """Sleep `seconds` on the driver's thread, after one log line naming what is awaited."""
    why = error_message(error) if isinstance(error, BaseException) else error
    log.info("waiting", awaited=awaited, seconds=seconds, **({"after": why} if why else {}))
    time.sleep(seconds)


class RestRetry:
    """Idempotent Alpaca calls with retries on ambiguous answers only."""

    def __init__(self, client: TradingClient, backoff: tuple[float, ...], stats: Stats) -> None:
        self.client = client
        self.backoff = backoff
        self.stats = stats

    def get(self, fn: Callable[[], Any], what: str = "a broker read") -> Any:
        """`fn()`, retried while the answer is ambiguous; the last failure (or any other) is raised."""
        for i in range(len(self.backoff) + 1):
            try:
                return fn()
            except Exception as exc:
                if error_kind(exc) != "ambiguous" or i == len(self.backoff):
                    raise
                pause(self.backoff[i], f"{what}: asking again", exc)
        raise AssertionError("unreachable")

    def get_order(self, order_id: str) -> dict[str, Any] | None:
        """The order with this broker id, with its legs; None when it cannot be had."""
        for i in range(len(self.backoff) + 1):
            try:
                return self.client.get_order_by_id(order_id, NESTED)
            except Exception as exc:
                if error_kind(exc) != "ambiguous":
                    return None
                if i < len(self.backoff):
                    pause(self.backoff[i], f"order {order_id}: asking again", exc)
        return None

    def lookup(self, cid: str) -> dict[str, Any] | None:
        """The order with this client_order_id; None when the broker says it does not exist. Raises
        TimeoutError when the broker cannot be asked (the outcome stays unknown). Alpaca's look-up by
        client_order_id never carries an OCO's legs: `get_order` on its id does."""
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
                    pause(self.backoff[i], f"order {cid}: looking it up again", exc)
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
                    pause(self.backoff[i], f"cancel of order {broker_id}: asking again", exc)
