"""Prices and money: last prices, buying power held by open buys, shares held by open sells.

Both order entry (can this order be afforded?) and the account/position endpoints need the same
answers, so they are computed here once from the portfolio, the order book and the replayed bars.
"""

from __future__ import annotations

import pandas as pd

from bot.sandbox.accounts import Portfolio, dec
from bot.sandbox.book import GROUP_CLASSES, OrderBook
from bot.sandbox.clock import rfc3339
from bot.sandbox.market import MarketData
from bot.sandbox.orders import ApiError, Order
from bot.sandbox.timeline import Timeline


class Funds:
    def __init__(
        self,
        market: MarketData,
        portfolio: Portfolio,
        book: OrderBook,
        timeline: Timeline,
        market_collar: float,
    ) -> None:
        self.market = market
        self.portfolio = portfolio
        self.book = book
        self.timeline = timeline
        self.market_collar = market_collar  # market buys reserve at last price x (1 + collar)

    # ------------------------------------------------------------ prices

    def last(self, symbol: str, at: pd.Timestamp | None = None) -> float | None:
        lp = self.market.last_price(symbol, at if at is not None else self.timeline.t)
        return lp[0] if lp else None

    def prices(self, at: pd.Timestamp | None = None) -> dict[str, float]:
        out = {}
        for sym in self.portfolio.positions.keys() | set(self.market.bars):
            p = self.last(sym, at)
            if p is not None:
                out[sym] = p
        return out

    # ------------------------------------------------------------ what open orders hold

    def reserve(self, o: Order) -> float:
        """Buying power an open buy order holds (Alpaca reserves it until fill or cancel)."""
        if not o.is_buy or o.status == "held":
            return 0.0
        if o.notional is not None and o.qty is None:
            return o.notional
        ref = {"limit": o.limit_price, "stop_limit": o.limit_price, "stop": o.stop_price}.get(o.type)
        if ref is None:
            last = self.last(o.symbol) or 0.0
            ref = last * (1 + self.market_collar)
        return o.remaining * ref

    def reserved(self, exclude: Order | None = None) -> float:
        return sum(self.reserve(o) for o in self.book.open_orders() if o is not exclude)

    def held_for_orders(self, symbol: str, exclude: Order | None = None) -> float:
        """Shares promised to open sells; an exit group (OCO/bracket legs) holds its quantity once."""
        seen: set[str] = set()
        held = 0.0
        for o in self.book.open_orders(symbol):
            if o.is_buy or o.status == "held" or o is exclude:
                continue
            root = self.book.group_root(o)
            key = root.id if root.order_class in GROUP_CLASSES else o.id
            if key in seen:
                continue
            seen.add(key)
            held += o.remaining if o.qty is not None else 0.0
        return held

    # ------------------------------------------------------------ checks

    def check_new(self, order: Order) -> None:
        """403 unless the account can pay for a new buy, or holds the shares a new sell offers."""
        if order.is_buy:
            self._check_buying_power(order, self.reserved())
        elif order.qty is not None:
            pos = self.portfolio.positions.get(order.symbol)
            existing = pos.qty if pos else 0.0
            held = self.held_for_orders(order.symbol)
            available = max(0.0, existing - held)
            if order.qty > available + 1e-9:
                raise ApiError(
                    403,
                    40310000,
                    f"insufficient qty available for order (requested: {dec(order.qty)}, "
                    f"available: {dec(available)})",
                    available=dec(available),
                    existing_qty=dec(existing),
                    held_for_orders=dec(held),
                    symbol=order.symbol,
                )
        elif order.notional is not None and order.symbol not in self.portfolio.positions:
            raise ApiError(
                403,
                40310000,
                "insufficient qty available for order (requested: notional, available: 0)",
                available="0",
                existing_qty="0",
                held_for_orders="0",
                symbol=order.symbol,
            )

    def check_replacement(self, old: Order, new: Order) -> None:
        """As check_new, with what `old` holds given back (an exit group may use the whole position)."""
        if new.is_buy:
            self._check_buying_power(new, self.reserved(exclude=old))
        else:
            pos = self.portfolio.positions.get(old.symbol)
            available = (pos.qty if pos else 0.0) - self.held_for_orders(old.symbol, exclude=old)
            if self.book.group_root(old).order_class in GROUP_CLASSES:
                available = pos.qty if pos else 0.0
            if new.qty > available + 1e-9:
                raise ApiError(
                    403,
                    40310000,
                    f"insufficient qty available for order (requested: "
                    f"{dec(new.qty)}, available: {dec(max(0.0, available))})",
                )

    def _check_buying_power(self, order: Order, reserved: float) -> None:
        cost = self.reserve(order)
        bp = self.portfolio.buying_power(self.prices(), reserved)
        if cost > bp + 1e-6:
            raise ApiError(
                403, 40310000, "insufficient buying power", buying_power=dec(bp, 2), cost_basis=dec(cost, 2)
            )

    # ------------------------------------------------------------ account

    def account_json(self, created_at: pd.Timestamp) -> dict:
        t = self.timeline.t
        return self.portfolio.account_json(
            self.prices(),
            self.reserved(),
            rfc3339(created_at),
            t.tz_convert("America/New_York").strftime("%Y-%m-%d"),
        )
