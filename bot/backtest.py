"""The backtest driver: signals computed once, vectorised, over the whole history; then every bar
goes through the same `Engine.step` the live driver uses, with the in-process broker.

Bars per second are kept high by doing per-bar only what is per-bar: the loop passes plain floats,
and strategy reasons are joined only on bars where the combined direction changes (the bars on which
the engine can act), which is also where signals are journaled in a backtest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bot.broker.sim import SimBroker
from bot.combine import combine
from bot.config import Settings
from bot.engine import Engine
from bot.events import Trade
from bot.ids import strategy_set_id
from bot.journal import Journal
from bot.strategy import DIRECTION, REASON, Strategy

TRADE_COLUMNS = [
    "symbol",
    "side",
    "qty",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "pnl",
    "exit_reason",
]


def set_id_for(cfg: Settings) -> str:
    return strategy_set_id(
        [s.model_dump() for s in cfg.strategies], cfg.universe.model_dump(), cfg.combine.model_dump()
    )


_NS_PER_DAY = 86_400_000_000_000


def session_labels(index: pd.DatetimeIndex) -> np.ndarray:
    """The trading date of each bar as a day number (days since 1970-01-01): the date itself for
    daily bars, the New York date intraday. Plain ints keep the per-bar comparison cheap."""
    if index.tz is not None:
        index = index.tz_convert("America/New_York").tz_localize(None)
    return index.as_unit("ns").asi8 // _NS_PER_DAY


@dataclass
class SignalFrame:
    """Every strategy's output plus the combined direction, on the signal symbol's index."""

    outputs: dict[str, pd.DataFrame]
    combined: np.ndarray
    warmup: int

    def reason_at(self, i: int) -> str:
        return "; ".join(f"{name}: {out[REASON].iat[i]}" for name, out in self.outputs.items())

    def values_at(self, name: str, i: int) -> dict[str, float]:
        out = self.outputs[name]
        return {c: float(out[c].iat[i]) for c in out.columns if c not in (DIRECTION, REASON)}

    def indicators(self) -> pd.DataFrame:
        cols = {}
        for out in self.outputs.values():
            for c in out.columns:
                if c not in (DIRECTION, REASON):
                    cols[c] = out[c]
        return pd.DataFrame(cols)


def compute_signals(cfg: Settings, strategies: Sequence[Strategy], bars: pd.DataFrame) -> SignalFrame:
    outputs: dict[str, pd.DataFrame] = {}
    for s in strategies:
        key = s.name if s.name not in outputs else f"{s.name}#{len(outputs)}"
        outputs[key] = s.signals(bars)
    d = np.column_stack([o[DIRECTION].to_numpy() for o in outputs.values()])
    weights = [sc.weight for sc in cfg.strategies]
    combined = combine(d, cfg.combine.mode, weights, cfg.combine.threshold)
    return SignalFrame(outputs, combined, max(s.warmup for s in strategies))


@dataclass
class BacktestResult:
    trades: pd.DataFrame
    equity: pd.DataFrame
    signals: SignalFrame
    bars: dict[str, pd.DataFrame]
    engine: Engine
    seconds: float


def trades_frame(trades: list[Trade]) -> pd.DataFrame:
    rows = [{c: getattr(t, c) for c in TRADE_COLUMNS} for t in trades]
    df = pd.DataFrame(rows, columns=TRADE_COLUMNS)
    if not df.empty:
        df["exit_reason"] = df["exit_reason"].map(str)
    return df


def run_backtest(
    cfg: Settings,
    strategies: Sequence[Strategy],
    bars: dict[str, pd.DataFrame],
    journal: Journal | None = None,
    progress: bool = False,
) -> BacktestResult:
    import time

    t0 = time.perf_counter()
    uni = cfg.universe
    sig = bars[uni.signal]
    idx = sig.index
    n = len(idx)
    signals = compute_signals(cfg, strategies, sig)
    combined = signals.combined
    warm = signals.warmup
    tradable = sig["tradable"].to_numpy(bool, copy=True) if "tradable" in sig else np.ones(n, bool)

    # Traded bars aligned to the signal bars; a missing bar means "no fill for that symbol now".
    per_symbol: list[tuple[str, list[Any]]] = []
    for sym in uni.traded:
        df = bars[sym].reindex(idx)
        present = df["close"].notna().to_numpy()
        rows = list(
            zip(
                df["open"].tolist(),
                df["high"].tolist(),
                df["low"].tolist(),
                df["close"].tolist(),
                strict=True,
            )
        )
        per_symbol.append((sym, [r if p else None for r, p in zip(rows, present, strict=True)]))
        if "tradable" in bars[sym]:
            tradable &= df["tradable"].fillna(False).to_numpy(bool) | ~present

    broker = SimBroker.from_settings(cfg)
    set_id = set_id_for(cfg)
    engine = Engine(cfg, set_id, broker, journal, journal_equity=False, tz=idx.tz)
    sess_list = session_labels(idx).tolist()
    ts_keys = (
        (idx.tz_convert("UTC").tz_localize(None) if idx.tz is not None else idx).as_unit("ns").asi8.tolist()
    )
    comb_list = combined.tolist()
    trad_list = tradable.tolist()
    changed = np.ones(n, bool)
    changed[1:] = combined[1:] != combined[:-1]
    changed[:warm] = False
    if warm < n:
        changed[warm] = True
    chg_list = changed.tolist()

    it: Any = range(n)
    if progress and n > 20_000:
        from tqdm import tqdm

        it = tqdm(it, total=n, unit="bar", desc="backtest", mininterval=0.5)
    step = engine.step
    for i in it:
        bars_i = {}
        for sym, rows in per_symbol:
            r = rows[i]
            if r is not None:
                bars_i[sym] = r
        if i < warm:
            step(ts_keys[i], sess_list[i], bars_i, None)
            continue
        if chg_list[i]:
            reason = signals.reason_at(i)
            if journal is not None:
                for name in signals.outputs:
                    out = signals.outputs[name]
                    journal.signal(
                        idx[i],
                        uni.signal,
                        name,
                        int(out[DIRECTION].iat[i]),
                        str(out[REASON].iat[i]),
                        signals.values_at(name, i),
                    )
                journal.signal(idx[i], uni.signal, "combined", comb_list[i], reason)
        else:
            reason = ""
        step(ts_keys[i], sess_list[i], bars_i, comb_list[i], trad_list[i], reason)
    if n:
        engine.finish(ts_keys[-1])
    equity = engine.equity_log.frame(idx.tz)
    if journal is not None:
        journal.equity_bulk(equity)
        journal.flush()
    return BacktestResult(
        trades_frame(engine.trades), equity, signals, bars, engine, time.perf_counter() - t0
    )
