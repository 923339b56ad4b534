"""The backtest report: one self-contained HTML file (plotly.js inline, so it opens offline).

Panels, top to bottom, on one shared time axis: the signal symbol's price with the strategy's
price indicators and trade markers; an RSI panel (only when an indicator is drawn there); the
strategy's equity against buy-and-hold of the signal symbol, both from the starting equity; the
drawdown of both. Below the chart: the summary table (strategy vs buy-and-hold), the last 200
trades, and any notes.

Size: long runs are thinned for drawing only. Above 5,000 bars the price is a close line instead of
candles, and every line trace keeps at most ~5,000 points, chosen as each bucket's min and max so
peaks, troughs and the deepest drawdown survive. Trade markers are never dropped. A 100,000-bar
1-minute run writes under 7 MB, about 4.8 MB of which is plotly.js itself.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bot.report.metrics import bar_positions, drawdown, to_datetime_index

MAX_POINTS = 5000  # per line trace, and the bar count above which candles become a close line
TRADE_ROWS = 200
BANNER = "SYNTHETIC DATA"
NY = "America/New_York"

__all__ = ["MAX_POINTS", "downsample_positions", "write_report"]

# (label, summary key, format)
_SUMMARY_ROWS: tuple[tuple[str, str, str], ...] = (
    ("Final equity", "final_equity", "money"),
    ("Total return", "total_return", "pct"),
    ("CAGR", "cagr", "pct"),
    ("Volatility (ann.)", "volatility", "pct"),
    ("Sharpe", "sharpe", "ratio"),
    ("Sortino", "sortino", "ratio"),
    ("Max drawdown", "max_drawdown", "pct"),
    ("Calmar", "calmar", "ratio"),
    ("Exposure", "exposure", "pct"),
    ("Trades", "n_trades", "int"),
    ("Win rate", "win_rate", "pct"),
    ("Profit factor", "profit_factor", "ratio"),
    ("Avg trade P&L", "avg_trade_pnl", "money"),
    ("Best trade", "best_trade", "money"),
    ("Worst trade", "worst_trade", "money"),
    ("Avg hold (bars)", "avg_hold_bars", "float"),
)

_CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 16px 24px; color: #222; }
h1 { font-size: 22px; margin: 4px 0; } h2 { font-size: 17px; margin: 22px 0 6px; }
.sub { color: #666; margin-bottom: 8px; }
.banner { background: #b00020; color: #fff; font-weight: 700; font-size: 20px; letter-spacing: 1px;
  padding: 10px 16px; text-align: center; border-radius: 4px; margin-bottom: 10px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.pos { color: #1a7f37; } .neg { color: #b00020; }
.foot { color: #666; font-size: 12px; margin-top: 4px; }
.warn { background: #fff4e5; border-left: 4px solid #e67700; padding: 6px 12px; margin: 8px 0; }
"""


def downsample_positions(values: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Positions to keep so a line of `values` has at most ~`max_points` points.

    Splits the series into max_points/2 buckets and keeps each bucket's min and max (and the first
    and last point), so extremes stay visible. NaN-only buckets keep one point, preserving gaps.
    """
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    v = np.asarray(values, dtype=float)
    edges = np.linspace(0, n, max(max_points // 2, 1) + 1).astype(int)
    keep = [0, n - 1]
    for lo, hi in itertools.pairwise(edges):
        if hi <= lo:
            continue
        chunk = v[lo:hi]
        finite = np.isfinite(chunk)
        if not finite.any():
            keep.append(lo)
            continue
        masked_lo = np.where(finite, chunk, np.inf)
        masked_hi = np.where(finite, chunk, -np.inf)
        keep += [lo + int(np.argmin(masked_lo)), lo + int(np.argmax(masked_hi))]
    return np.unique(np.asarray(keep))


def _wall_time(index: pd.Index) -> pd.DatetimeIndex:
    """New York wall time without tz: plotly.js has no time zones, and sessions read in NY time."""
    idx = pd.DatetimeIndex(index)
    return idx.tz_convert(NY).tz_localize(None) if idx.tz is not None else idx


def _is_intraday(index: pd.DatetimeIndex) -> bool:
    if len(index) < 2:
        return bool(len(index)) and (index[0] != index[0].normalize())
    return bool(pd.Series(index).diff().median() < pd.Timedelta(days=1))


def _x_strings(index: pd.DatetimeIndex, intraday: bool) -> np.ndarray:
    return np.asarray(index.strftime("%Y-%m-%d %H:%M" if intraday else "%Y-%m-%d"), dtype=object)


def _rangebreaks(index: pd.DatetimeIndex, intraday: bool) -> list[dict[str, Any]]:
    """Hide weekends, market holidays (weekdays with no bar) and, for RTH-only bars, the nights."""
    if len(index) < 2:
        return []
    days = index.normalize().unique()
    weekdays = pd.bdate_range(days[0], days[-1])
    missing = weekdays.difference(days)
    breaks: list[dict[str, Any]] = [{"bounds": ["sat", "mon"]}]
    if len(missing):
        breaks.append({"values": [d.strftime("%Y-%m-%d") for d in missing]})
    if intraday:
        minutes = index.hour * 60 + index.minute
        if minutes.min() >= 9 * 60 + 30 and minutes.max() < 16 * 60:
            breaks.append({"bounds": [16, 9.5], "pattern": "hour"})
    return breaks


def _line(x: np.ndarray, y: np.ndarray, **kwargs: Any) -> go.Scatter:
    keep = downsample_positions(y)
    return go.Scatter(x=x[keep], y=y[keep], mode="lines", **kwargs)


def _is_level(column: str) -> bool:
    name = column.lower()
    return "support" in name or "resistance" in name


def _trade_markers(
    trades: pd.DataFrame, bars: pd.DataFrame, x: np.ndarray, bear: str
) -> list[go.Scatter]:
    """Entry and exit markers on the signal price, at the bar each trade time falls in."""
    if trades is None or len(trades) == 0:
        return []
    idx = pd.DatetimeIndex(bars.index)
    close = bars["close"].to_numpy(dtype=float)
    t = trades.reset_index(drop=True)
    symbols = t["symbol"].astype(str)
    side = t["side"].astype(str).str.lower() if "side" in t else pd.Series("", index=t.index)
    is_bear = (symbols == bear) | side.isin(["short", "sell"])

    def hover(row: pd.Series, when: str) -> str:
        price = row.get(f"{when}_price")
        parts = [
            f"<b>{html.escape(str(row['symbol']))}</b> {when}",
            f"time: {html.escape(str(row.get(f'{when}_time')))}",
            f"qty: {row.get('qty')}",
            f"price: {price:.4f}" if isinstance(price, int | float) else f"price: {price}",
            f"pnl: {row.get('pnl'):,.2f}" if isinstance(row.get("pnl"), int | float) else "",
        ]
        if when == "exit":
            parts.append(f"exit_reason: {html.escape(str(row.get('exit_reason')))}")
        return "<br>".join(p for p in parts if p)

    out = []
    entry_pos = bar_positions(t["entry_time"], idx)
    for mask, name, symbol, color in (
        (~is_bear, "bull entry", "triangle-up", "#1a9e3a"),
        (is_bear, "bear entry", "triangle-down", "#d62728"),
    ):
        m = mask.to_numpy()
        if m.any():
            out.append(
                go.Scatter(
                    x=x[entry_pos[m]],
                    y=close[entry_pos[m]],
                    mode="markers",
                    name=name,
                    marker={
                        "symbol": symbol, "size": 13, "color": color, "line": {"width": 1, "color": "#333"}
                    },
                    hovertext=[hover(r, "entry") for _, r in t[m].iterrows()],
                    hoverinfo="text",
                )
            )
    exit_times = to_datetime_index(t["exit_time"])
    has_exit = ~np.asarray(pd.isna(exit_times))
    if has_exit.any():
        exit_pos = bar_positions(t.loc[has_exit, "exit_time"], idx)
        out.append(
            go.Scatter(
                x=x[exit_pos],
                y=close[exit_pos],
                mode="markers",
                name="exit",
                marker={"symbol": "x", "size": 9, "color": "#222"},
                hovertext=[hover(r, "exit") for _, r in t[has_exit].iterrows()],
                hoverinfo="text",
            )
        )
    return out


def _figure(
    *,
    bars: pd.DataFrame,
    indicators: pd.DataFrame,
    panels: Mapping[str, str],
    trades: pd.DataFrame,
    equity: pd.DataFrame,
    benchmark_close: pd.Series,
    start_equity: float,
    bear: str,
    skipped: list[str],
) -> go.Figure:
    bar_idx = _wall_time(bars.index)
    intraday = _is_intraday(bar_idx)
    bx = _x_strings(bar_idx, intraday)
    cols = list(indicators.columns) if indicators is not None else []
    where = {c: panels.get(c) for c in cols}
    for c, p in where.items():
        if p is None:  # drawing an unplaced column over the price could wreck the price scale
            skipped.append(f"indicator {c!r} not drawn: its strategy declares no panel for it")
        elif p not in ("price", "rsi"):
            skipped.append(f"indicator {c!r} not drawn: panel {p!r} is not one this report draws")
    has_rsi = any(p == "rsi" for p in where.values())

    titles = ["Price, indicators and trades"] + (["RSI"] if has_rsi else [])
    titles += ["Equity: strategy vs buy-and-hold", "Drawdown"]
    heights = [0.45] + ([0.15] if has_rsi else []) + [0.25, 0.15]
    fig = make_subplots(
        rows=len(titles), cols=1, shared_xaxes=True, vertical_spacing=0.04,
        subplot_titles=titles, row_heights=heights,
    )
    row_rsi = 2 if has_rsi else None
    row_eq = 3 if has_rsi else 2
    row_dd = row_eq + 1

    close = bars["close"].to_numpy(dtype=float)
    if len(bars) <= MAX_POINTS:
        fig.add_trace(
            go.Candlestick(
                x=bx, open=bars["open"], high=bars["high"], low=bars["low"], close=bars["close"],
                name="price", increasing_line_color="#26a69a", decreasing_line_color="#ef5350",
            ),
            row=1, col=1,
        )
    else:
        fig.add_trace(_line(bx, close, name="close", line={"color": "#444", "width": 1}), row=1, col=1)

    if cols:
        ind = indicators.reindex(bars.index)
        for c in cols:
            y = pd.to_numeric(ind[c], errors="coerce").to_numpy(dtype=float)
            if where[c] == "price":
                style: dict[str, Any] = {"width": 1.3}
                shape = "hv" if _is_level(c) else "linear"
                if _is_level(c):
                    style["dash"] = "dot"
                fig.add_trace(_line(bx, y, name=c, line=style, line_shape=shape), row=1, col=1)
            elif where[c] == "rsi":
                fig.add_trace(_line(bx, y, name=c, line={"width": 1.2}), row=row_rsi, col=1)
    if has_rsi:
        for level in (30, 70):
            fig.add_hline(
                y=level, line={"dash": "dash", "color": "#555", "width": 1}, layer="above", row=row_rsi, col=1
            )
        fig.update_yaxes(range=[0, 100], row=row_rsi, col=1)

    for tr in _trade_markers(trades, bars, bx, bear):
        fig.add_trace(tr, row=1, col=1)

    eq_idx = _wall_time(equity.index)
    ex = _x_strings(eq_idx, intraday)
    eq = equity["equity"].to_numpy(dtype=float)
    bench = pd.Series(benchmark_close).astype(float).reindex(equity.index).ffill().bfill().to_numpy()
    bh = start_equity * bench / bench[0]
    fig.add_trace(_line(ex, eq, name="strategy", line={"color": "#1f77b4", "width": 1.6}), row=row_eq, col=1)
    fig.add_trace(_line(ex, bh, name="buy & hold", line={"color": "#999", "width": 1.3}), row=row_eq, col=1)
    dd_s = -100 * drawdown(pd.Series(eq)).to_numpy()
    dd_b = -100 * drawdown(pd.Series(bh)).to_numpy()
    fig.add_trace(
        _line(ex, dd_s, name="strategy drawdown %", fill="tozeroy", line={"color": "#d62728", "width": 1}),
        row=row_dd, col=1,
    )
    fig.add_trace(
        _line(ex, dd_b, name="buy & hold drawdown %", line={"color": "#999", "width": 1}),
        row=row_dd, col=1,
    )
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_yaxes(title_text="equity", row=row_eq, col=1)
    fig.update_yaxes(title_text="%", row=row_dd, col=1)
    fig.update_xaxes(rangebreaks=_rangebreaks(bar_idx, intraday), rangeslider_visible=False)
    fig.update_layout(
        height=1250 if has_rsi else 1050,
        margin={"l": 60, "r": 20, "t": 40, "b": 30},
        hovermode="closest",
        legend={"tracegroupgap": 4, "font": {"size": 11}},
        template="plotly_white",
    )
    # a long run spanning a 10x move reads better on a log scale (positive values only)
    if np.nanmin(close) > 0 and np.nanmax(close) / np.nanmin(close) > 10:
        fig.update_yaxes(type="log", row=1, col=1)
    if np.nanmin(np.concatenate([eq, bh])) > 0 and np.nanmax(np.concatenate([eq, bh])) / np.nanmin(
        np.concatenate([eq, bh])
    ) > 10:
        fig.update_yaxes(type="log", row=row_eq, col=1)
    return fig


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{value * 100:,.2f}%"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "int":
        return f"{int(value):,d}"
    return f"{value:,.2f}"


def _fmt_time(value: Any) -> str:
    """A date for daily (midnight) times, minutes with the offset for intraday ones."""
    text = value.isoformat() if isinstance(value, pd.Timestamp) else str(value)
    return text.removesuffix("T00:00:00").removesuffix(" 00:00:00").replace("T", " ")


def _summary_table(summary: Mapping[str, Any]) -> str:
    strat = summary.get("strategy", {})
    bh = summary.get("buy_and_hold", {})
    rows = ['<tr><th class="l">metric</th><th>strategy</th><th>buy &amp; hold</th></tr>']
    for label, key, kind in _SUMMARY_ROWS:
        rows.append(
            f'<tr><td class="l">{label}</td><td>{_fmt(strat.get(key), kind)}</td>'
            f"<td>{_fmt(bh.get(key), kind)}</td></tr>"
        )
    return '<table class="summary">' + "".join(rows) + "</table>"


def _trades_table(trades: pd.DataFrame) -> str:
    if trades is None or len(trades) == 0:
        return "<p>No trades.</p>"
    tail = trades.tail(TRADE_ROWS)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in tail.columns)
    body = []
    for _, row in tail.iterrows():
        cells = []
        for c in tail.columns:
            v = row[c]
            if isinstance(v, float | np.floating):
                sign = "pos" if v > 0 else "neg" if v < 0 else ""
                cls = f' class="{sign}"' if c == "pnl" and sign else ""
                cells.append(f"<td{cls}>{v:,.4f}</td>" if c.endswith("price") else f"<td{cls}>{v:,.2f}</td>")
            elif c.endswith("_time"):
                cells.append(f'<td class="l">{html.escape(_fmt_time(v))}</td>')
            else:
                cells.append(f'<td class="l">{html.escape(str(v))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="trades"><tr>{head}</tr>{"".join(body)}</table>'


def write_report(
    path: Path,
    *,
    title: str,
    bars: pd.DataFrame,
    indicators: pd.DataFrame,
    panels: dict[str, str],
    trades: pd.DataFrame,
    equity: pd.DataFrame,
    benchmark_close: pd.Series,
    summary: dict,
    synthetic: bool = False,
    notes: Iterable[str] = (),
    bear: str = "SOXS",
    sections: Sequence[tuple[str, str]] = (),
    warnings: Iterable[str] = (),
) -> Path:
    """Write the HTML report to `path` and return it.

    `bars` is the signal symbol's OHLCV; `indicators` columns are drawn where `panels` says
    ("price" over the price, "rsi" in the 0-100 panel; names containing support/resistance are step
    lines); columns with no or an unknown panel are listed in the notes instead of drawn.
    Trades are marked on the signal price at their bar: triangle-up for the bull instrument,
    triangle-down for `bear` (or a short/sell side), x for exits. `sections`: (title, HTML) panels
    shown after the summary (e.g. the decay attribution); the trades table shows the columns of
    `trades` up to `exit_reason`. `warnings` (e.g. a side that cannot be sized) are shown above the
    chart.
    """
    if len(bars) == 0 or len(equity) == 0:
        raise ValueError("write_report needs at least one bar and one equity row")
    path = Path(path)
    start_equity = (summary.get("strategy") or {}).get("start_equity") or float(equity["equity"].iloc[0])
    skipped: list[str] = []
    fig = _figure(
        bars=bars, indicators=indicators, panels=panels, trades=trades, equity=equity,
        benchmark_close=benchmark_close, start_equity=float(start_equity), bear=bear, skipped=skipped,
    )
    chart = fig.to_html(full_html=False, include_plotlyjs=True, config={"responsive": True})

    period = summary.get("period", {})
    n_trades = 0 if trades is None else len(trades)
    sub = (
        f"{html.escape(_fmt_time(period.get('start', '')))} → {html.escape(_fmt_time(period.get('end', '')))}"
        f" · {period.get('bars', len(equity)):,} bars · {n_trades:,} trades"
    )
    all_notes: Sequence[str] = [*notes, *skipped]
    notes_html = (
        "<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in all_notes) + "</ul>"
        if all_notes
        else ""
    )
    banner = (
        f'<div class="banner">{BANNER} — generated prices, not market history</div>' if synthetic else ""
    )
    warn_html = "".join(f'<div class="warn">{html.escape(w)}</div>' for w in warnings)
    shown = min(n_trades, TRADE_ROWS)
    extra = "".join(f"<h2>{html.escape(t)}</h2>\n{body}\n" for t, body in sections)
    if trades is not None and "exit_reason" in trades.columns:
        trades = trades.loc[:, :"exit_reason"]
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_CSS}</style></head><body>
{banner}
<h1>{html.escape(title)}</h1>
<div class="sub">{sub}</div>
{warn_html}
{chart}
<h2>Summary</h2>
{_summary_table(summary)}
<div class="foot">n/a: undefined (no trades, zero time span) or unbounded (no losing trade, no downside,
no drawdown). Buy &amp; hold: the signal symbol bought at the first close with the starting equity.</div>
{extra}<h2>Trades (last {shown:,} of {n_trades:,})</h2>
{_trades_table(trades)}
{notes_html}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path
