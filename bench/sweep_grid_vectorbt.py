"""The vectorbt side of bench/sweep_grid.py, run in vectorbt's own venv: reads a spec (the SOXX csv
and a sample of combinations), times the 1,000-combination grid twice and prints one JSON line with
the timings, the peak memory and the sample's trades."""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np
import pandas as pd


def grid(df: pd.DataFrame):  # type: ignore[no-untyped-def]
    import vectorbt as vbt

    close = df["close"]
    fasts, slows = list(range(5, 55, 5)), list(range(60, 260, 20))
    stops = [round(0.02 * k, 2) for k in range(10)]
    fast = vbt.MA.run(close, fasts, short_name="fast").ma
    slow = vbt.MA.run(close, slows, short_name="slow").ma
    cols, ent, ext, sl = [], [], [], []
    for i, f in enumerate(fasts):
        for j, s in enumerate(slows):
            d = np.sign(fast.iloc[:, i].to_numpy() - slow.iloc[:, j].to_numpy())
            d = np.nan_to_num(d)
            prev = np.concatenate([[0.0], d[:-1]])
            e = (d > 0) & (prev <= 0)
            x = (d <= 0) & (prev > 0)
            for stop in stops:
                cols.append((f, s, stop))
                ent.append(e)
                ext.append(x)
                sl.append(stop if stop > 0 else np.nan)
    idx = df.index
    columns = pd.MultiIndex.from_tuples(cols, names=["fast", "slow", "stop"])
    # decided on the close of bar t, filled at the open of bar t+1; stops from the fill price (as
    # soxbot), not vectorbt's default of the entry bar's close
    entries = pd.DataFrame(np.column_stack(ent), idx, columns).shift(1, fill_value=False)
    exits = pd.DataFrame(np.column_stack(ext), idx, columns).shift(1, fill_value=False)
    pf = vbt.Portfolio.from_signals(
        close, entries, exits, price=df["open"], open=df["open"], high=df["high"], low=df["low"],
        sl_stop=np.array(sl)[None, :], stop_entry_price="price", size=np.inf, init_cash=100_000.0,
        freq="1D",
    )  # fmt: skip
    return pf


def main() -> None:
    with open(sys.argv[1]) as fh:
        spec = json.load(fh)
    t0 = time.perf_counter()
    df = pd.read_csv(spec["csv"], parse_dates=["timestamp"], index_col="timestamp")
    df = df[df.index >= "2001-01-01"]
    load = time.perf_counter() - t0
    out = {"bars": len(df), "load_s": load}
    import vectorbt as vbt

    out["version"] = vbt.__version__
    for label in ("first", "second"):
        t = time.perf_counter()
        pf = grid(df)
        ret = pf.total_return()
        out[label] = {
            "combos": int(ret.shape[0]),
            "wall_s": time.perf_counter() - t,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    trades = {}
    recs = pf.trades.records_readable
    for f, s, stop in spec["sample"]:
        col = (f, s, stop)
        r = recs[recs["Column"] == col]
        trades[f"{f},{s},{stop}"] = [
            [str(a)[:10], float(b), str(c)[:10], float(d)]
            for a, b, c, d in zip(
                r["Entry Timestamp"],
                r["Avg Entry Price"],
                r["Exit Timestamp"],
                r["Avg Exit Price"],
                strict=True,
            )
        ]
    print(json.dumps(out | {"trades": trades}))


if __name__ == "__main__":
    main()
