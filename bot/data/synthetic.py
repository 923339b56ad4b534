"""A seeded model of a semiconductor index and its ETFs, for demos and tests without data files.

Why a model and not replayed history: it runs offline, is free to redistribute, and any seed gives a
new but statistically similar market. Every frame carries `attrs["synthetic"] = True` so nothing
downstream can mistake it for real prices.

Model (all randomness from `numpy.random.default_rng([seed, stream, chunk])`, one stream per symbol
and a chunk per 256 sessions, so a seed always gives the same bars and a longer history extends a
shorter one without changing it):

* Index regime: a two-state Markov chain over XNYS sessions: "calm" (drift +28%/yr, vol 24%,
  mean stay 250 sessions) and "stress" (drift -20%/yr, vol 52%, mean stay 110 sessions), so about
  31% of sessions are stressed (`REGIMES`). Each session's close-to-close log return
  is `drift/252 + vol/sqrt(252) * z`, `z` Student-t with `T_DF` degrees of freedom scaled to unit
  variance (fat-ish tails), clipped to +-20% (SOX's worst day since 1997 was -17%).
* Intraday: the overnight gap is `GAP_BETA * r + N(0, (GAP_NOISE * sigma_day)^2)` (real SOX: gap
  std 0.37 of the daily std, correlation 0.42); the rest of the day is a Brownian bridge over the
  session's regular minutes (390, or 210 on early closes) that ends exactly at the session close,
  with a half-normal wick per minute for high/low. Every timeframe ("1m".."1h", "1d") is the
  aggregation of this one minute path, so daily OHLC always agrees with the intraday bars and
  per-bar vol scales with bar length.
* "SOX": the index level (volume 0). "SOXX", "SMH": scaled index plus an AR(1) tracking difference
  (~0.1%/day), with volume. "SOXL"/"SOXS": daily-reset +3x/-3x of the index's return since the
  previous session close, minus an expense drag of 0.9%/yr (EXPENSE / 252 per session), computed
  minute by minute so intraday bars are path-dependent within the day. Any other symbol: a stock
  with beta `STOCK_BETA` to the index plus its own bridge of idiosyncratic moves.

Calibration against the real files (log returns, 252 sessions a year, SOX from 1997 so the 1994-96
rows with the 1995 index split are left out). Model: `generate(["SOX"], years=100, seed=s)`, seed 7
and the min-max over seeds 1-5, 7, 11. tests/test_data_synthetic.py asserts seeds 7 and 11 stay in the
"tested range":

| statistic                            | SOX 1997-2026 | SOXX 2001-2026 | seed 7 | seeds   | tested range |
|--------------------------------------|---------------|----------------|--------|---------|--------------|
| annualised vol                       | 0.382         | 0.336          | 0.357  | .34-.37 | 0.30-0.42    |
| mean log return per year             | 0.132         | 0.122          | 0.087  | .09-.19 | 0.03-0.25    |
| excess kurtosis of daily returns     | 3.4           | 3.7            | 4.0    | 3.4-5.1 | 1.5-8        |
| median max drawdown, 3-year windows  | -0.39         | -0.34          | -0.44  | -.44/-.39 | -0.55/-0.25 |
| worst max drawdown, 3-year windows   | -0.84         | -0.67          | -0.90  | -.90/-.74 | -0.97/-0.55 |
| yearly vol, 10%-90% quantiles        | 0.21-0.51     | 0.20-0.49      | .24-.48 | .23-.50 | not asserted |
| mean run (sessions) of 63-day vol    | 91            | 88             | 70     | 44-129  | 30-250       |
| above its median (regime length)     |               |                |        |         |              |
| mean daily range (high-low)/close    | 0.027         |                | 0.031  | .029-.032 | not asserted |
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bot.data.calendar import (
    REGULAR_MINUTES,
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


@dataclass(frozen=True)
class Regime:
    name: str
    drift: float  # annual mean log return
    vol: float  # annualised volatility
    mean_days: float  # mean sessions spent in the regime before switching


REGIMES = (Regime("calm", 0.28, 0.24, 250.0), Regime("stress", -0.20, 0.52, 110.0))
T_DF = 8
MAX_DAILY_LOG = 0.20
GAP_BETA, GAP_NOISE = 0.15, 0.30
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


@dataclass
class _IndexChunk:
    """Minute path of the index for a block of sessions, as log levels relative to the previous close."""

    n: np.ndarray  # regular minutes per session (C,)
    r: np.ndarray  # close-to-close log return (C,)
    sigma: np.ndarray  # daily vol of the session's regime (C,)
    lo: np.ndarray  # minute bar open/high/low/close, log vs previous close (C, 390)
    lh: np.ndarray
    ll: np.ndarray
    lc: np.ndarray
    valid: np.ndarray  # minute exists (C, 390)
    z: np.ndarray  # daily shock (C,), drives volume
    pc: np.ndarray  # index level at the previous session's close (C, 1)


def _bridge(rng: np.random.Generator, n: np.ndarray, gap: np.ndarray, end: np.ndarray, sd_min: np.ndarray):
    """Brownian minute path from `gap` to `end` over n[i] minutes, with wicks; (o, h, l, c, valid)."""
    c_, m_ = len(n), REGULAR_MINUTES
    steps = rng.standard_normal((c_, m_)) * sd_min[:, None]
    wick_up = np.abs(rng.standard_normal((c_, m_))) * (WICK * sd_min[:, None])
    wick_dn = np.abs(rng.standard_normal((c_, m_))) * (WICK * sd_min[:, None])
    k = np.arange(1, m_ + 1)
    valid = k[None, :] <= n[:, None]
    walk = np.cumsum(np.where(valid, steps, 0.0), axis=1)
    w_end = walk[np.arange(c_), n - 1]
    frac = np.minimum(k[None, :] / n[:, None], 1.0)
    close = gap[:, None] + walk - frac * w_end[:, None] + frac * (end - gap)[:, None]
    close[np.arange(c_), n - 1] = end  # exact, so the daily return is exactly r
    close = np.where(valid, close, end[:, None])  # carry the close past an early close
    open_ = np.concatenate([gap[:, None], close[:, :-1]], axis=1)
    high = np.maximum(open_, close) + wick_up
    low = np.minimum(open_, close) - wick_dn
    return open_, high, low, close, valid


def _index_chunks(seed: int, n_minutes: np.ndarray):
    """Yield an _IndexChunk per CHUNK sessions, carrying the regime and level across chunks."""
    p_leave = np.array([1.0 / g.mean_days for g in REGIMES])
    stationary_stress = p_leave[0] / p_leave.sum()
    drift = np.array([g.drift for g in REGIMES]) / 252
    vol = np.array([g.vol for g in REGIMES]) / np.sqrt(252)
    t_scale = np.sqrt((T_DF - 2) / T_DF)
    state, level = -1, START_LEVEL
    for j, s0 in enumerate(range(0, len(n_minutes), CHUNK)):
        n = n_minutes[s0 : s0 + CHUNK]
        rng = _rng(seed, "^index", j)
        u = rng.random(len(n))
        z = rng.standard_t(T_DF, len(n)) * t_scale
        g = rng.standard_normal(len(n))
        states = np.empty(len(n), dtype=np.int64)
        for i in range(len(n)):
            if state < 0:
                state = int(u[i] < stationary_stress)
            elif u[i] < p_leave[state]:
                state = 1 - state
            states[i] = state
        sigma = vol[states]
        r = np.clip(drift[states] + sigma * z, -MAX_DAILY_LOG, MAX_DAILY_LOG)
        gap = GAP_BETA * r + GAP_NOISE * sigma * g
        sd_min = sigma * np.sqrt(1 - GAP_BETA**2 - GAP_NOISE**2) / np.sqrt(REGULAR_MINUTES)
        o, h, lo, c, valid = _bridge(rng, n, gap, r, sd_min)
        # products, not sums of logs: the next session's base is bit-identical to this close
        levels = np.cumprod(np.concatenate([[level], np.exp(r)]))
        level = float(levels[-1])
        yield _IndexChunk(n, r, sigma, o, h, lo, c, valid, z, levels[:-1, None])


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
    calm_sd = REGIMES[0].vol / np.sqrt(252)
    size = np.exp(0.35 * rng.standard_normal(len(ix.n))) * (1 + 0.3 * np.abs(ix.z))
    daily = base * size * (ix.sigma / calm_sd)
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
        k, d = LEVERAGE[sym], EXPENSE / 252
        factor = [np.maximum(1 + k * np.expm1(a) - d, _LEV_FLOOR) for a in (ix.lo, ix.lh, ix.ll, ix.lc)]
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
    sd_day = STOCK_IDIO_VOL / np.sqrt(252)
    e = rng.standard_t(T_DF, len(ix.n)) * np.sqrt((T_DF - 2) / T_DF) * sd_day
    gap = GAP_NOISE * sd_day * rng.standard_normal(len(ix.n))
    sd_min = np.full(len(ix.n), sd_day * np.sqrt(1 - GAP_NOISE**2) / np.sqrt(REGULAR_MINUTES))
    io, ih, il, ic, _ = _bridge(rng, ix.n, gap, e, sd_min)
    r = STOCK_BETA * ix.r + e
    pc = prev * np.exp(np.concatenate([[0.0], np.cumsum(r)[:-1]]))[:, None]
    o = pc * np.exp(STOCK_BETA * ix.lo + io)
    c = pc * np.exp(STOCK_BETA * ix.lc + ic)
    h = pc * np.exp(STOCK_BETA * ix.lh + ih)
    lo = pc * np.exp(STOCK_BETA * ix.ll + il)
    h, lo = np.maximum(h, np.maximum(o, c)), np.minimum(lo, np.minimum(o, c))
    state[sym] = float(pc[-1, 0] * np.exp(r[-1]))
    return o, h, lo, c, _volume(rng, STOCK_VOLUME, ix)


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
    if years <= 0:
        raise ValueError(f"years must be positive, got {years}")
    first = pd.Timestamp(start).normalize()
    days = sessions(first, first + pd.Timedelta(days=round(years * 365.25) - 1))
    if len(days) == 0:
        raise ValueError(f"no XNYS session in {years} years from {first.date()}")
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
