"""The engine at 1M one-minute bars (run by hand; figures in bench/README.md).

Seeded synthetic SOXX/SOXL/SOXS minute bars (~10.2 years, 1,000,000 SOXX bars), ma_cross 20/50 SMA,
8% stop, fractional shares: the bars cleaned by the bad-bar rules (`clean_bars`), then
`run_backtest` (signals + the event-skipping engine, no journal). Prints bars per second of each
part and of both, the trade count and a digest of the trades, so a change to the engine can show
it made the same trades (`--digest` of the code before and after).

    .venv/bin/python bench/million_bars.py [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.core.config import StrategyConfig, load_config
from bot.data.quality import clean_bars
from bot.data.synthetic import generate
from bot.run.backtest import run_backtest
from bot.signals.plugins import create

N = 1_000_000
SYMS = ["SOXX", "SOXL", "SOXS"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    t = time.perf_counter()
    raw = generate(SYMS, "1m", "2010-01-04", 10.3, seed=3)
    raw = {s: df.iloc[:N] for s, df in raw.items()}
    print(f"generated {len(raw['SOXX']):,} bars in {time.perf_counter() - t:.1f} s")
    cfg = load_config()
    cfg.data.timeframe = "1m"
    cfg.strategies = [StrategyConfig(name="ma_cross", params={"fast": 20, "slow": 50, "kind": "sma"})]
    cfg.risk.stop_loss_pct = 0.08
    cfg.risk.fractional = True
    strat = [create("ma_cross", {"fast": 20, "slow": 50, "kind": "sma"})]
    best_clean = best_bt = float("inf")
    res = None
    for _ in range(a.repeat):
        t = time.perf_counter()
        bars = {s: clean_bars(df, s, "1m")[0] for s, df in raw.items()}
        t1 = time.perf_counter()
        res = run_backtest(cfg, strat, bars)
        t2 = time.perf_counter()
        best_clean, best_bt = min(best_clean, t1 - t), min(best_bt, t2 - t1)
    assert res is not None
    n = len(bars["SOXX"])
    digest = hashlib.sha256(res.trades.to_csv(index=False).encode()).hexdigest()[:16]
    print(f"bars {n:,}  trades {len(res.trades):,}  trades digest {digest}  stepped {res.stepped:,}")
    print(
        f"clean_bars (3 symbols) {best_clean:.3f} s   run_backtest {best_bt:.3f} s"
        f" = {n / best_bt:,.0f} bars/s"
    )
    print(
        f"both {best_clean + best_bt:.3f} s = {n / (best_clean + best_bt):,.0f} bars/s  (best of {a.repeat})"
    )
    if a.profile:
        prof = cProfile.Profile()
        prof.enable()
        run_backtest(cfg, strat, bars)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
