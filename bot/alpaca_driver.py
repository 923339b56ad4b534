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
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from bot.backtest import session_labels, set_id_for
from bot.broker.alpaca import AlpacaBroker, AlpacaSetupError, Reconciliation, error_kind, parse_cid
from bot.config import ConfigError, Settings
from bot.data.alpaca_feed import AlpacaBars, bar_end, check_symbols
from bot.data.calendar import TZ, bar_starts, is_intraday, session_bounds, sessions, timeframe_delta
from bot.data.errors import DataError
from bot.data.quality import check_bar
from bot.engine import Engine, Position
from bot.events import Intent, Side
from bot.journal import Journal
from bot.live import TrailingSignals
from bot.log import get
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
        self.bars_done = 0

    # -- start -------------------------------------------------------------------------------------------
    def reconcile(self) -> Reconciliation:
        rec = self.broker.reconcile(self.set_id)
        e = self.engine
        e.cash = min(float(self.cfg.broker.starting_cash), rec.cash) if rec.cash > 0 else e.cash
        e.equity_now = e.day_start_equity = e.peak_equity = e.cash
        for line in rec.foreign_orders:
            log.warning("open order not made by this bot (left alone)", order=line)
        for sym, (qty, avg) in rec.positions.items():
            ours = [i for i in rec.ours if i.symbol == sym and i.side is Side.SELL]
            if sym not in self.cfg.universe.traded:
                log.warning("position not managed by soxbot (left alone)", symbol=sym, qty=qty)
            elif not ours:
                self.foreign.add(sym)
                log.warning(
                    "position in a traded symbol without this bot's orders: left alone; no new entries while "
                    "it is held (never hold bull and bear at once)",
                    symbol=sym,
                    qty=qty,
                )
            else:
                self._adopt(sym, qty, avg, ours)
        return rec

    def _adopt(self, sym: str, qty: float, avg: float, ours: list[Any]) -> None:
        e = self.engine
        stop = next((i for i in ours if i.intent is Intent.STOP), None)
        tp = next((i for i in ours if i.intent is Intent.TAKE_PROFIT), None)
        parsed = [p for p in (parse_cid(i.client_order_id) for i in ours) if p is not None]
        signal_ts = parsed[0].signal_ts if parsed else pd.Timestamp.now()
        if is_intraday(self.tf):
            signal_ts = signal_ts.tz_localize("UTC").tz_convert(TZ)
        e.pos = Position(
            sym,
            qty,
            avg,
            self.clock.now().tz_convert(TZ),
            signal_ts,
            0.0,
            stop=stop.stop_price if stop else None,
            take_profit=tp.limit_price if tp else None,
            stop_cid=stop.client_order_id if stop else None,
            tp_cid=tp.client_order_id if tp else None,
            stop_rev=max((p.revision for p in parsed), default=0),
        )
        for i in ours:
            e.orders[i.client_order_id] = i
        e.last_dir = 1 if sym == self.cfg.universe.bull else -1
        e.cash = max(0.0, e.cash)
        log.info("position adopted from the broker", symbol=sym, qty=qty, avg=avg, stop=e.pos.stop)

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
            traded = {}
            for sym in self.cfg.universe.traded:
                df = new.get(sym)
                if df is not None and ts in df.index:
                    t = df.loc[ts]
                    if check_bar(sym, ts, t.open, t.high, t.low, t.close, t.volume, None) is None:
                        traded[sym] = (float(t.open), float(t.high), float(t.low), float(t.close))
            self._step(ts, r, traded, catch_up=k < len(rows) - 1)
            last = ts
        return last

    def _step(self, ts: pd.Timestamp, r: pd.Series, traded: dict, catch_up: bool) -> None:
        e = self.engine
        session = int(session_labels(pd.DatetimeIndex([ts]))[0])
        self.events.clear()
        bad = check_bar(self.signal, ts, r.open, r.high, r.low, r.close, r.volume, self.prev)
        if bad is not None:
            log.warning("bad bar rejected", symbol=self.signal, ts=str(ts), reason=bad)
            e.step(ts, session, traded, None)
            self.broker.drain()
            return
        why_not = []
        if self.prev is not None and missing_between(self.prev, ts, self.tf) > self.cfg.data.max_gap_bars:
            why_not.append(f"gap of {missing_between(self.prev, ts, self.tf)} bars")
        if self.stale:
            why_not.append("feed was stale")
        if catch_up:
            why_not.append("catching up")
        if self.foreign:
            why_not.append(f"foreign position in {','.join(sorted(self.foreign))}")
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
            "bar",
            ts=_label_str(ts),
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
        broker.start()
        r.reconcile()
        r.warm_up()
        if cfg.service.scheduler:  # the market-aware service: NYSE schedule, /healthz, /metrics, alerts
            from bot.service.runner import ServiceLoop

            ServiceLoop(r, cfg).serve(cfg.run.max_bars)
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
