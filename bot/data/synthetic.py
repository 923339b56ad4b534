"""A seeded model of a semiconductor index and its ETFs, for demos and tests without data files.

Why a model and not replayed history: it runs offline, is free to redistribute, and any seed gives a
new but statistically similar market. Every frame carries `attrs["synthetic"] = True` so nothing
downstream can mistake it for real prices.

Model (all randomness from `numpy.random.default_rng([seed, stream, chunk])`, one stream per symbol
and a chunk per 256 sessions, so a seed always gives the same bars and a longer history extends a
shorter one without changing it). The constants below were fitted once by
scripts/calibrate_synthetic.py on real daily data of 2010 on (its docstring says what, on what, how);
nothing is fitted at run time.

* Index, daily: close-to-close log return `MU + sigma_t * z_t`, `z` Student-t (`T_DF`) scaled to unit
  variance, clipped to +-20%; `sigma_t^2` follows a GJR-GARCH(1,1) (`GARCH`): volatility clusters, and
  a down day raises tomorrow's variance more than an up day of the same size. Capped at
  `MAX_DAILY_VOL`.
* Overnight gap: `b * r + s * sigma_t * e` (`gap_split`), `e` Student-t (`GAP_DF`), so the gap carries
  `GAP_SHARE` of the day's variance and is nearly independent of the open-to-close move, as SOXX's
  opens 2010 on are (SOX's opens repeat the previous close on 86-99% of sessions 1998-2004, which is
  what the old calibration saw; from 2009 on they are as good as SOXX's).
* Intraday: a Brownian bridge from the open to the exact close over the session's regular minutes
  (390, or 210 on early closes), on the clock of a U-shaped minute-vol profile (`PROFILE`: the first
  half hour swings about twice as much as midday), with vol `RANGE_K` x the open-to-close vol so the
  mean high-low range is the real one, and a half-normal wick per minute. Every timeframe
  ("1m".."1h", "1d") is the aggregation of this one minute path, so daily OHLC agrees with the
  intraday bars.
* "SOX": the index level (volume 0). "SOXX", "SMH": scaled index plus an AR(1) tracking difference
  (~0.1%/day), with volume. "SOXL"/"SOXS": daily reset: each session, L x the index's simple return
  since the previous close plus `session_carry`: financing at the session's short rate (`FINANCING`
  a + b x rate, fitted on the funds' residual at ~0% and ~5.3% policy rates: SOXS pays ~9%/yr at zero
  rates and earns ~12% at 5.3%, SOXL earns ~2% and pays ~14%) minus the expense ratio (both figures
  net of it); computed minute by minute, so
  intraday bars are path-dependent within the day. The short rate (`short_rates`) is a seeded
  mean-reverting path floored at 0 (`RATE`). Any other symbol: a stock with beta `STOCK_BETA` to the
  index plus its own bridge of idiosyncratic moves.

Real against model (log returns, 252 sessions a year; SOX from 1997 leaves out the 1994-96 rows with
the 1995 index split). Model: `generate(["SOX"], years=100, seed=s)`; the statistics marked * are the
mean over 16.6-year windows (the real 2010+ sample's length: a century's autocorrelation or kurtosis is
not comparable to 16 years'), the others over the century; "seeds" is the min-max over seeds 1-5, 7, 11.
tests/test_data_synthetic.py asserts the tested ranges on seeds 7 and 11 (the * rows on both together,
against the real 2010+ figure recomputed from the data when present):

| statistic                            | SOX 1997-  | SOX 2010-  | seed 7 | seeds       | tested      |
|--------------------------------------|------------|------------|--------|-------------|-------------|
| annualised vol                       | 0.382      | 0.312      | 0.300  | .28-.33     | 0.26-0.42   |
| mean log return per year             | 0.132      | 0.209      | 0.099  | .10-.18     | 0.03-0.25   |
| excess kurtosis* (median of windows) | 3.4        | 5.4        | 4.8    | 4.8-9.5     | 2.5-10      |
| median max drawdown, 3-year windows  | -0.39      | -0.31      | -0.34  | -.38/-.30   | -0.55/-0.25 |
| worst max drawdown, 3-year windows   | -0.84      | -0.46      | -0.93  | -.93/-.70   | -0.97/-0.55 |
| yearly vol, 10%-90% quantiles        | 0.21-0.52  | 0.19-0.45  | .19-.39 | .19-.47    | not asserted |
| mean run (sessions) of 63-day vol    | 91         | 72         | 74     | 62-78       | 30-250      |
| above its median (regime length)     |            |            |        |             |             |
| autocorrelation of abs r, lag 1*     | 0.23       | 0.238      | 0.223  | .19-.28     | real +-0.04 |
| same, lag 5*                         | 0.28       | 0.225      | 0.208  | .19-.25     | real +-0.04 |
| same, lag 20*                        | 0.22       | 0.160      | 0.148  | .11-.20     | real +-0.04 |
| gap std* (SOXX opens 2010-)          | stale      | 0.0115     | 0.0111 | .0106-.0121 | real +-.0015 |
| sessions a year with abs gap > 3%*   | stale      | 6.7        | 5.0    | 4.4-7.3     | real +-2.5  |
| overnight share of variance*         | stale      | 0.365      | 0.364  | .360-.376   | real +-0.03 |
| mean daily range (high-low)/close*   | 0.027      | 0.0202     | 0.0193 | .0184-.0210 | real +-.002 |

The previous model (two volatility regimes, gaps fitted on pre-2005 SOX opens) gave, on the * rows for
seeds 7 and 11: .16/.14/.12, gap std 0.0076, 0.6 big gaps a year, share 0.12, range 0.031, and a flat
-0.9%/yr carry on both funds.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from bot.data.calendar import (
    REGULAR_MINUTES,
    TRADING_DAYS,
    TZ,
    DateLike,
    is_intraday,
    session_grid,
    session_minutes,
    sessions,
    timeframe_minutes,
)

SYNTHETIC_LABEL = "synthetic"
COLUMNS = ("open", "high", "low", "close", "volume")

# Calibrated by scripts/calibrate_synthetic.py (run 2026-12-03 on ../shared/data, 2010 on); rerun it and
# paste its output to refresh. Nothing is fitted when the generator runs.
GARCH = (5.709e-06, 0.0406, 0.0931, 0.8981)  # GJR-GARCH(1,1) omega, alpha, gamma, beta; SOX daily log returns
T_DF = 7.15  # Student-t degrees of freedom of the daily shock
GAP_SHARE, GAP_CORR = 0.365, 0.043  # overnight share of variance, corr(gap, open-to-close); SOXX opens
GAP_DF = 4.5  # Student-t degrees of freedom of the gap's own noise (kurtosis of gap / sigma)
RANGE_K = 0.851  # intraday path vol per unit of open-to-close vol: mean (high-low)/close as real
PROFILE = (1.9, 60.0, 0.7, 15.0)  # minute vol x (1 + a e^(-t/ta) + b e^(-(T-t)/tb)), t minutes; SOXL 5m
FINANCING = {"SOXL": (0.0321, -3.02), "SOXS": (-0.084, 3.96)}  # carry/yr beyond L x index: a + b x rate
# Documented choices, not fitted (16 years say little about a mean return; the data has no rate file).
MU = 0.12 / TRADING_DAYS  # mean daily log return: SOX 1997-2026 made 0.132/yr, SOXX 2001-2026 0.122
RATE = (0.025, 0.2, 0.012)  # short rate: long-run mean, reversion /yr, vol /sqrt(yr); 0 floor (ZIRP spells)
MAX_DAILY_LOG = 0.20  # SOX's worst day since 1997 was -17%
MAX_DAILY_VOL = 0.08  # cap on the GARCH vol: SOX's most volatile 20 sessions since 1997 ran at 7.9%/day
WICK = 0.5  # minute wick scale, in minute standard deviations
START_LEVEL = 2000.0
EXPENSE = 0.009
LEVERAGE = {"SOXL": 3.0, "SOXS": -3.0}
ETFS = {"SOXX": 0.11, "SMH": 0.125}  # price per index point
TRACKING = (0.9, 0.0005)  # AR(1) coefficient and daily innovation std of an ETF's tracking difference
STOCK_BETA, STOCK_IDIO_VOL = 1.2, 0.30
VOLUME = {"SOXX": 2e6, "SMH": 6e6, "SOXL": 60e6, "SOXS": 30e6}
STOCK_VOLUME = 20e6
CHUNK = 256
_LEV_FLOOR = 0.01  # a -3x fund cannot go below zero; only reachable inside a >30% index day


def _stream(name: str) -> int:
    return zlib.crc32(name.encode())


def _rng(seed: int, name: str, chunk: int) -> np.random.Generator:
    return np.random.default_rng([seed, _stream(name), chunk])


def _unit_t(rng: np.random.Generator, df: float, size: int) -> np.ndarray:
    """Student-t draws scaled to unit variance (fat tails without changing the variance)."""
    return rng.standard_t(df, size) * math.sqrt((df - 2) / df)


def long_run_variance() -> float:
    """Unconditional daily variance of the index's GJR-GARCH returns."""
    omega, alpha, gamma, beta = GARCH
    return omega / (1 - alpha - gamma / 2 - beta)


def gap_split() -> tuple[float, float, float]:
    """(b, s, q) for gap = b * r + s * sigma * e, where r/sigma and e are independent with unit variance:
    then var(gap) / (var(gap) + var(r - gap)) is GAP_SHARE and corr(gap, r - gap) is GAP_CORR whatever
    sigma is. q = var(r - gap) / sigma^2, the open-to-close share of the day's variance."""
    share, c = GAP_SHARE, GAP_CORR * math.sqrt(GAP_SHARE * (1 - GAP_SHARE))
    total = 1 + 2 * c  # var(gap) + var(oc) + 2 cov, per unit of var(gap) + var(oc)
    b = (share + c) / total
    return b, math.sqrt(share / total - b * b), (1 - share) / total


def session_carry(symbol: str, rate: np.ndarray | float) -> np.ndarray | float:
    """What a leveraged fund adds in one session to L x the index's simple return (negative: a drag):
    financing at the annual short `rate` (FINANCING) minus the expense ratio, accrued per session."""
    a, b = FINANCING[symbol.upper().lstrip("^")]
    return (a + b * np.asarray(rate) - EXPENSE) / TRADING_DAYS


def short_rates(start: DateLike = "2020-01-02", years: float = 3.0, seed: int = 7) -> pd.Series:
    """The annual short rate of each session that `generate` uses for the leveraged funds' financing."""
    days = _days(start, years)
    n = len(days)
    rates = np.concatenate(list(_rate_chunks(seed, -(-n // CHUNK))))[:n]
    return pd.Series(rates, index=pd.DatetimeIndex(days, name="timestamp"), name="short_rate")


def _rate_chunks(seed: int, count: int):
    """Mean-reverting (Vasicek) short rate per session, floored at 0, CHUNK sessions at a time."""
    theta, kappa, vol = RATE
    phi = 1 - kappa / TRADING_DAYS
    powers = phi ** np.arange(1, CHUNK + 1)
    x = None
    for j in range(count):
        rng = _rng(seed, "^rate", j)
        if x is None:  # start from the stationary distribution
            x = theta + vol / math.sqrt(2 * kappa) * float(rng.standard_normal())
        step = kappa * theta / TRADING_DAYS + vol / math.sqrt(TRADING_DAYS) * rng.standard_normal(CHUNK)
        # AR(1) in closed form: x_t = phi^t * (x_0 + sum_{k<=t} phi^-k * step_k)
        path = powers * (x + np.cumsum(step / powers))
        x = float(path[-1])
        yield np.maximum(path, 0.0)


@dataclass
class _IndexChunk:
    """Minute path of the index for a block of sessions, as log levels relative to the previous close."""

    n: np.ndarray  # regular minutes per session (C,)
    r: np.ndarray  # close-to-close log return (C,)
    sigma: np.ndarray  # conditional daily vol (C,)
    rate: np.ndarray  # annual short rate (C,)
    lo: np.ndarray  # minute bar open/high/low/close, log vs previous close (C, 390)
    lh: np.ndarray
    ll: np.ndarray
    lc: np.ndarray
    valid: np.ndarray  # minute exists (C, 390)
    z: np.ndarray  # daily shock (C,), drives volume
    pc: np.ndarray  # index level at the previous session's close (C, 1)


@lru_cache(maxsize=8)
def _profile_row(minutes: int, profile: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(vol multiplier, bridge clock) per minute of a `minutes`-long session, both 0 / 1 past its close.

    The multiplier is high at the open and the close and has mean square 1 on a full day, so it moves
    variance within the day, not the day's total; the clock is its cumulative variance share."""
    a, open_minutes, b, close_minutes = profile
    k = np.arange(REGULAR_MINUTES) + 0.5

    def row(m: int) -> np.ndarray:
        return 1 + a * np.exp(-k / open_minutes) + b * np.exp(-np.abs(m - k) / close_minutes)

    scale = 1 / math.sqrt(float(np.mean(row(REGULAR_MINUTES) ** 2)))
    w = np.where(k < minutes, row(minutes) * scale, 0.0)
    clock = np.cumsum(w**2)
    return w, clock / clock[minutes - 1]


def _bridge(rng: np.random.Generator, n: np.ndarray, gap: np.ndarray, end: np.ndarray, sd: np.ndarray):
    """Minute path from `gap` to `end` over n[i] minutes, with wicks; (o, h, l, c, valid).

    A Brownian bridge on the clock of the minute profile (it moves most at the open and close), whose
    full-session vol is `sd`."""
    c_, m_ = len(n), REGULAR_MINUTES
    rows = np.arange(c_)
    uniq, inv = np.unique(n, return_inverse=True)
    parts = [_profile_row(int(m), PROFILE) for m in uniq]
    inv = inv.reshape(-1)
    sd_min = np.stack([w for w, _ in parts])[inv] * (sd / math.sqrt(m_))[:, None]  # 0 past an early close
    clock = np.stack([c for _, c in parts])[inv]
    walk = np.cumsum(rng.standard_normal((c_, m_)) * sd_min, axis=1)
    wick_up = np.abs(rng.standard_normal((c_, m_))) * (WICK * sd_min)
    wick_dn = np.abs(rng.standard_normal((c_, m_))) * (WICK * sd_min)
    valid = sd_min > 0
    close = gap[:, None] + walk + clock * (end - gap - walk[rows, n - 1])[:, None]
    close[rows, n - 1] = end  # exact, so the daily return is exactly r
    close = np.where(valid, close, end[:, None])  # carry the close past an early close
    open_ = np.concatenate([gap[:, None], close[:, :-1]], axis=1)
    high = np.maximum(open_, close) + wick_up
    low = np.minimum(open_, close) - wick_dn
    return open_, high, low, close, valid


def _index_chunks(seed: int, n_minutes: np.ndarray):
    """Yield an _IndexChunk per CHUNK sessions, carrying the variance, rate and level across chunks."""
    omega, alpha, gamma, beta = GARCH
    gap_b, gap_s, oc_share = gap_split()
    h, level, h_cap = long_run_variance(), START_LEVEL, MAX_DAILY_VOL**2
    rates = _rate_chunks(seed, -(-len(n_minutes) // CHUNK))
    for j, s0 in enumerate(range(0, len(n_minutes), CHUNK)):
        n = n_minutes[s0 : s0 + CHUNK]
        rng = _rng(seed, "^index", j)
        z = _unit_t(rng, T_DF, len(n))
        e = _unit_t(rng, GAP_DF, len(n))
        sigma, r = np.empty(len(n)), np.empty(len(n))
        for i, zi in enumerate(z.tolist()):  # GJR-GARCH(1,1): bad days raise tomorrow's variance more
            s = math.sqrt(h)
            ri = min(max(MU + s * zi, -MAX_DAILY_LOG), MAX_DAILY_LOG)
            eps = ri - MU
            h = min(omega + (alpha + gamma * (eps < 0)) * eps * eps + beta * h, h_cap)
            sigma[i], r[i] = s, ri
        gap = gap_b * r + gap_s * sigma * e
        o, hi, lo, c, valid = _bridge(rng, n, gap, r, RANGE_K * sigma * math.sqrt(oc_share))
        # products, not sums of logs: the next session's base is bit-identical to this close
        levels = np.cumprod(np.concatenate([[level], np.exp(r)]))
        level = float(levels[-1])
        yield _IndexChunk(n, r, sigma, next(rates)[: len(n)], o, hi, lo, c, valid, z, levels[:-1, None])


def _aggregate(o, h, lo, c, v, valid, n, step: int):
    """Minute bars (C, 390) -> bars of `step` minutes anchored at the open, valid ones flattened."""
    c_, m_ = o.shape
    width = -(-m_ // step) * step
    if width != m_:
        pad = ((0, 0), (0, width - m_))
        o, h, lo, c, v = (np.pad(a, pad, mode="edge") for a in (o, h, lo, c, v))
        valid = np.pad(valid, pad, constant_values=False)
    shape = (c_, width // step, step)
    h = np.where(valid, h, -np.inf).reshape(shape).max(axis=2)
    lo = np.where(valid, lo, np.inf).reshape(shape).min(axis=2)
    v = np.where(valid, v, 0.0).reshape(shape).sum(axis=2)
    o = o.reshape(shape)[:, :, 0]
    c = c.reshape(shape)[:, :, -1]  # minutes past an early close carry the close
    live = np.arange(width // step)[None, :] * step < n[:, None]
    return o[live], h[live], lo[live], c[live], v[live]


def _volume(rng: np.random.Generator, base: float, ix: _IndexChunk) -> np.ndarray:
    """Minute volumes: lognormal daily total, higher on big and stressed days, U-shaped in the day."""
    size = np.exp(0.35 * rng.standard_normal(len(ix.n))) * (1 + 0.3 * np.abs(ix.z))
    daily = base * size * (ix.sigma / math.sqrt(long_run_variance()))
    x = (np.arange(REGULAR_MINUTES)[None, :] + 0.5) / ix.n[:, None]
    w = np.where(ix.valid, 1 + 3 * (2 * x - 1) ** 2, 0.0)
    return np.floor(daily[:, None] * w / w.sum(axis=1, keepdims=True))


def _symbol_minutes(sym: str, seed: int, j: int, ix: _IndexChunk, state: dict[str, float]):
    """Minute OHLCV of one symbol for one chunk; `state` carries its previous close across chunks."""
    if sym == "SOX":
        bars = tuple(ix.pc * np.exp(a) for a in (ix.lo, ix.lh, ix.ll, ix.lc))
        return (*bars, np.zeros(ix.lo.shape))
    rng = _rng(seed, sym, j)
    if sym in LEVERAGE:
        k, carry = LEVERAGE[sym], session_carry(sym, ix.rate)[:, None]
        factor = [np.maximum(1 + k * np.expm1(a) + carry, _LEV_FLOOR) for a in (ix.lo, ix.lh, ix.ll, ix.lc)]
        day_factor = factor[3][np.arange(len(ix.n)), ix.n - 1]
        closes = np.cumprod(np.concatenate([[state.get(sym, 100.0)], day_factor]))
        state[sym] = float(closes[-1])
        o, h, lo, c = (closes[:-1, None] * f for f in factor)
        if k < 0:
            h, lo = lo, h
        return o, h, lo, c, _volume(rng, VOLUME[sym], ix)
    if sym in ETFS:
        phi, sd = TRACKING
        te_prev = state.get(sym + ".te", 0.0)
        te = np.empty(len(ix.n))
        for i, e in enumerate(rng.standard_normal(len(ix.n)) * sd):
            te_prev = te[i] = phi * te_prev + e
        start = np.concatenate([[state.get(sym + ".te", 0.0)], te[:-1]])
        state[sym + ".te"] = float(te[-1])
        frac = np.minimum(np.arange(1, REGULAR_MINUTES + 1)[None, :] / ix.n[:, None], 1.0)
        te_close = start[:, None] + frac * (te - start)[:, None]
        te_open = np.concatenate([start[:, None], te_close[:, :-1]], axis=1)
        base = ETFS[sym] * ix.pc
        o = base * np.exp(ix.lo + te_open)
        c = base * np.exp(ix.lc + te_close)
        h = np.maximum(base * np.exp(ix.lh + np.maximum(te_open, te_close)), np.maximum(o, c))
        lo = np.minimum(base * np.exp(ix.ll + np.minimum(te_open, te_close)), np.minimum(o, c))
        return o, h, lo, c, _volume(rng, VOLUME[sym], ix)
    # a single stock: beta times the index path plus its own bridge
    prev = state.setdefault(sym, 50.0 + zlib.crc32(sym.encode()) % 200)
    sd_day = STOCK_IDIO_VOL / math.sqrt(TRADING_DAYS)
    e = _unit_t(rng, T_DF, len(ix.n)) * sd_day
    gap = math.sqrt(GAP_SHARE) * sd_day * rng.standard_normal(len(ix.n))
    sd = np.full(len(ix.n), RANGE_K * sd_day * math.sqrt(1 - GAP_SHARE))
    io, ih, il, ic, _ = _bridge(rng, ix.n, gap, e, sd)
    r = STOCK_BETA * ix.r + e
    pc = prev * np.exp(np.concatenate([[0.0], np.cumsum(r)[:-1]]))[:, None]
    o = pc * np.exp(STOCK_BETA * ix.lo + io)
    c = pc * np.exp(STOCK_BETA * ix.lc + ic)
    h = pc * np.exp(STOCK_BETA * ix.lh + ih)
    lo = pc * np.exp(STOCK_BETA * ix.ll + il)
    h, lo = np.maximum(h, np.maximum(o, c)), np.minimum(lo, np.minimum(o, c))
    state[sym] = float(pc[-1, 0] * np.exp(r[-1]))
    return o, h, lo, c, _volume(rng, STOCK_VOLUME, ix)


def _days(start: DateLike, years: float) -> pd.DatetimeIndex:
    if years <= 0:
        raise ValueError(f"years must be positive, got {years}")
    first = pd.Timestamp(start).normalize()
    days = sessions(first, first + pd.Timedelta(days=round(years * 365.25) - 1))
    if len(days) == 0:
        raise ValueError(f"no XNYS session in {years} years from {first.date()}")
    return days


def generate(
    symbols: list[str],
    timeframe: str = "1d",
    start: DateLike = "2020-01-02",
    years: float = 3.0,
    seed: int = 7,
) -> dict[str, pd.DataFrame]:
    """Synthetic bars for `symbols` on the XNYS sessions of `years` years from `start`.

    Frames look like `load_csv` output (index `timestamp`, float64 OHLCV) and carry
    `attrs["synthetic"] = True`. "^SOX" is accepted for "SOX".
    """
    days = _days(start, years)
    step = timeframe_minutes(timeframe) if is_intraday(timeframe) else REGULAR_MINUTES
    names = {s: s.lstrip("^").upper() for s in symbols}
    parts: dict[str, list[tuple[np.ndarray, ...]]] = {s: [] for s in names.values()}
    state: dict[str, float] = {}
    # Every chunk has CHUNK sessions (the last padded with full days, then dropped), so the random
    # draws of a session do not depend on how many sessions follow it.
    n_minutes = session_minutes(days)
    padded = np.concatenate([n_minutes, np.full(-len(days) % CHUNK, REGULAR_MINUTES)])
    for j, ix in enumerate(_index_chunks(seed, padded)):
        real = min(CHUNK, len(days) - j * CHUNK)
        for sym in parts:
            o, h, lo, c, v = (a[:real] for a in _symbol_minutes(sym, seed, j, ix, state))
            parts[sym].append(_aggregate(o, h, lo, c, v, ix.valid[:real], ix.n[:real], step))
    if is_intraday(timeframe):
        starts, _, _ = session_grid(days, timeframe)
        index = pd.DatetimeIndex(pd.to_datetime(starts, utc=True).tz_convert(TZ), name="timestamp")
    else:
        index = pd.DatetimeIndex(days, name="timestamp")
    out: dict[str, pd.DataFrame] = {}
    for requested, sym in names.items():
        cols = [np.concatenate([p[i] for p in parts[sym]]) for i in range(5)]
        df = pd.DataFrame(dict(zip(COLUMNS, cols, strict=True)), index=index)
        df.attrs["synthetic"] = True
        df.attrs["source"] = SYNTHETIC_LABEL
        df.attrs["seed"] = seed
        out[requested] = df
    return out
