"""Hedge mode (`[hedge] holdings`): the engine keeps the inverse fund (SOXS) at a target share of the
holdings' beta-weighted exposure, the same code in backtests (holdings' bars from the data) and live.

Per bar the book marks the hedge and the holdings; once per session it appends each symbol's daily
return (last close to last close) to a window of `beta_window` sessions and the betas follow them
(`bot/risk/hedge.py`). At each bar with a decision (the driver passes a direction):
- target = ratio x sum(beta x qty x price) / |L| while wanted (`mode = "always"`, or the combined
  direction is -1 for `on_bear_signal`) and nobody holds the bull fund; else 0;
- nothing held or wanted gone: open / close it all; otherwise rebalance only when the notional held
  is off the target by more than `band` and the trade is at least `min_trade` dollars.
Never beside the bull fund (SOXL): while the strategy holds or is opening it the target is 0, and an
entry into it waits until the hedge's close has filled (the engine's flip rule). Every trade is a risk
verdict `hedge` with the figures and why, and an order with a deterministic id (intent `hedge`);
`state` row `hedge` holds ratio, drift and the cost so far for `soxbot status`.
Cost so far: what the hedge returned short of L x the index over the bars it was held (decay, expense
and financing, as the fund's own prices carry them).
"""

from __future__ import annotations

import json
import math
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.core.events import Intent, OrderFilled, OrderIntent, OrderType, Side
from bot.core.ids import next_revision, split_revision
from bot.risk import hedge as hm

if TYPE_CHECKING:
    from bot.broker.base import BarTuple
    from bot.core.config import Settings
    from bot.execution.engine import Engine

STATE_KEY = "hedge"


class HedgeBook:
    def __init__(self, cfg: Settings, holdings: dict[str, float]) -> None:
        h = cfg.hedge
        fund = cfg.leveraged.fund(h.instrument)
        self.lev = fund.leverage if fund is not None else -3.0
        self.cfg = h
        self.holdings = holdings
        self.symbol = h.instrument
        self.index = h.index
        self.bull = cfg.universe.bull
        self.fractional = cfg.risk.fractional
        self.symbols = [*holdings, h.index]
        self.rets = {s: deque(maxlen=h.beta_window) for s in self.symbols}
        self.last: dict[str, float] = {}  # this session's latest close per symbol
        self.prev: dict[str, float] = {}  # the previous session's last close
        self.qty = 0.0
        self.working: str | None = None  # client_order_id of the hedge order on its way
        self.cost = 0.0  # dollars short of L x the index while held
        self.rebalances = 0
        self._mark: tuple[float, float] | None = None  # (fund, index) close at the last mark
        self.unsized_said = False  # "one share costs more than the target": said once
        self.ratio_now = float("nan")
        self.drift_now = float("nan")
        self.target_now = 0.0

    @property
    def symbols_needed(self) -> list[str]:
        """The bars the drivers must feed the engine besides the traded ones."""
        return [*self.symbols, self.symbol]

    # -- per bar ------------------------------------------------------------------------------------
    def new_session(self) -> None:
        for s in self.symbols:
            a, b = self.prev.get(s), self.last.get(s)
            if a is not None and b is not None and a > 0:
                self.rets[s].append(b / a - 1)
        self.prev = dict(self.last)

    def on_bar(self, bars: dict[str, BarTuple]) -> None:
        for s in self.symbols:
            bar = bars.get(s)
            if bar is not None:
                self.last[s] = bar[3]
        f, ix = bars.get(self.symbol), bars.get(self.index)
        if f is None or ix is None:
            return
        if self._mark is not None and self.qty > 0:
            f0, i0 = self._mark
            value0 = self.qty * f0
            self.cost -= value0 * ((f[3] / f0 - 1) - self.lev * (ix[3] / i0 - 1))
        self._mark = (f[3], ix[3])

    def value(self, price: float | None) -> float:
        return self.qty * price if price is not None and self.qty else 0.0

    # -- the decision ------------------------------------------------------------------------------
    def betas(self) -> dict[str, float] | None:
        n = len(self.rets[self.index])
        if n < self.cfg.beta_window or any(len(self.rets[s]) < self.cfg.beta_window for s in self.holdings):
            return None
        x = np.fromiter(self.rets[self.index], float)
        return {s: hm.ols_beta(np.fromiter(self.rets[s], float), x) for s in self.holdings}

    def check(self, e: Engine, direction: int | None) -> None:
        if self.working is not None:
            return
        price = e.last_close.get(self.symbol)
        betas = self.betas()
        if price is None or not price > 0:
            return
        wanted = self.cfg.mode == "always" or direction == -1
        bull_on = self._bull_on(e)
        if betas is None:
            if wanted and self.qty == 0 and e.journal is not None and e.n_bars % 50 == 1:
                have = len(self.rets[self.index])
                e.verdict(
                    "hedge", f"hedge waits: {have} of {self.cfg.beta_window} daily returns for the betas"
                )
            return
        values = {s: self.holdings[s] * self.last.get(s, math.nan) for s in self.holdings}
        exposure = sum(betas[s] * values[s] for s in self.holdings)
        target = hm.hedge_notional(exposure, self.cfg.ratio, self.lev) if wanted and not bull_on else 0.0
        if not math.isfinite(target) or target < 0:
            target = 0.0
        held = self.qty * price
        self.target_now = target
        self.ratio_now = held * abs(self.lev) / exposure if exposure > 0 else math.nan
        self.drift_now = held / target - 1 if target > 0 else math.nan
        if target == 0.0:
            if self.qty > 0:
                why = f"{self.bull} is held by the strategy" if bull_on else "hedge not wanted now"
                self._trade(e, -self.qty, price, f"hedge off ({why}): sell all {self.qty:g} {self.symbol}")
            return
        if self.qty == 0:
            qty, note = self._afford(e, target / price, price)
            if qty * price >= max(self.cfg.min_trade, 1e-9):
                self._trade(e, qty, price, f"hedge on: target {target:,.0f} (ratio {self.cfg.ratio:g}){note}")
            elif not self.unsized_said:
                self.unsized_said = True
                e.verdict(
                    "hedge",
                    f"hedge cannot be bought: target {target:,.0f}, {self.symbol} at {price:,.2f}, cash "
                    f"{e.cash:,.0f}, min_trade {self.cfg.min_trade:,.0f} (whole shares unless fractional)",
                )
            return
        if abs(self.drift_now) <= self.cfg.band:
            return
        qty, note = self._afford(e, (target - held) / price, price)
        if abs(qty) * price < self.cfg.min_trade or qty == 0:
            return
        side = "buy" if qty > 0 else "sell"
        self._trade(
            e,
            qty,
            price,
            f"hedge rebalance: {self.symbol} notional {held:,.0f} is {self.drift_now:+.1%} off target "
            f"{target:,.0f} (band {self.cfg.band:.0%}): {side} {abs(qty):g}{note}",
        )

    def _bull_on(self, e: Engine) -> bool:
        """The bull fund is held, waited for, or its entry order is on its way (not filled yet)."""
        pos, p, bull = e.pos, e.pending_open, self.bull
        return bool(bull) and (
            (pos is not None and pos.symbol == bull)
            or (p is not None and p.symbol == bull)
            or any(o.symbol == bull and o.intent is Intent.OPEN for o in e.orders.values())
        )

    def _afford(self, e: Engine, q: float, price: float) -> tuple[float, str]:
        """`q` rounded, a buy capped at what the cash pays for (with a 2% margin for the open's gap)."""
        q = self._round(q)
        if q > 0 and q * price > e.cash * 0.98:
            q = self._round(max(e.cash * 0.98, 0.0) / price)
            return q, f" (capped at the cash, {e.cash:,.0f}: the hedge stays short of target)"
        return q, ""

    def _round(self, q: float) -> float:
        return q if self.fractional else float(math.floor(q) if q > 0 else math.ceil(q))

    def _trade(self, e: Engine, qty: float, price: float, reason: str) -> None:
        self.rebalances += 1
        e.verdict(
            "hedge",
            reason,
            symbol=self.symbol,
            qty=qty,
            price=price,
            target=round(self.target_now, 2),
            ratio=None if math.isnan(self.ratio_now) else round(self.ratio_now, 4),
            drift=None if math.isnan(self.drift_now) else round(self.drift_now, 4),
        )
        cid = e.desk.cid(self.symbol, e.now, Intent.HEDGE)
        if cid in e.orders or (self.working is not None and split_revision(self.working)[0] == cid):
            cid = next_revision(cid)
        self.working = cid
        side = Side.BUY if qty > 0 else Side.SELL
        e.desk.send(
            OrderIntent(cid, e.now, self.symbol, side, abs(qty), OrderType.MARKET, Intent.HEDGE, reason)
        )

    # -- broker callbacks ---------------------------------------------------------------------------
    def on_fill(self, e: Engine, f: OrderFilled) -> None:
        self.qty += f.qty if f.side is Side.BUY else -f.qty
        if abs(self.qty) < 1e-9:
            self.qty = 0.0
        if not f.partial:
            self.working = None
        self.save(e)
        if self.qty == 0 and e.pending_open is not None and e.pos is None:  # a bull entry waited for it
            from bot.execution.book import open_pending

            open_pending(e)

    def on_end(self, cid: str) -> None:
        if cid == self.working:
            self.working = None

    def figures(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "qty": self.qty,
            "target": round(self.target_now, 2),
            "ratio": None if math.isnan(self.ratio_now) else round(self.ratio_now, 4),
            "drift": None if math.isnan(self.drift_now) else round(self.drift_now, 4),
            "cost_so_far": round(self.cost, 2),
            "rebalances": self.rebalances,
        }

    def save(self, e: Engine) -> None:
        if e.journal is not None:
            e.journal.set_state(STATE_KEY, json.dumps({"at": str(e.now), **self.figures()}))
