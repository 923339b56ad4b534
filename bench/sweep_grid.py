"""Sweep benchmark (run by hand, not a test): a 1,000-combination grid of ma_cross fast x slow x stop
on SOXX daily 2001-2026 (../shared/data), long SOXX only, fractional shares, no costs.

1. `soxbot sweep`'s machinery in this process (bars loaded and cleaned once, each (fast, slow)
   signal computed once per group), on the local process pool and serially: wall time and peak
   memory (this process and the largest worker).
2. The same grid through vectorbt's parameter grid (`Portfolio.from_signals`, signals shifted one
   bar and filled at the open, `sl_stop` on the bars' OHLC), run in a separate venv:
   `--vectorbt-python /tmp/vbt-venv/bin/python` (python -m venv /tmp/vbt-venv &&
   /tmp/vbt-venv/bin/pip install vectorbt). Timed twice: the first run includes numba's compilation.
3. Trades compared on a seeded sample of combinations: entries and exits (dates, prices) per trade.

Usage: .venv/bin/python bench/sweep_grid.py [--data-dir ../shared/data] [--vectorbt-python PATH]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAST = "5:50:5"
SLOW = "60:240:20"
STOP = "0:0.18:0.02"


def _cfg(data_dir: Path):  # type: ignore[no-untyped-def]
    from bot.core.config import Settings

    return Settings.model_validate(
        {
            "data": {"source": "csv", "dir": str(data_dir), "start": "2001-01-01", "end": "2026-12-31"},
            "universe": {"signal": "SOXX", "bull": "SOXX", "bear": ""},
            "risk": {"fractional": True, "stop_loss_pct": 0.0},
            "broker": {"slippage_bps": 0, "commission": 0},
        }
    )


class PeakMemory:
    """Peak resident memory (VmHWM) of this process and of each process under it, polled from /proc
    while the sweep runs (the pool's workers are forked from a server process, so they are not our
    direct children and RUSAGE_CHILDREN does not see them)."""

    def __init__(self) -> None:
        import threading

        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _tree() -> dict[int, float]:
        import os

        parents, hwm = {}, {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
                status = Path(f"/proc/{d}/status").read_text()
            except OSError:
                continue
            parents[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    hwm[int(d)] = int(line.split()[1]) / 1024
        me, out = os.getpid(), {}
        for pid in hwm:
            p = pid
            while p > 1 and p != me:
                p = parents.get(p, 0)
            if p == me:
                out[pid] = hwm[pid]
        return out

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            for pid, mb in self._tree().items():
                self.peaks[pid] = max(self.peaks.get(pid, 0.0), mb)

    def describe(self, children: bool = True) -> str:
        import os

        me = self.peaks.pop(os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        if not self.peaks or not children:
            return f"{me:.0f} MB"
        others = sorted(self.peaks.values(), reverse=True)
        total = me + sum(others)
        n = len(others)
        return f"{me:.0f} MB + {n} processes under it, up to {others[0]:.0f} MB each ({total:.0f} MB in all)"


def run_ours(data_dir: Path, where: str, workers: int) -> dict[str, float]:
    from bot.data.calendar import bars_per_year
    from bot.research.space import parse_dims
    from bot.research.sweep import SweepSpec, run_sweep
    from bot.run.assemble import load_market

    t0 = time.perf_counter()
    cfg = _cfg(data_dir)
    bars, _ = load_market(cfg)
    t_load = time.perf_counter() - t0
    spec = SweepSpec(
        parse_dims([f"ma_cross.fast={FAST}", f"ma_cross.slow={SLOW}", f"risk.stop_loss_pct={STOP}"])
    )
    with tempfile.TemporaryDirectory() as tmp:
        res = run_sweep(cfg, bars, None, spec, Path(tmp) / "sw", bars_per_year("1d"), where, workers)
    wall = time.perf_counter() - t0
    ok = int((res["status"] == "ok").sum())
    return {"trials": ok, "bars": len(bars["SOXX"]), "load_s": t_load, "wall_s": wall}


def our_trades(data_dir: Path, sample: list[tuple[int, int, float]]) -> dict[str, list]:
    from bot.research.space import apply
    from bot.run.assemble import build_strategies, load_market
    from bot.run.backtest import run_backtest

    cfg = _cfg(data_dir)
    bars, _ = load_market(cfg)
    out = {}
    for f, s, stop in sample:
        c = apply(cfg, {"ma_cross.fast": f, "ma_cross.slow": s, "risk.stop_loss_pct": stop})
        t = run_backtest(c, build_strategies(c), bars).trades
        out[f"{f},{s},{stop}"] = [
            [str(r.entry_time)[:10], float(r.entry_price), str(r.exit_time)[:10], float(r.exit_price)]
            for r in t.itertuples()
        ]
    return out


def _same(a: list, b: list) -> bool:
    return (
        a[0] == b[0] and a[2] == b[2] and abs(a[1] - b[1]) <= 1e-9 * b[1] and abs(a[3] - b[3]) <= 1e-9 * b[3]
    )


def compare(ours: dict[str, list], theirs: dict[str, list]) -> dict[str, object]:
    """Per combination: same number of trades; per trade (in order): same entry and exit dates and
    prices within 1e-9 relative."""
    n_same_count = n_trades = n_match = 0
    first_diff = []
    for key, a in ours.items():
        b = theirs.get(key, [])
        n_same_count += len(a) == len(b)
        n_trades += max(len(a), len(b))
        for x, y in zip(a, b, strict=False):
            if _same(x, y):
                n_match += 1
            elif len(first_diff) < 3:
                first_diff.append({"combo": key, "soxbot": x, "vectorbt": y})
    return {"combos": len(ours), "same_trade_count": n_same_count, "trades": n_trades,
            "identical_trades": n_match, "first_differences": first_diff}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--vectorbt-python", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sample", type=int, default=20)
    a = ap.parse_args()
    if not (a.data_dir / "SOXX_1d.csv").is_file():
        sys.exit(f"no SOXX_1d.csv in {a.data_dir}: this benchmark needs ../shared/data")
    rows = []
    with PeakMemory() as mem:
        pool = run_ours(a.data_dir, "pool", a.workers)
    rows.append((f"soxbot sweep, process pool ({a.workers} workers)", pool, mem.describe()))
    with PeakMemory() as mem:
        serial = run_ours(a.data_dir, "serial", 1)
    rows.append(("soxbot sweep, serial", serial, mem.describe(children=False)))
    rng = np.random.default_rng(7)
    fasts, slows, stops = range(5, 55, 5), range(60, 260, 20), [round(0.02 * k, 2) for k in range(10)]
    sample = [
        (int(rng.choice(fasts)), int(rng.choice(slows)), float(rng.choice(stops))) for _ in range(a.sample)
    ]
    ours = our_trades(a.data_dir, sample)
    print("| run | trials | bars | load+clean (s) | wall (s) | trials/s | peak memory |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, r, mem in rows:
        print(
            f"| {name} | {r['trials']} | {r['bars']} | {r['load_s']:.2f} | {r['wall_s']:.2f} | "
            f"{r['trials'] / r['wall_s']:.0f} | {mem} |"
        )
    if a.vectorbt_python is None:
        print("vectorbt: not run (give --vectorbt-python)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(json.dumps({"csv": str(a.data_dir / "SOXX_1d.csv"), "sample": sample}))
        proc = subprocess.run(
            [str(a.vectorbt_python), str(ROOT / "bench" / "sweep_grid_vectorbt.py"), str(spec)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            print(f"vectorbt failed: {proc.stderr[-2000:]}")
            return
        vbt = json.loads(proc.stdout.strip().splitlines()[-1])
    for label in ("first", "second"):
        r = vbt[label]
        print(
            f"| vectorbt {vbt['version']} from_signals grid, {label} run | {r['combos']} | {vbt['bars']} | "
            f"{vbt['load_s']:.2f} | {r['wall_s']:.2f} | {r['combos'] / r['wall_s']:.0f} | "
            f"{r['peak_mb']:.0f} MB |"
        )
    print("\nTrades on the sample:", json.dumps(compare(ours, vbt["trades"]), indent=1))


if __name__ == "__main__":
    main()
