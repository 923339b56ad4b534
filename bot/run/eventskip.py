"""The event-skipping backtest driver: `Engine.step` on every bar where something can happen and
`Engine.advance` over the quiet bars between, so a backtest costs per event rather than per bar. The
engine still makes every decision; the driver only knows where none can be made.

A bar is stepped when any of these may happen on it (each test errs towards stepping):
- an order is on its way: a market order is working (it fills at this bar's open), a close is under
  way or an entry waits for one: the next bar is stepped;
- the direction the driver passes differs from the engine's last one (a decision: also where the
  backtest journals the signals);
- a resting stop or limit order triggers on the bar, by the fill model's own rules (`bot/core/fills.py`:
  a sell stop when open or low <= stop, a sell limit when open or high >= limit, buys mirrored);
- the trailing stop may rise (high x (1 - trailing_stop_pct) >= the stop);
- with risk limits on: the session in which the position reaches `max_hold_days`, the first bar of
  the session a daily loss lock ends on, a bar whose marked equity (cash + qty x close, as
  `Engine.quiet_marks` computes it) meets the daily loss limit or the max-drawdown floor.
The first and the last bar are always stepped (`Engine.finish` rewrites the last equity point).
Stretches of quiet bars are scanned in growing chunks; a single quiet bar is simply stepped.
Anything the scan does not model (an order type it does not know, a symbol not on the tape) makes it
step the next bar. tests/test_eventskip.py runs this driver and the plain per-bar loop on real and
synthetic data across the stop, take-profit, trailing, ATR and risk settings, both market timings and
traded bars missing at random, and requires the same trades, equity curve, journal and end state.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable

import numpy as np

from bot.broker.base import Broker
from bot.core.events import OrderType, Side
from bot.data.tape import Tape
from bot.execution.engine import Engine

CHUNK = 256  # first scan window after an event (bars); doubles while nothing is found
MAX_CHUNK = 1 << 16
SHORT = 2  # quiet stretches shorter than this are stepped bar by bar (a bulk advance costs ~2 steps)


class EventDriver:
    def __init__(
        self,
        engine: Engine,
        broker: Broker,
        tape: Tape,
        directions: np.ndarray,
        warmup: int,
        changes: list[int],
        step_bar: Callable[[int], None],
        on_done: Callable[[int], None] | None = None,
    ) -> None:
        """`tape`: the bars; `directions[i]`: the direction passed to `step` on bar i from `warmup` on
        (None before); `changes`: the bars, ascending, where that differs from the bar before's;
        `step_bar(i)` steps bar i exactly as the plain loop does."""
        self.engine = engine
        self.broker = broker
        self.tape = tape
        self.directions = directions
        self.warmup = warmup
        self.changes = changes
        self.step_bar = step_bar
        self.on_done = on_done
        self.n = tape.n
        self.session_list: list[int] | None = None
        ohlc = tape.ohlc
        self.lows = {s: -np.minimum(r[:, 0], r[:, 2]) for s, r in ohlc.items()}  # >= -level: touched
        self.highs = {s: np.maximum(r[:, 0], r[:, 1]) for s, r in ohlc.items()}
        self._trail: dict[str, np.ndarray] = {}
        self._session_starts: list[int] | None = None

    # -- where the next event can be --------------------------------------------------------
    def _limit(self, a: int) -> int:
        """The first bar from `a` on that must be stepped whatever the prices do (the last bar is
        always stepped: `Engine.finish` may rewrite its equity point)."""
        e = self.engine
        pos = e.pos
        if e.pending_open is not None or (pos is not None and pos.closing):
            return a
        if any(o.type is OrderType.MARKET for o in self.broker.open_orders()):
            return a
        if a - 1 >= self.warmup and int(self.directions[a - 1]) != e.last_dir:  # not expected: step
            return a
        nxt = bisect_left(self.changes, a)
        lim = self.changes[nxt] if nxt < len(self.changes) else self.n - 1
        lim = min(lim, self.n - 1)
        if e.limits.on:
            mh = e.risk_of(pos.symbol).max_hold_days if pos is not None else 0
            if mh > 0 and pos is not None:
                left = mh - pos.sessions
                if left <= 0:
                    return a
                starts = self._starts()
                k = bisect_left(starts, a) + left - 1
                if k < len(starts):
                    lim = min(lim, starts[k])
            if e.locked_until is not None:
                if self.session_list is None:
                    self.session_list = self.tape.sessions.tolist()
                lim = min(lim, bisect_left(self.session_list, e.locked_until, a))
        return lim

    def _starts(self) -> list[int]:
        if self._session_starts is None:
            self._session_starts = np.flatnonzero(self.tape.new_session).tolist()
        return self._session_starts

    def _triggers(self) -> list[tuple[np.ndarray, float]] | None:
        """(values, level) pairs: a bar where values >= level may fill an order or raise the stop.
        None: something the scan does not model; step the next bar."""
        e = self.engine
        out: list[tuple[np.ndarray, float]] = []
        for o in self.broker.open_orders():
            if o.symbol not in self.lows:
                return None
            lows, highs, sell = self.lows[o.symbol], self.highs[o.symbol], o.side is Side.SELL
            if o.type is OrderType.STOP and o.stop_price is not None:
                out.append((lows, -o.stop_price) if sell else (highs, o.stop_price))
            elif o.type is OrderType.LIMIT and o.limit_price is not None:
                out.append((highs, o.limit_price) if sell else (lows, -o.limit_price))
            else:
                return None
        pos = e.pos
        t = e.risk_of(pos.symbol).trailing_stop_pct if pos is not None else 0.0
        if pos is not None and pos.stop_cid is not None and not pos.closing and t > 0:
            if pos.stop is None or pos.symbol not in self.tape.ohlc:
                return None
            arr = self._trail.get(pos.symbol)
            if arr is None:
                arr = self._trail[pos.symbol] = self.tape.ohlc[pos.symbol][:, 1] * (1.0 - t)
            out.append((arr, pos.stop))
        return out

    def _risk_hit(self, a: int, f: int) -> int:
        """The first bar in [a, f) whose marked equity meets the daily loss limit or the drawdown
        floor (as `AccountLimits.check` tests them), else f."""
        e = self.engine
        r = e.risk
        daily = r.daily_loss_limit_pct > 0 and e.locked_until is None
        drawdown = r.max_drawdown_pct > 0 and not e.killed
        if not (daily or drawdown) or f <= a:
            return f
        _, equity, new = e.quiet_marks(self.tape, a, f)
        m = f - a
        hit = np.zeros(m, bool)
        if daily:
            at = np.where(new, np.arange(m), -1)
            np.maximum.accumulate(at, out=at)
            before = np.concatenate(([e.equity_now], equity))  # before[j]: equity of the bar before a+j
            start = np.where(at >= 0, before[np.maximum(at, 0)], e.day_start_equity)
            hit |= equity <= start * (1 - r.daily_loss_limit_pct)
        if drawdown:
            peak = np.maximum(np.maximum.accumulate(equity), e.peak_equity)
            hit |= equity <= peak * (1 - r.max_drawdown_pct)
        k = int(hit.argmax())
        return a + k if hit[k] else f

    # -- the loop ---------------------------------------------------------------------------
    def _advance(self, a: int, f: int) -> None:
        if f - a < SHORT:
            for k in range(a, f):
                self.step_bar(k)
        else:
            self.engine.advance(self.tape, a, f)
        if self.on_done is not None:
            self.on_done(f - a)

    def _step(self, i: int) -> None:
        self.step_bar(i)
        if self.on_done is not None:
            self.on_done(1)

    def run(self) -> None:
        n = self.n
        if n == 0:
            return
        self._step(0)
        a, chunk = 1, CHUNK
        risk_scan = self.engine.risk.daily_loss_limit_pct > 0 or self.engine.risk.max_drawdown_pct > 0
        while a < n:
            lim = self._limit(a)
            if lim - a < SHORT:
                self._step(a)
                a += 1
                continue
            triggers = self._triggers()
            if triggers is None:
                self._step(a)
                a += 1
                continue
            end = min(lim, a + chunk)
            f = end
            for values, level in triggers:
                if f <= a:
                    break
                seg = values[a:f]
                k = int(np.argmax(seg >= level))
                if seg[k] >= level:
                    f = a + k
            if risk_scan:
                f = self._risk_hit(a, f)
            self._advance(a, f)
            if f < end or f == lim:  # an event (or a bar that must be stepped) on bar f
                self._step(f)
                a, chunk = f + 1, CHUNK
            else:
                a, chunk = f, min(chunk * 2, MAX_CHUNK)
