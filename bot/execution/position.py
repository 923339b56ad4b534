"""The engine's position and the entry it waits to open: plain state, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(slots=True)
class Position:
    symbol: str
    qty: float
    entry_price: float
    entry_time: pd.Timestamp
    signal_ts: pd.Timestamp
    entry_commission: float
    sessions: int = 1
    stop: float | None = None
    take_profit: float | None = None
    stop_cid: str | None = None
    tp_cid: str | None = None
    stop_rev: int = 0
    closing: bool = False
    exit_qty: float = 0.0
    exit_value: float = 0.0
    exit_commission: float = 0.0
    close_cid: str | None = None  # the latest close sent for this position
    exit_failures: int = 0  # closes that ended before selling it all


@dataclass(slots=True)
class PendingOpen:
    symbol: str
    signal_ts: pd.Timestamp
    reason: str
