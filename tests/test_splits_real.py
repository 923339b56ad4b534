"""Splits and price bases on the real data beside the repo (../shared/data, skipped when absent).

- SOXS there is back-adjusted by ~9.6e8 of reverse splits, and two of them have no sourced date, so
  its as-traded prices cannot be rebuilt: a backtest sizes it by notional (fractional quantities on the
  back-adjusted prices), says so in summary.json and the report, and puts the intended notional to work
  on every entry (before: whole shares of a 1e10 price, "size is 0", no SOXS trade before 2023).
- SOXL's two splits are sourced (splits.example.csv): its as-traded prices rebuilt from the adjusted
  file match the raw 1-minute bars of Jan 2020, and a backtest on them with the splits table, holding
  through both splits, gives the adjusted backtest's equity curve.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.core.config import load_config
from bot.data.csv_feed import load_csv
from bot.data.splits import read_splits
from bot.journal.journal import Journal
from bot.report.writer import write_outputs
from bot.run.assemble import build_strategies, load_market
from bot.run.backtest import run_backtest
from tests.conftest import REPO
from tests.sandbox_support import write_bars


def _cfg(tmp_path: Path, data: Path, universe: tuple[str, str, str], body: str) -> Path:
    signal, bull, bear = universe
    p = tmp_path / f"{bull or 'flat'}-{bear or 'flat'}.toml"
    p.write_text(
        f"""[data]
source = "csv"
dir = "{data}"
start = "2011-01-01"
[universe]
signal = "{signal}"
bull = "{bull}"
bear = "{bear}"
{body}
[journal]
path = "{tmp_path / "unused.db"}"
"""
    )
    return p


def test_soxs_2011_2026_puts_the_intended_notional_to_work_on_every_entry(shared_data, tmp_path):
    cfg = load_config(_cfg(tmp_path, shared_data, ("SOXX", "", "SOXS"), "[risk]\nstop_loss_pct = 0.0"))
    bars, _ = load_market(cfg)
    out = tmp_path / "out"
    summary = write_outputs(cfg, build_strategies(cfg), bars, out)
    trades = pd.read_csv(out / "trades.csv", parse_dates=["entry_time"])
    equity = pd.read_csv(out / "equity.csv", index_col=0, parse_dates=True)
    soxs = bars["SOXS"].reindex(equity.index)

    # every turn of the signal to -1 (after warm-up, before the last bar) is an entry: none blocked
    db = Journal(out / "journal.db")
    combined = db.query("SELECT ts, direction FROM signals WHERE strategy = 'combined' ORDER BY ts")
    turns = combined[(combined.direction == -1) & (pd.to_datetime(combined.ts) < equity.index[-1])]
    blocked = db.query("SELECT reason FROM risk WHERE action = 'block'")
    db.close()
    assert blocked.empty, blocked.reason.tolist()[:3]
    assert len(trades) == len(turns) > 30
    assert trades.entry_time.min() < pd.Timestamp("2012-01-01")  # from the start, not only after 2023

    # ... and each buys the whole equity (fraction 1): qty = equity / the decision bar's close, shrunk
    # to the cash at the fill's open when that gapped up. No rounding: not a share count.
    for t in trades.itertuples():
        k = equity.index.get_loc(t.entry_time)
        e_prev, close_prev, open_k = equity.equity.iloc[k - 1], soxs.close.iloc[k - 1], soxs.open.iloc[k]
        want = min(e_prev / close_prev, e_prev / open_k)
        assert t.qty == pytest.approx(want, rel=1e-9), t
        assert t.qty * t.entry_price == pytest.approx(min(e_prev * open_k / close_prev, e_prev), rel=1e-9)

    basis = summary["price_basis"]["SOXS"]
    assert basis["basis"] == "adjusted"
    assert "fractional quantities on back-adjusted prices, not share counts" in basis["statement"]
    assert html.escape(basis["statement"]) in (out / "report.html").read_text()


def test_soxl_as_traded_with_the_sourced_splits_matches_raw_bars_and_the_adjusted_backtest(
    shared_data, tmp_path
):
    table = read_splits(REPO / "splits.example.csv")
    adjusted = load_csv(shared_data, "SOXL", "1d")
    raw = table.as_traded("SOXL", adjusted)

    # the rebuilt as-traded closes are what traded: the raw 1-minute bars of Dec 2019 / Jan 2020
    minute = load_csv(shared_data, "SOXL", "1m")
    last = minute.groupby(minute.index.tz_convert("America/New_York").tz_localize(None).normalize())[
        "close"
    ].last()
    ratio = (last / raw["close"].reindex(last.index)).dropna()
    assert len(ratio) >= 15 and float(np.median(ratio)) == pytest.approx(1.0, abs=0.002)
    assert raw["close"].iloc[0] == pytest.approx(adjusted["close"].iloc[0] * 60)  # 4:1, then 15:1

    data = write_bars(tmp_path / "raw", {"SOXL": raw, "SOXX": load_csv(shared_data, "SOXX", "1d")}, "1d")
    (tmp_path / "splits.csv").write_text((REPO / "splits.example.csv").read_text())
    body = """[[strategies]]
name = "ma_cross"
params = { fast = 50, slow = 200, kind = "sma" }
[risk]
stop_loss_pct = 0.6
trailing_stop_pct = 0.6
fractional = true"""
    runs = {}
    for name, d, extra in (
        ("adjusted", shared_data, 'price_basis = "as_traded"'),
        ("as_traded", data, f'splits_file = "{tmp_path / "splits.csv"}"'),
    ):
        p = _cfg(tmp_path, d, ("SOXX", "SOXL", ""), body)
        p.write_text(p.read_text().replace("[universe]", f"{extra}\n[universe]"))
        cfg = load_config(p)
        bars, _ = load_market(cfg)
        j = Journal(tmp_path / f"{name}.db", buffered=True)
        j.start_run("backtest", "x", {})
        runs[name] = (run_backtest(cfg, build_strategies(cfg), bars, j), j)
    (a, _), (b, jb) = runs["adjusted"], runs["as_traded"]
    jb.flush()
    splits = jb.query("SELECT ts, reason, details FROM risk WHERE action = 'split'")
    assert [ts[:10] for ts in splits.ts] == ["2015-05-20", "2021-03-02"]
    assert splits.reason.str.contains("position kept, protective orders placed again").all()  # held through
    for d in map(json.loads, splits.details):
        assert d["qty_after"] == pytest.approx(d["qty_before"] * d["ratio"])
        assert d["stop_after"] == pytest.approx(d["stop_before"] / d["ratio"])
    assert b.basis["SOXL"].kind == "as_traded_splits"
    assert len(a.trades) == len(b.trades) >= 5
    pd.testing.assert_series_equal(a.equity["equity"], b.equity["equity"], rtol=1e-8)
