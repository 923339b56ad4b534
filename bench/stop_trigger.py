"""How often a stop on SOXL triggers on the entry day: a fixed 5% stop against k x sigma x |L| (k = 2.5,
sigma = SOXX's 20-session daily volatility, L = 3). Run by hand on the real data beside the repo:

    .venv/bin/python bench/stop_trigger.py [--data-dir ../shared/data] [--start 2011-01-01] [--end 2026-08-21]

Two views, both with the fill model soxbot uses (an entry fills at the next open; a stop triggers when
a bar's low reaches it and fills at the stop, or at the open when the open is already through it):
1. every session as an entry at its open, each stop set from that open (sigma as of the close before,
   what `bot/risk/index.py` knows when the entry fills): the share triggered the same day and within
   3 sessions, and the median distance of each stop;
2. soxbot's own backtest of the issue's trend case (ma_cross 20/50 on SOXX, SOXL only), once per rule:
   the trades that ended on a stop the day they began, and within 3 sessions.
Nothing here is tuned: k = 2.5 and 20 sessions are the values the issue names.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.core.config import StrategyConfig, load_config
from bot.data.csv_feed import load_csv
from bot.data.quality import clean_bars
from bot.risk.index import DailyVol
from bot.run.backtest import run_backtest
from bot.signals.plugins import create

K, LOOKBACK, LEV, FIXED = 2.5, 20, 3.0, 0.05


def every_session(soxx: pd.DataFrame, soxl: pd.DataFrame) -> pd.DataFrame:
    """Per rule: share of session-open entries stopped the same day / within 3 sessions."""
    v = DailyVol(LOOKBACK)
    sig = []
    for i, c in enumerate(soxx["close"].to_numpy()):
        sig.append(v.value)  # as of the close before this session: what an entry at this open knows
        v.update(i, float(c))
    sigma = pd.Series(sig, index=soxx.index, dtype=float).rename("sigma")
    df = soxl.join(sigma, how="inner").dropna(subset=["sigma"])
    o, lo = df["open"].to_numpy(), df["low"].to_numpy()
    low3 = pd.Series(lo[::-1]).rolling(3, min_periods=3).min().to_numpy()[::-1]  # low of sessions t..t+2
    rows = []
    for name, dist in (
        ("fixed 5%", np.full(len(df), FIXED)),
        ("2.5 sigma x 3", K * LEV * df["sigma"].to_numpy()),
    ):
        stop = o * (1 - dist)
        ok = ~np.isnan(low3)
        rows.append(
            {
                "stop": name,
                "entries": int(ok.sum()),
                "median distance": f"{np.median(dist):.1%}",
                "p10..p90 distance": f"{np.quantile(dist, 0.1):.1%} .. {np.quantile(dist, 0.9):.1%}",
                "stopped on entry day": f"{np.mean(lo[ok] <= stop[ok]):.1%}",
                "within 3 sessions": f"{np.mean(low3[ok] <= stop[ok]):.1%}",
            }
        )
    return pd.DataFrame(rows)


def backtests(bars: dict[str, pd.DataFrame]) -> pd.DataFrame:
    rows = []
    for name, risk in (
        ("no stop", {"stop_loss_pct": 0.0}),
        ("fixed 5%", {"stop_loss_pct": FIXED}),
        ("2.5 sigma x 3", {"stop_loss_pct": 0.0, "stop_sigma_mult": K, "vol_lookback": LOOKBACK}),
    ):
        cfg = load_config()
        cfg.universe.bear = ""
        cfg.strategies = [StrategyConfig(name="ma_cross", params={"fast": 20, "slow": 50})]
        for k, val in risk.items():
            setattr(cfg.risk, k, val)
        res = run_backtest(cfg, [create("ma_cross", {"fast": 20, "slow": 50})], bars)
        t = res.trades
        days = pd.DatetimeIndex(bars["SOXL"].index)
        held = days.searchsorted(pd.DatetimeIndex(t["exit_time"])) - days.searchsorted(
            pd.DatetimeIndex(t["entry_time"])
        )
        stopped = (t["exit_reason"] == "stop_loss").to_numpy()
        day0, day3 = stopped & (held == 0), stopped & (held <= 2)
        eq = res.equity["equity"]
        years = (eq.index[-1] - eq.index[0]).days / 365.25
        rows.append(
            {
                "stop": name,
                "trades": len(t),
                "ended on a stop": int(stopped.sum()),
                "stopped on entry day": int(day0.sum()),
                "stopped within 3 sessions": int(day3.sum()),
                "CAGR": f"{(eq.iloc[-1] / eq.iloc[0]) ** (1 / years) - 1:+.1%}",
            }
        )
    return pd.DataFrame(rows)


def _md(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns)
    return head + "".join(
        "\n| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--start", default="2011-01-01")
    ap.add_argument("--end", default="2026-08-21")
    a = ap.parse_args()
    # sigma needs the 20 sessions before the first entry: load a little earlier than --start
    early = str((pd.Timestamp(a.start) - pd.Timedelta(days=45)).date())
    bars = {s: clean_bars(load_csv(a.data_dir, s, "1d", early, a.end), s, "1d")[0] for s in ("SOXX", "SOXL")}
    start = pd.Timestamp(a.start)
    print(f"## Entry-day stops on SOXL, {a.start} .. {a.end} (SOXX sigma, {LOOKBACK} sessions)\n")
    print("Every session as an entry at its open:\n")
    print(_md(every_session(bars["SOXX"], bars["SOXL"].loc[start:])))
    print("\nsoxbot backtest, ma_cross 20/50 on SOXX, SOXL only, whole shares:\n")
    print(_md(backtests({s: df.loc[start:] for s, df in bars.items()})))


if __name__ == "__main__":
    main()
