"""The engine's position and the entry it waits to open: plain state, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bot.core.events import ExitReason, Trade


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

    def closed(self, ts: pd.Timestamp, reason: ExitReason) -> Trade:
        """The round trip once it is all sold: average exit price and P&L net of both commissions."""
        price = self.exit_value / self.exit_qty if self.exit_qty > 0 else 0.0
        pnl = (
            self.exit_value - self.exit_qty * self.entry_price - self.entry_commission - self.exit_commission
        )
        return Trade(
            self.symbol, "long", self.exit_qty, self.entry_time, self.entry_price, ts, price, pnl, reason
        )


@dataclass(slots=True)
class PendingOpen:
    symbol: str
    signal_ts: pd.Timestamp
    reason: str
