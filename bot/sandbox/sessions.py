"""What the session bell does: the open marks yesterday's equity and wakes queued orders, the close
expires day orders.

Separate from bar matching because it acts on the whole account and every symbol at once.
"""

from __future__ import annotations

import pandas as pd

from bot.sandbox.accounts import Portfolio
from bot.sandbox.book import OrderBook
from bot.sandbox.funds import Funds
from bot.sandbox.legs import Legs
from bot.sandbox.timeline import Timeline
from bot.sandbox.updates import Updates


class Sessions:
    def __init__(
        self,
        portfolio: Portfolio,
        book: OrderBook,
        funds: Funds,
        legs: Legs,
        updates: Updates,
        timeline: Timeline,
    ) -> None:
        self.portfolio = portfolio
        self.book = book
        self.funds = funds
        self.legs = legs
        self.updates = updates
        self.timeline = timeline

    def on_open(self) -> None:
        t = self.timeline.t
        prices = self.funds.prices(t - pd.Timedelta(1, "ns"))  # yesterday's closes, not today's opens
        self.portfolio.last_equity = self.portfolio.equity(prices)
        self.portfolio.lastday_price.update(prices)
        for o in self.book.open_orders():
            if o.status == "accepted":
                self.book.set_status(o, "new", t)
                self.updates.emit("new", o)

    def on_close(self) -> None:
        t = self.timeline.t
        for o in self.book.open_orders():
            if o.time_in_force == "day" and o.expires_at is not None and o.expires_at <= t:
                if o.status == "held":
                    continue  # expires with its parent
                self.legs.finish(o, "expired")
