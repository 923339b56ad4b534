"""What `config.example.toml` does on the real data in ../shared/data, beside buy-and-hold SOXX and SOXL
over the same days (run by hand: `.venv/bin/python bench/example_config.py [--data DIR]`). Not a test,
not a search: the config's rules were chosen from their logic (README, "The example configuration"),
and this script reports whatever they give. The README's table is its output.

One continuous backtest of the example config from the first day SOXL has data (2010-03-11) to the end
of the files, with the config's own strategies, risk rules and sides; only the data source is changed
(csv from --data). The first 2011 session is the first day reported: the strategies' and the gates'
warm-up (50 and 200 sessions) is over by then. Each period's figures are cut from that one run's equity
curve (CAGR from the period's first to its last close, max drawdown inside it); buy-and-hold holds the
symbol from the same first close to the same last close. A row "as before" runs the previous example
(fixed 5% stop, all equity in each trade, no side rules) over the same days for comparison.
SOXS in the data is back-adjusted (~9.6e8 of reverse splits): the price basis "auto" sizes it by
notional (bot/data/basis.py), stated in each backtest's report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.core.config import Settings, StrategyConfig, load_config  # noqa: E402
from bot.data.csv_feed import load_csv  # noqa: E402
from bot.data.quality import clean_bars  # noqa: E402
from bot.run.backtest import run_backtest  # noqa: E402
from bot.signals.plugins import create  # noqa: E402

PERIODS = [
    ("2011-2015", "2011-01-01", "2015-12-31"),
    ("2016-2020", "2016-01-01", "2020-12-31"),
    ("2021-2026", "2021-01-01", "2026-12-31"),
    ("2011-2026", "2011-01-01", "2026-12-31"),
]


def cut(curve: pd.Series, a: str, b: str) -> dict[str, float]:
    """CAGR and max drawdown of `curve` from its last value before `a` (the period's starting point)
    to its last value on or before `b`."""
    before = curve[curve.index < pd.Timestamp(a)]
    part = curve[a:b]
    start_t, start_v = (before.index[-1], before.iloc[-1]) if len(before) else (part.index[0], part.iloc[0])
    years = (part.index[-1] - start_t).days / 365.25
    path = np.concatenate([[start_v], part.to_numpy(float)])
    dd = float((path / np.maximum.accumulate(path) - 1).min())
    growth = part.iloc[-1] / start_v
    return {"cagr": growth ** (1 / years) - 1, "max_dd": dd, "total": growth - 1}


def backtest(cfg: Settings, bars: dict[str, pd.DataFrame]) -> tuple[pd.Series, pd.DataFrame]:
    strategies = [create(s.name, s.params) for s in cfg.strategies]
    res = run_backtest(cfg, strategies, bars)
    return res.equity["equity"], res.trades


def previous_example(cfg: Settings) -> Settings:
    """The example as it was before its rules were built on the leveraged-fund work: a fixed 5% stop,
    all equity in each trade, SOXL and SOXS alike."""
    old = load_config()
    old.data = cfg.data
    old.strategies = [StrategyConfig(name="ma_cross", params={"fast": 20, "slow": 50, "kind": "sma"})]
    old.risk.fractional = True  # whole shares on back-adjusted SOXS would not be a market fact
    return old


def row(name: str, curve: pd.Series, trades: pd.DataFrame | None = None) -> str:
    cells = []
    for _, a, b in PERIODS:
        c = cut(curve, a, b)
        cells.append(f"{c['cagr']:+.1%} / {c['max_dd']:.0%}")
    n = "" if trades is None else str(len(trades))
    return f"| {name} | " + " | ".join(cells) + f" | {n} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--config", type=Path, default=ROOT / "config.example.toml")
    args = ap.parse_args()
    if not (args.data / "SOXX_1d.csv").is_file():
        sys.exit(f"no SOXX_1d.csv in {args.data}: pass --data DIR (the real data, ../shared/data)")
    cfg = load_config(args.config)
    cfg.data.source, cfg.data.dir, cfg.data.timeframe = "csv", args.data, "1d"
    cfg.data.start, cfg.data.end = None, None
    symbols = list(dict.fromkeys([*cfg.universe.symbols, "SOXX", "SOXL"]))
    raw = {s: load_csv(args.data, s, "1d", "2010-03-11", None) for s in symbols}
    bars = {s: clean_bars(df, s, "1d")[0] for s, df in raw.items()}
    first = max(bars[s].index[0] for s in cfg.universe.symbols)
    bars = {s: df[df.index >= first] for s, df in bars.items()}
    run_bars = {s: bars[s] for s in cfg.universe.symbols}
    eq, trades = backtest(cfg, run_bars)
    old_eq, old_trades = backtest(previous_example(cfg), run_bars)
    days = eq.index
    print(
        f"config {args.config.name}: signal {cfg.universe.signal}, bull {cfg.universe.bull or '-'}, bear "
        f"{cfg.universe.bear or '-'}, strategies "
        + ", ".join(f"{s.name} {s.params}" for s in cfg.strategies)
        + f"; data {days[0]:%Y-%m-%d} .. {days[-1]:%Y-%m-%d}\n"
    )
    print("| | " + " | ".join(p for p, _, _ in PERIODS) + " | trades |")
    print("|---|" + "---:|" * (len(PERIODS) + 1))
    print(row("example config (CAGR / max DD)", eq, trades))
    print(row("previous example: 5% stop, all-in, both sides", old_eq, old_trades))
    for sym in ("SOXX", "SOXL"):
        close = bars[sym]["close"].reindex(days).ffill()
        print(row(f"buy and hold {sym}", close))
    by_side = trades.groupby("symbol")["pnl"].agg(["count", "sum"]) if len(trades) else None
    if by_side is not None:
        print("\nexample config, closed trades by symbol (count, P&L on 100k start):")
        for sym, r in by_side.iterrows():
            reasons = trades[trades.symbol == sym]["exit_reason"].value_counts().to_dict()
            print(f"- {sym}: {int(r['count'])} trades, P&L {r['sum']:+,.0f}, exits {reasons}")


if __name__ == "__main__":
    main()
