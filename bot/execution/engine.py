"""The trading engine: one object for backtest and live. Only the driver (clock + data feed) and the
broker adapter differ between the two.

Per bar (`step`), in order:
1. the broker sees the bar (the in-process broker fills market orders at the open, then resting
   stops/limits; a remote broker reports fills from its stream instead);
2. the position is managed at the close: trailing stop raised, the account limits checked
   (`bot/risk/limits.py`: max hold, daily loss lock, max-drawdown kill switch); equity marked;
3. the combined direction is turned into orders: on a change of direction (or the first valid bar
   after warm-up) the held instrument, if it is not the target, is closed; the target (bull on +1, bear
   on -1, nothing on 0) is opened once the close has filled, so both are never held at once.
Entries are blocked while a lock is on, on bars flagged not tradable (after a data gap) and when the
size comes out 0. Exits are never blocked. Every risk decision is journaled with its reason.

The jobs around it live beside it: `orders.py` (ids, journal-before-send, protective legs),
`exits.py` (exits that did not go through), `equity.py` (the curve), `quiet.py` (a backtest crosses
bars on which nothing can happen in bulk: see `bot/run/eventskip.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bot.broker.base import BarTuple, Broker
from bot.core.config import RegimeGate, RiskConfig, Settings
from bot.core.events import (
    EquityPoint,
    ExitReason,
    Intent,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    RiskVerdict,
    Side,
    SplitDetected,
    Trade,
)
from bot.execution import book, exits, quiet, splits
from bot.execution.decide import decide
from bot.execution.equity import EquityLog
from bot.execution.hedge import HedgeBook
from bot.execution.orders import OrderDesk
from bot.execution.position import PendingOpen, Position
from bot.journal.journal import Journal
from bot.risk import stops
from bot.risk.closing import CloseGuard
from bot.risk.decay_gate import DecayGate
from bot.risk.events import EventGuard
from bot.risk.index import IndexRisk
from bot.risk.limits import AccountLimits
from bot.risk.sides import risk_for
from bot.signals.regime import Regime, gates

if TYPE_CHECKING:
    from bot.data.tape import Tape

KILL_KEY = "kill_switch"

__all__ = ["KILL_KEY", "Engine", "EquityLog", "PendingOpen", "Position"]


def hedge_book(cfg: Settings) -> HedgeBook | None:
    """Hedge mode's book when `[hedge] holdings` names a file or SYM=QTY,... (else None)."""
    text = cfg.hedge.holdings.strip()
    if not text or text.lower() == "broker":
        return None
    from bot.data.holdings import parse_holdings

    return HedgeBook(cfg, parse_holdings(text))


def decay_gate(cfg: Settings) -> DecayGate | None:
    """The decay gate when `[risk] max_expected_decay_pct` is on (its rates file read once here)."""
    if cfg.risk.max_expected_decay_pct <= 0:
        return None
    from bot.risk.attribution import rates_for

    return DecayGate(cfg.risk, cfg.leveraged, rates_for(cfg.leveraged), cfg.universe.traded)


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
        # each traded symbol's rules ([risk] with its side's [risk.bull]/[risk.bear] overrides) and
        # regime gate, resolved once here: nothing per bar
        self.risks: dict[str, RiskConfig] = {s: risk_for(cfg, s) for s in cfg.universe.traded}
        self.gates: dict[str, tuple[str, RegimeGate]] = {
            getattr(cfg.universe, side): (side, rules) for side, rules in gates(cfg).items()
        }
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
        self.desk = OrderDesk(set_id, broker, journal, self._emit)
        self.orders = self.desk.orders  # working orders by client_order_id (the desk's own dict)

        self.cash = float(cfg.broker.starting_cash)
        self.pos: Position | None = None
        self.pending_open: PendingOpen | None = None
        self.last_close: dict[str, float] = {}
        self.atr = {  # own ATR per traded symbol whose rules stop on it; else the index's (ix)
            s: stops.Atr(r.atr_period)
            for s, r in self.risks.items()
            if r.atr_stop_mult > 0 and r.atr_source == "instrument"
        }
        self.decay = decay_gate(cfg)  # [risk] max_expected_decay_pct: None while off
        # the signal symbol's volatility, ATR and the overnight gaps, for stops and sizes in the index's
        # terms (`bot/risk/index.py`); None when the configuration uses none of them
        self.ix = IndexRisk.for_settings(cfg)
        self.size_zero: dict[str, int] = {}  # entries blocked at size 0, per symbol (the run's summary)
        self.last_dir: int | None = None
        self.trades: list[Trade] = []
        self.equity_log = EquityLog()
        self.tz = tz
        self._now: pd.Timestamp | int | None = None
        self._stamped: tuple[int | None, pd.Timestamp] = (None, pd.NaT)
        self.session: int | None = None
        self._bars: Mapping[str, BarTuple] = {}
        self.equity_now = self.cash
        self.limits = AccountLimits(
            cfg.risk,
            self.cash,
            killed=bool(journal and journal.get_state(KILL_KEY)),
            sides=list(self.risks.values()),
        )
        self._idle = False  # True while flat with nothing working: the next bar can take the short path
        self.n_bars = 0
        self.notional: set[str] = set()  # back-adjusted symbols, sized by notional (bot/data/basis.py)
        # the in-process broker may fill this bar's market orders at its close (daily, decided early)
        self._close_fills = bool(getattr(broker, "market_at_close", False))
        # [service] flat_by_close on intraday bars: no entry that would be held over the close (read
        # only where the engine decides); `entry_block` is a driver's own reason to refuse entries now
        svc, tf = cfg.service, cfg.data.timeframe
        self.close_guard = (
            CloseGuard(svc.flat_by_close_minutes, tf) if svc.flat_by_close and tf != "1d" else None
        )
        self.entry_block: str | None = None
        # [events]: blackouts around earnings and macro releases (bot/risk/events.py); `_event_flat` is
        # True only on a session a `flat` blackout overlaps, the one per-bar check it costs
        self.events = EventGuard.for_settings(cfg)
        self._event_flat = False
        self.event_blocks = 0  # entries refused by a blackout (the backtest's summary)
        # [hedge] holdings: hedge mode (bot/execution/hedge.py); "broker" holdings are set by the live
        # driver once it has read the account
        self.hedge: HedgeBook | None = hedge_book(cfg)

    def risk_of(self, symbol: str) -> RiskConfig:
        """The rules for a position in `symbol`: its side's, else [risk]."""
        return self.risks.get(symbol, self.risk)

    # -- the account limits' state, as drivers and status read it ------------------------------
    @property
    def killed(self) -> bool:
        return self.limits.killed

    @property
    def locked_until(self) -> int | None:
        return self.limits.locked_until

    @property
    def day_start_equity(self) -> float:
        return self.limits.day_start_equity

    @day_start_equity.setter
    def day_start_equity(self, value: float) -> None:
        self.limits.day_start_equity = value

    @property
    def peak_equity(self) -> float:
        return self.limits.peak_equity

    @peak_equity.setter
    def peak_equity(self, value: float) -> None:
        self.limits.peak_equity = value

    @property
    def locked(self) -> str | None:
        return self.limits.locked(self.session)

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

    def set_time(self, ts: pd.Timestamp) -> None:
        """The time of what a driver does outside a bar (a restart's reconciliation)."""
        self._now = ts

    # -- what a driver may ask of it ------------------------------------------------------------
    def _emit(self, kind: str, **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, data)

    def verdict(self, action: str, reason: str, **details: Any) -> None:
        """A risk decision, journaled and told to the listener."""
        if self.journal is not None:
            self.journal.risk(RiskVerdict(self.now, action, reason, details))  # type: ignore[arg-type]
        if self.on_event is not None:
            self.on_event("risk", {"action": action, "reason": reason, **details})

    def cid(self, symbol: str, signal_ts: pd.Timestamp, intent: Intent, rev: int = 0) -> str:
        return self.desk.cid(symbol, signal_ts, intent, rev)

    def protect(self, pos: Position, ts: pd.Timestamp, only: Intent | None = None, why: str = "") -> None:
        self.desk.protect(pos, ts, only, why)

    def stop_for(self, symbol: str, price: float) -> float | None:
        """The initial stop of a position in `symbol` from `price`, by every configured rule; the index's
        measures as they are now (an entry's fill comes before its bar updates them)."""
        atr = self.atr[symbol].value if symbol in self.atr else None
        risk = self.risk_of(symbol)
        if self.ix is None:
            return stops.initial_stop(risk, price, atr)
        t = self.ix.terms(symbol)
        return stops.initial_stop(risk, price, atr, t.sigma, t.lev, t.atr_frac)

    def close(self, pos: Position, why: ExitReason, reason: str) -> None:
        self.desk.close(pos, self.now, why, reason)

    def revalue(self) -> float:
        """Equity now: the cash and the position at its last known price. A bar's close marks it; a live
        driver calls this when a fill or a restart changed the books since (the bar's mark is stale)."""
        pos = self.pos
        value = pos.qty * self.last_close.get(pos.symbol, pos.entry_price) if pos is not None else 0.0
        self.equity_now = self.cash + value
        return self.equity_now

    def flatten(self, why: str) -> None:
        """Close the position (if it is not already closing) and drop a pending entry."""
        self.pending_open = None
        if self.pos is not None and not self.pos.closing:
            self.close(self.pos, ExitReason.RISK, why)

    def flat_by_close(self) -> None:
        """`[service] flat_by_close`: close the position before the close, in backtests and live alike."""
        if self.pos is not None and not self.pos.closing:
            self.verdict(
                "exit", "flat by close (leveraged products: no overnight hold)", symbol=self.pos.symbol
            )
            self.flatten("flat by close")
        self.pending_open = None

    # -- the bar -----------------------------------------------------------------------------
    def step(
        self,
        ts: pd.Timestamp | int,
        session: int,
        bars: Mapping[str, BarTuple],
        direction: int | None,
        tradable: bool = True,
        reason: str = "",
        regime: Regime | None = None,
        index_bar: BarTuple | None = None,
    ) -> None:
        """One bar. `session` is the trading date as a day number; `bars` holds the traded symbols'
        (open, high, low, close) for this bar (a symbol without a bar now is left out); `regime`: the
        signal's figures the regime gates read (only when a side is gated; read only on a decision);
        `index_bar` the signal symbol's bar, when it is valid (read only when `self.ix` is on)."""
        self._now = ts
        self.n_bars += 1
        if session != self.session:
            self._new_session(session)
        if self._idle and (direction is None or direction == self.last_dir) and self.pos is None:
            # Flat, no orders, no risk state to track, nothing to decide: equity is the cash.
            self._mark(ts, self.cash, self.cash, 0.0)
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
        if self.decay is not None:
            self.decay.update(bars)
        if self.ix is not None:
            self.ix.on_bar(session, index_bar, bars)
        hedge = self.hedge
        if hedge is not None:
            hedge.on_bar(bars)  # type: ignore[arg-type]
        pos = self.pos
        if pos is None:
            pos_value = 0.0
        else:
            pos_value = pos.qty * last_close.get(pos.symbol, pos.entry_price)
            if (
                pos.stop_cid is not None
                and not pos.closing
                and self.risks.get(pos.symbol, self.risk).trailing_stop_pct > 0
            ):
                bar = bars.get(pos.symbol)
                if bar is not None:
                    self._trail(pos, bar[1])
        if hedge is not None and hedge.qty:
            pos_value += hedge.value(last_close.get(hedge.symbol))
        cash = self.cash
        equity = cash + pos_value
        self.equity_now = equity
        self._mark(ts, equity, cash, pos_value)
        if self.limits.on:
            self._risk_checks(equity)
        if self._event_flat and self.pos is not None and not self.pos.closing:
            self._event_exit(ts)
        if direction is not None and direction != self.last_dir:
            decide(self, self.now, direction, tradable, reason, regime)
        if hedge is not None and direction is not None:
            hedge.check(self, direction)
        if self._close_fills:
            self.broker.on_close(ts, bars)  # type: ignore[attr-defined]
        self._idle = (
            self.pos is None
            and not self.orders
            and not self.limits.on
            and not self.atr
            and self.decay is None
            and self.ix is None
            and self.pending_open is None
            and hedge is None
        )

    def _mark(self, ts: pd.Timestamp | int, equity: float, cash: float, pos_value: float) -> None:
        if self.keep_equity:
            log = self.equity_log
            log.ts.append(ts)
            log.equity.append(equity)
            log.cash.append(cash)
            log.position_value.append(pos_value)
        if self.journal_equity and self.journal is not None:
            self.journal.equity(EquityPoint(self.now, equity, cash, pos_value))

    def _event_exit(self, ts: pd.Timestamp | int) -> None:
        """A `flat` event blackout has begun: close the position (journaled with the event)."""
        w = self.events.flat_due(self.events.decision_ns(ts, self.session))  # type: ignore[union-attr,arg-type]
        if w is not None and self.pos is not None:
            self.verdict("exit", w.describe(), symbol=self.pos.symbol, event=w.event.label)
            self.flatten(f"event blackout: {w.event.label}")

    def _new_session(self, session: int) -> None:
        self.session = session
        if self.events is not None:
            self._event_flat = self.events.flat_today(session)
        if self.hedge is not None:
            self.hedge.new_session()
            if self.n_bars > 1:
                self.hedge.save(self)
        self.limits.day_start_equity = self.equity_now
        if self.pos is not None and self.n_bars > 1:
            self.pos.sessions += 1

    def revise_bar(self, bars: Mapping[str, BarTuple], index_bar: BarTuple | None = None) -> None:
        """The final values of the bar last stepped on (a daily bar decided before the close): the ATR,
        the index's measures (`index_bar`: the signal symbol's final bar) and the last close follow
        them, and the trailing stop takes the day's full high, as a backtest of the same bars does
        (not on the entry day: that high may predate the entry). Nothing is decided again."""
        for sym, bar in bars.items():
            self.last_close[sym] = bar[3]
            atr = self.atr.get(sym)
            if atr is not None:
                atr.revise(bar[1], bar[2], bar[3])
            if self.decay is not None:
                self.decay.revise(sym, bar[3])
        if self.ix is not None and self.session is not None:
            self.ix.revise(self.session, index_bar, bars)
        pos = self.pos
        if pos is None or pos.sessions < 2:
            return
        if pos.stop_cid is not None and not pos.closing and self.risk_of(pos.symbol).trailing_stop_pct:
            bar = bars.get(pos.symbol)
            if bar is not None:
                self._trail(pos, bar[1])

    def apply_split(
        self,
        ts: pd.Timestamp | int,
        symbol: str,
        ratio: float,
        qty_after: float | None = None,
        source: str = "",
    ) -> None:
        """`symbol` splits `ratio` new shares per old one before the next bar (`bot/execution/splits.py`)."""
        splits.apply_split(self, ts, symbol, ratio, qty_after, source)

    def quiet_marks(self, tape: Tape, a: int, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return quiet.quiet_marks(self, tape, a, f)

    def advance(self, tape: Tape, a: int, f: int) -> None:
        """Bars a..f-1 of `tape`, on which nothing can happen, at once (`bot/execution/quiet.py`)."""
        quiet.advance(self, tape, a, f)

    def _trail(self, pos: Position, high: float) -> None:
        new = stops.trailed_stop(self.risk_of(pos.symbol), pos.stop, high)
        if new is None or pos.stop is None or new <= pos.stop * (1 + 1e-12):
            return
        pos.stop = new
        self.protect(pos, self.now, only=Intent.STOP, why="trailing stop raised")

    def _risk_checks(self, equity: float) -> None:
        pos = self.pos
        held = pos.sessions if pos is not None else None
        max_hold = self.risk_of(pos.symbol).max_hold_days if pos is not None else 0
        for hit in self.limits.check(equity, self.session, held, pos is not None and pos.closing, max_hold):
            if hit.action == "max_hold":
                self.verdict("exit", hit.reason, symbol=pos.symbol)  # type: ignore[union-attr]
                self.close(pos, ExitReason.MAX_HOLD, "max hold reached")  # type: ignore[arg-type]
            elif hit.action == "unlock":
                self.verdict("unlock", hit.reason)
            elif hit.action == "lock":
                self.verdict("lock", hit.reason, **hit.details)
                self.flatten("daily loss limit")
            else:  # kill: remembered in the journal, so a restart stays locked until `soxbot rearm`
                if self.journal is not None:
                    self.journal.set_state(KILL_KEY, f"{self.now}: {hit.reason}")
                self.verdict(
                    "kill", hit.reason + "; flatten and stay locked until `soxbot rearm`", **hit.details
                )
                self.flatten("max drawdown kill switch")

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
        if intent is not None and intent.intent is Intent.HEDGE and self.hedge is not None:
            self.cash += (-1 if f.side is Side.BUY else 1) * f.qty * f.price - f.commission
            self.hedge.on_fill(self, f)
            return
        if f.side is Side.BUY:
            self.cash -= f.qty * f.price + f.commission
            book.entry_filled(self, f, intent)
        else:
            self.cash += f.qty * f.price - f.commission
            book.exit_filled(self, f, intent)

    def _on_update(self, u: OrderRejected | OrderCanceled | SplitDetected) -> None:
        if isinstance(u, SplitDetected):
            splits.split_detected(self, u)
            return
        if isinstance(u.ts, int):
            u = dataclasses.replace(u, ts=self.stamp(u.ts))
        status = "rejected" if isinstance(u, OrderRejected) else "canceled"
        if self.journal is not None:
            self.journal.order_status(u.client_order_id, status, detail=u.reason)
        intent = self.orders.pop(u.client_order_id, None)
        if self.hedge is not None:
            self.hedge.on_end(u.client_order_id)
        self._emit(status, update=u)
        exits.after_update(self, intent, u)

    # -- end ---------------------------------------------------------------------------------
    def finish(self, ts: pd.Timestamp) -> None:
        """End of a backtest: close an open position at the last close (`end_of_data`); the hedge's
        figures are saved as they stand (it is marked in the equity, not closed)."""
        if self.hedge is not None:
            self.hedge.save(self)
        pos = self.pos
        if pos is None:
            return
        if not pos.closing:
            self.close(pos, ExitReason.END_OF_DATA, "end of data")
        else:
            self.desk.mark_end_of_data(pos.symbol)
        px = self.last_close.get(pos.symbol, pos.entry_price)
        self.broker.on_bar(ts, {pos.symbol: (px, px, px, px)})
        if self.pos is None and self.equity_log.ts and (self.hedge is None or not self.hedge.qty):
            self.equity_log.cash[-1] = self.cash
            self.equity_log.equity[-1] = self.cash
            self.equity_log.position_value[-1] = 0.0

    def rearm(self) -> None:
        self.limits.rearm()
        if self.journal is not None:
            self.journal.set_state(KILL_KEY, "")
