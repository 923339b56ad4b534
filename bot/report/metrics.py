"""Performance metrics of a backtest: the strategy's equity curve against buy-and-hold.

Definitions (shared by the strategy and the buy-and-hold block, so the two compare like for like):

- The curve is valued against a base: the strategy's `starting_cash`, or for buy-and-hold
  `starting_cash * close / close[0]` (bought at the first bar's close, base `starting_cash`).
  Per-bar returns are r_i = v_i / v_{i-1} - 1 with v_{-1} = base, so there is one return per bar
  and prod(1 + r) = final / base. A bar whose previous value is <= 0 has return 0 (no capital).
- total_return = final / base - 1.
- cagr = (final / base) ** (1 / years) - 1, years = (last - first timestamp) / 365.25 days
  (calendar time, so daily and intraday runs are comparable). None when years == 0 or the result
  overflows; -1 when the curve ends at or below 0.
- volatility = std(r, ddof=1) * sqrt(periods_per_year); 0 with fewer than two bars.
- sharpe = mean(r) / std(r, ddof=1) * sqrt(periods_per_year), risk-free rate 0. A curve with no
  variation (std < 1e-12, e.g. flat equity) has sharpe 0, not NaN or inf.
- sortino = mean(r) / downside * sqrt(periods_per_year), downside = sqrt(mean(min(r, 0)^2)) over
  all bars (target return 0). No downside: None when mean(r) > 0 (unbounded), else 0.
- max_drawdown = largest fractional drop from a running peak (including the base), a positive
  fraction: 0.25 means the curve fell 25% below its best value.
- calmar = cagr / max_drawdown. No drawdown: None when cagr > 0 (unbounded), else 0.
- exposure = share of bars with a non-zero position value (buy-and-hold: 1).
- Trade statistics (strategy only; None for buy-and-hold except n_trades = 1):
  win_rate = share of trades with pnl > 0; profit_factor = gross profit / gross loss;
  avg_trade_pnl, best_trade, worst_trade in account currency; avg_hold_bars = mean number of
  bars from the entry bar to the exit bar on the equity index.
  profit_factor is None when there are no losing trades (inf is not valid JSON) or no trades.
  With no trades, win_rate, avg_trade_pnl, best_trade, worst_trade and avg_hold_bars are None.

Every number in the result is a finite Python float/int or None, so `json.dumps(...,
allow_nan=False)` always succeeds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

SECONDS_PER_YEAR = 365.25 * 24 * 3600
_FLAT_STD = 1e-12  # per-bar return std below this is "no variation" (float noise of a flat curve)

__all__ = ["bar_positions", "drawdown", "summarize", "to_datetime_index"]


def drawdown(equity: pd.Series) -> pd.Series:
    """Fractional distance below the running peak, as a positive number (0 at a new high).

    A peak at or below 0 gives 0: there is nothing left to lose a fraction of.
    """
    values = equity.to_numpy(dtype=float)
    peak = np.maximum.accumulate(values) if len(values) else values
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, 1.0 - values / peak, 0.0)
    return pd.Series(dd, index=equity.index, name="drawdown")


def to_datetime_index(times: Any) -> pd.DatetimeIndex:
    """Parse timestamps (ISO strings with mixed DST offsets, dates, or Timestamps) to an index."""
    s = pd.Series(times)
    if pd.api.types.is_datetime64_any_dtype(s):
        return pd.DatetimeIndex(s)
    try:
        return pd.DatetimeIndex(pd.to_datetime(s, format="ISO8601"))
    except (ValueError, TypeError):
        return pd.DatetimeIndex(pd.to_datetime(s, utc=True, format="ISO8601"))


def bar_positions(times: Any, index: pd.DatetimeIndex) -> np.ndarray:
    """Position on `index` of the bar at or before each time (clipped to the first bar).

    Accepts strings or timestamps, naive or tz-aware, so trades read back from trades.csv map
    onto the equity or price index the same way as the engine's own frames.
    """
    ts_idx = to_datetime_index(times)
    if index.tz is not None:
        ts_idx = ts_idx.tz_localize(index.tz) if ts_idx.tz is None else ts_idx.tz_convert(index.tz)
    elif ts_idx.tz is not None:
        ts_idx = ts_idx.tz_localize(None)
    pos = index.searchsorted(ts_idx.as_unit(index.unit), side="right") - 1
    return np.clip(pos, 0, max(len(index) - 1, 0)).astype(int)


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _returns(values: np.ndarray, base: float) -> np.ndarray:
    prev = np.concatenate([[base], values[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(prev > 0, values / prev - 1.0, 0.0)
    return np.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0)


def _ratio_unbounded(num: float, den: float) -> float | None:
    """num / den, where den == 0 means unbounded (None) for a positive num, else 0."""
    if den > 0:
        return num / den
    return None if num > 0 else 0.0


def _curve_stats(values: np.ndarray, base: float, years: float, ppy: float) -> dict[str, float | None]:
    final = float(values[-1])
    total = final / base - 1.0
    if final <= 0:
        cagr: float | None = -1.0
    elif years > 0:
        try:
            cagr = (final / base) ** (1.0 / years) - 1.0
        except OverflowError:
            cagr = None
    else:
        cagr = None
    r = _returns(values, base)
    mean = float(r.mean())
    std = float(r.std(ddof=1)) if len(r) > 1 else 0.0
    ann = math.sqrt(ppy)
    sharpe = mean / std * ann if std >= _FLAT_STD else 0.0
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    sortino = mean / downside * ann if downside >= _FLAT_STD else (None if mean > 0 else 0.0)
    mdd = float(drawdown(pd.Series(np.concatenate([[base], values]))).max())
    calmar = _ratio_unbounded(cagr, mdd) if cagr is not None else None
    return {
        "start_equity": base,
        "final_equity": final,
        "total_return": total,
        "cagr": cagr,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": mdd,
        "calmar": calmar,
        "volatility": std * ann,
    }


def _trade_stats(trades: pd.DataFrame, index: pd.DatetimeIndex) -> dict[str, float | int | None]:
    pnl = pd.to_numeric(trades["pnl"], errors="coerce").dropna().to_numpy(dtype=float) if len(trades) else []
    n = len(trades)
    if n == 0 or len(pnl) == 0:
        return {
            "n_trades": n,
            "win_rate": None,
            "profit_factor": None,
            "avg_trade_pnl": None,
            "best_trade": None,
            "worst_trade": None,
            "avg_hold_bars": None,
        }
    gross_profit = float(pnl[pnl > 0].sum())
    gross_loss = float(-pnl[pnl < 0].sum())
    profit_factor = gross_profit / gross_loss if gross_loss > 0 else None
    held = bar_positions(trades["exit_time"], index) - bar_positions(trades["entry_time"], index)
    return {
        "n_trades": n,
        "win_rate": float((pnl > 0).mean()),
        "profit_factor": profit_factor,
        "avg_trade_pnl": float(pnl.mean()),
        "best_trade": float(pnl.max()),
        "worst_trade": float(pnl.min()),
        "avg_hold_bars": float(np.mean(held)),
    }


def _clean(block: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, int) and not isinstance(v, bool) else _num(v)) for k, v in block.items()}


def summarize(
    equity: pd.DataFrame,
    trades: pd.DataFrame,
    benchmark_close: pd.Series,
    periods_per_year: float,
    starting_cash: float,
    benchmarks: dict[str, pd.Series] | None = None,
) -> dict[str, Any]:
    """Strategy vs buy-and-hold of the signal symbol, as a JSON-safe dict (see module docstring).
    `benchmarks`: more symbols' closes to buy and hold over the same bars (`benchmarks` block).

    Returns {"strategy": {...}, "buy_and_hold": {...}, "period": {start, end, bars, years}}.
    """
    if len(equity) == 0:
        raise ValueError("summarize needs at least one equity row")
    if starting_cash <= 0:
        raise ValueError(f"starting_cash must be > 0, got {starting_cash}")
    index = pd.DatetimeIndex(equity.index)
    years = (index[-1] - index[0]).total_seconds() / SECONDS_PER_YEAR
    values = equity["equity"].to_numpy(dtype=float)

    strategy = _curve_stats(values, float(starting_cash), years, periods_per_year)
    pos_value = equity["position_value"].to_numpy(dtype=float)
    strategy["exposure"] = float(np.mean(np.abs(np.nan_to_num(pos_value)) > 1e-9))
    strategy.update(_trade_stats(trades, index))

    buy_and_hold = _hold(benchmark_close, index, years, periods_per_year, starting_cash)
    out: dict[str, Any] = {
        "strategy": _clean(strategy),
        "buy_and_hold": _clean(buy_and_hold),
        "period": {
            "start": index[0].isoformat(),
            "end": index[-1].isoformat(),
            "bars": len(index),
            "years": years,
        },
    }
    if benchmarks:
        out["benchmarks"] = {
            sym: _clean(_hold(close, index, years, periods_per_year, starting_cash))
            for sym, close in benchmarks.items()
        }
    return out


def _hold(
    close: pd.Series, index: pd.DatetimeIndex, years: float, ppy: float, starting_cash: float
) -> dict[str, Any]:
    """Buy-and-hold of one symbol over `index`: bought at the first bar's close, held to the last."""
    bench = pd.Series(close).astype(float).reindex(index).ffill().bfill()
    if bench.isna().any() or (bench <= 0).any():
        raise ValueError("benchmark_close must be positive and overlap the equity index")
    bench_curve = starting_cash * bench.to_numpy() / bench.iloc[0]
    stats = _curve_stats(bench_curve, float(starting_cash), years, ppy)
    stats["exposure"] = 1.0
    stats.update(
        {
            "n_trades": 1,
            "win_rate": None,
            "profit_factor": None,
            "avg_trade_pnl": None,
            "best_trade": None,
            "worst_trade": None,
            "avg_hold_bars": None,
        }
    )
    return stats
