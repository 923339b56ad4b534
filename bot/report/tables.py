"""The report's tables: what was assumed, returns by month and year, figures per exit reason, the
settings. Plain HTML strings, so the report stays one self-contained file.

A reader must be able to tell from the report alone how fills were modelled and what it cost, and
read the configuration as a table rather than as a Python dict.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from bot.report.metrics import bar_positions


def _esc(x: object) -> str:
    return html.escape(str(x))


def _table(header: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "") -> str:
    """Cells are HTML already; a first column is left-aligned."""
    head = "".join(f'<th class="l">{h}</th>' if i == 0 else f"<th>{h}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>"
        + "".join(f'<td class="l">{c}</td>' if i == 0 else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>'


def _pct(x: float | None, digits: int = 1) -> str:
    if x is None or not np.isfinite(x):
        return ""
    cls = "pos" if x > 0 else "neg" if x < 0 else ""
    return f'<span class="{cls}">{x * 100:+.{digits}f}%</span>'


def key_values(pairs: Iterable[tuple[str, object]]) -> str:
    """A two-column table of settings or assumptions."""
    return _table(["setting", "value"], ((_esc(k), _esc(v)) for k, v in pairs), "kv")


def assumptions(
    *,
    slippage_bps: float,
    commission: float,
    starting_cash: float,
    fractional: bool,
    price_basis: Mapping[str, str],
    data: str,
    timeframe: str,
    preroll: int,
) -> str:
    """How the backtest turned signals into fills, and from what."""
    rows: list[tuple[str, object]] = [
        ("Decisions", "on each bar's close, from the bars up to and including it"),
        (
            "Market orders",
            "filled at the next bar's open (an entry, an exit on a new direction, a time exit)",
        ),
        (
            "Stops",
            "resting from the entry's bar; filled at the stop, or at the open when the bar gaps through",
        ),
        ("Take-profit", "filled at the limit, or at the better open; no slippage"),
        ("Slippage", f"{slippage_bps:g} bp on market and stop fills (buys higher, sells lower)"),
        ("Commission", f"{commission:,.2f} per order"),
        ("Starting cash", f"{starting_cash:,.2f}; {'fractional' if fractional else 'whole'} shares"),
        ("Short selling", "none: -1 buys the bear instrument"),
        ("Data", f"{data}, {timeframe} bars, after the bad-bar rules"),
        ("Warm-up", f"{preroll:,} bars before the first traded bar warmed the strategies up"),
    ]
    rows += [(f"Price basis {sym}", text) for sym, text in price_basis.items()]
    return key_values(rows)


def period_returns(equity: pd.Series, base: float) -> str:
    """Returns by calendar month (rows: years; the last column the year's) of an equity curve."""
    if len(equity) == 0:
        return "<p>No equity.</p>"
    idx = pd.DatetimeIndex(equity.index)
    if idx.tz is not None:
        idx = idx.tz_convert("America/New_York").tz_localize(None)
    s = pd.Series(equity.to_numpy(float), index=idx)
    month_end = s.groupby([idx.year, idx.month]).last()
    prev = month_end.shift(1)
    prev.iloc[0] = base
    monthly = month_end / prev - 1
    year_end = s.groupby(idx.year).last()
    prev_y = year_end.shift(1)
    prev_y.iloc[0] = base
    yearly = year_end / prev_y - 1
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    rows = []
    for year in year_end.index:
        cells = [str(year)]
        cells += [_pct(monthly.get((year, m))) for m in range(1, 13)]
        cells.append(f"<b>{_pct(yearly[year])}</b>")
        rows.append(cells)
    return _table(["year", *months, "year"], rows, "returns")


def _trade_returns(trades: pd.DataFrame) -> np.ndarray:
    cost = (trades["qty"].astype(float) * trades["entry_price"].astype(float)).abs()
    return np.where(cost > 0, trades["pnl"].astype(float) / cost.where(cost > 0, 1.0), np.nan)


def exit_reasons(trades: pd.DataFrame, index: pd.DatetimeIndex) -> str:
    """Per exit reason: trades, win rate, total and mean P&L, mean return, mean hold in bars."""
    if len(trades) == 0:
        return "<p>No trades.</p>"
    t = trades.reset_index(drop=True)
    held = bar_positions(t["exit_time"], index) - bar_positions(t["entry_time"], index)
    frame = pd.DataFrame(
        {
            "reason": t["exit_reason"].astype(str),
            "pnl": t["pnl"].astype(float),
            "ret": _trade_returns(t),
            "held": held,
        }
    )
    rows = []
    for reason, g in sorted(frame.groupby("reason"), key=lambda kv: -len(kv[1])):
        rows.append(
            [
                _esc(reason),
                f"{len(g):,}",
                f"{(g['pnl'] > 0).mean() * 100:.0f}%",
                f"{g['pnl'].sum():,.2f}",
                f"{g['pnl'].mean():,.2f}",
                _pct(float(g["ret"].mean()), 2),
                f"{g['held'].mean():.1f}",
            ]
        )
    return _table(
        ["exit reason", "trades", "won", "total P&L", "mean P&L", "mean return", "mean hold (bars)"], rows
    )


def trade_returns(trades: pd.DataFrame) -> np.ndarray:
    """Each trade's return on the money it put in (pnl / (qty x entry price))."""
    return _trade_returns(trades) if len(trades) else np.array([])


def settings(
    strategies: Iterable[tuple[str, Mapping[str, Any]]], sections: Mapping[str, Mapping[str, Any]]
) -> str:
    """The strategies with their parameters, and each settings section as key/value rows."""
    rows: list[tuple[str, object]] = []
    for name, params in strategies:
        rows.append((f"strategy {name}", ", ".join(f"{k} = {v}" for k, v in params.items()) or "defaults"))
    for section, values in sections.items():
        for k, v in values.items():
            if isinstance(v, Mapping):
                for k2, v2 in v.items():
                    rows.append((f"[{section}.{k}] {k2}", v2))
            else:
                rows.append((f"[{section}] {k}", v))
    return key_values(rows)
