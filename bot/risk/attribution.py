"""Decay and carry attribution of real holds: bars in, the terms of `bot/risk/leverage.py` out.

Where a fill sits in the index's terms: a fill at the fund's open (within `tol`, the slippage) is at
the index's open, one at the fund's close at the index's close, and any other (a stop filled inside
the bar, a live fill at 11:02) at the level the fund's price implies from the previous closes
(`implied_index`), kept within the index's range that session. Intraday bars are first made into
daily ones (New York sessions): the reset happens at the close.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from bot.core.config import LeveragedConfig, LeveragedFund
from bot.data.rates import Rates, load_rates
from bot.risk.leverage import TERMS, Attribution, attribute, implied_index

NY = "America/New_York"
COLUMNS = ("leverage", "underlying", "log_return", "index_log_return", *(f"attr_{t}" for t in TERMS))


class AttributionError(ValueError):
    """A hold that cannot be attributed (a bar missing), with the reason."""


def rates_for(cfg: LeveragedConfig) -> Rates:
    """The rates the config names: its rates file, else the constant short_rate."""
    return load_rates(cfg.rates_file) if cfg.rates_file is not None else Rates.constant(cfg.short_rate)


def session_date(ts: object) -> dt.date:
    if isinstance(ts, dt.datetime):
        return (ts.astimezone(ZoneInfo(NY)) if ts.tzinfo is not None else ts).date()
    t = pd.Timestamp(ts)  # type: ignore[arg-type]
    return (t.tz_convert(NY) if t.tzinfo is not None else t).date()


def daily_bars(df: pd.DataFrame) -> pd.DataFrame:
    """OHLC per session with a plain date index: daily bars as they are, intraday ones aggregated."""
    idx = pd.DatetimeIndex(df.index)
    if idx.tz is not None:
        idx = idx.tz_convert(NY).tz_localize(None)
    if (idx == idx.normalize()).all() and idx.is_unique:
        out = df[["open", "high", "low", "close"]].copy()
        out.index = idx
        return out
    g = df[["open", "high", "low", "close"]].set_axis(idx).groupby(idx.normalize())
    return pd.DataFrame(
        {
            "open": g["open"].first(),
            "high": g["high"].max(),
            "low": g["low"].min(),
            "close": g["close"].last(),
        }
    )


@dataclass
class Pair:
    """A fund's daily bars and its underlying's, on the fund's sessions (NaN where the index has none)."""

    fund: LeveragedFund
    dates: list[dt.date]
    f: np.ndarray  # (n, 4) open, high, low, close
    u: np.ndarray
    d64: np.ndarray  # the dates as datetime64[D], for lookups

    @classmethod
    def of(cls, fund: LeveragedFund, fund_bars: pd.DataFrame, index_bars: pd.DataFrame) -> Pair:
        fd = daily_bars(fund_bars)
        ud = daily_bars(index_bars).reindex(fd.index)
        cols = ["open", "high", "low", "close"]
        dates = [t.date() for t in fd.index]
        return cls(
            fund, dates, fd[cols].to_numpy(float), ud[cols].to_numpy(float), np.array(dates, "datetime64[D]")
        )

    def _row(self, day: dt.date, what: str) -> int:
        i = int(np.searchsorted(self.d64, np.datetime64(day)))
        if i >= len(self.dates) or self.dates[i] != day:
            raise AttributionError(f"{self.fund.symbol} has no bar on {day} ({what})")
        if i == 0:
            raise AttributionError(f"{self.fund.symbol} has no bar before {day} ({what}): no previous close")
        if np.isnan(self.u[i, 3]) or np.isnan(self.u[i - 1, 3]):
            missing = day if np.isnan(self.u[i, 3]) else self.dates[i - 1]
            raise AttributionError(f"{self.fund.underlying} has no bar on {missing} ({what})")
        return i

    def _point(self, price: float, i: int, tol: float) -> tuple[str, float]:
        """Where a fill at `price` in session i sits: ("open" | "close" | "inside", index level)."""
        o, c = self.f[i, 0], self.f[i, 3]
        if abs(price / o - 1.0) <= tol and not np.isnan(self.u[i, 0]):
            return "open", float(self.u[i, 0])
        if abs(price / c - 1.0) <= tol:
            return "close", float(self.u[i, 3])
        level = implied_index(price, float(self.f[i - 1, 3]), float(self.u[i - 1, 3]), self.fund.leverage)
        lo, hi = self.u[i, 2], self.u[i, 1]
        if not (np.isnan(lo) or np.isnan(hi)):
            level = min(max(level, float(lo)), float(hi))
        return "inside", level

    def attribute(
        self,
        entry_time: object,
        entry_price: float,
        exit_time: object,
        exit_price: float,
        rates: Rates,
        tol: float = 0.0,
    ) -> Attribution:
        """The terms of a hold bought at `entry_price` and sold (or marked) at `exit_price`."""
        tol = tol + 1e-9
        a = self._row(session_date(entry_time), "entry")
        b = self._row(session_date(exit_time), "exit")
        if b < a:
            raise AttributionError(f"exit {exit_time} is before entry {entry_time}")
        gaps = np.flatnonzero(np.isnan(self.u[a - 1 : b + 1, 3]))
        if len(gaps):
            raise AttributionError(
                f"{self.fund.underlying} has no bar on {self.dates[a - 1 + gaps[0]]} (held)"
            )
        where_e, ue = self._point(entry_price, a, tol)
        where_x, ux = self._point(exit_price, b, tol)
        if ue <= 0 or ux <= 0:
            raise AttributionError(f"no positive {self.fund.underlying} level implied by the fills")
        uc = self.u[:, 3]
        alphas: list[float] = []
        betas: list[float] = []
        days: list[float] = []
        rs: list[float] = []
        first = a + 1 if where_e == "close" else a
        for t in range(first, b + 1):
            ref = uc[t - 1]
            betas.append(ue / ref - 1.0 if t == a else 0.0)
            alphas.append(ux / ref - 1.0 if t == b else uc[t] / ref - 1.0)
            if t < b or where_x == "close":  # held through close t: its accrual counts
                prev = self.dates[t - 1]
                days.append(float((self.dates[t] - prev).days))
                rs.append(rates.at(prev))
        if first > b:  # bought at a close and sold at the same close
            alphas, betas = [], []
        return attribute(
            self.fund.leverage,
            entry_price,
            exit_price,
            ue,
            ux,
            alphas,
            betas,
            days,
            rs,
            self.fund.expense_ratio,
        )


def attribute_trades(
    trades: pd.DataFrame,
    bars: Mapping[str, pd.DataFrame],
    cfg: LeveragedConfig,
    rates: Rates,
    tol: float = 0.0,
) -> tuple[pd.DataFrame, list[str]]:
    """Attribution columns (`COLUMNS`) for each row of a trades frame, NaN for a symbol that is not a
    declared leveraged fund or a trade that cannot be attributed; and one note per reason it could not."""
    n = len(trades)
    values = np.full((n, len(COLUMNS) - 2), np.nan)  # the float columns after leverage, underlying
    lev = np.full(n, np.nan)
    und = [""] * n
    notes: dict[str, int] = {}
    pairs: dict[str, Pair | str] = {}
    cols = [trades[c].tolist() for c in ("symbol", "entry_time", "entry_price", "exit_time", "exit_price")]
    for k, (sym, t_in, p_in, t_out, p_out) in enumerate(zip(*cols, strict=True)):
        sym = str(sym)
        if sym not in pairs:
            fund = cfg.fund(sym)
            if fund is None:
                pairs[sym] = ""
            elif fund.underlying not in bars or sym not in bars:
                pairs[sym] = f"{sym}: no {fund.underlying} bars to attribute against"
            else:
                pairs[sym] = Pair.of(fund, bars[sym], bars[fund.underlying])
        pair = pairs[sym]
        if isinstance(pair, str):
            if pair:
                notes[pair] = notes.get(pair, 0) + 1
            continue
        try:
            att = pair.attribute(t_in, float(p_in), t_out, float(p_out), rates, tol)
        except AttributionError as exc:
            notes[str(exc)] = notes.get(str(exc), 0) + 1
            continue
        und[k] = pair.fund.underlying
        lev[k] = att.leverage
        values[k] = (att.log_return, att.index_log, *(getattr(att, t) for t in TERMS))
    out = pd.DataFrame({"leverage": lev, "underlying": und}, index=trades.index)
    for j, c in enumerate(COLUMNS[2:]):
        out[c] = values[:, j]
    return out, [f"{why} ({n} trade{'s' if n > 1 else ''} not attributed)" for why, n in notes.items()]


def summarize_attribution(frame: pd.DataFrame) -> dict[str, dict[str, float | int]]:
    """Per symbol (and "all"): trades attributed and the sums of the log return and each term."""
    done = frame.dropna(subset=["log_return"])
    out: dict[str, dict[str, float | int]] = {}
    groups = [(str(s), g) for s, g in done.groupby("symbol", sort=True)] if len(done) else []
    for name, g in [*groups, ("all", done)]:
        if not len(g):
            continue
        row: dict[str, float | int] = {"trades": len(g), "log_return": math.fsum(g["log_return"])}
        for t in TERMS:
            row[t] = math.fsum(g[f"attr_{t}"])
        out[name] = row
    return out
