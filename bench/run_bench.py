"""Benchmarks (run by hand: `make bench` or `.venv/bin/python bench/run_bench.py`). Not tests.

1. Backtest throughput, bars per second of the signal symbol, for each built-in strategy over 1, 10
   and 100 years of daily bars and one year of 1-minute bars (seeded synthetic data, so every
   machine measures the same bars). Time = signals + the engine loop (+ the journal where stated);
   loading and cleaning the data and writing the report are not counted. The default driver skips
   quiet bars (`bot/run/eventskip.py`); the plain per-bar loop (`every_bar=True`) is timed alongside,
   and the two must give the same trades and equity curve.
2. The live path: time from a new bar to the engine's order intent (`TrailingSignals.push`: the
   strategies' steppers, + Engine.step), after 1k, 10k and 90k bars of history, to show it stays
   flat; and the three strategies once more without their steppers (signals() on the trailing
   window each bar, as a plugin without a stepper is run).
Results print as Markdown; copy them into bench/README.md with the date and machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.broker.sim import SimBroker
from bot.core.config import StrategyConfig, load_config
from bot.data.quality import clean_bars
from bot.data.synthetic import generate
from bot.execution.engine import Engine
from bot.journal.journal import Journal
from bot.run.backtest import run_backtest, session_labels, set_id_for
from bot.signals.live import TrailingSignals
from bot.signals.plugins import create
from bot.signals.strategy import Strategy
from bot.signals.window import live_window

STRATS = {
    "ma_cross": {"fast": 20, "slow": 50, "kind": "sma"},
    "rsi": {"length": 14},
    "support": {},
}
SYMS = ["SOXX", "SOXL", "SOXS"]


def market(tf: str, years: float, seed: int = 3) -> dict:
    start = "1990-01-02" if years > 30 else "2010-01-04"
    raw = generate(SYMS, tf, start, years, seed=seed)
    return {s: clean_bars(df, s, tf)[0] for s, df in raw.items()}


def cfg_for(name: str):
    cfg = load_config()
    cfg.strategies = [StrategyConfig(name=name, params=STRATS[name])]
    cfg.risk.stop_loss_pct = 0.08
    cfg.risk.fractional = True
    return cfg


def bench_backtest(repeat: int) -> list[str]:
    rows = [
        "| strategy | data | bars | trades | engine only (bars/s) | with journal (bars/s) "
        "| plain per-bar loop (bars/s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    cases = [("1d", 1), ("1d", 10), ("1d", 100), ("1m", 1)]
    for tf, years in cases:
        bars = market(tf, years)
        n = len(bars["SOXX"])
        for name in STRATS:
            cfg = cfg_for(name)
            strat = [create(name, STRATS[name])]
            run_backtest(cfg, strat, bars)  # warm caches / JIT
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                res = run_backtest(cfg, strat, bars)
                times.append(time.perf_counter() - t)
            jt = []
            for _ in range(max(1, repeat // 2)):
                with tempfile.TemporaryDirectory() as d:
                    j = Journal(Path(d) / "j.db", buffered=True)
                    j.start_run("bench", "x", {})
                    t = time.perf_counter()
                    run_backtest(cfg, strat, bars, j)
                    j.close()
                    jt.append(time.perf_counter() - t)
            pt = []  # the plain loop (Engine.step on every bar), for comparison in the same run
            for _ in range(repeat):
                t = time.perf_counter()
                plain = run_backtest(cfg, strat, bars, every_bar=True)
                pt.append(time.perf_counter() - t)
            if not (plain.trades.equals(res.trades) and plain.equity.equals(res.equity)):
                raise SystemExit(f"{name} {tf} {years} y: event-skipping and plain loop differ")
            label = f"{years} y of {tf}"
            rows.append(
                f"| {name} | {label} | {n:,} | {len(res.trades)} | {n / statistics.median(times):,.0f} |"
                f" {n / statistics.median(jt):,.0f} | {n / statistics.median(pt):,.0f} |"
            )
            print(rows[-1], flush=True)
    return rows


def without_stepper(s: Strategy) -> Strategy:
    """The same strategy with `stepper()` returning None: TrailingSignals runs it on the window."""
    return type(f"Windowed{type(s).__name__}", (type(s),), {"stepper": lambda self: None})(s.params)


def bench_live(samples: int) -> list[str]:
    rows = [
        "| strategies | window (bars) | history before (bars) | p50 (ms) | p99 (ms) | max (ms) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    bars = market("1m", 1.1)
    n = len(bars["SOXX"])
    cases = [(["ma_cross"], True), (["rsi"], True), (["support"], True), (list(STRATS), True)]
    for names, stepped in [*cases, (list(STRATS), False)]:
        cfg = load_config()
        cfg.strategies = [StrategyConfig(name=k, params=STRATS[k]) for k in names]
        cfg.risk.fractional = True
        strategies = [create(k, STRATS[k]) for k in names]
        if not stepped:
            strategies = [without_stepper(s) for s in strategies]
        broker = SimBroker(cfg.broker.starting_cash, fractional=True)
        eng = Engine(cfg, set_id_for(cfg), broker, None, keep_equity=False)
        live = TrailingSignals(cfg, strategies, live_window(strategies))
        sig = bars["SOXX"]
        sess = session_labels(sig.index)
        ohlcv = sig[["open", "high", "low", "close", "volume"]].to_numpy()
        traded = {s: bars[s][["open", "high", "low", "close"]].to_numpy() for s in ("SOXL", "SOXS")}
        idx = sig.index
        marks = [1_000, 10_000, 90_000]
        lat: dict[int, list[float]] = {m: [] for m in marks}
        for i in range(min(n, marks[-1] + samples)):
            ts = idx[i]
            b = {s: tuple(a[i]) for s, a in traded.items()}
            o, h, lo, c, v = ohlcv[i]
            t = time.perf_counter()
            dec = live.push(ts, o, h, lo, c, v)
            eng.step(ts, sess[i], b, dec.direction, True, dec.reason)
            dt = time.perf_counter() - t
            for m in marks:
                if m <= i < m + samples:
                    lat[m].append(dt * 1000)
        label = "+".join(names) + ("" if stepped else " (window)")
        for m in marks:
            xs = np.array(lat[m])
            rows.append(
                f"| {label} | {live.window} | {m:,} | {np.median(xs):.3f} |"
                f" {np.percentile(xs, 99):.3f} | {xs.max():.3f} |"
            )
            print(rows[-1], flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--only", choices=["backtest", "live"], default=None)
    a = ap.parse_args()
    out: list[str] = []
    if a.only in (None, "backtest"):
        out += ["## Backtest throughput", "", *bench_backtest(a.repeat), ""]
    if a.only in (None, "live"):
        out += ["## Live path: bar -> order intent", "", *bench_live(a.samples), ""]
    res = Path(__file__).resolve().parent / "results"
    res.mkdir(exist_ok=True)
    (res / "latest.md").write_text("\n".join(out) + "\n")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
