"""Plain, immutable events that flow one way through the engine.

feed -> strategies -> signals -> risk -> orders -> broker -> fills -> portfolio/journal.
Names follow NautilusTrader's habit of naming an event for what happened (OrderSubmitted,
OrderFilled), so a journal row reads as a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import pandas as pd


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"


class Intent(StrEnum):
    """Why an order exists; part of its deterministic client_order_id."""

    OPEN = "open"
    CLOSE = "close"
    STOP = "stop"
    TAKE_PROFIT = "tp"
    HEDGE = "hedge"  # hedge mode's orders in the inverse fund (bot/execution/hedge.py)


class ExitReason(StrEnum):
    SIGNAL = "signal"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    MAX_HOLD = "max_hold"
    END_OF_DATA = "end_of_data"
    RISK = "risk"
    SPLIT = "split"  # a reverse split left less than one share: paid out as cash in lieu


@dataclass(frozen=True, slots=True)
class Bar:
    symbol: str
    ts: pd.Timestamp
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


@dataclass(frozen=True, slots=True)
class SignalEvent:
    """One strategy's (or the combiner's) view of one bar."""

    ts: pd.Timestamp
    symbol: str
    strategy: str
    direction: int
    reason: str
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    """A risk decision with its reason, journaled so "why did (not) it trade?" has an answer."""

    ts: pd.Timestamp
    action: str  # allow | block | flatten | lock | kill | exit | resize
    reason: str
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order the engine wants at the broker. Journaled before it is sent."""

    client_order_id: str
    ts: pd.Timestamp
    symbol: str
    side: Side
    qty: float
    type: OrderType
    intent: Intent
    reason: str
    stop_price: float | None = None
    limit_price: float | None = None
    exit_reason: ExitReason | None = None


@dataclass(frozen=True, slots=True)
class OrderFilled:
    """A fill of `qty` (this fill's size, not the cumulative one). `partial` = more may follow."""

    client_order_id: str
    ts: pd.Timestamp
    symbol: str
    side: Side
    qty: float
    price: float
    commission: float = 0.0
    partial: bool = False


@dataclass(frozen=True, slots=True)
class OrderRejected:
    client_order_id: str
    ts: pd.Timestamp
    symbol: str
    reason: str


@dataclass(frozen=True, slots=True)
class OrderCanceled:
    client_order_id: str
    ts: pd.Timestamp
    symbol: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SplitDetected:
    """The broker applied a split of `symbol` (`ratio` new shares per old one) and now holds `qty_after`
    of it; `source` says how the split is known (the broker's corporate actions, a splits table)."""

    symbol: str
    ts: pd.Timestamp
    ratio: float
    qty_after: float
    source: str = ""


@dataclass(frozen=True, slots=True)
class EquityPoint:
    ts: pd.Timestamp
    equity: float
    cash: float
    position_value: float


@dataclass(frozen=True, slots=True)
class Trade:
    """A closed round trip, the row of trades.csv."""

    symbol: str
    side: str
    qty: float
    entry_time: pd.Timestamp
    entry_price: float
    exit_time: pd.Timestamp
    exit_price: float
    pnl: float
    exit_reason: ExitReason
