"""The engine's order desk: every intent gets a deterministic client_order_id, is journaled before the
broker sees it, and is remembered until it ends. A position's protective stop and take-profit are
placed here, and replaced under the next revision of their id when the quantity or the stop moves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from bot.broker.base import Broker
from bot.core.events import ExitReason, Intent, OrderIntent, OrderType, Side
from bot.core.ids import client_order_id, next_revision, split_revision
from bot.execution.position import Position
from bot.journal.journal import Journal


class OrderDesk:
    def __init__(
        self, set_id: str, broker: Broker, journal: Journal | None, emit: Callable[..., None]
    ) -> None:
        self.set_id = set_id
        self.broker = broker
        self.journal = journal
        self.emit = emit  # the engine's listener, looked up at each call (the service attaches late)
        self.orders: dict[str, OrderIntent] = {}  # working orders by client_order_id

    def cid(self, symbol: str, signal_ts: pd.Timestamp, intent: Intent, rev: int = 0) -> str:
        return client_order_id(self.set_id, symbol, signal_ts, intent.value, rev)

    def send(self, intent: OrderIntent) -> None:
        self.orders[intent.client_order_id] = intent
        if self.journal is not None:
            self.journal.order_intent(intent)  # written before the broker sees it
        self.emit("order", order=intent)
        self.broker.submit(intent)

    def close(self, pos: Position, now: pd.Timestamp, why: ExitReason, reason: str) -> None:
        """Cancel the position's protective legs and sell it all at market."""
        pos.closing = True
        for cid in (pos.stop_cid, pos.tp_cid):
            if cid is not None:
                self.broker.cancel(cid)
        cid = self.cid(pos.symbol, now, Intent.CLOSE)
        if pos.close_cid is not None and split_revision(pos.close_cid)[0] == cid:
            cid = next_revision(pos.close_cid)  # closed again on the same bar: never reuse a spent id
        pos.close_cid = cid
        self.send(
            OrderIntent(
                cid, now, pos.symbol, Side.SELL, pos.qty, OrderType.MARKET, Intent.CLOSE, reason,  # type: ignore[arg-type]
                exit_reason=why,
            )
        )  # fmt: skip

    def protect(self, pos: Position, ts: pd.Timestamp, only: Intent | None = None, why: str = "") -> None:
        """Place the position's protective stop and take-profit at the broker, or replace them
        (a new, deterministic client_order_id per revision) when the qty or the stop changes."""
        legs = (
            (Intent.STOP, OrderType.STOP, pos.stop, "protective stop", ExitReason.STOP_LOSS),
            (Intent.TAKE_PROFIT, OrderType.LIMIT, pos.take_profit, "take profit", ExitReason.TAKE_PROFIT),
        )
        for kind, otype, price, default_why, reason in legs:
            if price is None or (only is not None and kind is not only):
                continue
            old = pos.stop_cid if kind is Intent.STOP else pos.tp_cid
            rev = 0 if old is None else pos.stop_rev + 1
            intent = OrderIntent(
                self.cid(pos.symbol, pos.signal_ts, kind, rev), ts, pos.symbol, Side.SELL, pos.qty, otype,
                kind, why or default_why, stop_price=price if kind is Intent.STOP else None,
                limit_price=price if kind is Intent.TAKE_PROFIT else None, exit_reason=reason,
            )  # fmt: skip
            if old is None:
                self.send(intent)
            else:
                pos.stop_rev = rev
                self.orders.pop(old, None)
                self.orders[intent.client_order_id] = intent
                if self.journal is not None:
                    self.journal.order_intent(intent)
                self.broker.replace_stop(old, intent)
            if kind is Intent.STOP:
                pos.stop_cid = intent.client_order_id
            else:
                pos.tp_cid = intent.client_order_id

    def cancel_other_leg(self, pos: Position, filled_cid: str) -> None:
        """One protective leg filled: cancel the other (one-cancels-other)."""
        for cid in (pos.stop_cid, pos.tp_cid):
            if cid is not None and cid != filled_cid:
                self.broker.cancel(cid)

    def mark_end_of_data(self, symbol: str) -> None:
        """A backtest ends while a close of `symbol` is working: it fills as the end-of-data exit."""
        for cid, o in list(self.orders.items()):
            if o.symbol == symbol and o.intent is Intent.CLOSE:
                fields: dict[str, Any] = {k: getattr(o, k) for k in o.__dataclass_fields__}
                self.orders[cid] = OrderIntent(**{**fields, "exit_reason": ExitReason.END_OF_DATA})
