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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bot.report.metrics import bar_positions, drawdown, to_datetime_index
from bot.report.plot import Figure, scatter

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
table.kv td, table.kv th { text-align: left; white-space: normal; max-width: 900px; }
.warn { background: #fff4e5; border-left: 4px solid #e67700; padding: 6px 12px; margin: 8px 0; }
"""


def downsample_positions(values: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Positions to keep so a line of `values` has at most ~`max_points` points.

    Splits the series into max_points/2 buckets and keeps each bucket's min and max (and the first
    and last point), so extremes stay visible. NaN-only buckets keep one point, preserving gaps.
    Vectorised: one stable sort per side finds every bucket's first min and first max at once.
    """
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    v = np.asarray(values, dtype=float)
    edges = np.unique(np.linspace(0, n, max(max_points // 2, 1) + 1).astype(int))
    bucket = np.searchsorted(edges, np.arange(n), "right") - 1
    finite = np.isfinite(v)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])  # first row of each bucket
    keep = [np.array([0, n - 1])]
    for key in (np.where(finite, v, np.inf), np.where(finite, -v, np.inf)):
        order = np.lexsort((key, bucket))  # by bucket, then value; ties keep the earlier bar
        keep.append(order[starts])  # a NaN-only bucket: its first bar (all keys inf, stable)
    return np.unique(np.concatenate(keep))


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


def _line(x: np.ndarray, y: np.ndarray, **kwargs: Any) -> dict[str, Any]:
    keep = downsample_positions(y)
    return scatter(x=x[keep], y=y[keep], mode="lines", **kwargs)


def _is_level(column: str) -> bool:
    name = column.lower()
    return "support" in name or "resistance" in name


def _trade_markers(
    trades: pd.DataFrame, bars: pd.DataFrame, x: np.ndarray, bear: str
) -> list[dict[str, Any]]:
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
                scatter(
                    x=x[entry_pos[m]],
                    y=close[entry_pos[m]],
                    mode="markers",
                    name=name,
                    marker={
                        "symbol": symbol,
                        "size": 13,
                        "color": color,
                        "line": {"width": 1, "color": "#333"},
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
            scatter(
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
    traded: Mapping[str, pd.DataFrame] | None = None,
    periods_per_year: float | None = None,
) -> Figure:
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

    traded = {s: df for s, df in (traded or {}).items() if len(df)}
    rolling = periods_per_year is not None and len(equity) > _rolling_window(periods_per_year) + 1
    panels_: list[tuple[str, str, float]] = [("price", "Price, indicators and trades", 0.36)]
    if has_rsi:
        panels_.append(("rsi", "RSI", 0.12))
    if traded:
        panels_.append(("traded", f"Traded: {' / '.join(traded)} with the fills", 0.2))
    panels_.append(("eq", "Equity: strategy vs buy-and-hold", 0.22))
    if rolling:
        panels_.append(("sharpe", "Rolling Sharpe (half a year of bars)", 0.1))
    panels_.append(("dd", "Drawdown", 0.12))
    fig = Figure([h for _, _, h in panels_], [t for _, t, _ in panels_], spacing=0.035)
    row = {key: i + 1 for i, (key, _, _) in enumerate(panels_)}
    row_rsi = row.get("rsi")
    row_eq = row["eq"]
    row_dd = row["dd"]

    close = bars["close"].to_numpy(dtype=float)
    if len(bars) <= MAX_POINTS:
        fig.add_trace(
            {
                "type": "candlestick",
                "x": bx,
                "open": bars["open"].to_numpy(float),
                "high": bars["high"].to_numpy(float),
                "low": bars["low"].to_numpy(float),
                "close": close,
                "name": "price",
                "increasing": {"line": {"color": "#26a69a"}},
                "decreasing": {"line": {"color": "#ef5350"}},
            },
            row=1,
            col=1,
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

    if traded:
        for tr in _traded_traces(traded, trades, intraday):
            fig.add_trace(tr, row=row["traded"], col=1)
        closes = np.concatenate([df["close"].to_numpy(float) for df in traded.values()])
        _log_axis(fig, closes, row["traded"])

    eq_idx = _wall_time(equity.index)
    ex = _x_strings(eq_idx, intraday)
    eq = equity["equity"].to_numpy(dtype=float)
    bench = pd.Series(benchmark_close).astype(float).reindex(equity.index).ffill().bfill().to_numpy()
    bh = start_equity * bench / bench[0]
    fig.add_trace(_line(ex, eq, name="strategy", line={"color": "#1f77b4", "width": 1.6}), row=row_eq, col=1)
    fig.add_trace(_line(ex, bh, name="buy & hold", line={"color": "#999", "width": 1.3}), row=row_eq, col=1)
    if rolling:
        assert periods_per_year is not None
        for y, name, color in (
            (_rolling_sharpe(eq, start_equity, periods_per_year), "strategy", "#1f77b4"),
            (_rolling_sharpe(bh, start_equity, periods_per_year), "buy & hold", "#999"),
        ):
            fig.add_trace(
                _line(ex, y, name=f"rolling Sharpe, {name}", line={"color": color, "width": 1}),
                row=row["sharpe"],
                col=1,
            )
        fig.add_hline(y=0, line={"color": "#555", "width": 1}, row=row["sharpe"], col=1)
    dd_s = -100 * drawdown(pd.Series(eq)).to_numpy()
    dd_b = -100 * drawdown(pd.Series(bh)).to_numpy()
    fig.add_trace(
        _line(ex, dd_s, name="strategy drawdown %", fill="tozeroy", line={"color": "#d62728", "width": 1}),
        row=row_dd,
        col=1,
    )
    fig.add_trace(
        _line(ex, dd_b, name="buy & hold drawdown %", line={"color": "#999", "width": 1}),
        row=row_dd,
        col=1,
    )
    fig.update_yaxes(title={"text": "price"}, row=1, col=1)
    fig.update_yaxes(title={"text": "equity"}, row=row_eq, col=1)
    fig.update_yaxes(title={"text": "%"}, row=row_dd, col=1)
    fig.update_xaxes(rangebreaks=_rangebreaks(bar_idx, intraday), rangeslider={"visible": False})
    fig.update_layout(
        height=int(2300 * sum(h for _, _, h in panels_)),
        margin={"l": 60, "r": 20, "t": 40, "b": 30},
        hovermode="closest",
        legend={"tracegroupgap": 4, "font": {"size": 11}},
    )
    # a long run spanning a 10x move reads better on a log scale (positive values only)
    _log_axis(fig, close, 1)
    _log_axis(fig, np.concatenate([eq, bh]), row_eq)
    return fig


def _short(v: float) -> str:
    """100000 -> "100k", 2500000 -> "2.5M", 0.5 -> "0.5"."""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:g}{unit}"
    return f"{v:g}"


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Ticks for a log axis from `lo` to `hi`: 1-2-5 steps of each decade (only the 1s over more
    than four decades), each labelled in full ("100k", "200k", "1M"), instead of plotly's minor
    digits ("6 5 4 3 2 100k 9 8")."""
    steps = (1.0,) if hi / lo > 1e4 else (1.0, 2.0, 5.0)
    vals = [
        m * 10.0**e
        for e in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
        for m in steps
        if lo <= m * 10.0**e <= hi
    ]
    if len(vals) < 2:  # under one step: the ends, rounded
        vals = [float(f"{lo:.2g}"), float(f"{hi:.2g}")]
    return vals, [_short(v) for v in vals]


def _log_axis(fig: Figure, values: np.ndarray, row: int) -> None:
    """A log scale with readable ticks where the values span more than 10x (positive only)."""
    v = values[np.isfinite(values)]
    if not len(v) or v.min() <= 0 or v.max() / v.min() <= 10:
        return
    vals, text = log_ticks(float(v.min()), float(v.max()))
    fig.update_yaxes(type="log", tickvals=vals, ticktext=text, row=row, col=1)


def _rolling_window(periods_per_year: float) -> int:
    return max(int(periods_per_year // 2), 2)


def _rolling_sharpe(values: np.ndarray, base: float, periods_per_year: float) -> np.ndarray:
    """Sharpe ratio (risk-free 0, annualised) of the per-bar returns over the last half year of bars;
    NaN before a full window and where the curve does not move."""
    prev = np.concatenate([[base], values[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        r = pd.Series(np.where(prev > 0, values / prev - 1.0, 0.0))
    w = _rolling_window(periods_per_year)
    mean, std = r.rolling(w).mean(), r.rolling(w).std()
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (mean / std * np.sqrt(periods_per_year)).to_numpy(float, copy=True)
    out[~(std.to_numpy(float) > 1e-12)] = np.nan
    return out


def _traded_traces(
    traded: Mapping[str, pd.DataFrame], trades: pd.DataFrame, intraday: bool
) -> list[dict[str, Any]]:
    """Each traded instrument's close, and every fill at its own time and price on it."""
    colors = ("#1a9e3a", "#d62728", "#9467bd", "#8c564b")
    out: list[dict[str, Any]] = []
    for k, (sym, df) in enumerate(traded.items()):
        x = _x_strings(_wall_time(df.index), intraday)
        close = df["close"].to_numpy(float)
        out.append(_line(x, close, name=f"{sym} close", line={"color": colors[k % len(colors)], "width": 1}))
        if trades is None or not len(trades):
            continue
        t = trades[trades["symbol"].astype(str) == sym]
        if not len(t):
            continue
        idx = pd.DatetimeIndex(df.index)
        entry = {"symbol": "triangle-up", "size": 10, "color": colors[k % len(colors)]}
        for when, marker in (("entry", entry), ("exit", {"symbol": "x", "size": 8, "color": "#222"})):
            times = t[f"{when}_time"]
            ok = ~pd.isna(to_datetime_index(times))
            if not ok.any():
                continue
            pos = bar_positions(times[ok], idx)
            price = t.loc[ok, f"{when}_price"].astype(float).to_numpy()
            text = [
                f"<b>{html.escape(sym)}</b> {when} {p:.4f}"
                + (f"<br>{html.escape(str(r))}" if when == "exit" else "")
                for p, r in zip(price, t.loc[ok, "exit_reason"], strict=True)
            ]
            out.append(
                scatter(
                    x[pos],
                    price,
                    mode="markers",
                    name=f"{sym} {when}",
                    marker=marker,
                    hovertext=text,
                    hoverinfo="text",
                )
            )
    return out


def _histogram(returns: np.ndarray) -> str:
    """The distribution of the trades' returns (pnl over the money put in), in percent."""
    r = 100 * returns[np.isfinite(returns)]
    fig = Figure()
    fig.add_trace(
        {"type": "histogram", "x": r, "nbinsx": min(60, max(10, len(r) // 3)), "marker": {"color": "#1f77b4"}}
    )
    fig.add_vline(x=0, line={"color": "#555", "width": 1})
    fig.update_layout(
        height=300,
        margin={"l": 60, "r": 20, "t": 20, "b": 40},
        xaxis={"title": {"text": f"return per trade, % ({len(r)} trades, median {np.median(r):+.2f}%)"}},
        yaxis={"title": {"text": "trades"}},
        bargap=0.05,
    )
    return fig.to_html(include_plotlyjs=False)


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
    signal = summary.get("run", {}).get("signal")
    more = {s: b for s, b in summary.get("benchmarks", {}).items() if s != signal}  # the bull's
    heads = "".join(f"<th>buy &amp; hold {html.escape(s)}</th>" for s in more)
    own = f" {html.escape(signal)}" if signal and more else ""
    rows = [f'<tr><th class="l">metric</th><th>strategy</th><th>buy &amp; hold{own}</th>{heads}</tr>']
    for label, key, kind in _SUMMARY_ROWS:
        cells = "".join(f"<td>{_fmt(b.get(key), kind)}</td>" for b in more.values())
        rows.append(
            f'<tr><td class="l">{label}</td><td>{_fmt(strat.get(key), kind)}</td>'
            f"<td>{_fmt(bh.get(key), kind)}</td>{cells}</tr>"
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
    traded: Mapping[str, pd.DataFrame] | None = None,
    periods_per_year: float | None = None,
    pnl: np.ndarray | None = None,
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
        traded=traded, periods_per_year=periods_per_year,
    )  # fmt: skip
    chart = fig.to_html(include_plotlyjs=True)
    if pnl is not None and len(pnl):
        sections = [("Trade returns", _histogram(pnl)), *sections]

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
    banner = f'<div class="banner">{BANNER} — generated prices, not market history</div>' if synthetic else ""
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
no drawdown). Buy &amp; hold: the signal symbol (and the bull instrument, where shown) bought at the first
close of the measured period with the starting equity; the period is where every instrument has data.</div>
{extra}<h2>Trades (last {shown:,} of {n_trades:,})</h2>
{_trades_table(trades)}
{notes_html}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path
