"""How well does a volatility forecast known at entry predict a leveraged fund's decay?

For every 20-session window of SOXS and SOXL in ../shared/data (a window starts at a close t and ends
at close t+20), the realised gap is ln(F_{t+20}/F_t) - L ln(U_{t+20}/U_t) against the index U, and
each forecast known at close t predicts it as

    -(L^2 - L)/2 * 20 * s2 - expense_ratio * D/365 + (1 - L) * rate_t * D/365

(bot/risk/decay.py), D the window's calendar days, rate_t the FOMC target midpoint in force at t
(bench/fed_funds_target.csv), s2 the daily variance forecast of the index's simple returns:

* trailing20: the sample variance (ddof=1) of the 20 returns before t (the issue's baseline);
* ewma: RiskMetrics EWMA, lambda 0.94, of the index's returns (bot/risk/decay.py);
* ewma_fund: the same EWMA of the fund's own returns / L^2 (what the entry gate computes live);
* garch: GARCH(1,1) (constant mean, normal errors; the optional `arch` package) fitted on all index
  returns up to t, refitted every 20 sessions, its filtered variance stepped daily between refits with
  the last fit's parameters; the forecast is the mean expected variance over the 20 sessions;
* realised (not a forecast: it reads the window itself): the window's own sum of squared returns.

Nothing is fitted to the windows being scored: the EWMA's lambda is RiskMetrics' published value,
GARCH is fitted only on returns before t. Errors are in percentage points of log return.

    python bench/decay_forecast.py [--data-dir ../shared/data] [--no-garch]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.data.rates import load_rates  # noqa: E402
from bot.risk.decay import ewma_variance, garch_mean_variance, trailing_variance  # noqa: E402
from bot.risk.leverage import drag_coefficient, financing_multiplier  # noqa: E402

N = 20
REFIT = 20
FUNDS = (("SOXS", -3.0, 0.0097), ("SOXL", 3.0, 0.0075))
ICE_SWITCH = pd.Timestamp("2021-08-25")  # SOXL/SOXS follow the NYSE/ICE index from here; SOXX does too


def closes(data: Path, symbol: str) -> pd.Series:
    return pd.read_csv(data / f"{symbol}_1d.csv", index_col=0, parse_dates=True)["close"].astype(float)


def garch_forecasts(index_close: pd.Series, at: pd.DatetimeIndex) -> pd.Series:
    """The GARCH mean variance over the next N sessions, known at each close in `at`."""
    from arch import arch_model

    r = index_close.pct_change().dropna()
    pos = r.index.get_indexer(at)
    out = pd.Series(np.nan, index=at)
    x = r.to_numpy() * 100.0
    params = None
    var_next = None
    last_fit = -(10**9)
    prev = None
    for k, i in enumerate(pos):
        if i < 1000:  # at least ~4 years of returns before the first fit
            continue
        if params is None or i - last_fit >= REFIT:
            res = arch_model(x[: i + 1], mean="Constant", vol="GARCH", p=1, q=1).fit(disp="off")
            mu, omega, alpha, beta = (float(res.params[n]) for n in ("mu", "omega", "alpha[1]", "beta[1]"))
            params = (mu, omega, alpha, beta)
            var_next = float(res.forecast(horizon=1, reindex=False).variance.to_numpy()[-1, 0])
            last_fit, prev = i, i
        else:
            mu, omega, alpha, beta = params
            for j in range(prev + 1, i + 1):  # step the filter over the returns since the last point
                var_next = omega + alpha * (x[j] - mu) ** 2 + beta * var_next
            prev = i
        out.iloc[k] = garch_mean_variance(omega, alpha, beta, var_next, N) / 10_000.0
    return out


def windows(fund: pd.Series, index: pd.Series, lev: float, er: float, rates, garch: bool) -> pd.DataFrame:
    """One row per window start t: the realised gap and each forecast (total, log)."""
    idx = fund.index
    u_all = index.reindex(index.index.union(idx)).ffill()
    u = u_all.reindex(idx)
    f = fund.to_numpy()
    uc = u.to_numpy()
    n = len(idx)
    starts = np.arange(1, n - N)
    ends = starts + N
    gap = np.log(f[ends] / f[starts]) - lev * np.log(uc[ends] / uc[starts])
    days = (idx[ends] - idx[starts]).days.to_numpy()
    rate = np.array([rates.at(idx[s].date()) for s in starts])
    carry = (-er + financing_multiplier(lev) * rate) * days / 365.0
    k = drag_coefficient(lev)
    # the index's variance forecasts use all of its history (SOX from 1994), aligned to the fund's days
    full = index.to_numpy()
    at = index.index.get_indexer(idx[starts])
    assert (at >= 0).all(), "the index must have a bar on every fund session"
    ewma = ewma_variance(full)[at]
    trail = trailing_variance(full)[at]
    ewma_fund = ewma_variance(f)[starts] / lev**2
    r = uc[1:] / uc[:-1] - 1.0
    csum = np.concatenate([[0.0], np.cumsum(r * r)])
    realised = csum[ends] - csum[starts]
    out = pd.DataFrame(
        {
            "gap": gap,
            "trailing20": -k * N * trail + carry,
            "ewma": -k * N * ewma + carry,
            "ewma_fund": -k * N * ewma_fund + carry,
            "realised": -k * realised + carry,
        },
        index=idx[starts],
    )
    if garch:
        g = garch_forecasts(index, idx[starts])
        out["garch"] = -k * N * g.to_numpy() + carry
    return out


def score(w: pd.DataFrame, methods: list[str], step: int = 1) -> list[dict[str, object]]:
    w = w.dropna()
    w = w.iloc[::step]
    rows = []
    for m in methods:
        e = (w["gap"] - w[m]) * 100
        rows.append(
            {
                "method": m,
                "windows": len(w),
                "MAE pp": e.abs().mean(),
                "bias pp": e.mean(),
                "RMSE pp": float(np.sqrt((e**2).mean())),
                "p90 |err| pp": e.abs().quantile(0.9),
            }
        )
    return rows


def markdown(rows: list[dict[str, object]]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in r.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--no-garch", action="store_true", help="skip GARCH (needs the optional arch package)")
    args = ap.parse_args()
    garch = not args.no_garch
    if garch:
        try:
            import arch  # noqa: F401
        except ImportError:
            print("(arch not installed: GARCH skipped; pip install 'soxbot[research]')")
            garch = False
    rates = load_rates(REPO / "bench" / "fed_funds_target.csv")
    # index history from 1997 (the 1994-96 rows hold the 1995 2:1 index split as a price jump)
    sox = closes(args.data_dir, "SOX").loc["1997-01-01":]
    soxx = closes(args.data_dir, "SOXX")
    # the index the funds followed: SOX (PHLX) to 2021-08-24, then the ICE index, which SOXX tracks
    pre = sox[sox.index < ICE_SWITCH]
    post = soxx[soxx.index >= ICE_SWITCH] / soxx[soxx.index < ICE_SWITCH].iloc[-1] * pre.iloc[-1]
    spliced = pd.concat([pre, post])
    methods = ["trailing20", "ewma", "ewma_fund", *(["garch"] if garch else []), "realised"]
    t0 = time.perf_counter()
    for name, lev, er in FUNDS:
        fund = closes(args.data_dir, name)
        for bench_name, index in (("SOX", sox), ("SOX to 2021-08-24, then SOXX", spliced)):
            w = windows(fund, index, lev, er, rates, garch)
            for label, step in (("every start (overlapping)", 1), (f"every {N}th start", N)):
                rows = score(w, methods, step)
                span = w.dropna().index
                print(
                    f"\n### {name} ({lev:+g}x) vs {bench_name}, {label}, "
                    f"{span[0].date()} .. {span[-1].date()}, "
                    f"mean gap {w.dropna()['gap'].mean() * 100:+.2f} pp\n"
                )
                print(markdown(rows))
    print(f"\n({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
