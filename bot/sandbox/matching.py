"""How resting orders meet a bar: market orders at its open, the rest against its high, low and close.

Prices come from bot.core.fills, the same rules the backtester uses, so a strategy sees the same fill
in the sandbox as in a backtest; this module adds the venue's side: partial fills, IOC/FOK, groups.
"""

from __future__ import annotations

import random

import pandas as pd

from bot.core.fills import limit_fill, market_fill, stop_fill
from bot.sandbox.accounts import Portfolio, dec
from bot.sandbox.activities import Activities
from bot.sandbox.book import OrderBook
from bot.sandbox.legs import Legs
from bot.sandbox.market import MarketData
from bot.sandbox.orders import Order
from bot.sandbox.timeline import Timeline
from bot.sandbox.updates import Updates


def price_on_bar(o: Order, open_: float, high: float, low: float, slip: float) -> float | None:
    """The fill price of a resting order on a bar, or None; elects stop-limits and seeds trailing marks."""
    if o.type == "limit":
        return limit_fill(open_, high, low, o.is_buy, o.limit_price)
    if o.type == "stop":
        return stop_fill(open_, high, low, o.is_buy, o.stop_price, slip)
    if o.type == "stop_limit":
        if not o.triggered:
            trig = stop_fill(open_, high, low, o.is_buy, o.stop_price, 0.0)
            if trig is None:
                return None
            o.triggered = True
            # once elected, the limit works from the trigger price (the open when it gapped)
            return limit_fill(trig, high, low, o.is_buy, o.limit_price)
        return limit_fill(open_, high, low, o.is_buy, o.limit_price)
    if o.type == "trailing_stop":
        if o.hwm is None:
            o.hwm = open_
        return stop_fill(open_, high, low, o.is_buy, o.trailing_stop, slip)
    return None


def _working(o: Order, start: pd.Timestamp) -> bool:
    """Live, and submitted (or activated) before this bar started."""
    return o.status in ("new", "partially_filled") and (o.eligible_after is None or start > o.eligible_after)


class Matcher:
    def __init__(
        self,
        market: MarketData,
        book: OrderBook,
        portfolio: Portfolio,
        legs: Legs,
        updates: Updates,
        timeline: Timeline,
        slippage_bps: float,
        partial_fill_prob: float,
        seed: int,
        activities: Activities,
    ) -> None:
        self.market = market
        self.activities = activities
        self.book = book
        self.portfolio = portfolio
        self.legs = legs
        self.updates = updates
        self.timeline = timeline
        self.slippage_bps = slippage_bps
        self.partial_fill_prob = partial_fill_prob
        self._fill_rng = random.Random(seed)
        self.trade_id = 0

    def on_bar_open(self, sym: str, i: int) -> None:
        sb = self.market.bars[sym]
        start = pd.Timestamp(int(sb.start[i]), tz="UTC")
        o_px = float(sb.open[i])
        self.trade_id += 1
        self.updates.publish("t", sym, {"t": start, "p": o_px})
        for o in self.book.open_orders(sym):
            if o.type == "market" and _working(o, start):
                self.execute(o, market_fill(o_px, o.is_buy, self.slippage_bps), i)

    def on_bar_close(self, sym: str, i: int) -> None:
        sb = self.market.bars[sym]
        start = pd.Timestamp(int(sb.start[i]), tz="UTC")
        o_, h, lo, c = float(sb.open[i]), float(sb.high[i]), float(sb.low[i]), float(sb.close[i])
        candidates = [o for o in self.book.open_orders(sym) if o.type != "market" and _working(o, start)]
        # within an exit group the stop goes first: a bar touching both is read as hitting the stop
        candidates.sort(key=lambda o: (self.book.group_root(o).seq, o.type == "limit", o.seq))
        for o in candidates:
            if not o.is_open:
                continue  # a sibling filled on this bar
            px = price_on_bar(o, o_, h, lo, self.slippage_bps)
            if px is not None:
                self.execute(o, px, i)
            if o.time_in_force in ("ioc", "fok") and o.is_open:
                self.legs.finish(o, "canceled")
        for o in self.book.open_orders(sym):
            if o.type == "trailing_stop" and _working(o, start):
                o.hwm = max(o.hwm or h, h) if not o.is_buy else min(o.hwm or lo, lo)
        label = pd.Timestamp(int(sb.label[i]), tz="UTC")
        bar = {
            "t": label,
            "o": o_,
            "h": h,
            "l": lo,
            "c": c,
            "v": float(sb.volume[i]),
            "n": 1,
            "vw": (h + lo + c) / 3,
        }
        self.updates.publish("b", sym, bar)
        self.trade_id += 1
        self.updates.publish("t", sym, {"t": pd.Timestamp(int(sb.end[i]), tz="UTC"), "p": c})

    def execute(self, o: Order, price: float, bar_index: int) -> None:
        """Fill what the order still wants (sells capped at the position), maybe only part of it."""
        if o.notional is not None and o.qty is None:
            held = self.portfolio.positions.get(o.symbol)
            q = round(o.notional / price, 9)
            if not o.is_buy:
                q = min(q, held.qty if held else 0.0)
            o.qty = q
        qty = o.remaining
        if not o.is_buy:
            pos = self.portfolio.positions.get(o.symbol)
            qty = min(qty, pos.qty if pos else 0.0)
            if qty <= 0:
                self.legs.finish(o, "canceled")
                return
        if (
            self.partial_fill_prob > 0
            and o.time_in_force != "fok"
            and o.notional is None
            and self._fill_rng.random() < self.partial_fill_prob
        ):
            part = qty * self._fill_rng.uniform(0.1, 0.9)
            part = float(int(part)) if float(o.qty or 0).is_integer() else round(part, 9)
            if 0 < part < qty:
                qty = part
        pos_qty = self.portfolio.apply_fill(o.symbol, o.is_buy, qty, price)
        prev = o.filled_qty
        o.filled_qty = round(prev + qty, 9)
        o.filled_avg_price = ((o.filled_avg_price or 0.0) * prev + price * qty) / o.filled_qty
        full = o.remaining <= 1e-9
        t = self.timeline.t
        self.book.set_status(o, "filled" if full else "partially_filled", t)
        if full:
            o.filled_at = t
        execution_id = self.book.new_id()
        self.activities.record(o, qty, price, t, execution_id)
        self.updates.emit(
            "fill" if full else "partial_fill",
            o,
            execution_id,
            price=dec(price, 6),
            qty=dec(qty),
            position_qty=dec(pos_qty),
        )
        if full:
            bar_start = pd.Timestamp(int(self.market.bars[o.symbol].start[bar_index]), tz="UTC")
            self.legs.after_fill(o, bar_start)
