"""The HTML report a user opens after `soxbot backtest`: panels, markers, tables, banner, size."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.report.metrics import summarize
from bot.report.report import BANNER, MAX_POINTS, TRADE_ROWS, downsample_positions, write_report

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRADE_COLUMNS = [
    "symbol", "side", "qty", "entry_time", "entry_price", "exit_time", "exit_price", "pnl", "exit_reason",
]
SIZE_LIMIT = 7_000_000  # bytes, documented in bot/report/report.py; plotly.js alone is ~4.8 MB


def soxx_daily() -> pd.DataFrame:
    path = DATA / "SOXX_1d.csv"
    if not path.is_file():
        pytest.skip(f"{path} not present (real market data lives beside the repo)")
    df = pd.read_csv(path)
    df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("timestamp")))
    return df


def synthetic_minutes(n: int, seed: int = 3) -> pd.DataFrame:
    """`n` regular-hours 1-minute bars (390 a session, weekdays), NY tz-aware like the CSV files."""
    sessions = pd.bdate_range("2022-01-03", periods=n // 390 + 1)
    minutes = pd.to_timedelta(np.arange(390), unit="min") + pd.Timedelta(hours=9, minutes=30)
    stamps = pd.DatetimeIndex([d + m for d in sessions for m in minutes])[:n].tz_localize("America/New_York")
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.0005,
            "low": np.minimum(open_, close) * 0.9995,
            "close": close,
            "volume": 1000.0,
        },
        index=stamps,
    )


def backtest_by_hand(bars: pd.DataFrame, windows: list[tuple[int, int, str]], cash: float = 100_000.0):
    """Equity and trades for holding the signal symbol (as stand-in for SOXL/SOXS) in `windows`."""
    close = bars["close"].to_numpy()
    idx = bars.index
    values, pos_values, rows = [], [], []
    qty, entry = 0.0, 0.0
    for i, c in enumerate(close):
        for a, b, symbol in windows:
            if i == a:
                qty, entry = cash / c, c
                cash = 0.0
            elif i == b:
                cash = qty * c
                rows.append([symbol, "long", qty, idx[a], entry, idx[b], c, qty * (c - entry), "signal"])
                qty = 0.0
        values.append(cash + qty * c)
        pos_values.append(qty * c)
    equity = pd.DataFrame(
        {"equity": values, "cash": np.subtract(values, pos_values), "position_value": pos_values}, index=idx
    )
    return equity, pd.DataFrame(rows, columns=TRADE_COLUMNS)


def indicators_for(bars: pd.DataFrame, rsi: bool = True) -> tuple[pd.DataFrame, dict[str, str]]:
    c = bars["close"]
    ind = pd.DataFrame(
        {"sma_20": c.rolling(20).mean(), "support": c.rolling(30).min(), "resistance": c.rolling(30).max()}
    )
    panels = {"sma_20": "price", "support": "price", "resistance": "price"}
    if rsi:
        d = c.diff()
        up, down = d.clip(lower=0).ewm(alpha=1 / 14).mean(), (-d.clip(upper=0)).ewm(alpha=1 / 14).mean()
        ind["rsi_14"] = 100 - 100 / (1 + up / down)
        panels["rsi_14"] = "rsi"
    return ind, panels


def render(
    tmp_path: Path, bars, windows, *, rsi=True, synthetic=False, name="report.html", extra_column=False, **kw
) -> str:
    equity, trades = backtest_by_hand(bars, windows)
    ind, panels = indicators_for(bars, rsi)
    if extra_column:  # an indicator whose strategy declares no panel (e.g. volume z-score)
        ind["vol_z"] = (bars["volume"] - bars["volume"].mean()) / bars["volume"].std()
    summary = summarize(equity, trades, bars["close"], 252, 100_000.0)
    path = write_report(
        tmp_path / "out" / name, title="SOXX test run", bars=bars, indicators=ind, panels=panels,
        trades=trades, equity=equity, benchmark_close=bars["close"], summary=summary,
        synthetic=synthetic, **kw,
    )
    assert path == tmp_path / "out" / name and path.is_file()
    return path.read_text(encoding="utf-8")


def figure_json(doc: str) -> dict:
    """The plotly figure embedded in the page: Plotly.newPlot(id, data, layout, config)."""
    m = re.search(r'Plotly\.newPlot\(\s*"[^"]+",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{"responsive"', doc, re.S)
    assert m, "no Plotly.newPlot call in the report"
    return {"data": json.loads(m.group(1)), "layout": json.loads(m.group(2))}


def titles(fig: dict) -> list[str]:
    return [a["text"] for a in fig["layout"].get("annotations", []) if "text" in a]


def markers(fig: dict, name: str) -> dict | None:
    return next((t for t in fig["data"] if t.get("name") == name and t.get("mode") == "markers"), None)


def n_points(trace: dict) -> int:
    x = trace["x"]
    return len(x) if isinstance(x, list) else len(x["bdata"])  # strings are plain lists


# --- real data ------------------------------------------------------------------------------------


def test_soxx_report_has_panels_markers_and_tables(tmp_path):
    bars = soxx_daily().loc["2019-01-01":"2020-12-31"]
    windows = [(30, 80, "SOXL"), (100, 140, "SOXS"), (200, 260, "SOXL")]
    doc = render(tmp_path, bars, windows, notes=["seeded from SOXX_1d.csv"], extra_column=True)
    fig = figure_json(doc)
    assert titles(fig) == [
        "Price, indicators and trades", "RSI", "Equity: strategy vs buy-and-hold", "Drawdown",
    ]
    kinds = {t.get("name"): t["type"] for t in fig["data"]}
    assert kinds["price"] == "candlestick"  # 505 bars: candles
    assert {"sma_20", "support", "resistance", "rsi_14", "strategy", "buy & hold"} <= kinds.keys()
    levels = [t for t in fig["data"] if t.get("name") in ("support", "resistance")]
    assert all(t["line"]["shape"] == "hv" for t in levels)

    idx = bars.index
    bull, bear, exits = markers(fig, "bull entry"), markers(fig, "bear entry"), markers(fig, "exit")
    assert bull["marker"]["symbol"] == "triangle-up" and bear["marker"]["symbol"] == "triangle-down"
    assert exits["marker"]["symbol"] == "x"
    assert bull["x"] == [idx[30].strftime("%Y-%m-%d"), idx[200].strftime("%Y-%m-%d")]
    assert bear["x"] == [idx[100].strftime("%Y-%m-%d")]
    assert len(exits["x"]) == 3
    # markers sit on the signal close at that bar
    assert _decode(bear["y"]) == pytest.approx([bars["close"].iloc[100]])
    assert "SOXS" in bear["hovertext"][0] and "exit_reason: signal" in exits["hovertext"][0]

    assert "Trades (last 3 of 3)" in doc
    assert "505 bars · 3 trades" in doc
    assert "seeded from SOXX_1d.csv" in doc
    assert "vol_z" not in kinds and "indicator &#x27;vol_z&#x27; not drawn" in doc
    assert BANNER not in doc
    # summary table shows the same numbers as summary.json, as percentages
    equity, trades = backtest_by_hand(bars, windows)
    s = summarize(equity, trades, bars["close"], 252, 100_000.0)
    assert f"{s['buy_and_hold']['total_return'] * 100:,.2f}%" in doc
    assert f"{s['strategy']['max_drawdown'] * 100:,.2f}%" in doc


def _decode(y) -> list[float]:
    if isinstance(y, list):
        return y
    import base64

    return np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"]).tolist()


def test_report_is_self_contained_for_offline_use(tmp_path):
    bars = soxx_daily().loc["2020-01-01":"2020-03-31"]
    doc = render(tmp_path, bars, [(5, 20, "SOXL")])
    assert re.findall(r"<script[^>]*>", doc) == ["<script>"] * len(re.findall(r"<script", doc))  # no src=
    assert "plotly.js v" in doc  # the library itself is inline


def test_synthetic_banner_only_when_synthetic(tmp_path):
    bars = synthetic_minutes(2000)
    plain = render(tmp_path, bars, [(10, 50, "SOXL")], name="a.html")
    marked = render(tmp_path, bars, [(10, 50, "SOXL")], synthetic=True, name="b.html")
    assert BANNER not in plain
    assert marked.count(BANNER) == 1
    assert marked.index(BANNER) < marked.index("<h1>")  # at the top, before the title


def test_zero_trades_and_no_rsi_column(tmp_path):
    bars = synthetic_minutes(1500)
    doc = render(tmp_path, bars, [], rsi=False)
    fig = figure_json(doc)
    assert titles(fig) == ["Price, indicators and trades", "Equity: strategy vs buy-and-hold", "Drawdown"]
    assert all(t.get("mode") != "markers" for t in fig["data"])
    assert "No trades." in doc and "0 trades" in doc
    assert "n/a" in doc  # trade statistics are undefined


def test_intraday_axis_hides_nights_weekends_and_holidays(tmp_path):
    bars = synthetic_minutes(390 * 8)
    holiday = bars.index.normalize()[390 * 3]
    bars = bars[bars.index.normalize() != holiday]  # a weekday with no session
    fig = figure_json(render(tmp_path, bars, [(5, 400, "SOXS")]))
    breaks = fig["layout"]["xaxis"]["rangebreaks"]
    assert {"bounds": ["sat", "mon"]} in breaks
    assert {"bounds": [16, 9.5], "pattern": "hour"} in breaks
    assert {"values": [holiday.strftime("%Y-%m-%d")]} in breaks
    # x values are New York wall time: the first bar is at 09:30
    price = next(t for t in fig["data"] if t.get("name") == "price")
    assert price["x"][0].endswith("09:30")


def test_trades_table_shows_the_last_rows(tmp_path):
    bars = synthetic_minutes(3000)
    windows = [(i, i + 2, "SOXL" if i % 6 else "SOXS") for i in range(0, 2 * 3 * 230, 3)][:230]
    windows = [(a, b, s) for a, b, s in windows if b < len(bars)]
    doc = render(tmp_path, bars, windows)
    n = len(windows)
    assert n > TRADE_ROWS
    assert f"Trades (last {TRADE_ROWS} of {n})" in doc
    table = doc[doc.index('<table class="trades">') :]
    table = table[: table.index("</table>")]
    assert table.count("<tr>") == TRADE_ROWS + 1
    # every trade still has its markers on the chart
    fig = figure_json(doc)
    total = sum(len(markers(fig, k)["x"]) for k in ("bull entry", "bear entry"))
    assert total == n and len(markers(fig, "exit")["x"]) == n


def test_long_one_minute_run_stays_small_and_keeps_every_trade(tmp_path):
    bars = synthetic_minutes(100_000)
    windows = [(i, i + 120, "SOXL" if (i // 500) % 2 else "SOXS") for i in range(100, 99_000, 500)]
    doc = render(tmp_path, bars, windows)
    size = len(doc.encode("utf-8"))
    assert size < SIZE_LIMIT, f"report is {size / 1e6:.1f} MB"
    fig = figure_json(doc)
    price = next(t for t in fig["data"] if t.get("name") == "close")
    assert price["type"] == "scatter"  # a close line, not 100k candles
    lines = [t for t in fig["data"] if t.get("mode") == "lines"]
    assert all(n_points(t) <= MAX_POINTS + 2 for t in lines)
    entries = sum(len(markers(fig, k)["x"]) for k in ("bull entry", "bear entry"))
    assert entries == len(windows) and len(markers(fig, "exit")["x"]) == len(windows)


# --- downsampling ---------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6) | st.just(float("nan")), min_size=1, max_size=3000),
    max_points=st.integers(4, 500),
)
def test_downsample_keeps_extremes_ends_and_order(values, max_points):
    v = np.asarray(values)
    keep = downsample_positions(v, max_points)
    assert (np.diff(keep) > 0).all()
    assert len(keep) <= max_points + 2
    if len(v) <= max_points:
        assert keep.tolist() == list(range(len(v)))
    assert keep[0] == 0 and keep[-1] == len(v) - 1
    if np.isfinite(v).any():
        kept = v[keep]
        assert np.nanmax(kept) == np.nanmax(v) and np.nanmin(kept) == np.nanmin(v)
