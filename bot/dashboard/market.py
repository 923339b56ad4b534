"""The chart's data: the signal symbol's bars with the strategies' indicators, and the traded symbols.

The journal holds decisions, not prices, so the bars are read where the run read them: a running
service asks its broker's data API (the sandbox's, or Alpaca's); a journal at rest reads the run's own
`[data]` settings as recorded (a synthetic market is regenerated from its seed). Indicators come from
the configured strategies' own vectorised `signals()`, the same code a backtest runs. Results are
kept until the journal records a newer bar, so a page polling the chart costs one query, not a fetch.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bot.core.config import DataConfig
from bot.signals.strategy import DIRECTION, REASON

WINDOW = 250  # bars shown
WARMUP = 300  # bars read before the window so the indicators are warm at its start

Loader = Callable[[list[str], pd.Timestamp | None], dict[str, pd.DataFrame]]


def loader_for(data: DataConfig, keys: tuple[str | None, str | None] = (None, None)) -> Loader:
    """Bars of `symbols` up to `now` (None = all there is) as the run's `[data]` section reads them."""
    if data.source == "alpaca":
        from bot.data.alpaca_feed import AlpacaBars
        from bot.data.calendar import timeframe_delta

        feed = AlpacaBars(data, *keys)
        span = timeframe_delta(data.timeframe) * (WINDOW + WARMUP)
        if data.timeframe == "1d":
            span = pd.Timedelta(days=int((WINDOW + WARMUP) * 1.5))

        def fetch(symbols: list[str], now: pd.Timestamp | None) -> dict[str, pd.DataFrame]:
            end = now if now is not None else pd.Timestamp.now(tz="UTC")
            return feed.fetch(symbols, end - span, end)

        return fetch

    from bot.data.load import load_bars

    def load(symbols: list[str], now: pd.Timestamp | None) -> dict[str, pd.DataFrame]:
        return {s: df for s, (df, _r) in load_bars(data, symbols).items()}

    return load


def _strategies(config: Mapping[str, Any]) -> list[Any]:
    from bot.signals.plugins import create

    paths = tuple(Path(p) for p in config.get("plugins", {}).get("paths", []))
    return [create(s["name"], s.get("params", {}), paths) for s in config.get("strategies", [])]


def _series(idx: pd.Index, values: Any) -> dict[str, list[Any]]:
    vals = [None if (v is None or (isinstance(v, float) and math.isnan(v))) else float(v) for v in values]
    return {"ts": [t.isoformat() for t in idx], "values": vals}


def _upto(df: pd.DataFrame, now: pd.Timestamp | None, start: pd.Timestamp | None = None) -> pd.DataFrame:
    """Bars labelled at or before `now` (and from `start`); daily labels are New York dates."""
    idx = df.index
    keep = np.ones(len(idx), dtype=bool)
    if now is not None:
        cut = now if idx.tz is not None else now.tz_convert("America/New_York").tz_localize(None)
        keep &= idx <= cut
    if start is not None:
        keep &= idx >= start
    return df[keep]


def chart_data(config: Mapping[str, Any], load: Loader, now: pd.Timestamp | None) -> dict[str, Any]:
    """Signal bars (OHLC), indicator lines (`overlay`: on the price scale), traded symbols' closes."""
    uni = config.get("universe", {})
    signal = uni.get("signal", "SOXX")
    traded = [s for s in (uni.get("bull"), uni.get("bear")) if s and s != signal]
    bars = load([signal, *traded], now)
    sig = bars.get(signal)
    if sig is None or sig.empty:
        return {"signal": {"symbol": signal, "ts": []}, "indicators": {}, "traded": {}}
    sig = _upto(sig, now)
    tail = sig.iloc[-(WINDOW + WARMUP) :]
    shown = tail.iloc[-WINDOW:]
    indicators: dict[str, Any] = {}
    level = float(shown["close"].median())
    for strat in _strategies(config):
        try:
            out = strat.signals(tail)
        except Exception as exc:  # a plugin that fails here must not take the page down
            indicators[f"{strat.name} (error)"] = {
                "ts": [],
                "values": [],
                "overlay": False,
                "error": str(exc),
            }
            continue
        for col in out.columns:
            if col in (DIRECTION, REASON):
                continue
            s = pd.to_numeric(out[col], errors="coerce").iloc[-WINDOW:]
            med = float(s.median()) if s.notna().any() else float("nan")
            overlay = level > 0 and 0.5 < med / level < 2.0
            indicators[f"{getattr(strat, 'name', type(strat).__name__)}.{col}"] = {
                **_series(s.index, s.to_numpy()),
                "overlay": bool(overlay),
            }
    start = shown.index[0]
    out_traded = {}
    for sym in traded:
        df = bars.get(sym)
        if df is not None and not df.empty:
            df = _upto(df, now, start)
            out_traded[sym] = _series(df.index, df["close"].to_numpy())
    return {
        "signal": {
            "symbol": signal,
            "ts": [t.isoformat() for t in shown.index],
            **{k: [float(x) for x in shown[k].to_numpy()] for k in ("open", "high", "low", "close")},
        },
        "indicators": indicators,
        "traded": out_traded,
    }


def buy_and_hold(
    closes: dict[str, list[Any]], equity_ts: list[str], start_equity: float
) -> list[float | None]:
    """The signal symbol bought with the first equity value, marked on the equity curve's own times."""
    if not closes.get("ts") or not equity_ts:
        return []
    s = pd.Series(closes["values"], index=pd.to_datetime(closes["ts"], utc=True)).dropna()
    t = pd.to_datetime(pd.Series(equity_ts), utc=True, format="mixed")
    marked = s.reindex(s.index.union(t)).ffill().reindex(t)
    first = marked.dropna()
    if first.empty:
        return [None] * len(equity_ts)
    base = float(first.iloc[0])
    return [None if pd.isna(v) else start_equity * float(v) / base for v in marked.to_numpy()]


class ChartCache:
    """One chart per newest journaled bar: recomputed only when the journal moved on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: Any = None
        self._value: dict[str, Any] | None = None

    def get(self, key: Any, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            if self._value is not None and key == self._key:
                return self._value
        value = make()
        with self._lock:
            self._key, self._value = key, value
        return value
