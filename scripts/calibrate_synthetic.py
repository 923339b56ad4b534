"""Calibrate the synthetic market (bot/data/synthetic.py) once, from the real daily data of 2010 on.

    .venv/bin/python scripts/calibrate_synthetic.py [DATA_DIR]      (default: ../shared/data)

Prints the constants block bot/data/synthetic.py carries (paste it there with this script's name and
the date; nothing is fitted when the generator runs), then the real figures beside the model's for a
few seeds. numpy and pandas only: the GARCH likelihood is maximised by a small Nelder-Mead below.

What is fitted, and on what:
1. Daily volatility: GJR-GARCH(1,1) with standardised Student-t shocks, by maximum likelihood on SOX
   daily log close-to-close returns 2010-01-04 on, with variance targeting (omega set so the long-run
   variance is the sample variance). SOXX is fitted the same way as a cross-check.
2. Overnight gaps, log(open / previous close), from SOXX 2010 on: an ETF's opens are trades. SOX's
   opens are checked first (share of sessions opening exactly at the previous close, per year: SOX
   86-99% in 1998-2004, 15-38% in 2005-08, at most 3% from 2009, like SOXX; hence the 2010 cut, and
   SOX 2010+ gives the same gap figures as SOXX). Fitted: the overnight share of variance
   var(gap) / (var(gap) + var(open-to-close)), corr(gap, open-to-close), and the degrees of freedom of
   the gap noise, matched to the excess kurtosis of gap / sigma_t (sigma_t from the fitted GARCH).
3. Intraday shape: the minute-vol profile (busy open and close) from SOXL_5m (2023-2026): the std of
   5-minute returns by time of day, relative to midday, fitted by a coarse grid search.
4. Intraday range: RANGE_K, the bridge vol per unit of open-to-close vol, by bisection on a 100-year
   synthetic run so that mean (high - low) / close over the daily std matches SOX 2010+.
5. Leveraged carry: SOXL/SOXS's residual, fund return - L x benchmark return, per year, in the two
   spells with a known, flat policy rate: 2010-03-12 .. 2015-12-16 (Fed funds target 0-0.25%, taken as
   0.12%) and 2023-07-27 .. 2024-09-18 (5.25-5.50%, taken as 5.33%). Benchmark: SOX to 2021-08-24,
   SOXX after (the funds switched index then, SOXX with them). Two spells, two points: carry per year
   = a + b * rate per fund; theory for a fund that finances its exposure at the short rate is b = 1 - L.
The short-rate path itself (RATE) and the drift (MU) are documented choices, not fitted: there is no
rate file in the data, and 16 years say little about a mean return.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bot.data import synthetic as syn

ROOT = Path(__file__).resolve().parents[1]
START = "2010-01-01"
ZERO_SPELL = ("2010-03-12", "2015-12-16", 0.0012)
HIGH_SPELL = ("2023-07-27", "2024-09-18", 0.0533)
ICE_SWITCH = "2021-08-25"


def load(data: Path, symbol: str) -> pd.DataFrame:
    df = pd.read_csv(data / f"{symbol}_1d.csv", parse_dates=["timestamp"]).set_index("timestamp")
    return df.loc[START:]


def nelder_mead(f, x0: np.ndarray, step: float = 0.3, iters: int = 3000, tol: float = 1e-9) -> np.ndarray:
    """Minimise f from x0 (standard reflection/expansion/contraction/shrink)."""
    pts = [x0] + [x0 + step * e for e in np.eye(len(x0))]
    vals = [f(p) for p in pts]
    for _ in range(iters):
        order = np.argsort(vals)
        pts, vals = [pts[i] for i in order], [vals[i] for i in order]
        if abs(vals[-1] - vals[0]) < tol:
            break
        centre = np.mean(pts[:-1], axis=0)
        xr = centre + (centre - pts[-1])
        fr = f(xr)
        if fr < vals[0]:
            xe = centre + 2 * (centre - pts[-1])
            fe = f(xe)
            pts[-1], vals[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < vals[-2]:
            pts[-1], vals[-1] = xr, fr
        else:
            xc = centre + 0.5 * (pts[-1] - centre)
            fc = f(xc)
            if fc < vals[-1]:
                pts[-1], vals[-1] = xc, fc
            else:
                pts = [pts[0] + 0.5 * (p - pts[0]) for p in pts]
                vals = [f(p) for p in pts]
    return pts[int(np.argmin(vals))]


def gjr_filter(r: np.ndarray, mu: float, alpha: float, gamma: float, beta: float, var: float) -> np.ndarray:
    """Conditional variances h_t of a GJR-GARCH(1,1) with long-run variance `var` (h_0 = var)."""
    omega = var * (1 - alpha - gamma / 2 - beta)
    h = np.empty(len(r))
    prev = var
    for i, x in enumerate((r - mu).tolist()):
        h[i] = prev
        prev = omega + (alpha + gamma * (x < 0)) * x * x + beta * prev
    return h


def fit_gjr(r: np.ndarray) -> dict[str, float]:
    """Student-t GJR-GARCH(1,1) by maximum likelihood, variance targeted; returns in percent inside."""
    x = r * 100
    var = float(x.var())

    def unpack(p: np.ndarray):
        mu, a, g, b, nu = p
        return mu, math.exp(a), math.exp(g), 1 / (1 + math.exp(-b)), 2.05 + math.exp(nu)

    def nll(p: np.ndarray) -> float:
        mu, a, g, b, nu = unpack(p)
        if a + g / 2 + b >= 0.9995:
            return 1e12
        h = gjr_filter(x, mu, a, g, b, var)
        e2 = (x - mu) ** 2 / h
        c = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(math.pi * (nu - 2))
        return -float(np.sum(c - 0.5 * np.log(h) - (nu + 1) / 2 * np.log1p(e2 / (nu - 2))))

    p = nelder_mead(nll, np.array([0.05, math.log(0.03), math.log(0.08), 2.5, math.log(4.0)]))
    mu, a, g, b, nu = unpack(p)
    return {
        "mu": mu / 100, "alpha": a, "gamma": g, "beta": b, "nu": nu, "var": var / 1e4,
        "omega": var / 1e4 * (1 - a - g / 2 - b), "persistence": a + g / 2 + b, "nll": nll(p),
    }  # fmt: skip


def day_stats(df: pd.DataFrame) -> dict[str, float]:
    """The statistics the synthetic test checks, on one daily OHLC frame."""
    lc = np.log(df["close"])
    r = lc.diff().dropna()
    gap = (np.log(df["open"]) - lc.shift(1)).dropna()
    oc = np.log(df["close"] / df["open"]).loc[gap.index]
    a = r.abs()
    return {
        "ac1": a.autocorr(1), "ac5": a.autocorr(5), "ac20": a.autocorr(20),
        "vol": r.std() * math.sqrt(252), "gap_std": gap.std(),
        "big_gaps_per_year": (gap.abs() > 0.03).sum() / (len(gap) / 252),
        "overnight_share": gap.var() / (gap.var() + oc.var()), "gap_oc_corr": gap.corr(oc),
        "range": ((df["high"] - df["low"]) / df["close"]).mean(),
        "range_per_std": ((df["high"] - df["low"]) / df["close"]).mean() / r.std(),
    }  # fmt: skip


def spell_carry(data: Path) -> dict[str, tuple[float, float]]:
    """Residual carry per year of SOXL and SOXS in the zero-rate and the high-rate spell."""
    close = pd.DataFrame({s: pd.read_csv(data / f"{s}_1d.csv", index_col=0, parse_dates=True)["close"]
                          for s in ("SOX", "SOXX", "SOXL", "SOXS")})  # fmt: skip
    ret = close.loc["2010-03-11":].pct_change().dropna()
    bench = ret["SOX"].where(ret.index < ICE_SWITCH, ret["SOXX"])
    out = {}
    for sym, lev in syn.LEVERAGE.items():
        resid = ret[sym] - lev * bench
        out[sym] = tuple(float(resid.loc[a:b].mean() * 252) for a, b, _ in (ZERO_SPELL, HIGH_SPELL))
    return out


def fit_profile(data: Path) -> tuple[float, float, float, float]:
    """(a, open_minutes, b, close_minutes) matching SOXL 5-minute return std by time of day / midday."""
    m = pd.read_csv(data / "SOXL_5m.csv")
    ts = pd.to_datetime(m["timestamp"], utc=True).dt.tz_convert("America/New_York")
    day = ts.dt.date
    full = m.groupby(day)["close"].transform("size") == 78
    ret = np.log(m["close"] / m["open"])  # within the bar: no overnight gap in the first one
    minute = (ts.dt.hour * 60 + ts.dt.minute - 570)[full]
    sd = ret[full].groupby(minute.to_numpy()).std()
    target = (sd / sd.loc[150:240].mean()).to_numpy()
    slot = sd.index.to_numpy()
    best = (np.inf, None)
    for ta in (5, 10, 15, 20, 30, 45, 60):
        for tb in (2, 5, 10, 15, 20):
            k = np.arange(390) + 0.5
            basis = np.stack([np.ones(390), np.exp(-k / ta), np.exp(-(390 - k) / tb)])
            # 5-minute bar std = sqrt(sum of minute variances); fit a, b on a grid
            for a in np.arange(0, 4.01, 0.1):
                for b in np.arange(0, 3.01, 0.1):
                    w = basis[0] + a * basis[1] + b * basis[2]
                    bar = np.sqrt((w**2).reshape(78, 5).sum(axis=1))
                    fit = bar[slot // 5] / bar[30:48].mean()
                    err = float(np.sum((fit - target) ** 2))
                    if err < best[0]:
                        best = (err, (round(float(a), 2), float(ta), round(float(b), 2), float(tb)))
    return best[1]


def model_stats(seed: int, window: int = 0, years: float = 100.0) -> dict[str, float]:
    """day_stats of a synthetic SOX run; with `window`, the mean over consecutive windows that long."""
    df = syn.generate(["SOX"], years=years, seed=seed)["SOX"]
    if not window:
        return day_stats(df)
    parts = [day_stats(df.iloc[i : i + window]) for i in range(0, len(df) - window + 1, window)]
    return pd.DataFrame(parts).mean().to_dict()


def fit_range_k(target: float, seeds=(1, 2, 3)) -> float:
    """RANGE_K so the model's mean (high-low)/close per daily std matches `target` (bisection)."""
    lo, hi = 0.3, 1.5
    for _ in range(14):
        syn.RANGE_K = (lo + hi) / 2
        got = np.mean([model_stats(s, years=40.0)["range_per_std"] for s in seeds])
        lo, hi = (syn.RANGE_K, hi) if got < target else (lo, syn.RANGE_K)
    return round((lo + hi) / 2, 3)


def main(data: Path) -> None:
    sox, soxx = load(data, "SOX"), load(data, "SOXX")
    print(f"data: {data}")
    stale = {}
    for sym in ("SOX", "SOXX"):
        d = pd.read_csv(data / f"{sym}_1d.csv", index_col=0, parse_dates=True).loc["1998":]
        is_stale = (np.log(d["open"]) - np.log(d["close"]).shift(1)).abs() < 1e-9
        stale[sym] = is_stale.groupby(d.index.year).mean()
    print("share of sessions whose open is the previous close (stale opens), by year:")
    print(pd.DataFrame(stale).T.round(2).to_string())

    r = np.log(sox["close"]).diff().dropna().to_numpy()
    g = fit_gjr(r)
    g_soxx = fit_gjr(np.log(soxx["close"]).diff().dropna().to_numpy())
    for name, f in (("SOX", g), ("SOXX", g_soxx)):
        print(f"GJR-GARCH-t {name}: " + ", ".join(f"{k}={v:.6g}" for k, v in f.items()))

    real = {"SOX": day_stats(sox), "SOXX": day_stats(soxx)}
    lc = np.log(soxx["close"])
    gap = (np.log(soxx["open"]) - lc.shift(1)).iloc[1:]
    r_soxx = lc.diff().dropna().to_numpy()
    h = gjr_filter(r_soxx, g["mu"], g["alpha"], g["gamma"], g["beta"], float(r_soxx.var()))
    share, corr = real["SOXX"]["overnight_share"], real["SOXX"]["gap_oc_corr"]
    syn.GAP_SHARE, syn.GAP_CORR = round(float(share), 3), round(float(corr), 3)
    gb, gs, _ = syn.gap_split()
    # excess kurtosis of gb*z + gs*e (independent, unit variance) = (gb^4 k_z + gs^4 k_e) / (gb^2 + gs^2)^2,
    # and a unit Student-t with df > 4 has k = 6 / (df - 4)
    k_gap = float(pd.Series(gap.to_numpy() / np.sqrt(h)).kurt())
    k_z = 6 / (g["nu"] - 4)
    k_e = (k_gap * (gb**2 + gs**2) ** 2 - gb**4 * k_z) / gs**4
    syn.GAP_DF = round(4 + 6 / k_e, 1) if k_e > 0.2 else 30.0
    print(f"gaps (SOXX): share {share:.3f} corr {corr:.3f}; excess kurtosis of gap / sigma_t {k_gap:.2f} "
          f"-> gap noise df {syn.GAP_DF}")  # fmt: skip

    alpha, gamma, beta = (round(g[k], 4) for k in ("alpha", "gamma", "beta"))
    syn.GARCH = (float(f"{g['var'] * (1 - alpha - gamma / 2 - beta):.4g}"), alpha, gamma, beta)
    syn.T_DF = round(g["nu"], 2)
    syn.PROFILE = fit_profile(data)
    syn.RANGE_K = fit_range_k(real["SOX"]["range_per_std"])
    carry = spell_carry(data)
    fin = {}
    for sym, (c0, c1) in carry.items():
        b = (c1 - c0) / (HIGH_SPELL[2] - ZERO_SPELL[2])
        a = c0 - b * ZERO_SPELL[2] + syn.EXPENSE
        fin[sym] = (round(a, 4), round(b, 2))
        theory = 1 - syn.LEVERAGE[sym]
        print(f"{sym} residual carry/yr: zero-rate spell {c0:+.4f}, high-rate spell {c1:+.4f}; "
              f"financing a={a:+.4f} b={b:+.2f} (theory b = 1 - L = {theory:+.0f})")  # fmt: skip
    syn.FINANCING = fin

    print("\n# --- constants for bot/data/synthetic.py")
    print(f"GARCH = {syn.GARCH!r}\nT_DF = {syn.T_DF!r}")
    print(f"GAP_SHARE, GAP_CORR = {syn.GAP_SHARE!r}, {syn.GAP_CORR!r}\nGAP_DF = {syn.GAP_DF!r}")
    print(f"RANGE_K = {syn.RANGE_K!r}\nPROFILE = {syn.PROFILE!r}\nFINANCING = {syn.FINANCING!r}")
    spells = {s: tuple(round(x, 4) for x in c) for s, c in carry.items()}
    print(f"# real residual carry/yr of the funds in the (zero-rate, high-rate) spells: {spells}")

    rows = {f"real {k} 2010+": v for k, v in real.items()}
    for seed in (7, 11, 1, 2):
        rows[f"model seed {seed}"] = model_stats(seed, len(sox))
    print(f"\nmodel: mean over 100-year runs cut into windows of {len(sox)} sessions, like the real sample")
    print(pd.DataFrame(rows).T.round(4).to_string())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data")
