"""The driver behind `soxbot run` with `[broker] kind = "alpaca"`: the broker's clock, Alpaca bars, the
same engine and trailing-window signals as every other run.

Start: reconcile with the broker (open orders and positions; a position the bot opened is adopted
with its broker-side stop, anything else is reported and left alone), then warm the signals up from
history without trading. The engine's last direction is set from what the broker holds (or, when
flat, from the warm-up's last signal), so a restart never blindly re-enters.

Then, for each completed bar of the configured timeframe on the XNYS calendar, `decide(bar_close)`
fetches the new bars, validates them (`check_bar`), journals the signals, steps the engine and logs
one line per bar. Between bars it drains the broker's queued fills on this thread. A bar that does
not arrive (stale feed) is logged; after a gap, or while the feed is stale, no new entries are made.
SIGINT/SIGTERM finish the step, leave the broker-side stops in place, flush the journal and exit 0.

Time comes from a `Clock` (default: the broker's `GET /v2/clock`, extrapolated at its measured
rate, so `soxbot sandbox --speed 1000` simply runs 1000x faster). A scheduler can call `decide`
itself instead of `run` (issue 4: APScheduler on the NYSE calendar).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import pandas as pd

from bot import stops
from bot.backtest import session_labels, set_id_for
from bot.broker.alpaca import AlpacaBroker, AlpacaSetupError, Reconciliation, error_kind, parse_cid
from bot.config import ConfigError, Settings
from bot.data.alpaca_feed import AlpacaBars, bar_end, check_symbols
from bot.data.calendar import TZ, bar_starts, is_intraday, session_bounds, sessions, timeframe_delta
from bot.data.errors import DataError
from bot.data.partial import day_so_far
from bot.data.quality import check_bar
from bot.engine import Engine, Position
from bot.events import ExitReason, Intent, OrderIntent, Side
from bot.journal import Journal
from bot.live import TrailingSignals
from bot.log import get
from bot.recovery import FINAL, HeldPosition, JournalBooks, read_books
from bot.replay import StopFlag, _fmt_event
from bot.strategy import Strategy
from bot.window import live_window

log = get("soxbot.run")


# -- time ------------------------------------------------------------------------------------------------
class Clock(Protocol):
    def now(self) -> pd.Timestamp: ...  # tz-aware UTC

    def wall_seconds(self, span: pd.Timedelta) -> float: ...  # wall time that `span` of clock time takes


class BrokerClock:
    """The broker's time (`GET /v2/clock`), extrapolated between queries at the rate it is seen to run."""

    def __init__(self, get_clock: Callable[[], dict[str, Any]], resync: float = 5.0) -> None:
        self._get = get_clock
        self.resync = resync
        self.rate = 1.0
        self._sim: pd.Timestamp | None = None
        self._wall = 0.0
        self._samples = 0

    def sync(self) -> pd.Timestamp:
        for wait in (0.2, 0.5, 1.0, 2.0, 4.0, 0.0):
            try:
                c = self._get()
                break
            except Exception as exc:
                if error_kind(exc) != "ambiguous" or not wait:
                    raise
                time.sleep(wait)
        t = pd.Timestamp(c["timestamp"]).tz_convert("UTC")
        w = time.monotonic()
        if self._sim is not None and w - self._wall > 0.05:
            r = (t - self._sim).total_seconds() / (w - self._wall)
            if r > 0:
                self.rate = r if self._samples == 0 else 0.5 * self.rate + 0.5 * r
                self._samples += 1
        self._sim, self._wall = t, w
        return t

    def calibrate(self, seconds: float = 0.3) -> None:
        self.sync()
        time.sleep(seconds)
        self.sync()

    def now(self) -> pd.Timestamp:
        if self._sim is None or time.monotonic() - self._wall >= self.resync:
            self.sync()
        assert self._sim is not None
        return self._sim + pd.Timedelta(seconds=(time.monotonic() - self._wall) * self.rate)

    def wall_seconds(self, span: pd.Timedelta) -> float:
        return max(0.0, span.total_seconds() / max(self.rate, 1e-9))


# -- the bar grid ----------------------------------------------------------------------------------------
def next_bar(after: pd.Timestamp, timeframe: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(label, end UTC) of the first bar on the XNYS grid that ends after `after` (UTC)."""
    day = after.tz_convert(TZ).tz_localize(None).normalize()
    for s in sessions(day, day + pd.Timedelta(days=14)):
        if not is_intraday(timeframe):
            close = session_bounds(s)[1].tz_convert("UTC")
            if close > after:
                return s, close
            continue
        for start in bar_starts(s, timeframe):
            end = bar_end(start, timeframe)
            if end > after:
                return start, end
    raise DataError(f"no XNYS session within two weeks after {after}")


def missing_between(prev: pd.Timestamp, ts: pd.Timestamp, timeframe: str) -> int:
    """Bars expected on the grid strictly between two bar labels."""
    if not is_intraday(timeframe):
        return max(0, len(sessions(prev, ts)) - 2)
    d0 = prev.tz_convert(TZ).tz_localize(None).normalize()
    d1 = ts.tz_convert(TZ).tz_localize(None).normalize()
    n = 0
    for s in sessions(d0, d1):
        starts = bar_starts(s, timeframe)
        n += int(((starts > prev) & (starts < ts)).sum())
    return n


def _label_str(ts: pd.Timestamp) -> str:
    return str(ts.date()) if ts.tzinfo is None and ts == ts.normalize() else str(ts)


# -- the run ---------------------------------------------------------------------------------------------
@dataclass
class AlpacaRun:
    cfg: Settings
    strategies: Sequence[Strategy]
    broker: AlpacaBroker
    feed: AlpacaBars
    journal: Journal
    clock: Clock
    stop: StopFlag = field(default_factory=StopFlag)
    settle: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(seconds=2))
    tick: float = 0.1

    def __post_init__(self) -> None:
        uni = self.cfg.universe
        check_symbols([uni.signal, *uni.traded])
        self.signal = uni.signal
        self.symbols = uni.symbols
        self.tf = self.cfg.data.timeframe
        self.barlen = timeframe_delta(self.tf)
        self.events: list[str] = []
        self.set_id = set_id_for(self.cfg)
        self.engine = Engine(
            self.cfg,
            self.set_id,
            self.broker,
            self.journal,
            on_event=lambda k, d: self.events.append(_fmt_event(k, d)),
            keep_equity=False,
        )
        self.window = live_window(self.strategies)
        self.live = TrailingSignals(self.cfg, self.strategies, self.window)
        self.prev: pd.Timestamp | None = None
        self.expected: tuple[pd.Timestamp, pd.Timestamp] | None = None
        self.missed = 0
        self.stale = False
        self.foreign: set[str] = set()
        self.unknown: list[str] = []  # what reconcile could not explain: no new entries this run
        self.bars_done = 0
        self.provisional: pd.Timestamp | None = None  # daily bar decided on before the close, not final yet

    # -- start -------------------------------------------------------------------------------------------
    def reconcile(self) -> Reconciliation:
        """The broker is the source of truth; the journal says which of its orders and positions are ours.

        Orders journaled but never seen answered are looked up by client_order_id: not at the broker ->
        marked 'not_sent' and never sent late. Fills the journal lacks (a stop that filled while the bot
        was down, an entry that filled meanwhile) are journaled and booked now, in fill order. A held
        position of ours without a working stop gets one at once (flattened if that fails). Positions
        the bot did not open are reported and left alone; what cannot be explained stops new entries."""
        books = read_books(self.journal, self.set_id)
        rec = self.broker.reconcile(self.set_id, books.fills, books.pending, books.since())
        e = self.engine
        e._now = self.clock.now().tz_convert(TZ)  # the time of anything done before the first bar
        for line in rec.foreign_orders:
            log.warning("open order not made by this bot (left alone)", order=line)
        for i in [*rec.ours, *rec.missed]:
            e.orders[i.client_order_id] = books.intents.get(i.client_order_id) or self._as_engine(i)
        held = [p for p in books.positions.values() if p.symbol in self.cfg.universe.traded]
        if len(held) > 1:
            self._unknown("the journal holds " + " and ".join(f"{p.qty:g} {p.symbol}" for p in held))
        elif held:
            e.pos = self._journal_position(held[0], books, rec)
        self._deliver()
        if self._mismatch(rec.positions):  # a fill may have landed between the broker's answers: ask again
            self.broker.poll()
            self._deliver()
            rec.positions = self.broker.positions()
            rec.cash = self.broker.cash()
        e.cash = min(float(self.cfg.broker.starting_cash), rec.cash) if rec.cash > 0 else e.cash
        e.equity_now = e.day_start_equity = e.peak_equity = e.cash  # the broker's cash counts every fill
        self._settle_journal(rec)  # after their fills are journaled: a kill before this looks them up again
        self._compare(rec)
        if e.pos is not None:
            self._protect_held()
        for cid in rec.unknown:
            self._unknown(f"order {cid}: the broker could not say whether it exists")
        working_entry = next((o for o in e.orders.values() if o.intent is Intent.OPEN), None)
        held_sym = working_entry.symbol if working_entry else None
        if e.pos is not None:  # while a close works the position counts as gone, as when flat
            held_sym = None if e.pos.closing else e.pos.symbol
        if held_sym is not None:
            e.last_dir = 1 if held_sym == self.cfg.universe.bull else -1
        return rec

    def _deliver(self) -> None:
        """Queued broker events (fills the journal lacks) into the engine: journaled and booked now."""
        self.events.clear()
        if self.broker.drain(poll=False):
            log.warning("fill found at the broker, made while the bot was down: journaled now",
                        actions=" | ".join(self.events))  # fmt: skip
            self.events.clear()

    def _mismatch(self, positions: dict[str, tuple[float, float]]) -> bool:
        e = self.engine
        mine = {e.pos.symbol: e.pos.qty} if e.pos is not None else {}
        watched = set(mine) | {o.symbol for o in e.orders.values()}
        return any(abs(positions.get(s, (0.0, 0.0))[0] - mine.get(s, 0.0)) > 1e-9 for s in watched)

    def _settle_journal(self, rec: Reconciliation) -> None:
        statuses = {cid: st for cid, st in rec.found.items() if st in FINAL}
        for cid in rec.not_sent:
            statuses[cid] = "not_sent"
            log.warning("journaled order never reached the broker: not sent, and never will be", cid=cid)
        self.journal.mark_unanswered(statuses)

    def _unknown(self, what: str, when: str = "at start") -> None:
        """A state the bot cannot explain: say so loudly and make no new entries (exits still work) until
        a person has looked and restarted the bot (a restart reconciles again)."""
        self.unknown.append(what)
        log.error(f"unknown state {when}: no new entries this run", what=what)
        self.engine._verdict("alert", f"unknown state {when}: {what}; no new entries until a restart")

    def check_positions(self, when: str) -> str | None:
        """The broker's positions in the traded symbols against the engine's (pre-open, end of day). A
        difference the bot did not make (a position closed or opened by hand, a fill it never heard of)
        is an unknown state: alerted, and no new entries. Returns what differs, or None."""
        e, b = self.engine, self.broker
        traded = set(self.cfg.universe.traded) - self.foreign
        for attempt in range(2):
            try:
                held = {s: q for s, (q, _) in b.positions().items() if s in traded}
            except Exception as exc:
                log.warning("positions check failed", error=str(exc))
                return None
            mine = {e.pos.symbol: e.pos.qty} if e.pos is not None else {}
            if all(abs(held.get(s, 0.0) - mine.get(s, 0.0)) <= 1e-9 for s in held.keys() | mine.keys()):
                return None
            if attempt == 0:  # a fill may be on its way: ask for it, then compare again
                b.poll()
                self.pump(0)
        what = f"the engine holds {_holding(mine)}, the broker {_holding(held)}"
        if what not in self.unknown:
            self._unknown(what, when)
        return what

    def _as_engine(self, i: OrderIntent) -> OrderIntent:
        """A broker order the journal does not know, as the engine would have made it."""
        p = parse_cid(i.client_order_id)
        ts = i.ts if p is None else self._signal_ts(p.signal_ts)
        why = {Intent.STOP: ExitReason.STOP_LOSS, Intent.TAKE_PROFIT: ExitReason.TAKE_PROFIT}.get(i.intent)
        return replace(i, ts=ts, exit_reason=why or (ExitReason.SIGNAL if i.side is Side.SELL else None))

    def _signal_ts(self, parsed: pd.Timestamp) -> pd.Timestamp:
        return parsed.tz_localize("UTC").tz_convert(TZ) if is_intraday(self.tf) else parsed

    def _journal_position(self, held: HeldPosition, books: JournalBooks, rec: Reconciliation) -> Position:
        entry = books.intents.get(held.entry_cid)
        parsed = parse_cid(held.entry_cid)
        signal_ts = held.entry_time if parsed is None else self._signal_ts(parsed.signal_ts)
        signal_ts = entry.ts if entry is not None else signal_ts  # as the engine made it: stop ids follow it
        pos = Position(held.symbol, held.qty, held.entry_price, held.entry_time, signal_ts, held.commission)
        self._orders_onto(pos, [*books.intents.values(), *rec.ours])
        return pos

    def _orders_onto(self, pos: Position, known: Sequence[OrderIntent]) -> None:
        """The position's protective orders: the working ones, else the last journaled stop (its level
        and revision), so a new stop continues the id sequence instead of reusing a spent id."""
        b, mine = self.broker, [i for i in known if i.symbol == pos.symbol]
        work = [i for i in mine if b.working(i.client_order_id)]
        stop = max((i for i in work if i.intent is Intent.STOP), key=_rev, default=None)
        if stop is not None:
            p = parse_cid(stop.client_order_id)
            pos.signal_ts = self._signal_ts(p.signal_ts) if p is not None else pos.signal_ts
        base = self.engine._cid(pos.symbol, pos.signal_ts, Intent.STOP)
        ours = [i for i in mine if i.client_order_id == base or i.client_order_id.startswith(base + "-r")]
        last = stop or max(ours, key=_rev, default=None)
        if last is not None:
            pos.stop, pos.stop_cid = last.stop_price, last.client_order_id
        pos.stop_rev = max((_rev(i) for i in [*ours, *([stop] if stop else [])]), default=0)
        tp = next((i for i in work if i.intent is Intent.TAKE_PROFIT), None)
        if tp is not None:
            pos.take_profit, pos.tp_cid = tp.limit_price, tp.client_order_id
        pos.closing = any(i.intent is Intent.CLOSE for i in work)

    def _compare(self, rec: Reconciliation) -> None:
        e = self.engine
        pos = e.pos
        traded = self.cfg.universe.traded
        if pos is not None:
            qty = rec.positions.get(pos.symbol, (0.0, 0.0))[0]
            if abs(qty - pos.qty) > 1e-9:
                self._unknown(f"the journal holds {pos.qty:g} {pos.symbol}, the broker {qty:g}")
                pos.qty = qty  # the broker is the source of truth
                if qty <= 1e-9:
                    e.pos = None
        for sym, (qty, avg) in rec.positions.items():
            ours = [i for i in rec.ours if i.symbol == sym and i.side is Side.SELL]
            if sym not in traded:
                log.warning("position not managed by soxbot (left alone)", symbol=sym, qty=qty)
            elif e.pos is not None and e.pos.symbol == sym:
                log.info("position held per journal and broker", symbol=sym, qty=qty, stop=e.pos.stop)
            elif not ours and e.pos is None and self.cfg.broker.foreign_positions == "adopt":
                self._adopt(sym, qty, avg, [])
                px = self._price_now(sym) or avg  # its stop guards from here, not from an old entry price
                self.engine.pos.stop = stops.initial_stop(self.cfg.risk, px, None)  # type: ignore[union-attr]
                why = "([broker] foreign_positions = 'adopt'); it gets a protective stop"
                e._verdict(
                    "alert", f"{qty:g} {sym} held at the broker without this bot's orders: adopted {why}"
                )
            elif not ours or e.pos is not None:
                self.foreign.add(sym)
                e._verdict("alert", f"{qty:g} {sym} held at the broker without this bot's orders: left "
                           "alone; no new entries while it is held", symbol=sym)  # fmt: skip
                log.warning(
                    "position in a traded symbol without this bot's orders: left alone; no new entries while "
                    "it is held (never hold bull and bear at once)",
                    symbol=sym,
                    qty=qty,
                )
            else:
                self._adopt(sym, qty, avg, ours)

    def _adopt(self, sym: str, qty: float, avg: float, ours: list[Any]) -> None:
        """A position the journal does not know but our working orders guard (e.g. a new journal file)."""
        e = self.engine
        parsed = [p for p in (parse_cid(i.client_order_id) for i in ours) if p is not None]
        signal_ts = self._signal_ts(parsed[0].signal_ts) if parsed else self.clock.now().tz_convert(TZ)
        e.pos = Position(sym, qty, avg, self.clock.now().tz_convert(TZ), signal_ts, 0.0)
        self._orders_onto(e.pos, ours)
        e.cash = max(0.0, e.cash)
        log.info("position adopted from the broker", symbol=sym, qty=qty, avg=avg, stop=e.pos.stop)

    def _price_now(self, sym: str) -> float | None:
        try:
            p = self.broker.client.get_open_position(sym)
            px = float((p.get if isinstance(p, dict) else lambda k: getattr(p, k, None))("current_price"))
        except Exception as exc:  # no price: the stop falls back to the average entry
            log.warning("current price not available", symbol=sym, error=str(exc))
            return None
        return px if px > 0 else None

    def _protect_held(self) -> None:
        """A held position of ours has a working stop at the broker (or a close order working), or gets
        one now through the engine's own path (deterministic id); if that fails, it is flattened."""
        e, b = self.engine, self.broker
        pos = e.pos
        if pos is None or pos.closing or (pos.stop_cid is not None and b.working(pos.stop_cid)):
            return
        if pos.stop is None:
            pos.stop = stops.initial_stop(self.cfg.risk, pos.entry_price, None)
        if pos.stop is None:
            return  # no stop rule configured: the engine never places one
        log.warning("no protective stop at the broker: stop placed on restart", symbol=pos.symbol,
                    qty=pos.qty, stop=round(pos.stop, 4))  # fmt: skip
        e._verdict("alert", f"{pos.qty:g} {pos.symbol} had no protective stop at the broker: stop placed "
                   f"at {pos.stop:.4f} on restart", symbol=pos.symbol)  # fmt: skip
        e._protect(pos, e.now, only=Intent.STOP, why="protective stop placed on restart")
        b.drain(poll=False)  # a refusal reaches the engine, which flattens
        pos = e.pos
        if pos is not None and not pos.closing and not (pos.stop_cid is not None and b.working(pos.stop_cid)):
            e._verdict("alert", "protective stop could not be placed on restart: flatten", symbol=pos.symbol)
            e._close(pos, ExitReason.RISK, "no protective stop on restart")
            b.drain(poll=False)

    def warm_up(self) -> None:
        """History into the trailing window; no trading. Leaves the first bar to decide on in `expected`."""
        now = self.clock.now()
        per_day = 1 if not is_intraday(self.tf) else max(1, round(390 / (self.barlen.seconds / 60)))
        days = math.ceil(self.window / per_day * 1.5) + 10
        hist = self.feed.history(self.symbols, now - pd.Timedelta(days=days), now)
        sig = hist[self.signal].iloc[-self.window :]
        n = 0
        for ts, row in sig.iterrows():
            if check_bar(self.signal, ts, row.open, row.high, row.low, row.close, row.volume, self.prev):
                continue
            dec = self.live.push(ts, row.open, row.high, row.low, row.close, row.volume)
            self.prev = ts
            n += 1
        e = self.engine
        for sym in self.cfg.universe.traded:
            df = hist.get(sym)
            if df is None or df.empty:
                continue
            e.last_close[sym] = float(df["close"].iloc[-1])
            if sym in e.atr:
                for _, r in df.iloc[-self.window :].iterrows():
                    e.atr[sym].update(float(r.high), float(r.low), float(r.close))
        if e.last_dir is None and n and dec.direction is not None:
            e.last_dir = dec.direction  # flat at the broker: wait for the next change, never re-enter blindly
        after = bar_end(self.prev, self.tf) if self.prev is not None else now
        self.expected = next_bar(max(after, now - self.barlen) if self.prev is None else after, self.tf)
        log.info(
            "warm-up done",
            bars=n,
            needed=self.live.warmup + 1,
            window=self.window,
            last=_label_str(self.prev) if self.prev is not None else "-",
            direction=e.last_dir,
            position=f"{e.pos.qty:g} {e.pos.symbol}" if e.pos else "flat",
        )

    # -- one decision ------------------------------------------------------------------------------------
    def decide(self, bar_close: pd.Timestamp) -> pd.Timestamp | None:
        """Fetch and act on every new completed bar up to `bar_close`; returns the label of the last bar
        processed, or None when nothing new has arrived yet."""
        now = self.clock.now()
        start = (
            _utc_label(self.prev) + pd.Timedelta(seconds=1)
            if self.prev is not None
            else now - 3 * self.barlen
        )
        try:
            new = self.feed.fetch(self.symbols, start, min(now, bar_close + self.settle))
        except DataError as exc:
            log.warning("bars fetch failed", error=str(exc))
            return None
        sig = new[self.signal]
        rows = [
            (ts, r)
            for ts, r in sig.iterrows()
            if (self.prev is None or ts > self.prev) and bar_end(ts, self.tf) <= now
        ]
        if not rows:
            return None
        self._check_foreign()
        last = None
        for k, (ts, r) in enumerate(rows):
            self._step(ts, r, self._traded_bars(new, ts), catch_up=k < len(rows) - 1)
            last = ts
        return last

    # -- daily bars decided before the close ---------------------------------------------------------
    def decide_early(self, at: pd.Timestamp) -> pd.Timestamp | None:
        """Daily bars, decided at `at` before the close (`[service] daily_decision_offset_minutes`) on the
        day's bar so far, built from the 1-minute bars that ended by then. Orders go out while the market
        is open and fill near that moment's price; backtests model this as a fill at the day's close.

        First the completed daily bars since the last decision come in: the one decided on early is
        revised to its final values (signals, ATR, trailing stop; nothing is decided again), a session
        missed entirely is stepped as a catch-up (exits only). Returns the session decided, or None."""
        now = self.clock.now()
        self._complete_days(now)
        session = pd.Timestamp(at).tz_convert(TZ).tz_localize(None).normalize()
        if self.prev is not None and session <= self.prev:
            return None  # decided already
        open_ = session_bounds(session)[0].tz_convert("UTC")
        try:
            mins = self.feed.fetch(self.symbols, open_, min(now, at), "1m")
        except DataError as exc:
            log.warning("the day's bar so far could not be fetched: no decision", error=str(exc))
            return None
        one = pd.Timedelta(minutes=1)
        day = {s: day_so_far(mins.get(s, pd.DataFrame()), session, at, one) for s in self.symbols}
        sig = day[self.signal]
        if sig is None:
            log.warning("no 1-minute bars yet today: no decision", symbol=self.signal, at=str(at))
            return None
        extra = []
        if at - sig.last_end > pd.Timedelta(minutes=15):  # a thin feed: the "day so far" is old
            extra.append(f"day so far ends {sig.last_end.tz_convert(TZ):%H:%M}")
        traded = {}
        for sym in self.cfg.universe.traded:
            d = day.get(sym)
            if (
                d is not None
                and check_bar(sym, session, d.open, d.high, d.low, d.close, d.volume, None) is None
            ):
                traded[sym] = (d.open, d.high, d.low, d.close)
        row = pd.Series({"open": sig.open, "high": sig.high, "low": sig.low, "close": sig.close,
                         "volume": sig.volume})  # fmt: skip
        self._step(session, row, traded, catch_up=False, extra_why_not=extra, so_far=sig.bars)
        if self.prev == session:
            self.provisional = session
        return session

    def _complete_days(self, now: pd.Timestamp) -> None:
        """Completed daily bars since the last one seen: the provisional one revised, missed ones stepped."""
        start = self.provisional if self.provisional is not None else self.prev
        if start is None:
            return
        start_utc = _utc_label(start) + (
            pd.Timedelta(0) if self.provisional is not None else pd.Timedelta(seconds=1)
        )
        try:
            new = self.feed.fetch(self.symbols, start_utc, now)
        except DataError as exc:
            log.warning("bars fetch failed", error=str(exc))
            return
        rows = [(ts, r) for ts, r in new[self.signal].iterrows() if bar_end(ts, self.tf) <= now]
        for ts, r in rows:
            traded = self._traded_bars(new, ts)
            if ts == self.provisional:
                if check_bar(self.signal, ts, r.open, r.high, r.low, r.close, r.volume, None) is None:
                    self.live.revise(ts, r.open, r.high, r.low, r.close, r.volume)
                self.events.clear()
                self.engine.revise_bar(traded)
                self.broker.drain()
                log.info("day completed", ts=_label_str(ts), close=round(float(r.close), 2),
                         **({"actions": " | ".join(self.events)} if self.events else {}))  # fmt: skip
                self.events.clear()
                self.provisional = None
            elif self.prev is None or ts > self.prev:
                self.provisional = None
                self._step(ts, r, traded, catch_up=True)

    def _traded_bars(self, new: dict[str, pd.DataFrame], ts: pd.Timestamp) -> dict:
        traded = {}
        for sym in self.cfg.universe.traded:
            df = new.get(sym)
            if df is not None and ts in df.index:
                t = df.loc[ts]
                if check_bar(sym, ts, t.open, t.high, t.low, t.close, t.volume, None) is None:
                    traded[sym] = (float(t.open), float(t.high), float(t.low), float(t.close))
        return traded

    def _step(
        self,
        ts: pd.Timestamp,
        r: pd.Series,
        traded: dict,
        catch_up: bool,
        extra_why_not: Sequence[str] = (),
        so_far: int = 0,
    ) -> None:
        e = self.engine
        session = int(session_labels(pd.DatetimeIndex([ts]))[0])
        self.events.clear()
        bad = check_bar(self.signal, ts, r.open, r.high, r.low, r.close, r.volume, self.prev)
        if bad is not None:
            log.warning("bad bar rejected", symbol=self.signal, ts=str(ts), reason=bad)
            e.step(ts, session, traded, None)
            self.broker.drain()
            return
        why_not = list(extra_why_not)
        if self.prev is not None and missing_between(self.prev, ts, self.tf) > self.cfg.data.max_gap_bars:
            why_not.append(f"gap of {missing_between(self.prev, ts, self.tf)} bars")
        if self.stale:
            why_not.append("feed was stale")
        if catch_up:
            why_not.append("catching up")
        if self.foreign:
            why_not.append(f"foreign position in {','.join(sorted(self.foreign))}")
        if self.unknown:
            why_not.append("unknown state (see the alert)")
        if e.pos is None and any(o.intent is Intent.OPEN for o in e.orders.values()):
            why_not.append("entry order working")
        missing = [s for s in self.cfg.universe.traded if s not in traded]
        if missing:
            why_not.append(f"no bar for {','.join(missing)}")
        self.prev = ts
        self.stale = False
        self.missed = 0
        dec = self.live.push(ts, r.open, r.high, r.low, r.close, r.volume)
        for name, (d, why, vals) in dec.per_strategy.items():
            self.journal.signal(ts, self.signal, name, d, why, vals)
        direction = dec.direction
        self.journal.signal(ts, self.signal, "combined", 0 if direction is None else direction, dec.reason)
        e.step(ts, session, traded, direction, not why_not, dec.reason)
        self.broker.drain()
        self.bars_done += 1
        pos = e.pos
        log.info(
            "bar" if not so_far else "day so far",
            ts=_label_str(ts),
            **({"minute_bars": so_far} if so_far else {}),
            close=round(float(r.close), 2),
            signal="warm-up" if direction is None else f"{direction:+d}",
            why=dec.reason if direction is not None else f"{self.live.count}/{self.live.warmup + 1} bars",
            **({"no_entries": "; ".join(why_not)} if why_not else {}),
            pos=f"{pos.qty:g} {pos.symbol}" if pos else "flat",
            equity=round(e.equity_now, 2),
            **({"actions": " | ".join(self.events)} if self.events else {}),
        )
        self.events.clear()

    def _check_foreign(self) -> None:
        if not self.foreign:
            return
        try:
            held = {str(p["symbol"]) for p in self.broker.client.get_all_positions()}
        except Exception as exc:
            log.warning("positions check failed", error=str(exc))
            return
        gone = self.foreign - held
        if gone:
            log.info("foreign position gone; entries allowed again", symbols=",".join(sorted(gone)))
        self.foreign &= held

    # -- the loop ----------------------------------------------------------------------------------------
    def pump(self, seconds: float) -> None:
        """Wait up to `seconds` of wall time, delivering broker events as they come."""
        end = time.monotonic() + seconds
        while not self.stop.event.is_set():
            self.events.clear()
            if self.broker.drain():
                pos = self.engine.pos
                log.info(
                    "broker",
                    actions=" | ".join(self.events),
                    pos=f"{pos.qty:g} {pos.symbol}" if pos else "flat",
                )
                self.events.clear()
            left = end - time.monotonic()
            if left <= 0:
                return
            self.stop.event.wait(min(self.tick, left))

    def run(self, max_bars: int = 0) -> None:
        assert self.expected is not None, "call warm_up() first"
        while not self.stop.event.is_set():
            if max_bars and self.bars_done >= max_bars:
                break
            label, end = self.expected
            now = self.clock.now()
            due = end + self.settle
            if now < due:
                self.pump(min(self.clock.wall_seconds(due - now), 2.0))
                continue
            last = self.decide(end)
            if last is not None:
                self.expected = next_bar(bar_end(last, self.tf), self.tf)
                continue
            if now >= end + 2 * self.barlen:  # the bar never came: move on, and say so
                self.missed += 1
                log.warning("bar missing", expected=_label_str(label), missed=self.missed)
                if self.missed >= 2 and not self.stale:
                    self.stale = True
                    log.warning("data stale: no new bar for 2 bar lengths; no new entries until data is back")
                self.expected = next_bar(end, self.tf)
                continue
            self.pump(min(max(self.clock.wall_seconds(self.barlen / 20), 0.05), 2.0))


def _holding(qty: dict[str, float]) -> str:
    return ", ".join(f"{q:g} {s}" for s, q in sorted(qty.items())) or "flat"


def _rev(i: OrderIntent) -> int:
    p = parse_cid(i.client_order_id)
    return p.revision if p is not None else 0


def _utc_label(ts: pd.Timestamp) -> pd.Timestamp:
    return (ts.tz_localize(TZ) if ts.tzinfo is None else ts).tz_convert("UTC")


def run_alpaca(cfg: Settings, source: str, live_flag: bool) -> int:
    """`soxbot run` with `[broker] kind = "alpaca"`: returns the exit code."""
    from bot.assemble import build_strategies

    try:
        if cfg.data.source != "alpaca":
            raise ConfigError(
                "[broker] kind = 'alpaca' trades on Alpaca's bars: set [data] source = 'alpaca' "
                "(and [data] base_url for the sandbox)."
            )
        strategies = build_strategies(cfg, source)
        journal = Journal(cfg.journal.path)
        broker = AlpacaBroker(
            cfg.broker,
            live_flag,
            timeout=float(os.environ.get("SOXBOT_ALPACA_TIMEOUT", "10")),  # seconds per request
            fractional=cfg.risk.fractional,
            on_status=lambda cid, st, bid, detail: journal.order_status(cid, st, bid, detail),
        )
        key, secret = _keys(cfg)
        feed = AlpacaBars(cfg.data, key, secret)
        clock = BrokerClock(broker.client.get_clock)
        clock.calibrate()
        r = AlpacaRun(cfg, strategies, broker, feed, journal, clock)
    except (ConfigError, DataError, AlpacaSetupError) as exc:
        log.error(str(exc))
        return 2
    r.stop.install()
    logging.getLogger("alpaca").setLevel(logging.WARNING)  # the SDK's own INFO lines repeat ours
    mode = "live-alpaca" if not broker.paper else "paper-alpaca"
    journal.start_run(mode, r.set_id, json.loads(cfg.model_dump_json()), False)
    status = "ok"
    loop = None
    try:
        log.info(
            "alpaca start",
            mode=mode,
            trading=cfg.broker.base_url,
            data=f"{cfg.data.base_url} ({cfg.data.feed})",
            stream=broker.stream_url,
            signal=cfg.universe.signal,
            bull=cfg.universe.bull or "-",
            bear=cfg.universe.bear or "-",
            timeframe=cfg.data.timeframe,
            clock_rate=f"{clock.rate:.4g}x",
        )
        if cfg.service.scheduler:  # the market-aware service: NYSE schedule, /healthz, /metrics, alerts
            from bot.service.runner import ServiceLoop

            loop = ServiceLoop(r, cfg)  # before reconciling: what the restart finds reaches the webhook too
        broker.start()
        r.reconcile()
        r.warm_up()
        if loop is not None:
            loop.serve(cfg.run.max_bars)
        else:
            r.run(cfg.run.max_bars)
        if r.stop.event.is_set():
            status = "stopped"
    except DataError as exc:
        log.error(str(exc))
        status = "error"
    finally:
        broker.drain()
        broker.close()
        if loop is not None:
            loop.alerts.close(2.0)  # serve() closes them too; a failed start must not lose its alerts
        s = broker.stats
        e = r.engine
        log.info(
            "alpaca end",
            bars=r.bars_done,
            trades=len(e.trades),
            position=f"{e.pos.qty:g} {e.pos.symbol}" if e.pos else "flat",
            fills_stream=s.fills_stream,
            fills_poll=s.fills_poll + s.fills_submit,
            sends=s.sends,
            resends=s.resends,
            adopted=s.adopted,
            ambiguous=s.ambiguous,
            note="broker-side stops stay in place",
        )
        journal.end_run(status)
        journal.close()
    return 0 if status in ("ok", "stopped") else 1


def _keys(cfg: Settings) -> tuple[str | None, str | None]:
    b = cfg.broker
    return (
        b.api_key.get_secret_value() if b.api_key else None,
        b.secret_key.get_secret_value() if b.secret_key else None,
    )


__all__ = ["AlpacaRun", "BrokerClock", "Clock", "missing_between", "next_bar", "run_alpaca"]
