"""The replay driver behind `soxbot run` on the offline default: bars replayed on an accelerated
clock into the same engine, through the live (trailing-window) signal path and the paper broker.

Each bar: validate it (a bad bar is rejected and logged, and no decision is made on it), push it
into the trailing window, step the engine, journal every strategy's signal, and log one readable
line with the decision, the risk verdicts, orders, fills and equity. SIGINT/SIGTERM stop it after the
current bar; the journal is flushed and the run marked stopped.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

from bot.broker.base import Broker
from bot.core.config import Settings
from bot.core.log import get
from bot.data.quality import check_bar
from bot.data.splits import SplitTable, table_for
from bot.execution.engine import Engine
from bot.journal.journal import Journal
from bot.run.backtest import never_sized, session_labels, set_id_for, size_by_basis, split_events
from bot.signals.live import TrailingSignals
from bot.signals.strategy import Strategy


def _fmt_event(kind: str, data: dict[str, Any]) -> str:
    if kind == "order":
        o = data["order"]
        px = (
            f" @ {o.stop_price:.4g}" if o.stop_price else (f" @ {o.limit_price:.4g}" if o.limit_price else "")
        )
        return f"ORDER {o.side.value.upper()} {o.qty:g} {o.symbol} {o.type.value}{px} [{o.client_order_id}]"
    if kind == "fill":
        f = data["fill"]
        return f"FILL {f.side.value.upper()} {f.qty:g} {f.symbol} @ {f.price:.4f} [{f.client_order_id}]"
    if kind == "risk":
        return f"RISK {data['action']}: {data['reason']}"
    if kind in ("rejected", "canceled"):
        u = data["update"]
        return f"{kind.upper()} {u.client_order_id} {getattr(u, 'reason', '')}".rstrip()
    return kind


class Scoreboard:
    """What the end-of-run line reports, kept bar by bar: total return and max drawdown of the equity
    (from the starting cash, as the backtest summary defines them) and buy-and-hold of the signal
    symbol over the same bars (bought at the first accepted bar's close)."""

    def __init__(self, starting_cash: float) -> None:
        self.base = self.peak = self.last = starting_cash
        self.max_dd = 0.0
        self.first_close: float | None = None
        self.last_close: float | None = None

    def bar(self, equity: float, close: float | None) -> None:
        self.last = equity
        if equity > self.peak:
            self.peak = equity
        elif self.peak > 0:
            self.max_dd = max(self.max_dd, 1.0 - equity / self.peak)
        if close is not None:
            self.last_close = close
            if self.first_close is None:
                self.first_close = close

    def fields(self, symbol: str) -> dict[str, str]:
        out = {"total_return": f"{self.last / self.base - 1:+.2%}", "max_drawdown": f"{self.max_dd:.2%}"}
        if self.first_close and self.last_close is not None:
            out["buy_and_hold"] = f"{self.last_close / self.first_close - 1:+.2%}"
            out["benchmark"] = symbol
        return out


class StopFlag:
    """Set by SIGINT/SIGTERM; the loop finishes the current bar and exits cleanly."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self.event.set())


def run_replay(
    cfg: Settings,
    strategies: Sequence[Strategy],
    bars: dict[str, pd.DataFrame],
    broker: Broker,
    journal: Journal,
    window: int,
    stop: StopFlag | None = None,
    synthetic: bool = False,
    splits: SplitTable | None = None,
) -> Engine:
    """`splits` (default: `[data] splits_file`): as in a backtest, the signal is read split-adjusted and
    each split of a traded symbol is applied before its first bar."""
    log = get("soxbot.run")
    uni = cfg.universe
    if splits is None:
        splits = table_for(cfg.data, uni.symbols)
    events: list[str] = []
    engine = Engine(
        cfg,
        set_id_for(cfg),
        broker,
        journal,
        on_event=lambda k, d: events.append(_fmt_event(k, d)),
        keep_equity=False,
    )
    live = TrailingSignals(cfg, strategies, window)
    sig = bars[uni.signal]
    idx = sig.index
    basis = size_by_basis(cfg, bars, splits, engine)
    for b in basis.values():
        if b.kind != "as_traded":
            log.info("price basis", statement=b.statement)
    split_at = split_events(splits, uni.traded, bars, idx)
    if splits:
        sig = splits.adjusted(uni.signal, sig)
    sessions = session_labels(idx)
    traded = {s: bars[s] for s in uni.traded}
    if engine.hedge is not None:  # hedge mode: the holdings', index's and fund's bars too
        traded.update({s: bars[s] for s in engine.hedge.symbols_needed if s not in traded})
    delay = 1.0 / cfg.run.speed
    limit = cfg.run.max_bars or len(idx)
    label = " [SYNTHETIC]" if synthetic else ""
    log.info(
        "replay start",
        signal=uni.signal,
        bull=uni.bull or "-",
        bear=uni.bear or "-",
        bars=min(limit, len(idx)),
        speed=f"{cfg.run.speed:g} bars/s",
        window=window,
        data=cfg.data.source + label,
    )
    never_sized(
        cfg,
        {s: traded[s][["open", "high", "low", "close"]].reindex(idx).to_numpy(float) for s in uni.traded},
        idx,
        engine.notional,
    )
    score = Scoreboard(cfg.broker.starting_cash)
    prev_ts: pd.Timestamp | None = None
    next_tick = time.monotonic()
    rows = sig[["open", "high", "low", "close", "volume"]].itertuples(index=True, name=None)
    for i, (ts, o, h, lo, c, v) in enumerate(rows):
        if i >= limit or (stop is not None and stop.event.is_set()):
            break
        for sp in split_at.get(i, ()):
            engine.apply_split(ts, sp.symbol, sp.ratio, source=splits.name)  # type: ignore[union-attr]
        bars_i = {}
        for sym, df in traded.items():
            if ts in df.index:
                r = df.loc[ts]
                if check_bar(sym, ts, r.open, r.high, r.low, r.close, r.volume, None) is None:
                    bars_i[sym] = (float(r.open), float(r.high), float(r.low), float(r.close))
        bad = check_bar(uni.signal, ts, o, h, lo, c, v, prev_ts)
        events.clear()
        if bad is not None:
            log.warning("bad bar rejected", symbol=uni.signal, ts=str(ts), reason=bad)
            engine.step(ts, sessions[i], bars_i, None)
            score.bar(engine.equity_now, None)
        else:
            prev_ts = ts
            dec = live.push(ts, o, h, lo, c, v)
            tradable = bool(sig["tradable"].iat[i]) if "tradable" in sig else True
            for name, (d, why, vals) in dec.per_strategy.items():
                journal.signal(ts, uni.signal, name, d, why, vals)
            journal.signal(
                ts, uni.signal, "combined", 0 if dec.direction is None else dec.direction, dec.reason
            )
            ib = (o, h, lo, c)
            engine.step(ts, sessions[i], bars_i, dec.direction, tradable, dec.reason, dec.regime, ib)
            score.bar(engine.equity_now, float(c))
            pos = engine.pos
            log.info(
                "bar" + label,
                ts=str(ts.date()) if ts.tzinfo is None and ts == ts.normalize() else str(ts),
                close=round(float(c), 2),
                signal="warm-up" if dec.direction is None else f"{dec.direction:+d}",
                why=dec.reason if dec.direction is not None else f"{live.count}/{live.warmup + 1} bars",
                pos=f"{pos.qty:g} {pos.symbol}" if pos else "flat",
                equity=round(engine.equity_now, 2),
                **({"actions": " | ".join(events)} if events else {}),
            )
        next_tick += delay
        pause = next_tick - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        else:
            next_tick = time.monotonic()
    log.info(
        "replay end",
        bars=engine.n_bars,
        trades=len(engine.trades),
        equity=round(engine.equity_now, 2),
        **score.fields(uni.signal),
        position=f"{engine.pos.qty:g} {engine.pos.symbol}" if engine.pos else "flat",
    )
    return engine
