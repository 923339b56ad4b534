"""The live driver's bar loop: Alpaca bars in, the same engine and trailing-window signals as every
other run, orders out through the Alpaca adapter.

Start (`start.py`): reconcile with the broker (`restart.py`), then warm the signals up from history
without trading. The engine's last direction is set from what the broker holds (or, when flat, from
the warm-up's last signal), so a restart never blindly re-enters.

Then, for each completed bar of the configured timeframe on the XNYS calendar, `decide(bar_close)`
fetches the new bars, validates them (`check_bar`), journals the signals, steps the engine and logs
one line per bar. Between bars it drains the broker's queued fills on this thread. A bar that does
not arrive (stale feed) is logged; after a gap, or while the feed is stale, no new entries are made.
SIGINT/SIGTERM finish the step, leave the broker-side stops in place, flush the journal and exit 0.
A scheduler (the service) calls `decide` itself instead of `run`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from bot.broker.alpaca import AlpacaBroker, Reconciliation
from bot.core.config import Settings
from bot.core.events import Intent
from bot.core.log import get
from bot.data.alpaca_feed import AlpacaBars, bar_end, check_symbols
from bot.data.calendar import TZ, is_intraday, session_bounds, timeframe_delta
from bot.data.errors import DataError
from bot.data.partial import day_so_far
from bot.data.quality import check_bar
from bot.execution.engine import Engine
from bot.execution.hedge import HedgeBook
from bot.journal.journal import Journal
from bot.run.alpaca.clock import Clock, label_str, missing_between, next_bar, utc_label
from bot.run.alpaca.restart import Restart
from bot.run.backtest import session_labels, set_id_for
from bot.run.replay import StopFlag, _fmt_event
from bot.signals.live import TrailingSignals
from bot.signals.regime import regime_window
from bot.signals.strategy import Strategy
from bot.signals.window import live_window

log = get("soxbot.run")


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
        self.history = max(self.window, regime_window(self.cfg))  # bars warmed up: the gates' too
        self.live = TrailingSignals(self.cfg, self.strategies, self.window)
        self.prev: pd.Timestamp | None = None
        self.expected: tuple[pd.Timestamp, pd.Timestamp] | None = None
        self.missed = 0
        self.stale = False
        self.bars_done = 0
        self.provisional: pd.Timestamp | None = None  # daily bar decided on before the close, not final yet

        self.restart = Restart(
            self.cfg, self.engine, self.broker, self.journal, self.clock, self.events, self.pump
        )
        self.foreign = self.restart.foreign  # shared: the bar loop blocks entries while they are not empty
        self.unknown = self.restart.unknown
        self._hedge_symbols()

    # -- start and checkpoints (restart.py) -------------------------------------------------------------
    def reconcile(self) -> Reconciliation:
        rec = self.restart.reconcile()
        adopt_hedge(self.cfg, self.engine, self.broker)
        self._hedge_symbols()
        return rec

    def _hedge_symbols(self) -> None:
        """Hedge mode: the holdings', index's and fund's bars are fetched with the others."""
        h = self.engine.hedge
        extra = [s for s in h.symbols_needed if s not in self.symbols] if h is not None else []
        if extra:
            check_symbols(extra)
            self.symbols = [*self.symbols, *extra]

    def check_positions(self, when: str) -> str | None:
        return self.restart.check_positions(when)

    def warm_up(self) -> None:
        """History into the trailing window; no trading. Leaves the first bar to decide on in `expected`."""
        now = self.clock.now()
        per_day = 1 if not is_intraday(self.tf) else max(1, round(390 / (self.barlen.seconds / 60)))
        ix = self.engine.ix
        need = max(self.history, ix.history_bars if ix is not None else 0)
        if self.engine.hedge is not None:  # its betas: beta_window daily returns
            need = max(need, (self.engine.hedge.cfg.beta_window + 2) * per_day)
        days = math.ceil(need / per_day * 1.5) + 10
        hist = self.feed.history(self.symbols, now - pd.Timedelta(days=days), now)
        if ix is not None:
            self._warm_index(hist, need)
            pos = self.engine.pos
            if pos is not None and pos.stop is None and not pos.closing:
                # a held position whose stop rules needed the index's measures: guarded from today's price
                px = self.restart._price_now(pos.symbol) or self.engine.last_close.get(pos.symbol)
                pos.stop = self.engine.stop_for(pos.symbol, px or pos.entry_price)
                self.restart._protect_held()
        sig = hist[self.signal].iloc[-self.history :]
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
            if e.decay is not None:
                e.decay.update_closes(sym, df["close"].iloc[-self.window :].astype(float).tolist())
        if e.hedge is not None:
            warm_hedge(e.hedge, hist)
        if e.last_dir is None and n and dec.direction is not None:
            e.last_dir = dec.direction  # flat at the broker: wait for the next change, never re-enter blindly
        after = bar_end(self.prev, self.tf) if self.prev is not None else now
        self.expected = next_bar(max(after, now - self.barlen) if self.prev is None else after, self.tf)
        log.info(
            "warm-up done",
            bars=n,
            needed=self.live.warmup + 1,
            window=self.window,
            last=label_str(self.prev) if self.prev is not None else "-",
            direction=e.last_dir,
            position=f"{e.pos.qty:g} {e.pos.symbol}" if e.pos else "flat",
        )
        self._tell_unsizable()

    def _warm_index(self, hist: dict[str, pd.DataFrame], need: int) -> None:
        """The signal's volatility, ATR and the overnight gaps from history, as the bars would have
        fed them (`bot/risk/index.py`)."""
        ix = self.engine.ix
        sig = hist[self.signal].iloc[-need:]
        if sig.empty or ix is None:
            return
        sessions = session_labels(pd.DatetimeIndex(sig.index))
        for k, (ts, r) in enumerate(sig.iterrows()):
            ok = check_bar(self.signal, ts, r.open, r.high, r.low, r.close, r.volume, None) is None
            ib = (float(r.open), float(r.high), float(r.low), float(r.close)) if ok else None
            ix.on_bar(int(sessions[k]), ib, self._traded_bars(hist, ts))

    def _tell_unsizable(self) -> None:
        """A side whose last price is above what the account can buy of it: said once, at start."""
        from bot.risk.sizable import sides, unsizable

        e = self.engine
        for side, sym in sides(self.cfg):
            px = e.last_close.get(sym)
            if px is None or sym in e.notional:
                continue
            rules = self.cfg.model_copy(update={"risk": e.risk_of(sym)})  # the side's own size and stop
            u = unsizable(rules, side, sym, [px], ["now"], e.equity_now)
            if u is not None:
                log.warning(u.message(self.cfg.risk.fractional))

    # -- one decision ------------------------------------------------------------------------------------
    def decide(self, bar_close: pd.Timestamp) -> pd.Timestamp | None:
        """Fetch and act on every new completed bar up to `bar_close`; returns the label of the last bar
        processed, or None when nothing new has arrived yet."""
        now = self.clock.now()
        start = (
            utc_label(self.prev) + pd.Timedelta(seconds=1) if self.prev is not None else now - 3 * self.barlen
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
        start_utc = utc_label(start) + (
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
                ib = None
                if check_bar(self.signal, ts, r.open, r.high, r.low, r.close, r.volume, None) is None:
                    self.live.revise(ts, r.open, r.high, r.low, r.close, r.volume)
                    ib = (float(r.open), float(r.high), float(r.low), float(r.close))
                self.events.clear()
                self.engine.revise_bar(traded, ib)
                self.broker.drain()
                log.info("day completed", ts=label_str(ts), close=round(float(r.close), 2),
                         **({"actions": " | ".join(self.events)} if self.events else {}))  # fmt: skip
                self.events.clear()
                self.provisional = None
            elif self.prev is None or ts > self.prev:
                self.provisional = None
                self._step(ts, r, traded, catch_up=True)

    def _traded_bars(self, new: dict[str, pd.DataFrame], ts: pd.Timestamp) -> dict:
        traded = {}
        h = self.engine.hedge
        for sym in [*self.cfg.universe.traded, *(h.symbols_needed if h is not None else ())]:
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
        ib = (float(r.open), float(r.high), float(r.low), float(r.close)) if e.ix is not None else None
        e.step(ts, session, traded, direction, not why_not, dec.reason, dec.regime, ib)
        self.broker.drain()
        self.bars_done += 1
        pos = e.pos
        log.info(
            "bar" if not so_far else "day so far",
            ts=label_str(ts),
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
                log.warning("bar missing", expected=label_str(label), missed=self.missed)
                if self.missed >= 2 and not self.stale:
                    self.stale = True
                    log.warning("data stale: no new bar for 2 bar lengths; no new entries until data is back")
                self.expected = next_bar(end, self.tf)
                continue
            self.pump(min(max(self.clock.wall_seconds(self.barlen / 20), 0.05), 2.0))


def warm_hedge(book: HedgeBook, hist: dict[str, pd.DataFrame]) -> None:
    """Hedge mode's daily returns from history, session by session as the bars would have fed them."""
    ref = hist.get(book.index)
    if ref is None or ref.empty:
        return
    days = session_labels(pd.DatetimeIndex(ref.index))
    frames = {s: hist[s] for s in book.symbols_needed if s in hist}
    prev_day = None
    for k, ts in enumerate(ref.index):
        if prev_day is not None and days[k] != prev_day:
            book.new_session()
        prev_day = days[k]
        bars = {}
        for s, df in frames.items():
            if ts in df.index:
                t = df.loc[ts]
                bars[s] = (float(t.open), float(t.high), float(t.low), float(t.close))
        book.on_bar(bars)


def adopt_hedge(cfg: Settings, e: Engine, broker: AlpacaBroker) -> None:
    """Hedge mode at start: "broker" holdings are read from the account (its positions outside the bot's
    own symbols), and a position in the hedge's fund is the hedge's (in hedge mode nothing else of the
    bot's holds that fund), journaled."""
    h = cfg.hedge
    text = h.holdings.strip()
    if not text:
        return
    positions = broker.client.get_all_positions()
    if e.hedge is None and text.lower() == "broker":
        from bot.run.hedge_cmd import broker_holdings

        own = {*cfg.universe.symbols, h.instrument, h.index}
        e.hedge = HedgeBook(cfg, broker_holdings(positions, own))
        e.verdict("hedge", f"hedge mode: holdings at the broker {e.hedge.holdings}")
    if e.hedge is None:
        return
    held = next((float(p.qty) for p in positions if p.symbol == h.instrument), 0.0)
    if held > 0:
        e.hedge.qty = held
        e.verdict("hedge", f"hedge adopted: {held:g} {h.instrument} held at the broker", qty=held)
