"""Bad bars injected into real data: cleaned by the stated rules, and no order is ever made on one."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bot.core.config import StrategyConfig, load_config
from bot.data.csv_feed import load_csv
from bot.data.quality import clean_bars
from bot.journal.journal import Journal
from bot.run.backtest import run_backtest
from bot.signals.plugins import create


def test_no_order_on_bad_or_post_gap_bars(shared_data, tmp_path):
    raw = {s: load_csv(shared_data, s, "1d", "2018-01-01", "2024-12-31") for s in ("SOXX", "SOXL", "SOXS")}
    sig = raw["SOXX"].copy()
    rng = np.random.default_rng(5)
    picks = np.sort(rng.choice(np.arange(100, len(sig) - 10), 60, replace=False))
    bad_ts: list[pd.Timestamp] = []
    for k, i in enumerate(picks):
        ts = sig.index[i]
        kind = k % 4
        if kind == 0:
            sig.iloc[i, sig.columns.get_loc("close")] = np.nan
        elif kind == 1:
            sig.iloc[i, sig.columns.get_loc("low")] = 0.0
        elif kind == 2:
            sig.iloc[i, sig.columns.get_loc("high")] = sig["low"].iat[i] * 0.5
        else:
            sig.iloc[i, sig.columns.get_loc("open")] = -1.0
        bad_ts.append(ts)
    dup = sig.iloc[[50, 60]].copy()  # rows before any injected bad bar
    dup["close"] *= 1.5  # an earlier, wrong copy: the last row in file order wins
    sig = pd.concat([dup, sig.iloc[::-1]])  # duplicates (the good copy later in the file) + reversed
    clean, report = clean_bars(sig, "SOXX", "1d")
    assert report.counts["nan_price"] + report.counts["non_positive"] + report.counts["high_below_low"] == 60
    assert report.counts["duplicate"] == 2 and report.counts["out_of_order"] > 0
    assert clean.index.is_monotonic_increasing and not clean.index.has_duplicates
    for i in (50, 60):
        assert clean.loc[raw["SOXX"].index[i], "close"] == raw["SOXX"]["close"].iat[i]
    assert not set(bad_ts) & set(clean.index)
    untradable1 = set(clean.index[~clean["tradable"]])
    clean2, _ = clean_bars(sig, "SOXX", "1d", max_gap_bars=0)
    untradable = set(clean2.index[~clean2["tradable"]])
    assert len(untradable) >= 50  # every bar right after a rejected one
    assert untradable1 < untradable  # max_gap_bars = 1 tolerates single missing days

    cfg = load_config()
    cfg.strategies = [StrategyConfig(name="ma_cross", params={"fast": 5, "slow": 20})]
    cfg.risk.fractional = True
    bars = {
        "SOXX": clean2,
        "SOXL": clean_bars(raw["SOXL"], "SOXL", "1d")[0],
        "SOXS": clean_bars(raw["SOXS"], "SOXS", "1d")[0],
    }
    j = Journal(tmp_path / "j.db", buffered=True)
    j.start_run("test", "x", {})
    res = run_backtest(cfg, [create("ma_cross", {"fast": 5, "slow": 20})], bars, j)
    j.close()
    assert len(res.trades) > 20
    orders = pd.read_sql("SELECT ts, intent FROM orders WHERE intent='open'", _db(tmp_path))
    opened_on = set(pd.to_datetime(orders["ts"]))
    assert opened_on and not opened_on & set(bad_ts)
    assert not opened_on & untradable  # no entry decided on a bar right after a gap
    blocked = pd.read_sql("SELECT reason FROM risk WHERE action='block'", _db(tmp_path))
    assert blocked["reason"].str.contains("data gap").any()


def _db(tmp_path):
    import sqlite3

    return sqlite3.connect(tmp_path / "j.db")
