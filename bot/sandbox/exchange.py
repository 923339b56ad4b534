"""The simulated venue: orders, fills and the account, driven by the replayed bars on a sim clock.

Time moves through four kinds of events, processed in order up to simulated now before every
request and by the server's ticker: session open, bar open (market orders fill at the open with
bot.core.fills.market_fill), bar close (stops, limits and trailing stops meet the bar's OHLC through
bot.core.fills) and session close (day orders expire). An order trades only on bars that start strictly
after it was submitted (or after its parent filled), so nothing fills on a price seen before it.

`Exchange` is the façade the HTTP app talks to; the work is done by its parts, rebuilt on every reset:
timeline.Timeline (event order), book.OrderBook (the orders), funds.Funds (prices, buying power),
legs.Legs (order groups), matching.Matcher (fills on a bar), sessions.Sessions (open/close),
entry.OrderEntry (new and replacement orders) and updates.Updates (outgoing stream messages).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bot.sandbox.accounts import Portfolio
from bot.sandbox.activities import Activities
from bot.sandbox.book import OrderBook
from bot.sandbox.clock import SimClock, rfc3339
from bot.sandbox.entry import OrderEntry
from bot.sandbox.funds import Funds
from bot.sandbox.legs import Legs
from bot.sandbox.market import MarketData
from bot.sandbox.matching import Matcher
from bot.sandbox.orders import ApiError, Order
from bot.sandbox.sessions import Sessions
from bot.sandbox.timeline import BAR_CLOSE, BAR_OPEN, SESSION_OPEN, Timeline
from bot.sandbox.updates import BarListener, TradeListener, Updates
from bot.sandbox.validate import check_list_params, close_qty


@dataclass
class ExchangeConfig:
    starting_cash: float = 100_000.0
    slippage_bps: float = 0.0
    multiplier: float = 2.0
    market_collar: float = 0.03  # market buys reserve buying power at last price x (1 + collar)
    seed: int = 7
    partial_fill_prob: float = 0.0
    reject_next: int = 0
    reject_mode: str = "event"  # "event": 200 then a `rejected` update; "http": 403, nothing created


class Exchange:
    def __init__(self, market: MarketData, clock: SimClock, config: ExchangeConfig | None = None) -> None:
        self.market = market
        self.clock = clock
        self.config = config or ExchangeConfig()
        self.trade_listeners: list[TradeListener] = []
        self.bar_listeners: list[BarListener] = []
        self.reset(clock.now())

    # ------------------------------------------------------------ state

    def reset(self, start: pd.Timestamp) -> None:
        cfg = self.config
        self.clock.set(start)
        self.portfolio = Portfolio(cfg.starting_cash, cfg.multiplier)
        self.book = OrderBook(cfg.seed)
        self.activities = Activities()
        self.timeline = Timeline(self.market, start)
        self.created_at = start
        self.updates = Updates(self.trade_listeners, self.bar_listeners, self.book.new_id, self.timeline)
        self.funds = Funds(self.market, self.portfolio, self.book, self.timeline, cfg.market_collar)
        self.legs = Legs(self.market, self.book, self.funds, self.updates, self.timeline)
        self.matcher = Matcher(
            self.market,
            self.book,
            self.portfolio,
            self.legs,
            self.updates,
            self.timeline,
            cfg.slippage_bps,
            cfg.partial_fill_prob,
            cfg.seed + 1,
            self.activities,
        )
        self.sessions = Sessions(
            self.portfolio, self.book, self.funds, self.legs, self.updates, self.timeline
        )
        self.entry = OrderEntry(
            self.market,
            self.book,
            self.funds,
            self.legs,
            self.updates,
            self.timeline,
            cfg.reject_next,
            cfg.reject_mode,
        )
        for sym in self.market.bars:
            lp = self.market.last_price(sym, start)
            if lp is not None:
                self.portfolio.lastday_price[sym] = lp[0]

    @property
    def t(self) -> pd.Timestamp:
        """Time of the event being processed; simulated now between requests."""
        return self.timeline.t

    @property
    def orders(self) -> dict[str, Order]:
        return self.book.orders

    @property
    def by_client_id(self) -> dict[str, str]:
        return self.book.by_client_id

    @property
    def submissions(self) -> Counter[str]:
        return self.entry.submissions

    # fault knobs, set by the app's /admin/faults; each lives in the part it steers

    @property
    def reject_next(self) -> int:
        return self.entry.reject_next

    @reject_next.setter
    def reject_next(self, value: int) -> None:
        self.entry.reject_next = value

    @property
    def reject_mode(self) -> str:
        return self.entry.reject_mode

    @reject_mode.setter
    def reject_mode(self, value: str) -> None:
        self.entry.reject_mode = value

    @property
    def partial_fill_prob(self) -> float:
        return self.matcher.partial_fill_prob

    @partial_fill_prob.setter
    def partial_fill_prob(self, value: float) -> None:
        self.matcher.partial_fill_prob = value

    def now(self) -> pd.Timestamp:
        return self.clock.now()

    # ------------------------------------------------------------ time

    def next_event_time(self) -> pd.Timestamp | None:
        return self.timeline.next_event_time()

    def sync(self, until: pd.Timestamp | None = None) -> pd.Timestamp:
        """Process every event up to `until` (default: simulated now); returns that time."""
        until = until if until is not None else self.clock.now()
        for kind, sym, i in self.timeline.due(until):
            if kind == BAR_OPEN:
                self.matcher.on_bar_open(sym, i)
            elif kind == BAR_CLOSE:
                self.matcher.on_bar_close(sym, i)
            elif kind == SESSION_OPEN:
                self.sessions.on_open()
            else:
                self.sessions.on_close()
        self.timeline.t = until
        return until

    def advance(self, to: pd.Timestamp) -> pd.Timestamp:
        now = self.clock.now()
        if to < now:
            raise ApiError(422, 42210000, "can not move the clock backwards (use /admin/reset)")
        self.sync(to)
        self.clock.set(to)
        return to

    # ------------------------------------------------------------ prices, money

    def prices(self, at: pd.Timestamp | None = None) -> dict[str, float]:
        return self.funds.prices(at)

    def reserved(self, exclude: Order | None = None) -> float:
        return self.funds.reserved(exclude)

    def held_for_orders(self, symbol: str, exclude: Order | None = None) -> float:
        """Shares promised to open sells; an exit group (OCO/bracket legs) holds its quantity once."""
        return self.funds.held_for_orders(symbol, exclude)

    def account_json(self) -> dict:
        return self.funds.account_json(self.created_at)

    # ------------------------------------------------------------ API: orders

    def submit(self, body: Any, *, origin: str = "api") -> Order:
        self.sync()
        return self.entry.submit(body)

    def get(self, order_id: str) -> Order:
        self.sync()
        return self.book.get(order_id)

    def get_by_client_id(self, cid: str) -> Order:
        self.sync()
        return self.book.get_by_client_id(cid)

    def order_json(self, o: Order, nested: bool = False) -> dict:
        return o.to_json(self.book.listed_legs(o) if nested and (o.leg_ids or o.past_leg_ids) else None)

    def list_orders(
        self,
        status: str = "open",
        limit: int = 50,
        after: pd.Timestamp | None = None,
        until: pd.Timestamp | None = None,
        direction: str = "desc",
        nested: bool = False,
        side: str | None = None,
        symbols: list[str] | None = None,
    ) -> list[dict]:
        self.sync()
        check_list_params(status, direction, limit)
        rows = self.book.select(status, after, until, nested, side, symbols)
        rows.sort(key=lambda o: (o.created_at, o.seq), reverse=direction == "desc")
        return [self.order_json(o, nested) for o in rows[:limit]]

    def cancel(self, order_id: str) -> None:
        o = self.get(order_id)
        if not o.is_open:
            raise ApiError(422, 42210000, f'order is already in "{o.status}" state')
        self.legs.finish(o, "canceled")

    def cancel_all(self) -> list[dict]:
        self.sync()
        out = []
        for o in list(self.book.open_orders()):
            if not o.is_open:
                continue  # canceled with its group
            self.legs.finish(o, "canceled")
            out.append({"id": o.id, "status": 200, "body": {"id": o.id, "status": o.status}})
        return out

    def replace(self, order_id: str, body: Any) -> Order:
        return self.entry.replace(self.get(order_id), body)

    # ------------------------------------------------------------ API: account activities

    def activities_json(self, query: dict[str, str], activity_type: str | None = None) -> list[dict]:
        self.sync()
        return self.activities.query(query, activity_type)

    # ------------------------------------------------------------ API: positions

    def positions_json(self) -> list[dict]:
        self.sync()
        return [self.position_json(s) for s in sorted(self.portfolio.positions)]

    def position_json(self, symbol: str) -> dict:
        self.sync()
        if symbol not in self.portfolio.positions:
            raise ApiError(404, 40410000, "position does not exist")
        price = self.funds.last(symbol) or self.portfolio.positions[symbol].avg_entry_price
        return self.portfolio.position_json(symbol, price, self.held_for_orders(symbol))

    def close_position(self, symbol: str, qty: str | None = None, percentage: str | None = None) -> Order:
        self.sync()
        pos = self.portfolio.positions.get(symbol)
        if pos is None:
            raise ApiError(404, 40410000, "position does not exist")
        q = close_qty(pos.qty, qty, percentage)
        return self.submit(
            {"symbol": symbol, "qty": q, "side": "sell", "type": "market", "time_in_force": "day"},
            origin="close",
        )

    def close_all(self, cancel_orders: bool = False) -> list[dict]:
        self.sync()
        if cancel_orders:
            self.cancel_all()
        out = []
        for sym in sorted(self.portfolio.positions):
            try:
                o = self.close_position(sym)
                out.append({"symbol": sym, "status": 200, "body": self.order_json(o)})
            except ApiError as e:
                out.append({"symbol": sym, "status": e.status, "body": e.body()})
        return out

    # ------------------------------------------------------------ admin

    def state(self) -> dict:
        self.sync()
        counts = Counter(o.client_order_id for o in self.orders.values())
        return {
            "now": rfc3339(self.t),
            "is_open": self.market.calendar.is_open(self.t),
            "cash": self.portfolio.cash,
            "equity": self.portfolio.equity(self.prices()),
            "positions": {
                s: {"qty": p.qty, "avg_entry_price": p.avg_entry_price}
                for s, p in self.portfolio.positions.items()
            },
            "orders": [self.order_json(o) for o in self.orders.values()],
            "orders_per_client_order_id": dict(counts),
            "submissions_per_client_order_id": dict(self.submissions),
            "reject_next": self.reject_next,
            "partial_fill_prob": self.partial_fill_prob,
        }
