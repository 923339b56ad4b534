"""`soxbot walkforward`: choose parameters on each in-sample window, trade them on the next
out-of-sample window, and stitch the out-of-sample returns into one curve.

Every point of the space is backtested once over the whole history (a resumable sweep in
`OUT/sweep`); a window's figures are that run's returns inside the window. This equals re-running
each window separately with the strategies warmed on the bars before it, because a backtest's
equity at a bar depends only on the bars up to it (strategies are checked for look-ahead); the
out-of-sample curve therefore carries the chosen parameters' position across a fold boundary, as a
live bot switching parameters would after reconciling to its new target.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bot.core.config import ConfigError
from bot.research.curves import metrics, score, years_between
from bot.research.stats import moments, probabilistic_sharpe, sharpe


@dataclass(frozen=True)
class Fold:
    is_start: int
    is_end: int  # exclusive
    oos_start: int
    oos_end: int  # exclusive


def make_folds(n_bars: int, first: int, is_bars: int, oos_bars: int, anchored: bool) -> list[Fold]:
    """Rolling (IS of `is_bars`) or anchored (IS from `first`) windows; the OOS windows follow each
    other without gaps from `first + is_bars` to the end (the last one may be shorter). `first`: the
    first bar every trial can trade (warmed up, every traded symbol has data)."""
    if is_bars < 2 or oos_bars < 1:
        raise ConfigError(
            "--is-bars must be >= 2 and --oos-bars >= 1. Fix: e.g. --is-bars 756 --oos-bars 252."
        )
    folds = []
    s = first + is_bars
    while s < n_bars:
        e = min(s + oos_bars, n_bars)
        folds.append(Fold(first if anchored else s - is_bars, s, s, e))
        s = e
    if not folds:
        raise ConfigError(
            f"No out-of-sample window: {n_bars - first} bars after warm-up, in-sample {is_bars}. "
            "Fix: a smaller --is-bars, or a longer date range."
        )
    return folds


def _close_returns(close: pd.Series, index: pd.DatetimeIndex) -> tuple[np.ndarray, float]:
    """Close-to-close returns on `index` (0 where the symbol has no bar) and the share of bars
    without data."""
    c = close.reindex(index)
    missing = float(c.isna().mean())
    r = c.ffill().pct_change().fillna(0.0).to_numpy(float)
    return r, missing


def walk(
    returns: np.ndarray,
    results: pd.DataFrame,
    keys: list[str],
    index: pd.DatetimeIndex,
    folds: list[Fold],
    objective: str,
    ppy: float,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per fold, the in-sample best trial and its in/out-of-sample figures; the stitched OOS returns."""
    ok = results[results["status"] == "ok"]
    rows = ok["trial"].astype(int).to_numpy()
    t = index.to_numpy()
    recs, stitched = [], []
    for k, f in enumerate(folds):
        yrs = years_between(t[f.is_start : f.is_end])
        scores = [score(metrics(returns[i, f.is_start : f.is_end], yrs, ppy), objective) for i in rows]
        j = int(np.argmax(scores))
        best = rows[j]
        oos = np.asarray(returns[best, f.oos_start : f.oos_end])
        stitched.append(oos)
        m_is = metrics(returns[best, f.is_start : f.is_end], yrs, ppy)
        m_oos = metrics(oos, years_between(t[f.oos_start : f.oos_end]), ppy)
        recs.append(
            {
                "fold": k + 1,
                "is_start": index[f.is_start].date(),
                "is_end": index[f.is_end - 1].date(),
                "oos_start": index[f.oos_start].date(),
                "oos_end": index[f.oos_end - 1].date(),
                "trial": int(best),
                **{key: ok.iloc[j][key] for key in keys},
                f"is_{objective}": scores[j] if objective != "max_drawdown" else -scores[j],
                "is_sharpe": m_is["sharpe"],
                "oos_sharpe": m_oos["sharpe"],
                "oos_return": m_oos["total_return"],
                "oos_max_drawdown": m_oos["max_drawdown"],
            }
        )
    return pd.DataFrame(recs), np.concatenate(stitched)


def stability(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """How much each chosen parameter moves across folds: distinct values, most frequent share,
    and the coefficient of variation of numeric ones."""
    out = []
    for k in keys:
        col = table[k]
        num = pd.to_numeric(col, errors="coerce")
        cv = float(num.std(ddof=0) / abs(num.mean())) if num.notna().all() and num.mean() != 0 else math.nan
        out.append(
            {
                "parameter": k,
                "distinct values": int(col.nunique()),
                "most frequent": col.mode().iloc[0],
                "share of folds": float(col.value_counts().iloc[0] / len(col)),
                "coefficient of variation": cv,
            }
        )
    return pd.DataFrame(out)


def summarize_walk(
    stitched: np.ndarray,
    oos_index: pd.DatetimeIndex,
    bars: dict[str, pd.DataFrame],
    signal: str,
    bull: str,
    ppy: float,
) -> dict[str, Any]:
    """Stitched OOS metrics beside buy-and-hold of the signal and of the bull instrument over the
    same bars, and PSR (probability the true Sharpe ratio of the OOS curve is above 0)."""
    yrs = years_between(oos_index.to_numpy())
    out: dict[str, Any] = {"oos": metrics(stitched, yrs, ppy)}
    skew, kurt = moments(stitched)
    out["oos"]["psr_vs_0"] = probabilistic_sharpe(sharpe(stitched), 0.0, len(stitched), skew, kurt)
    warnings = []
    for label, sym in (("buy_and_hold_signal", signal), ("buy_and_hold_bull", bull)):
        if not sym or sym not in bars:
            continue
        # returns from the bar before the first OOS bar, so the first OOS bar has its return
        full = bars[sym]["close"]
        r, missing = _close_returns(full, oos_index.union(full.index[full.index < oos_index[0]][-1:]))
        r = r[-len(oos_index) :]
        out[label] = {"symbol": sym, **metrics(r, yrs, ppy)}
        if missing > 0:
            warnings.append(f"{sym} has no data for {missing:.0%} of the out-of-sample bars (counted flat)")
    out["period"] = {
        "start": str(oos_index[0]),
        "end": str(oos_index[-1]),
        "bars": len(oos_index),
        "years": yrs,
    }
    out["warnings"] = warnings
    return out


def write_walk_html(
    out: Path,
    table: pd.DataFrame,
    stab: pd.DataFrame,
    summary: dict[str, Any],
    curves: dict[str, pd.Series],
    synthetic: bool = False,
) -> None:
    import plotly.graph_objects as go

    from bot.research.pages import kv_table, note, write_page
    from bot.research.pages import table as html_table

    fig = go.Figure(
        [go.Scatter(x=s.index, y=s.to_numpy(), name=name, mode="lines") for name, s in curves.items()]
    )
    fig.update_layout(
        title="Stitched out-of-sample equity (growth of 1) beside buy-and-hold",
        yaxis_type="log",
        yaxis_tickformat=".2f",
        height=480,
    )
    rows = {}
    for key in ("oos", "buy_and_hold_signal", "buy_and_hold_bull"):
        if key in summary:
            m = summary[key]
            rows[key] = {
                c: m.get(c) for c in ("total_return", "cagr", "sharpe", "max_drawdown", "volatility")
            }
    cmp = pd.DataFrame(rows).T.reset_index().rename(columns={"index": "curve"})
    bars = go.Figure(
        [
            go.Bar(x=table["fold"], y=table["is_sharpe"], name="in-sample Sharpe"),
            go.Bar(x=table["fold"], y=table["oos_sharpe"], name="out-of-sample Sharpe"),
        ]
    ).update_layout(
        title="Sharpe by fold: in-sample (chosen) vs out-of-sample", height=340, xaxis_title="fold"
    )
    parts: list[Any] = [
        note(summary["method_note"]),
        fig,
        "<h2>Out-of-sample vs buy-and-hold (same bars)</h2>",
        html_table(cmp),
        kv_table({"PSR of the OOS Sharpe vs 0": summary["oos"]["psr_vs_0"], **summary.get("dsr_note", {})}),
        *[note("Warning: " + w) for w in summary["warnings"]],
        bars,
        "<h2>Folds</h2>",
        html_table(table),
        "<h2>Parameter stability across folds</h2>",
        html_table(stab),
    ]
    write_page(out / "report.html", "Walk-forward", parts, synthetic)


def dumps(d: dict[str, Any]) -> str:
    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        if isinstance(x, np.integer | np.floating):
            return clean(x.item())
        return x

    return json.dumps(clean(d), indent=1, default=str)
