"""The simulated venue: orders, fills and the account, driven by the replayed bars on a sim clock.

Time moves through four kinds of events, processed in order up to simulated now before every
request and by the server's ticker: session open, bar open (market orders fill at the open with
bot.core.fills.market_fill), bar close (stops, limits and trailing stops meet the bar's OHLC through
bot.core.fills) and session close (day orders expire). An order trades only on bars that start strictly
after it was submitted (or after its parent filled), so nothing fills on a price seen before it.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bot.core.fills import limit_fill, market_fill, stop_fill
from bot.sandbox.accounts import INDICES, Portfolio, dec
from bot.sandbox.clock import SimClock, rfc3339
from bot.sandbox.market import TF_MINUTES, MarketData
from bot.sandbox.orders import ApiError, LegSpec, Order, OrderSpec, check_increment, number, parse_order

BAR_CLOSE, SESSION_CLOSE, SESSION_OPEN, BAR_OPEN = 0, 1, 2, 3


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


TradeListener = Callable[[dict], None]
BarListener = Callable[[str, str, dict], None]  # (kind "b"|"t"|"q"|"d", symbol, payload)


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
        self.orders: dict[str, Order] = {}
        self._open: dict[str, Order] = {}  # open orders by id, so bar events do not scan history
        self.by_client_id: dict[str, str] = {}
        self.submissions: Counter[str] = Counter()
        self._ids = random.Random(cfg.seed)
        self._fill_rng = random.Random(cfg.seed + 1)
        self._seq = 0
        self._trade_id = 0
        self.reject_next = cfg.reject_next
        self.partial_fill_prob = cfg.partial_fill_prob
        self.reject_mode = cfg.reject_mode
        self.created_at = start
        self.t = start
        now = start.value
        self._open_ptr = {s: int(np.searchsorted(b.start, now, "right")) for s, b in self.market.bars.items()}
        self._close_ptr = {s: int(np.searchsorted(b.end, now, "right")) for s, b in self.market.bars.items()}
        cal = self.market.calendar
        self._sess_open = int(np.searchsorted(cal.opens.asi8, now, "right"))
        self._sess_close = int(np.searchsorted(cal.closes.asi8, now, "right"))
        for sym in self.market.bars:
            lp = self.market.last_price(sym, start)
            if lp is not None:
                self.portfolio.lastday_price[sym] = lp[0]

    def now(self) -> pd.Timestamp:
        return self.clock.now()

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    # ------------------------------------------------------------ time

    def _peek(self) -> tuple[int, int, str] | None:
        best: tuple[int, int, str] | None = None
        for sym, sb in self.market.bars.items():
            i = self._open_ptr[sym]
            if i < len(sb):
                cand = (int(sb.start[i]), BAR_OPEN, sym)
                best = cand if best is None or cand < best else best
            j = self._close_ptr[sym]
            if j < len(sb):
                cand = (int(sb.end[j]), BAR_CLOSE, sym)
                best = cand if best is None or cand < best else best
        cal = self.market.calendar
        if self._sess_open < len(cal):
            cand = (int(cal.opens.asi8[self._sess_open]), SESSION_OPEN, "")
            best = cand if best is None or cand < best else best
        if self._sess_close < len(cal):
            cand = (int(cal.closes.asi8[self._sess_close]), SESSION_CLOSE, "")
            best = cand if best is None or cand < best else best
        return best

    def next_event_time(self) -> pd.Timestamp | None:
        ev = self._peek()
        return pd.Timestamp(ev[0], tz="UTC") if ev else None

    def sync(self, until: pd.Timestamp | None = None) -> pd.Timestamp:
        """Process every event up to `until` (default: simulated now); returns that time."""
        until = until if until is not None else self.clock.now()
        end = until.value
        while (ev := self._peek()) is not None and ev[0] <= end:
            t_ns, kind, sym = ev
            self.t = pd.Timestamp(t_ns, tz="UTC")
            if kind == BAR_OPEN:
                i = self._open_ptr[sym]
                self._open_ptr[sym] += 1
                self._on_bar_open(sym, i)
            elif kind == BAR_CLOSE:
                i = self._close_ptr[sym]
                self._close_ptr[sym] += 1
                self._on_bar_close(sym, i)
            elif kind == SESSION_OPEN:
                self._sess_open += 1
                self._on_session_open()
            else:
                self._sess_close += 1
                self._on_session_close()
        self.t = until
        return until

    def advance(self, to: pd.Timestamp) -> pd.Timestamp:
        now = self.clock.now()
        if to < now:
            raise ApiError(422, 42210000, "can not move the clock backwards (use /admin/reset)")
        self.sync(to)
        self.clock.set(to)
        return to

    # ------------------------------------------------------------ events

    def _emit(self, event: str, order: Order, **fill: Any) -> None:
        data = {"event": event, "execution_id": self._new_id(), "order": self.order_json(order),
                "timestamp": rfc3339(self.t), **fill}
        if event not in ("fill", "partial_fill"):
            data.pop("execution_id")
        msg = {"stream": "trade_updates", "data": data}
        for listener in list(self.trade_listeners):
            listener(msg)

    def _publish(self, kind: str, symbol: str, payload: dict) -> None:
        for listener in list(self.bar_listeners):
            listener(kind, symbol, payload)

    def _on_session_open(self) -> None:
        prices = self.prices(self.t - pd.Timedelta(1, "ns"))  # yesterday's closes, not today's opens
        self.portfolio.last_equity = self.portfolio.equity(prices)
        self.portfolio.lastday_price.update(prices)
        for o in self._open_orders():
            if o.status == "accepted":
                self._set(o, "new")
                self._emit("new", o)

    def _on_session_close(self) -> None:
        for o in self._open_orders():
            if o.time_in_force == "day" and o.expires_at is not None and o.expires_at <= self.t:
                if o.status == "held":
                    continue  # expires with its parent
                self._finish(o, "expired")

    def _on_bar_open(self, sym: str, i: int) -> None:
        sb = self.market.bars[sym]
        start = pd.Timestamp(int(sb.start[i]), tz="UTC")
        o_px = float(sb.open[i])
        self._trade_id += 1
        self._publish("t", sym, {"t": start, "p": o_px})
        for o in self._open_orders(sym):
            if o.type != "market" or o.status not in ("new", "partially_filled"):
                continue
            if o.eligible_after is not None and start <= o.eligible_after:
                continue
            self._execute(o, market_fill(o_px, o.is_buy, self.config.slippage_bps), i)

    def _on_bar_close(self, sym: str, i: int) -> None:
        sb = self.market.bars[sym]
        start = pd.Timestamp(int(sb.start[i]), tz="UTC")
        o_, h, lo, c = float(sb.open[i]), float(sb.high[i]), float(sb.low[i]), float(sb.close[i])
        candidates = [
            o for o in self._open_orders(sym)
            if o.type != "market" and o.status in ("new", "partially_filled")
            and (o.eligible_after is None or start > o.eligible_after)
        ]
        # within an exit group the stop goes first: a bar touching both is read as hitting the stop
        candidates.sort(key=lambda o: (self._group_root(o).seq, o.type == "limit", o.seq))
        for o in candidates:
            if not o.is_open:
                continue  # a sibling filled on this bar
            px = self._price_on_bar(o, o_, h, lo)
            if px is not None:
                self._execute(o, px, i)
            if o.time_in_force in ("ioc", "fok") and o.is_open:
                self._finish(o, "canceled")
        for o in self._open_orders(sym):
            if o.type == "trailing_stop" and o.status in ("new", "partially_filled") and (
                o.eligible_after is None or start > o.eligible_after
            ):
                o.hwm = max(o.hwm or h, h) if not o.is_buy else min(o.hwm or lo, lo)
        self._publish("b", sym, {"t": pd.Timestamp(int(sb.label[i]), tz="UTC"), "o": o_, "h": h, "l": lo,
                                 "c": c, "v": float(sb.volume[i]), "n": 1, "vw": (h + lo + c) / 3})
        self._trade_id += 1
        self._publish("t", sym, {"t": pd.Timestamp(int(sb.end[i]), tz="UTC"), "p": c})

    def _price_on_bar(self, o: Order, open_: float, high: float, low: float) -> float | None:
        slip = self.config.slippage_bps
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

    # ------------------------------------------------------------ fills and groups

    def _execute(self, o: Order, price: float, bar_index: int) -> None:
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
                self._finish(o, "canceled")
                return
        if (self.partial_fill_prob > 0 and o.time_in_force != "fok" and o.notional is None
                and self._fill_rng.random() < self.partial_fill_prob):
            part = qty * self._fill_rng.uniform(0.1, 0.9)
            part = float(int(part)) if float(o.qty or 0).is_integer() else round(part, 9)
            if 0 < part < qty:
                qty = part
        pos_qty = self.portfolio.apply_fill(o.symbol, o.is_buy, qty, price)
        prev = o.filled_qty
        o.filled_qty = round(prev + qty, 9)
        o.filled_avg_price = ((o.filled_avg_price or 0.0) * prev + price * qty) / o.filled_qty
        full = o.remaining <= 1e-9
        self._set(o, "filled" if full else "partially_filled")
        if full:
            o.filled_at = self.t
        self._emit("fill" if full else "partial_fill", o, price=dec(price, 6), qty=dec(qty),
                   position_qty=dec(pos_qty))
        if full:
            self._after_fill(o, bar_index)

    def _after_fill(self, o: Order, bar_index: int) -> None:
        bar_start = pd.Timestamp(int(self.market.bars[o.symbol].start[bar_index]), tz="UTC")
        if o.order_class in ("bracket", "oto") and o.parent_id is None:
            self._activate_legs(o, bar_start)
        else:
            for sib in self._exit_group(o):
                if sib is not o and sib.is_open:
                    self._finish(sib, "canceled")

    def _activate_legs(self, parent: Order, after: pd.Timestamp) -> None:
        for leg in self._legs(parent):
            if leg.status != "held":
                continue
            leg.qty = parent.filled_qty
            leg.eligible_after = after
            leg.expires_at = self._expiry(leg.time_in_force, after)
            if leg.type == "trailing_stop" and leg.hwm is None:
                leg.hwm = self._last(leg.symbol)
            self._set(leg, "new")
            self._emit("new", leg)

    def _exit_group(self, o: Order) -> list[Order]:
        """The orders that cancel each other: bracket/OTO legs, or an OCO's parent and leg."""
        root = self._group_root(o)
        if root.order_class == "oco":
            return [root, *self._legs(root)]
        if root.order_class in ("bracket", "oto") and o is not root:
            return self._legs(root)
        return [o]

    def _group_root(self, o: Order) -> Order:
        return self.orders[o.parent_id] if o.parent_id else o

    def _legs(self, o: Order) -> list[Order]:
        return [self.orders[i] for i in o.leg_ids]

    def _set(self, o: Order, status: str) -> None:
        o.status = status
        o.updated_at = self.t
        if o.is_open:
            self._open.setdefault(o.id, o)
        else:
            self._open.pop(o.id, None)

    def _finish(self, o: Order, status: str) -> None:
        """Cancel or expire an order and whatever depends on it."""
        self._set(o, status)
        if status == "canceled":
            o.canceled_at = self.t
        elif status == "expired":
            o.expired_at = self.t
        self._emit(status, o)
        root = self._group_root(o)
        if o is root and o.order_class in ("bracket", "oto"):
            if o.filled_qty > 0:
                self._activate_legs(o, self.t)
            else:
                for leg in self._legs(o):
                    if leg.is_open:
                        self._finish(leg, "canceled")
        else:
            for sib in self._exit_group(o):
                if sib is not o and sib.is_open and status == "canceled":
                    self._finish(sib, "canceled")

    def _open_orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self._open.values() if symbol is None or o.symbol == symbol]

    # ------------------------------------------------------------ prices, money

    def _last(self, symbol: str, at: pd.Timestamp | None = None) -> float | None:
        lp = self.market.last_price(symbol, at if at is not None else self.t)
        return lp[0] if lp else None

    def prices(self, at: pd.Timestamp | None = None) -> dict[str, float]:
        out = {}
        for sym in self.portfolio.positions.keys() | set(self.market.bars):
            p = self._last(sym, at)
            if p is not None:
                out[sym] = p
        return out

    def _reserve(self, o: Order) -> float:
        """Buying power an open buy order holds (Alpaca reserves it until fill or cancel)."""
        if not o.is_buy or o.status == "held":
            return 0.0
        if o.notional is not None and o.qty is None:
            return o.notional
        ref = {"limit": o.limit_price, "stop_limit": o.limit_price, "stop": o.stop_price}.get(o.type)
        if ref is None:
            last = self._last(o.symbol) or 0.0
            ref = last * (1 + self.config.market_collar)
        return o.remaining * ref

    def reserved(self, exclude: Order | None = None) -> float:
        return sum(self._reserve(o) for o in self._open_orders() if o is not exclude)

    def held_for_orders(self, symbol: str, exclude: Order | None = None) -> float:
        """Shares promised to open sells; an exit group (OCO/bracket legs) holds its quantity once."""
        seen: set[str] = set()
        held = 0.0
        for o in self._open_orders(symbol):
            if o.is_buy or o.status == "held" or o is exclude:
                continue
            root = self._group_root(o)
            key = root.id if root.order_class in ("oco", "bracket", "oto") else o.id
            if key in seen:
                continue
            seen.add(key)
            held += o.remaining if o.qty is not None else 0.0
        return held

    def account_json(self) -> dict:
        return self.portfolio.account_json(self.prices(), self.reserved(), rfc3339(self.created_at),
                                           self.t.tz_convert("America/New_York").strftime("%Y-%m-%d"))

    # ------------------------------------------------------------ expiry helpers

    def _expiry(self, tif: str, after: pd.Timestamp) -> pd.Timestamp | None:
        """Day orders live through the session of the first bar they can trade on."""
        if tif != "day":
            return after + pd.Timedelta(days=90) if tif == "gtc" else None
        cal = self.market.calendar
        sess = cal.current_or_next(after)
        if sess is None:
            return None
        minutes = TF_MINUTES[self.market.timeframe]
        if after < sess.open:
            return sess.close
        if minutes is not None:
            step = pd.Timedelta(minutes=minutes)
            k = (after - sess.open) // step + 1
            if sess.open + k * step < sess.close:
                return sess.close
        nxt = cal.current_or_next(sess.close)
        return nxt.close if nxt is not None else sess.close

    # ------------------------------------------------------------ API: orders

    def submit(self, body: Any, *, origin: str = "api") -> Order:
        self.sync()
        now = self.t
        if isinstance(body, dict) and body.get("client_order_id"):
            self.submissions[str(body["client_order_id"])] += 1
        spec = parse_order(body)
        if spec.symbol not in self.market.bars:
            raise ApiError(422, 42210000, f'asset "{spec.symbol}" not found')
        if spec.symbol in INDICES:
            raise ApiError(422, 42210000, f'asset "{spec.symbol}" is not tradable')
        if spec.client_order_id is not None and spec.client_order_id in self.by_client_id:
            raise ApiError(422, 40010001, "client_order_id must be unique")
        if self.reject_next > 0 and self.reject_mode == "http":
            self.reject_next -= 1
            raise ApiError(403, 40310000, "order rejected (sandbox fault: reject_next)")
        last = self._last(spec.symbol)
        if spec.order_class == "bracket":
            self._check_bracket_base(spec, last)
        order = self._build(spec, now)
        legs = self._build_legs(spec, order, now)
        self._check_funds(order, legs, spec)
        self._register(order)
        for leg in legs:
            self._register(leg)
        if self.reject_next > 0:
            self.reject_next -= 1
            order.failed_at = now
            self._set(order, "rejected")
            for leg in legs:
                self._set(leg, "rejected")
            self._emit("rejected", order)
            return order
        self._emit(order.status, order)
        for leg in legs:
            if leg.status == "new":
                self._emit("new", leg)
        return order

    def _check_bracket_base(self, spec: OrderSpec, last: float | None) -> None:
        base = spec.limit_price if spec.type == "limit" else last
        if base is None or spec.take_profit is None or spec.stop_loss is None:
            return
        if spec.side == "buy":
            if spec.take_profit.limit_price < base + 0.01:
                raise ApiError(422, 42210000, "take_profit.limit_price must be >= base_price + 0.01",
                               base_price=dec(base, 4))
            if spec.stop_loss.stop_price > base - 0.01:
                raise ApiError(422, 42210000, "stop_loss.stop_price must be <= base_price - 0.01",
                               base_price=dec(base, 4))
        else:
            if spec.take_profit.limit_price > base - 0.01:
                raise ApiError(422, 42210000, "take_profit.limit_price must be <= base_price - 0.01",
                               base_price=dec(base, 4))
            if spec.stop_loss.stop_price < base + 0.01:
                raise ApiError(422, 42210000, "stop_loss.stop_price must be >= base_price + 0.01",
                               base_price=dec(base, 4))

    def _build(self, spec: OrderSpec, now: pd.Timestamp) -> Order:
        self._seq += 1
        in_session = self.market.calendar.is_open(now)
        status = "new" if in_session or spec.extended_hours else "accepted"
        o = Order(
            id=self._new_id(), client_order_id=spec.client_order_id or self._new_id(), symbol=spec.symbol,
            side=spec.side, type=spec.type, time_in_force=spec.time_in_force, created_at=now, qty=spec.qty,
            notional=spec.notional, limit_price=spec.limit_price, stop_price=spec.stop_price,
            trail_price=spec.trail_price, trail_percent=spec.trail_percent,
            extended_hours=spec.extended_hours,
            order_class=spec.order_class, status=status, updated_at=now, eligible_after=now, seq=self._seq,
        )
        o.expires_at = self._expiry(o.time_in_force, now)
        if o.type == "trailing_stop":
            o.hwm = self._last(o.symbol)
        return o

    def _build_legs(self, spec: OrderSpec, parent: Order, now: pd.Timestamp) -> list[Order]:
        if spec.order_class in ("", None):
            return []
        exit_side = "sell" if spec.side == "buy" else "buy"
        specs: list[LegSpec] = []
        if spec.order_class == "oco":
            exit_side = spec.side
            specs = [spec.stop_loss] if spec.stop_loss else []
        else:
            specs = [s for s in (spec.take_profit, spec.stop_loss) if s is not None]
        legs = []
        for ls in specs:
            self._seq += 1
            status = parent.status if spec.order_class == "oco" else "held"
            leg = Order(
                id=self._new_id(), client_order_id=self._new_id(), symbol=spec.symbol, side=exit_side,
                type=ls.type, time_in_force=spec.time_in_force, created_at=now, qty=spec.qty,
                limit_price=ls.limit_price, stop_price=ls.stop_price, order_class=spec.order_class,
                status=status, updated_at=now, eligible_after=now, parent_id=parent.id, seq=self._seq,
            )
            leg.expires_at = parent.expires_at
            parent.leg_ids.append(leg.id)
            legs.append(leg)
        return legs

    def _check_funds(self, order: Order, legs: list[Order], spec: OrderSpec) -> None:
        if order.is_buy:
            cost = self._reserve(order)
            bp = self.portfolio.buying_power(self.prices(), self.reserved())
            if cost > bp + 1e-6:
                raise ApiError(403, 40310000, "insufficient buying power", buying_power=dec(bp, 2),
                               cost_basis=dec(cost, 2))
        elif order.qty is not None:
            pos = self.portfolio.positions.get(order.symbol)
            existing = pos.qty if pos else 0.0
            held = self.held_for_orders(order.symbol)
            available = max(0.0, existing - held)
            if order.qty > available + 1e-9:
                raise ApiError(
                    403, 40310000,
                    f"insufficient qty available for order (requested: {dec(order.qty)}, "
                    f"available: {dec(available)})",
                    available=dec(available), existing_qty=dec(existing), held_for_orders=dec(held),
                    symbol=order.symbol,
                )
        elif order.notional is not None and order.symbol not in self.portfolio.positions:
            raise ApiError(403, 40310000, "insufficient qty available for order (requested: notional, "
                                          "available: 0)", available="0", existing_qty="0",
                           held_for_orders="0", symbol=order.symbol)

    def _register(self, o: Order) -> None:
        self.orders[o.id] = o
        if o.is_open:
            self._open[o.id] = o
        self.by_client_id[o.client_order_id] = o.id

    def get(self, order_id: str) -> Order:
        self.sync()
        o = self.orders.get(order_id)
        if o is None:
            raise ApiError(404, 40410000, "order not found")
        return o

    def get_by_client_id(self, cid: str) -> Order:
        self.sync()
        oid = self.by_client_id.get(cid)
        if oid is None:
            raise ApiError(404, 40410000, "order not found")
        return self.orders[oid]

    def order_json(self, o: Order, nested: bool = False) -> dict:
        return o.to_json(self._legs(o) if nested and o.leg_ids else None)

    def list_orders(self, status: str = "open", limit: int = 50, after: pd.Timestamp | None = None,
                    until: pd.Timestamp | None = None, direction: str = "desc", nested: bool = False,
                    side: str | None = None, symbols: list[str] | None = None) -> list[dict]:
        self.sync()
        if status not in ("open", "closed", "all"):
            raise ApiError(422, 42210000, f"invalid status: {status}")
        if direction not in ("asc", "desc"):
            raise ApiError(422, 42210000, f"invalid direction: {direction}")
        if not 1 <= limit <= 500:
            raise ApiError(422, 42210000, "limit must be between 1 and 500")
        rows = []
        for o in self.orders.values():
            if nested and o.parent_id:
                continue
            if (status == "open" and not o.is_open) or (status == "closed" and o.is_open):
                continue
            if after is not None and not o.created_at > after:
                continue
            if until is not None and not o.created_at < until:
                continue
            if side and o.side != side:
                continue
            if symbols and o.symbol not in symbols:
                continue
            rows.append(o)
        rows.sort(key=lambda o: (o.created_at, o.seq), reverse=direction == "desc")
        return [self.order_json(o, nested) for o in rows[:limit]]

    def cancel(self, order_id: str) -> None:
        o = self.get(order_id)
        if not o.is_open:
            raise ApiError(422, 42210000, f'order is already in "{o.status}" state')
        self._finish(o, "canceled")

    def cancel_all(self) -> list[dict]:
        self.sync()
        out = []
        for o in list(self._open_orders()):
            if not o.is_open:
                continue  # canceled with its group
            self._finish(o, "canceled")
            out.append({"id": o.id, "status": 200, "body": {"id": o.id, "status": o.status}})
        return out

    def replace(self, order_id: str, body: Any) -> Order:
        old = self.get(order_id)
        if not isinstance(body, dict):
            raise ApiError(400, 40010000, "request body format is invalid")
        if old.status not in ("new", "partially_filled"):
            raise ApiError(422, 42210000, f'unable to replace order in "{old.status}" state')
        if old.notional is not None:
            raise ApiError(422, 42210000, "notional orders can not be replaced")
        qty = number(body, "qty")
        limit_price, stop_price = number(body, "limit_price"), number(body, "stop_price")
        trail = number(body, "trail")
        tif = body.get("time_in_force") or old.time_in_force
        if tif not in ("day", "gtc", "ioc", "fok"):
            raise ApiError(422, 42210000, f"invalid time_in_force: {tif!r}")
        if limit_price is not None and old.type not in ("limit", "stop_limit"):
            raise ApiError(422, 42210000, "limit_price is only for limit and stop_limit orders")
        if stop_price is not None and old.type not in ("stop", "stop_limit"):
            raise ApiError(422, 42210000, "stop_price is only for stop and stop_limit orders")
        if trail is not None and old.type != "trailing_stop":
            raise ApiError(422, 42210000, "trail is only for trailing_stop orders")
        check_increment("limit_price", limit_price)
        check_increment("stop_price", stop_price)
        cid = body.get("client_order_id")
        if cid is not None:
            cid = str(cid)
            self.submissions[cid] += 1
            if cid in self.by_client_id:
                raise ApiError(422, 40010001, "client_order_id must be unique")
        now = self.t
        self._seq += 1
        new = Order(
            id=self._new_id(), client_order_id=cid or self._new_id(), symbol=old.symbol, side=old.side,
            type=old.type, time_in_force=tif, created_at=now,
            qty=qty if qty is not None else old.remaining,
            limit_price=limit_price if limit_price is not None else old.limit_price,
            stop_price=stop_price if stop_price is not None else old.stop_price,
            trail_price=old.trail_price if trail is None or old.trail_price is None else trail,
            trail_percent=old.trail_percent if trail is None or old.trail_percent is None else trail,
            hwm=old.hwm, extended_hours=old.extended_hours, order_class=old.order_class,
            status="new", updated_at=now, eligible_after=now, replaces=old.id, parent_id=old.parent_id,
            triggered=old.triggered, seq=self._seq,
        )
        new.expires_at = self._expiry(tif, now)
        if new.is_buy:
            cost = self._reserve(new)
            bp = self.portfolio.buying_power(self.prices(), self.reserved(exclude=old))
            if cost > bp + 1e-6:
                raise ApiError(403, 40310000, "insufficient buying power", buying_power=dec(bp, 2),
                               cost_basis=dec(cost, 2))
        else:
            pos = self.portfolio.positions.get(old.symbol)
            available = (pos.qty if pos else 0.0) - self.held_for_orders(old.symbol, exclude=old)
            if self._group_root(old).order_class in ("oco", "bracket", "oto"):
                available = (pos.qty if pos else 0.0)
            if new.qty > available + 1e-9:
                raise ApiError(403, 40310000, f"insufficient qty available for order (requested: "
                                              f"{dec(new.qty)}, available: {dec(max(0.0, available))})")
        # the new order takes the old one's place in its group
        if old.parent_id:
            parent = self.orders[old.parent_id]
            parent.leg_ids = [new.id if i == old.id else i for i in parent.leg_ids]
        new.leg_ids = list(old.leg_ids)
        for leg_id in new.leg_ids:
            self.orders[leg_id].parent_id = new.id
        old.replaced_by = new.id
        old.replaced_at = now
        self._set(old, "replaced")
        self._register(new)
        self._emit("replaced", old)
        self._emit("new", new)
        return new

    # ------------------------------------------------------------ API: positions

    def positions_json(self) -> list[dict]:
        self.sync()
        return [self.position_json(s) for s in sorted(self.portfolio.positions)]

    def position_json(self, symbol: str) -> dict:
        self.sync()
        if symbol not in self.portfolio.positions:
            raise ApiError(404, 40410000, "position does not exist")
        price = self._last(symbol) or self.portfolio.positions[symbol].avg_entry_price
        return self.portfolio.position_json(symbol, price, self.held_for_orders(symbol))

    def close_position(self, symbol: str, qty: str | None = None, percentage: str | None = None) -> Order:
        self.sync()
        pos = self.portfolio.positions.get(symbol)
        if pos is None:
            raise ApiError(404, 40410000, "position does not exist")
        if qty is not None and percentage is not None:
            raise ApiError(422, 42210000, "only one of qty or percentage may be given")
        if qty is not None:
            q = number({"qty": qty}, "qty")
        elif percentage is not None:
            pct = number({"percentage": percentage}, "percentage")
            if pct > 100:
                raise ApiError(422, 42210000, "percentage must be between 0 and 100")
            q = round(pos.qty * pct / 100.0, 9)
        else:
            q = pos.qty
        return self.submit({"symbol": symbol, "qty": q, "side": "sell", "type": "market",
                            "time_in_force": "day"}, origin="close")

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
            "now": rfc3339(self.t), "is_open": self.market.calendar.is_open(self.t),
            "cash": self.portfolio.cash, "equity": self.portfolio.equity(self.prices()),
            "positions": {s: {"qty": p.qty, "avg_entry_price": p.avg_entry_price}
                          for s, p in self.portfolio.positions.items()},
            "orders": [self.order_json(o) for o in self.orders.values()],
            "orders_per_client_order_id": dict(counts),
            "submissions_per_client_order_id": dict(self.submissions),
            "reject_next": self.reject_next, "partial_fill_prob": self.partial_fill_prob,
        }
