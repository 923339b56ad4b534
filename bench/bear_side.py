"""What the bear side costs and what its own rules change, on the real data in ../shared/data (run by
hand: `.venv/bin/python bench/bear_side.py [--data DIR]`). Not a test, not a search.

One strategy throughout: ma_cross 20/50 (SMA) on SOXX, no stop, fractional shares (SOXS in the data
is back-adjusted by ~9.6e8 of reverse splits: whole shares could not buy it before 2023), 2011-01-03
to the end of the data, one run per row. Rows: SOXL only; SOXL and SOXS; then SOXS with its own rules
chosen from their logic, not from this data: SOXS only below SOXX's 200-day SMA (the usual trend
line), only in a bear market by the usual definition (SOXX 20% or more below its 1-year peak), and
the SMA200 gate with a two-week max hold on SOXS (a daily-reset 3x fund decays with time held).
The sub-period columns are the same run's equity curve cut at the period bounds (CAGR of each part);
the gates know their figures after 200/252 bars, so in 2011 they block SOXS as "not known yet".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.core.config import StrategyConfig, load_config
from bot.data.csv_feed import load_csv
from bot.data.quality import clean_bars
from bot.report.metrics import summarize
from bot.run.backtest import run_backtest
from bot.signals.plugins import create

ROWS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("SOXL only", "", None),
    ("SOXL + SOXS", "SOXS", None),
    ("SOXL + SOXS below SMA200", "SOXS", {"regime_sma": 200}),
    ("SOXL + SOXS in a 20% drawdown", "SOXS", {"regime_drawdown_pct": 0.2, "regime_peak_bars": 252}),
    ("SOXL + SOXS below SMA200, max hold 10", "SOXS", {"regime_sma": 200, "max_hold_days": 10}),
]
PERIODS = [("2011-2015", "2011", "2015"), ("2016-2020", "2016", "2020"), ("2021-2026", "2021", "2026")]


def run(bars: dict[str, pd.DataFrame], bear: str, rules: dict[str, Any] | None) -> dict[str, Any]:
    cfg = load_config()
    cfg.strategies = [StrategyConfig(name="ma_cross", params={"fast": 20, "slow": 50, "kind": "sma"})]
    cfg.risk.stop_loss_pct = 0.0
    cfg.risk.fractional = True
    cfg.universe.bear = bear
    cfg.risk.bear = rules
    strategies = [create(s.name, s.params) for s in cfg.strategies]
    res = run_backtest(cfg, strategies, bars)
    s = summarize(res.equity, res.trades, bars["SOXX"]["close"], 252, cfg.broker.starting_cash)["strategy"]
    eq = res.equity["equity"]
    parts = {}
    for name, a, b in PERIODS:
        before = eq[eq.index < pd.Timestamp(f"{a}-01-01")]
        part = eq[a:b]
        start = before.iloc[-1] if len(before) else cfg.broker.starting_cash
        years = (part.index[-1] - (before.index[-1] if len(before) else part.index[0])).days / 365.25
        parts[name] = (part.iloc[-1] / start) ** (1 / years) - 1
    t = res.trades
    soxs = t[t.symbol == "SOXS"]
    return {
        "cagr": s["cagr"],
        "max_dd": s["max_drawdown"],
        "trades": len(t),
        "soxs_trades": len(soxs),
        "soxs_win": float((soxs.pnl > 0).mean()) if len(soxs) else np.nan,
        "parts": parts,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--start", default="2011-01-01")
    ap.add_argument("--end", default="2026-12-31")
    args = ap.parse_args()
    if not (args.data / "SOXX_1d.csv").is_file():
        sys.exit(f"no SOXX_1d.csv in {args.data}: pass --data DIR (the real data, ../shared/data)")
    bars = {
        s: clean_bars(load_csv(args.data, s, "1d", args.start, args.end), s, "1d")[0]
        for s in ("SOXX", "SOXL", "SOXS")
    }
    idx = bars["SOXX"].index
    print(f"ma_cross 20/50 on SOXX, no stop, fractional shares, {idx[0]:%Y-%m-%d} .. {idx[-1]:%Y-%m-%d}\n")
    head = (
        "| rule | CAGR | max DD | trades | SOXS trades (won) | " + " | ".join(p for p, _, _ in PERIODS) + " |"
    )
    print(head)
    print("|---|---:|---:|---:|---:|" + "---:|" * len(PERIODS))
    for name, bear, rules in ROWS:
        r = run(bars, bear, rules)
        won = f"{r['soxs_trades']} ({r['soxs_win']:.0%})" if r["soxs_trades"] else "0"
        parts = " | ".join(f"{r['parts'][p]:+.1%}" for p, _, _ in PERIODS)
        print(f"| {name} | {r['cagr']:+.1%} | {r['max_dd']:.1%} | {r['trades']} | {won} | {parts} |")


if __name__ == "__main__":
    main()
