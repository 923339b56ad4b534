"""The in-process paper broker: fills orders against bars with the shared fill model.

Per bar, in this order: market orders fill at the open (sells before buys, so a flip frees cash
first; a fill may lead the engine to submit more, which fill at the same open), then resting stop
and limit orders are checked against the bar's range. A buy larger than the cash left at the fill
price is shrunk to what the cash pays for; a sell larger than the position is rejected.

With `market_at="close"` (daily bars decided shortly before the close, `[service]
daily_decision_offset_minutes` > 0) a market order sent while the engine handles a bar fills at that
bar's close instead (`on_close`): the nearest daily bars come to a 15:50 fill. It reads the last few
minutes of the day early, a small look-ahead that is stated in the README.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from bot.broker.base import BarTuple, FillListener, UpdateListener
from bot.core import fills
from bot.core.events import OrderCanceled, OrderFilled, OrderIntent, OrderRejected, OrderType, Side
from bot.core.splits import split_order, split_qty
from bot.risk.sizing import affordable_qty

if TYPE_CHECKING:
    from bot.core.config import Settings


def _as_is(ts: Any) -> Any:
    return ts


def market_timing(cfg: Settings) -> Literal["open", "close"]:
    """When a market order sent on a bar fills: at the next bar's open, or (daily bars decided before
    the close) at this bar's close."""
    daily_early = cfg.data.timeframe == "1d" and cfg.service.daily_decision_offset_minutes > 0
    return "close" if daily_early else "open"


class SimBroker:
    def __init__(
        self,
        starting_cash: float,
        slippage_bps: float = 0.0,
        commission: float = 0.0,
        fractional: bool = False,
        market_at: Literal["open", "close"] = "open",
    ) -> None:
        self.cash = float(starting_cash)
        self.market_at_close = market_at == "close"
        self.positions: dict[str, float] = {}
        self.slippage_bps = slippage_bps
        self.commission = commission
        self.fractional = fractional
        self.notional: set[str] = set()  # back-adjusted symbols: quantities are not rounded at all
        self._market: list[OrderIntent] = []
        self._resting: dict[str, OrderIntent] = {}
        self._ids: set[str] = set()
        self._on_fill: FillListener = lambda f: None
        self._on_update: UpdateListener = lambda u: None
        # the time a fill or refusal carries, from the bar's time as the driver passed it: a backtest
        # passes int keys and sets the engine's `stamp`, so the engine need not copy each event
        self.stamp: Callable[[Any], pd.Timestamp] = _as_is

    @classmethod
    def from_settings(cls, cfg: Settings) -> SimBroker:
        b = cfg.broker
        return cls(b.starting_cash, b.slippage_bps, b.commission, cfg.risk.fractional, market_timing(cfg))

    def set_listeners(self, on_fill: FillListener, on_update: UpdateListener) -> None:
        self._on_fill = on_fill
        self._on_update = on_update

    # -- orders ------------------------------------------------------------------------------
    def submit(self, intent: OrderIntent) -> None:
        if intent.client_order_id in self._ids:
            self._on_update(
                OrderRejected(
                    intent.client_order_id, intent.ts, intent.symbol, "client_order_id must be unique"
                )
            )
            return
        self._ids.add(intent.client_order_id)
        if intent.qty <= 0:
            self._on_update(
                OrderRejected(intent.client_order_id, intent.ts, intent.symbol, "qty must be > 0")
            )
            return
        if intent.type is OrderType.MARKET:
            self._market.append(intent)
        else:
            self._resting[intent.client_order_id] = intent

    def cancel(self, client_order_id: str) -> None:
        intent = self._resting.pop(client_order_id, None)
        if intent is None:
            for i, m in enumerate(self._market):
                if m.client_order_id == client_order_id:
                    intent = self._market.pop(i)
                    break
        if intent is not None:
            self._on_update(OrderCanceled(client_order_id, intent.ts, intent.symbol))

    def replace_stop(self, client_order_id: str, new: OrderIntent) -> None:
        if self._resting.pop(client_order_id, None) is not None:
            self._ids.add(new.client_order_id)
            self._resting[new.client_order_id] = new

    def open_orders(self) -> list[OrderIntent]:
        return [*self._market, *self._resting.values()]

    def has_orders(self) -> bool:
        return bool(self._market or self._resting)

    # -- corporate actions -------------------------------------------------------------------
    def apply_split(self, symbol: str, ratio: float, price: float | None) -> float:
        """A split of `symbol` before the next bar, as a broker applies it: the position times `ratio`
        (below one share paid out as cash in lieu at `price`, the last close on the new basis), working
        orders the same (an order left with no share is canceled). Returns the cash in lieu."""
        whole = not (self.fractional or symbol in self.notional)
        lieu = 0.0
        held = self.positions.get(symbol)
        if held is not None:
            kept, rest = split_qty(held, ratio, whole)
            lieu = rest * price if price is not None else 0.0
            self.cash += lieu
            if kept > 0:
                self.positions[symbol] = kept
            else:
                del self.positions[symbol]
        gone = []
        for i, m in enumerate(self._market):
            if m.symbol == symbol:
                self._market[i] = split_order(m, ratio, whole)
        for cid, o in list(self._resting.items()):
            if o.symbol == symbol:
                self._resting[cid] = split_order(o, ratio, whole)
        for o in self.open_orders():
            if o.symbol == symbol and o.qty <= 0:
                gone.append(o)
        for o in gone:
            self._resting.pop(o.client_order_id, None)
            self._market = [m for m in self._market if m.client_order_id != o.client_order_id]
            self._on_update(OrderCanceled(o.client_order_id, o.ts, symbol, "split left less than one share"))
        return lieu

    # -- fills -------------------------------------------------------------------------------
    def _fill(self, intent: OrderIntent, ts: pd.Timestamp, price: float) -> None:
        qty = intent.qty
        held = self.positions.get(intent.symbol, 0.0)
        if intent.side is Side.BUY:
            qty = affordable_qty(
                qty, self.cash, price, self.commission, self.fractional, intent.symbol in self.notional
            )
            if qty <= 0:
                self._on_update(
                    OrderRejected(
                        intent.client_order_id, self.stamp(ts), intent.symbol, "insufficient buying power"
                    )
                )
                return
            self.cash -= qty * price + self.commission
            self.positions[intent.symbol] = held + qty
        else:
            if qty > held + 1e-9:
                self._on_update(
                    OrderRejected(
                        intent.client_order_id,
                        self.stamp(ts),
                        intent.symbol,
                        f"insufficient qty (held {held}, asked {qty})",
                    )
                )
                return
            self.cash += qty * price - self.commission
            left = held - qty
            if abs(left) < 1e-9:
                self.positions.pop(intent.symbol, None)
            else:
                self.positions[intent.symbol] = left
        self._on_fill(
            OrderFilled(
                intent.client_order_id,
                self.stamp(ts),
                intent.symbol,
                intent.side,
                qty,
                price,
                self.commission,
            )
        )

    def on_bar(self, ts: pd.Timestamp, bars: Mapping[str, BarTuple]) -> None:
        if self._market:
            self._fill_market(ts, bars)
        if self._resting:
            self._fill_resting(ts, bars)

    def on_close(self, ts: pd.Timestamp, bars: Mapping[str, BarTuple]) -> None:
        """`market_at="close"`: the market orders sent on this bar fill at its close."""
        if self._market:
            self._fill_market(ts, bars, at=3)

    def _fill_market(self, ts: pd.Timestamp, bars: Mapping[str, BarTuple], at: int = 0) -> None:
        for _ in range(8):  # fills may trigger new market orders (a flip's second leg); bounded
            ready = [m for m in self._market if m.symbol in bars]
            if not ready:
                return
            self._market = (
                [m for m in self._market if m.symbol not in bars] if len(ready) < len(self._market) else []
            )
            if len(ready) > 1:
                ready.sort(key=lambda m: m.side is Side.BUY)  # sells first
            for m in ready:
                price = fills.market_fill(bars[m.symbol][at], m.side is Side.BUY, self.slippage_bps)
                self._fill(m, ts, price)

    def _fill_resting(self, ts: pd.Timestamp, bars: Mapping[str, BarTuple]) -> None:
        for cid, o in list(self._resting.items()):
            bar = bars.get(o.symbol)
            if bar is None or cid not in self._resting:
                continue
            op, hi, lo, _ = bar
            is_buy = o.side is Side.BUY
            if o.type is OrderType.STOP:
                price = fills.stop_fill(op, hi, lo, is_buy, o.stop_price, self.slippage_bps)  # type: ignore[arg-type]
            else:
                price = fills.limit_fill(op, hi, lo, is_buy, o.limit_price)  # type: ignore[arg-type]
            if price is not None:
                del self._resting[cid]
                self._fill(o, ts, price)
