"""Outgoing events: trade updates for the trading stream and bars/trades for the market-data stream.

The exchange only states what happened; this module shapes the message and hands it to whoever
listens (the socket hub in app.py, or a test), so matching code never deals with stream formats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.sandbox.clock import rfc3339
from bot.sandbox.orders import Order
from bot.sandbox.timeline import Timeline

TradeListener = Callable[[dict], None]
BarListener = Callable[[str, str, dict], None]  # (kind "b"|"t"|"q"|"d", symbol, payload)


class Updates:
    def __init__(
        self,
        trade_listeners: list[TradeListener],
        bar_listeners: list[BarListener],
        new_id: Callable[[], str],
        timeline: Timeline,
    ) -> None:
        self.trade_listeners = trade_listeners
        self.bar_listeners = bar_listeners
        self._new_id = new_id
        self._timeline = timeline

    def emit(self, event: str, order: Order, execution_id: str | None = None, **fill: Any) -> None:
        """A `trade_updates` message; only fills carry an execution_id (one id is drawn regardless,
        unless the caller drew it: a fill's id is also its account activity's)."""
        data = {
            "event": event,
            "execution_id": execution_id if execution_id is not None else self._new_id(),
            "order": order.to_json(None),
            "timestamp": rfc3339(self._timeline.t),
            **fill,
        }
        if event not in ("fill", "partial_fill"):
            data.pop("execution_id")
        msg = {"stream": "trade_updates", "data": data}
        for listener in list(self.trade_listeners):
            listener(msg)

    def publish(self, kind: str, symbol: str, payload: dict) -> None:
        for listener in list(self.bar_listeners):
            listener(kind, symbol, payload)
