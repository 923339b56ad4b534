"""The trading engine: one object for backtest and live. Only the driver (clock + data feed) and the
broker adapter differ between the two.

Per bar (`step`), in order:
1. the broker sees the bar (the in-process broker fills market orders at the open, then resting
   stops/limits; a remote broker reports fills from its stream instead);
2. the position is managed at the close: trailing stop raised, max-hold, daily loss limit and
   max-drawdown kill switch checked; equity marked;
3. the combined direction is turned into orders: on a change of direction (or the first valid bar
   after warm-up) the held instrument, if it is not the target, is closed; the target (bull on +1, bear
   on -1, nothing on 0) is opened once the close has filled, so both are never held at once.
Entries are blocked while a lock is on, on bars flagged not tradable (after a data gap) and when the
size comes out 0. Exits are never blocked. Every risk decision is journaled with its reason.

A backtest crosses bars on which nothing can happen with `advance` (the same bookkeeping as `step`
on each of them, in bulk; it decides nothing): see `bot/eventskip.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bot import stops
from bot.broker.base import ALREADY_FILLED, NOTHING_HELD, BarTuple, Broker
from bot.config import Settings
from bot.events import (
    EquityPoint,
    ExitReason,
    Intent,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderType,
    RiskVerdict,
    Side,
    Trade,
)
from bot.ids import client_order_id, next_revision, split_revision
from bot.journal import Journal
from bot.sizing import position_qty

if TYPE_CHECKING:
    from bot.tape import Tape

KILL_KEY = "kill_switch"
MAX_CLOSE_RESENDS = 3  # a close that ends unfilled is sent again at most this often (ids '-r1'..'-r3')
MAX_EXIT_FAILURES = 6  # failed exits on one position before the engine stops retrying and asks a person


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


QuietSpan = tuple[int, int, float, "str | None", float, float]  # (a, f, cash, symbol, qty, last close)


@dataclass
class EquityLog:
    """The equity curve: a point per bar stepped and, from the event-skipping backtest driver, spans
    of quiet bars kept as (bars, cash, position) until `frame` fills them in from the tape at once."""

    ts: list[pd.Timestamp] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    cash: list[float] = field(default_factory=list)
    position_value: list[float] = field(default_factory=list)
    quiet: list[tuple[int, QuietSpan]] = field(default_factory=list)  # (points before it, span)
    tape: Tape | None = None

    def add_quiet(
        self, tape: Tape, a: int, f: int, cash: float, symbol: str | None, qty: float, before: float
    ) -> None:
        """Bars a..f-1 of `tape`, marked as `step` would: cash + qty x the symbol's last close seen
        (`before` until the span has one of its own); flat (`symbol` None): `before` is the equity."""
        self.tape = tape
        self.quiet.append((len(self.ts), (a, f, cash, symbol, qty, before)))

    @staticmethod
    def quiet_values(
        tape: Tape, spans: list[QuietSpan]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(keys, equity, cash, position value) of every bar of `spans`, in order."""
        a = np.array([s[0] for s in spans], np.int64)
        m = np.array([s[1] for s in spans], np.int64) - a
        total = int(m.sum())
        rep = np.repeat(np.arange(len(spans)), m)
        bars = a[rep] + (np.arange(total) - (np.cumsum(m) - m)[rep])
        cash = np.array([s[2] for s in spans], float)[rep]
        qty = np.array([s[4] for s in spans], float)[rep]
        before = np.array([s[5] for s in spans], float)[rep]
        symbols = [s[3] for s in spans]
        equity = np.empty(total)
        pos_value = np.zeros(total)
        for sym in set(symbols):
            sel = np.array([x == sym for x in symbols])[rep]
            if sym is None:
                equity[sel] = before[sel]
                continue
            closes = tape.closes_over(sym, bars[sel], a[rep][sel], before[sel])
            pos_value[sel] = qty[sel] * closes
            equity[sel] = cash[sel] + pos_value[sel]
        return tape.keys[bars], equity, cash, pos_value

    def frame(self, tz: Any = None) -> pd.DataFrame:
        if self.quiet:
            keys, cols = self._with_quiet()
            idx = pd.DatetimeIndex(keys.view("datetime64[ns]"), name="timestamp")
            if tz is not None:
                idx = idx.tz_localize("UTC").tz_convert(tz)
            return pd.DataFrame(cols, index=idx)
        if self.ts and isinstance(self.ts[0], int):
            stamps = np.fromiter(self.ts, np.int64, len(self.ts)).view("datetime64[ns]")
            idx = pd.DatetimeIndex(stamps, name="timestamp")
            if tz is not None:
                idx = idx.tz_localize("UTC").tz_convert(tz)
        else:
            idx = pd.DatetimeIndex(self.ts, name="timestamp")
        cols = {"equity": self.equity, "cash": self.cash, "position_value": self.position_value}
        if self.ts:  # float arrays first: pandas infers lists ~6x slower
            return pd.DataFrame({k: np.fromiter(v, float, len(v)) for k, v in cols.items()}, index=idx)
        return pd.DataFrame(cols, index=idx)

    def _with_quiet(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The points (int keys) and the quiet spans merged in time order."""
        assert self.tape is not None
        n_points = len(self.ts)
        at = np.array([q[0] for q in self.quiet], np.int64)
        spans = [q[1] for q in self.quiet]
        keys, equity, cash, pos_value = self.quiet_values(self.tape, spans)
        ends = np.cumsum([f - a for a, f, *_ in spans])
        total = n_points + int(ends[-1])
        points = np.arange(n_points)
        slots = points + np.concatenate(([0], ends))[np.searchsorted(at, points, side="right")]
        quiet = np.ones(total, bool)
        quiet[slots] = False

        def merge(values: list[Any], spans_values: np.ndarray, dtype: Any) -> np.ndarray:
            out = np.empty(total, dtype)
            out[slots] = np.fromiter(values, dtype, n_points)
            out[quiet] = spans_values
            return out

        cols = {
            "equity": merge(self.equity, equity, float),
            "cash": merge(self.cash, cash, float),
            "position_value": merge(self.position_value, pos_value, float),
        }
        return merge(self.ts, keys, np.int64), cols


class Engine:
    def __init__(
        self,
        cfg: Settings,
        set_id: str,
        broker: Broker,
        journal: Journal | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        journal_equity: bool = True,
        tz: Any = None,
        keep_equity: bool = True,
    ) -> None:
        """`keep_equity=False` (live): the equity curve goes to the journal only, not to memory, so a
        process that runs for weeks does not grow with history."""
        self.cfg = cfg
        self.risk = cfg.risk
        self.set_id = set_id
        self.bull = cfg.universe.bull
        self.bear = cfg.universe.bear
        self.traded = cfg.universe.traded
        self.broker = broker
        self.journal = journal
        self.on_event = on_event
        self.journal_equity = journal_equity
        self.keep_equity = keep_equity
        broker.set_listeners(self._on_fill, self._on_update)

        self.cash = float(cfg.broker.starting_cash)
        self.pos: Position | None = None
        self.pending_open: PendingOpen | None = None
        self.orders: dict[str, OrderIntent] = {}
        self.last_close: dict[str, float] = {}
        self.atr = (
            {s: stops.Atr(cfg.risk.atr_period) for s in self.traded} if cfg.risk.atr_stop_mult > 0 else {}
        )
        self.last_dir: int | None = None
        self.trades: list[Trade] = []
        self.equity_log = EquityLog()
        self.tz = tz
        self._now: pd.Timestamp | int | None = None
        self._stamped: tuple[int | None, pd.Timestamp] = (None, pd.NaT)
        self.session: int | None = None
        self._bars: Mapping[str, BarTuple] = {}
        self.equity_now = self.cash
        self.day_start_equity = self.cash
        self.peak_equity = self.cash
        self.locked_until: int | None = None
        r = cfg.risk
        self._risk_on = r.max_drawdown_pct > 0 or r.daily_loss_limit_pct > 0 or r.max_hold_days > 0
        self._idle = False  # True while flat with nothing working: the next bar can take the short path
        self.killed = bool(journal and journal.get_state(KILL_KEY))
        self.n_bars = 0
        # the in-process broker may fill this bar's market orders at its close (daily, decided early)
        self._close_fills = bool(getattr(broker, "market_at_close", False))

    # -- time ------------------------------------------------------------------------------
    # A driver passes each bar's time either as a Timestamp (live) or as int nanoseconds since the
    # epoch (backtests: no Timestamp object per bar); it becomes a Timestamp only when an event
    # needs one.
    def stamp(self, key: pd.Timestamp | int) -> pd.Timestamp:
        if isinstance(key, int):
            last_key, last = self._stamped
            if key == last_key:  # an event asks for the bar's time several times: convert it once
                return last
            t = pd.Timestamp(key, tz=self.tz)  # with a tz: the UTC instant, shown in that zone
            self._stamped = (key, t)
            return t
        return key

    @property
    def now(self) -> pd.Timestamp:
        return self.stamp(self._now)  # type: ignore[arg-type]

    # -- helpers -----------------------------------------------------------------------------
    def _emit(self, kind: str, **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, data)

    def _verdict(self, action: str, reason: str, **details: Any) -> None:
        if self.journal is not None:
            self.journal.risk(RiskVerdict(self.now, action, reason, details))  # type: ignore[arg-type]
        if self.on_event is not None:
            self.on_event("risk", {"action": action, "reason": reason, **details})

    def _send(self, intent: OrderIntent) -> None:
        self.orders[intent.client_order_id] = intent
        if self.journal is not None:
            self.journal.order_intent(intent)  # written before the broker sees it
        if self.on_event is not None:
            self.on_event("order", {"order": intent})
        self.broker.submit(intent)

    def _cid(self, symbol: str, signal_ts: pd.Timestamp, intent: Intent, rev: int = 0) -> str:
        return client_order_id(self.set_id, symbol, signal_ts, intent.value, rev)

    @property
    def locked(self) -> str | None:
        if self.killed:
            return "kill switch on (max drawdown); run `soxbot rearm` after review"
        if self.locked_until is not None and self.session is not None and self.session < self.locked_until:
            return "daily loss limit hit; locked until next session"
        return None

    # -- the bar -----------------------------------------------------------------------------
    def step(
        self,
        ts: pd.Timestamp | int,
        session: int,
        bars: Mapping[str, BarTuple],
        direction: int | None,
        tradable: bool = True,
        reason: str = "",
    ) -> None:
        """One bar. `session` is the trading date as a day number; `bars` holds the traded symbols'
        (open, high, low, close) for this bar (a symbol without a bar now is left out)."""
        self._now = ts
        self.n_bars += 1
        if session != self.session:
            self._new_session(session)
        if self._idle and (direction is None or direction == self.last_dir) and self.pos is None:
            # Flat, no orders, no risk state to track, nothing to decide: equity is the cash.
            if self.keep_equity:
                log = self.equity_log
                log.ts.append(ts)
                log.equity.append(self.cash)
                log.cash.append(self.cash)
                log.position_value.append(0.0)
            if self.journal_equity and self.journal is not None:
                self.journal.equity(EquityPoint(self.now, self.cash, self.cash, 0.0))
            return
        self._bars = bars
        self.broker.on_bar(ts, bars)  # type: ignore[arg-type]
        last_close = self.last_close
        for sym, bar in bars.items():
            last_close[sym] = bar[3]
        if self.atr:
            for sym, bar in bars.items():
                atr = self.atr.get(sym)
                if atr is not None:
                    atr.update(bar[1], bar[2], bar[3])
        pos = self.pos
        if pos is None:
            pos_value = 0.0
        else:
            pos_value = pos.qty * last_close.get(pos.symbol, pos.entry_price)
            if pos.stop_cid is not None and not pos.closing and self.risk.trailing_stop_pct > 0:
                bar = bars.get(pos.symbol)
                if bar is not None:
                    self._trail(pos, bar[1])
        cash = self.cash
        equity = cash + pos_value
        self.equity_now = equity
        if self.keep_equity:
            log = self.equity_log
            log.ts.append(ts)
            log.equity.append(equity)
            log.cash.append(cash)
            log.position_value.append(pos_value)
        if self.journal_equity and self.journal is not None:
            self.journal.equity(EquityPoint(self.now, equity, cash, pos_value))
        if self._risk_on:
            self._risk_checks(equity)
        if direction is not None and direction != self.last_dir:
            self._decide(self.now, direction, tradable, reason)
        if self._close_fills:
            self.broker.on_close(ts, bars)  # type: ignore[attr-defined]
        self._idle = (
            self.pos is None
            and not self.orders
            and not self._risk_on
            and not self.atr
            and self.pending_open is None
        )

    def _new_session(self, session: int) -> None:
        self.session = session
        self.day_start_equity = self.equity_now
        if self.pos is not None and self.n_bars > 1:
            self.pos.sessions += 1

    def revise_bar(self, bars: Mapping[str, BarTuple]) -> None:
        """The final values of the bar last stepped on (a daily bar decided before the close): the ATR
        and the last close follow them, and the trailing stop takes the day's full high, as a backtest
        of the same bars does (not on the entry day: that high may predate the entry). Nothing is
        decided again."""
        for sym, bar in bars.items():
            self.last_close[sym] = bar[3]
            atr = self.atr.get(sym)
            if atr is not None:
                atr.revise(bar[1], bar[2], bar[3])
        pos = self.pos
        if pos is None or pos.sessions < 2:
            return
        if pos.stop_cid is not None and not pos.closing and self.risk.trailing_stop_pct:
            bar = bars.get(pos.symbol)
            if bar is not None:
                self._trail(pos, bar[1])

    # -- quiet bars (the event-skipping backtest driver, bot/eventskip.py) ------------------------
    def quiet_marks(self, tape: Tape, a: int, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What `step` would mark on bars a..f-1 of `tape` if nothing happened on them: per bar the
        position value (qty x the last close seen), the equity (cash + that) and whether the bar opens
        a new session."""
        new = tape.new_session[a:f].copy()
        if f > a:
            new[0] = int(tape.sessions[a]) != self.session
        pos = self.pos
        if pos is None:
            zeros = np.zeros(f - a)
            return zeros, self.cash + zeros, new
        before = self.last_close.get(pos.symbol, pos.entry_price)
        closes = tape.closes_over(pos.symbol, np.arange(a, f), np.full(f - a, a), np.full(f - a, before))
        pos_value = pos.qty * closes
        return pos_value, self.cash + pos_value, new

    def advance(self, tape: Tape, a: int, f: int) -> None:
        """Bars a..f-1 of `tape`, on which nothing can happen, at once, leaving the engine as `step`
        on each would: no order fills, no stop trails, no risk limit fires, the direction does not
        change (the driver has made sure; `bot/eventskip.py`). Sessions are counted, the last closes
        and the ATR follow the bars, the equity curve gets its points (filled in by `EquityLog.frame`).
        Decides nothing. For backtests: a driver that journals equity bar by bar steps every bar."""
        if f <= a:
            return
        if self.journal_equity and self.journal is not None:
            raise RuntimeError("Engine.advance: equity is journaled bar by bar here; step every bar")
        last = f - 1
        first_new = int(tape.sessions[a]) != self.session
        new_sessions = int(tape.starts[last] - tape.starts[a]) + first_new
        began = int(tape.first[last])  # the last bar's session began on this bar
        self.n_bars += f - a
        self._now = int(tape.keys[last])
        self.session = int(tape.sessions[last])
        cash = self.cash
        pos = self.pos
        if self._idle and pos is None:  # `step`'s short path: nothing but the equity point
            if new_sessions:
                self.day_start_equity = self.equity_now
            self._log_quiet(tape, a, f, None, 0.0, cash)
            return
        if pos is None:
            symbol, qty, before = None, 0.0, cash + 0.0  # flat: equity = cash + a position value of 0.0
        else:
            symbol, qty = pos.symbol, pos.qty
            before = self.last_close.get(symbol, pos.entry_price)

        def equity_at(k: int) -> float:
            if symbol is None:
                return before
            return cash + qty * tape.close_at(symbol, k, a, before)

        if new_sessions:
            self.day_start_equity = equity_at(began - 1) if began > a else self.equity_now
            if pos is not None:
                pos.sessions += new_sessions
        if self._risk_on:
            peak = float(self.quiet_marks(tape, a, f)[1].max())
            if peak > self.peak_equity:
                self.peak_equity = peak
        self.equity_now = equity_at(last)
        bars: dict[str, BarTuple] = {}
        for sym, rows in tape.ohlc.items():
            j = int(tape.seen[sym][last])
            if j >= a:
                self.last_close[sym] = float(rows[j, 3])
                if j == last:
                    bars[sym] = tuple(rows[j].tolist())  # type: ignore[assignment]
            atr = self.atr.get(sym)
            if atr is not None:
                span = rows[a:f]
                for h, lo, c in span[~np.isnan(span[:, 3]), 1:].tolist():
                    atr.update(h, lo, c)
        self._bars = bars
        self._log_quiet(tape, a, f, symbol, qty, before)

    def _log_quiet(self, tape: Tape, a: int, f: int, symbol: str | None, qty: float, before: float) -> None:
        if self.keep_equity:
            self.equity_log.add_quiet(tape, a, f, self.cash, symbol, qty, before)

    def _trail(self, pos: Position, high: float) -> None:
        new = stops.trailed_stop(self.risk, pos.stop, high)
        if new is None or pos.stop is None or new <= pos.stop * (1 + 1e-12):
            return
        pos.stop = new
        self._protect(pos, self.now, only=Intent.STOP, why="trailing stop raised")

    def _risk_checks(self, equity: float) -> None:
        r = self.risk
        if equity > self.peak_equity:
            self.peak_equity = equity
        pos = self.pos
        if pos is not None and not pos.closing and r.max_hold_days > 0 and pos.sessions >= r.max_hold_days:
            self._verdict(
                "exit", f"held {pos.sessions} sessions >= max_hold_days {r.max_hold_days}", symbol=pos.symbol
            )
            self._close(pos, ExitReason.MAX_HOLD, "max hold reached")
        if self.locked_until is not None and self.session is not None and self.session >= self.locked_until:
            self.locked_until = None
            self._verdict("unlock", "new session: daily loss lock lifted")
        if (
            r.daily_loss_limit_pct > 0
            and self.locked_until is None
            and equity <= self.day_start_equity * (1 - r.daily_loss_limit_pct)
        ):
            self.locked_until = self.session + 1  # type: ignore[operator]
            loss = 1 - equity / self.day_start_equity
            self._verdict(
                "lock",
                f"daily loss {loss:.2%} >= limit {r.daily_loss_limit_pct:.2%}; "
                "flatten and lock until next session",
                equity=round(equity, 2),
            )
            self._flatten("daily loss limit")
        dd_floor = self.peak_equity * (1 - r.max_drawdown_pct)
        if r.max_drawdown_pct > 0 and not self.killed and equity <= dd_floor:
            self.killed = True
            dd = 1 - equity / self.peak_equity
            why = f"drawdown {dd:.2%} >= max_drawdown_pct {r.max_drawdown_pct:.2%}"
            if self.journal is not None:
                self.journal.set_state(KILL_KEY, f"{self.now}: {why}")
            self._verdict(
                "kill",
                why + "; flatten and stay locked until `soxbot rearm`",
                equity=round(equity, 2),
                peak=round(self.peak_equity, 2),
            )
            self._flatten("max drawdown kill switch")

    def _flatten(self, why: str) -> None:
        self.pending_open = None
        if self.pos is not None and not self.pos.closing:
            self._close(self.pos, ExitReason.RISK, why)

    # -- decisions ---------------------------------------------------------------------------
    def _decide(self, ts: pd.Timestamp, d: int, tradable: bool, reason: str) -> None:
        prev = self.last_dir
        self.last_dir = d
        if prev is not None and d == prev:
            return
        target = self.bull if d > 0 else self.bear if d < 0 else ""
        pos = self.pos
        if pos is not None and pos.symbol != target and not pos.closing:
            self._close(pos, ExitReason.SIGNAL, f"direction {prev} -> {d}: {reason}")
        self.pending_open = None
        if not target or (pos is not None and pos.symbol == target and not pos.closing):
            return
        why_not = self.locked or (None if tradable else "bar not tradable (follows a data gap)")
        if why_not:
            self._verdict("block", f"no entry into {target}: {why_not}", direction=d)
            return
        if self.pos is not None:  # closing: open once the close has filled (never hold both)
            self.pending_open = PendingOpen(target, ts, reason)
            return
        self._open(target, ts, reason, self.last_close.get(target))

    def _open(self, symbol: str, signal_ts: pd.Timestamp, reason: str, ref_price: float | None) -> None:
        if ref_price is None or not ref_price > 0:
            self._verdict("block", f"no entry into {symbol}: no price yet")
            return
        atr = self.atr[symbol].value if self.atr else None
        stop_est = stops.estimated_stop(self.risk, ref_price, atr)
        equity = self.equity_now
        qty = position_qty(self.risk, equity, self.cash, ref_price, stop_est)
        if qty <= 0:
            self._verdict(
                "block",
                f"no entry into {symbol}: size is 0",
                equity=round(equity, 2),
                cash=round(self.cash, 2),
                price=ref_price,
            )
            return
        if self.journal is not None or self.on_event is not None:  # its text only when someone reads it
            self._verdict(
                "allow",
                f"enter {symbol}: {self.risk.sizing} qty {qty:g} at ~{ref_price:.4g}",
                qty=qty,
                stop=stop_est,
            )
        self._send(
            OrderIntent(
                self._cid(symbol, signal_ts, Intent.OPEN),
                self.now,
                symbol,
                Side.BUY,
                qty,  # type: ignore[arg-type]
                OrderType.MARKET,
                Intent.OPEN,
                reason,
            )
        )

    def _close(self, pos: Position, why: ExitReason, reason: str) -> None:
        pos.closing = True
        for cid in (pos.stop_cid, pos.tp_cid):
            if cid is not None:
                self.broker.cancel(cid)
        cid = self._cid(pos.symbol, self.now, Intent.CLOSE)
        if pos.close_cid is not None and split_revision(pos.close_cid)[0] == cid:
            cid = next_revision(pos.close_cid)  # closed again on the same bar: never reuse a spent id
        pos.close_cid = cid
        self._send(
            OrderIntent(
                cid,
                self.now,
                pos.symbol,
                Side.SELL,  # type: ignore[arg-type]
                pos.qty,
                OrderType.MARKET,
                Intent.CLOSE,
                reason,
                exit_reason=why,
            )
        )

    # -- broker callbacks --------------------------------------------------------------------
    def _on_fill(self, f: OrderFilled) -> None:
        if isinstance(f.ts, int):
            f = dataclasses.replace(f, ts=self.stamp(f.ts))
        if self.journal is not None:
            self.journal.fill(f)
            self.journal.order_status(f.client_order_id, "filled")
        intent = self.orders.get(f.client_order_id)
        if not f.partial:
            self.orders.pop(f.client_order_id, None)
        if self.on_event is not None:
            self.on_event("fill", {"fill": f})
        if f.side is Side.BUY:
            self.cash -= f.qty * f.price + f.commission
            self._on_entry(f, intent)
        else:
            self.cash += f.qty * f.price - f.commission
            self._on_exit(f, intent)

    def _on_entry(self, f: OrderFilled, intent: OrderIntent | None) -> None:
        pos = self.pos
        if pos is not None and pos.symbol == f.symbol:  # a further partial fill of the same entry
            total = pos.qty + f.qty
            pos.entry_price = (pos.entry_price * pos.qty + f.price * f.qty) / total
            pos.qty = total
            pos.entry_commission += f.commission
            self._protect(pos, f.ts)  # resize the protective orders to the whole position
            return
        signal_ts = intent.ts if intent is not None else f.ts
        pos = Position(f.symbol, f.qty, f.price, f.ts, signal_ts, f.commission)
        self.pos = pos
        atr = self.atr[f.symbol].value if self.atr else None
        pos.stop = stops.initial_stop(self.risk, f.price, atr)
        pos.take_profit = stops.take_profit(self.risk, f.price)
        self._protect(pos, f.ts)

    def _protect(self, pos: Position, ts: pd.Timestamp, only: Intent | None = None, why: str = "") -> None:
        """Place the position's protective stop and take-profit at the broker, or replace them
        (a new, deterministic client_order_id per revision) when the qty or the stop changes."""
        legs = (
            (Intent.STOP, OrderType.STOP, pos.stop, "protective stop", ExitReason.STOP_LOSS),
            (Intent.TAKE_PROFIT, OrderType.LIMIT, pos.take_profit, "take profit", ExitReason.TAKE_PROFIT),
        )
        for kind, otype, price, default_why, reason in legs:
            if price is None or (only is not None and kind is not only):
                continue
            old = pos.stop_cid if kind is Intent.STOP else pos.tp_cid
            rev = 0 if old is None else pos.stop_rev + 1
            intent = OrderIntent(
                self._cid(pos.symbol, pos.signal_ts, kind, rev), ts, pos.symbol, Side.SELL, pos.qty, otype,
                kind, why or default_why, stop_price=price if kind is Intent.STOP else None,
                limit_price=price if kind is Intent.TAKE_PROFIT else None, exit_reason=reason,
            )  # fmt: skip
            if old is None:
                self._send(intent)
            else:
                pos.stop_rev = rev
                self.orders.pop(old, None)
                self.orders[intent.client_order_id] = intent
                if self.journal is not None:
                    self.journal.order_intent(intent)
                self.broker.replace_stop(old, intent)
            if kind is Intent.STOP:
                pos.stop_cid = intent.client_order_id
            else:
                pos.tp_cid = intent.client_order_id

    def _on_exit(self, f: OrderFilled, intent: OrderIntent | None) -> None:
        pos = self.pos
        if pos is None or pos.symbol != f.symbol:
            self._verdict(
                "alert", f"sell fill for {f.symbol} with no position in the engine", cid=f.client_order_id
            )
            return
        pos.exit_qty += f.qty
        pos.exit_value += f.qty * f.price
        pos.exit_commission += f.commission
        pos.qty -= f.qty
        if pos.qty > 1e-9:
            return
        reason = intent.exit_reason if intent is not None and intent.exit_reason else ExitReason.SIGNAL
        for cid in (pos.stop_cid, pos.tp_cid):  # one protective leg filled: cancel the other (OCO)
            if cid is not None and cid != f.client_order_id:
                self.broker.cancel(cid)
        exit_price = pos.exit_value / pos.exit_qty
        pnl = pos.exit_value - pos.exit_qty * pos.entry_price - pos.entry_commission - pos.exit_commission
        self.trades.append(
            Trade(
                pos.symbol,
                "long",
                pos.exit_qty,
                pos.entry_time,
                pos.entry_price,
                f.ts,
                exit_price,
                pnl,
                reason,
            )
        )
        self.pos = None
        self.last_close[f.symbol] = self.last_close.get(f.symbol, f.price)
        p = self.pending_open
        if p is not None:
            self.pending_open = None
            bar = self._bars.get(p.symbol)
            ref = bar[3 if self._close_fills else 0] if bar is not None else self.last_close.get(p.symbol)
            self._open(p.symbol, p.signal_ts, p.reason, ref)

    def _on_update(self, u: OrderRejected | OrderCanceled) -> None:
        if isinstance(u.ts, int):
            u = dataclasses.replace(u, ts=self.stamp(u.ts))
        status = "rejected" if isinstance(u, OrderRejected) else "canceled"
        if self.journal is not None:
            self.journal.order_status(u.client_order_id, status, detail=u.reason)
        intent = self.orders.pop(u.client_order_id, None)
        self._emit(status, update=u)
        if isinstance(u, OrderRejected) and intent is not None:
            self._verdict("alert", f"order {u.client_order_id} rejected: {u.reason}", symbol=u.symbol)
            pos = self.pos
            if intent.intent is Intent.STOP and pos is not None and not pos.closing:
                self._verdict("flatten", "protective stop could not be placed: flatten", symbol=pos.symbol)
                self._close(pos, ExitReason.RISK, "stop rejected")
        pos = self.pos
        if intent is None or pos is None or pos.symbol != intent.symbol or pos.qty <= 1e-9:
            return
        if intent.intent is Intent.CLOSE and pos.closing:
            self._close_unfilled(pos, intent, u)
        elif (
            intent.intent is Intent.STOP
            and isinstance(u, OrderCanceled)
            and u.client_order_id == pos.stop_cid
            and u.reason != ALREADY_FILLED
            and not pos.closing
        ):  # the broker ended the stop of a held position (canceled by someone, expired): place it again
            self._verdict(
                "protect",
                f"protective stop {u.client_order_id} ended at the broker ({u.reason or 'canceled'}) with "
                f"{pos.qty:g} {pos.symbol} held: placed again",
                symbol=pos.symbol,
            )
            self._protect(pos, self.now, why="protective stop placed again")

    def _close_unfilled(self, pos: Position, intent: OrderIntent, u: OrderRejected | OrderCanceled) -> None:
        """A close ended (canceled, expired or refused) before it sold the whole position; `_close` had
        canceled the stop and take-profit, so the rest would be held unprotected. What happens to it:

        - the exit still stands (a risk, max-hold or end-of-data exit always does; a signal exit while the
          direction still points away from the symbol) and the close was canceled or expired, not refused:
          a close for the rest is sent again under the next revision of its id ('...-close-r1'), at most
          MAX_CLOSE_RESENDS times per decision, as a trader re-enters an exit order that ran out;
        - otherwise (refused, re-sends used up, or the direction came back to the symbol) the rest is held
          again with its protective stop (and take-profit) placed at once through `_protect`; a pending
          entry is dropped (never hold two), and later signals or risk exits close it as usual;
        - the broker holds none of it, or MAX_EXIT_FAILURES exits of this position failed: nothing more is
          sent (no loop against a broker that refuses everything); an alert asks a person to look.
        Each outcome is journaled as a risk verdict with its reason."""
        pos.exit_failures += 1
        cid, sym = u.client_order_id, pos.symbol
        ended = "refused" if isinstance(u, OrderRejected) else (u.reason or "canceled")
        left = f"{pos.qty:g} {sym}"
        if isinstance(u, OrderCanceled) and u.reason == NOTHING_HELD:
            self._verdict("alert", f"close {cid} ended: the broker holds no {sym}, the engine {left}; "
                          "nothing to sell or protect", symbol=sym)  # fmt: skip
            return
        if pos.exit_failures > MAX_EXIT_FAILURES:
            self._verdict("alert", f"close {cid} {ended} with {left} left after {pos.exit_failures} failed "
                          "exits: no more retries, the position needs a person", symbol=sym)  # fmt: skip
            return
        stands = self._exit_stands(pos, intent)
        if stands and isinstance(u, OrderCanceled) and split_revision(cid)[1] < MAX_CLOSE_RESENDS:
            new = next_revision(cid)
            self._verdict("exit", f"close {cid} {ended} with {left} left; {stands}: close sent again as "
                          f"{new}", symbol=sym, qty=pos.qty)  # fmt: skip
            pos.close_cid = new
            self._send(dataclasses.replace(intent, client_order_id=new, ts=self.now, qty=pos.qty))
            return
        if isinstance(u, OrderRejected):
            why = "the broker refused it"
        elif stands:
            why = f"sent {MAX_CLOSE_RESENDS} times again already"
        else:
            why = f"the direction is back to {sym}: the exit no longer stands"
        pos.closing = False
        self.pending_open = None
        stop = f"protective stop at {pos.stop:.4g}" if pos.stop is not None else "no stop rule configured"
        self._verdict(
            "protect", f"close {cid} {ended} with {left} left; {why}: held again, {stop}", symbol=sym
        )
        self._protect(pos, self.now, why="protective stop after an unfilled close")

    def _exit_stands(self, pos: Position, intent: OrderIntent) -> str | None:
        """Why the exit `intent` was sent for still holds, in words; None once it no longer does."""
        if intent.exit_reason is ExitReason.SIGNAL:
            d = self.last_dir
            if (self.bull if d and d > 0 else self.bear if d and d < 0 else "") == pos.symbol:
                return None
            return f"direction {d} still wants out of {pos.symbol}"
        return f"the {intent.exit_reason or 'exit'} exit still stands"

    # -- end ---------------------------------------------------------------------------------
    def finish(self, ts: pd.Timestamp) -> None:
        """End of a backtest: close an open position at the last close (`end_of_data`)."""
        pos = self.pos
        if pos is None:
            return
        if not pos.closing:
            self._close(pos, ExitReason.END_OF_DATA, "end of data")
        else:
            for cid, o in list(self.orders.items()):
                if o.symbol == pos.symbol and o.intent is Intent.CLOSE:
                    self.orders[cid] = OrderIntent(
                        **{
                            **{k: getattr(o, k) for k in o.__dataclass_fields__},
                            "exit_reason": ExitReason.END_OF_DATA,
                        }
                    )
        px = self.last_close.get(pos.symbol, pos.entry_price)
        self.broker.on_bar(ts, {pos.symbol: (px, px, px, px)})
        if self.pos is None and self.equity_log.ts:
            self.equity_log.cash[-1] = self.cash
            self.equity_log.equity[-1] = self.cash
            self.equity_log.position_value[-1] = 0.0

    def rearm(self) -> None:
        self.killed = False
        if self.journal is not None:
            self.journal.set_state(KILL_KEY, "")
