"""`soxbot decay`: what holding a leveraged fund is expected to cost from today's data, and what it
cost in the windows before (bot/risk/decay.py has the forecast, bot/risk/leverage.py the terms).

The forecast reads the underlying's daily returns when its bars are there, else the fund's own
divided by L^2 (what the entry gate does live, where Alpaca has no index data).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bot.core.config import ConfigError, Settings
from bot.data.errors import DataError
from bot.risk.attribution import daily_bars, rates_for
from bot.risk.decay import RISKMETRICS_LAMBDA, ewma_variance, expected_decay, trailing_variance
from bot.risk.leverage import DAYS_PER_YEAR, drag_coefficient, financing_multiplier

HORIZONS = (5, 10, 20)


def decay_report(cfg: Settings, symbol: str, days: int = 20, windows: int = 12) -> str:
    """The text `soxbot decay` prints. Raises ConfigError / DataError with the fix."""
    from bot.data.load import load_bars

    fund = cfg.leveraged.fund(symbol)
    if fund is None:
        raise ConfigError(
            f"{symbol} is not a declared leveraged fund. Fix: declare it under [[leveraged.funds]] "
            "(symbol, leverage, underlying, expense_ratio), or pick SOXL or SOXS."
        )
    rates = rates_for(cfg.leveraged)
    fd = daily_bars(load_bars(cfg.data, [symbol])[symbol][0])
    lev = fund.leverage
    try:
        ud = daily_bars(load_bars(cfg.data, [fund.underlying])[fund.underlying][0])
        source = f"{fund.underlying} daily returns"
    except (DataError, OSError) as exc:
        ud = None
        source = f"{symbol} daily returns / {lev:g}^2 ({fund.underlying}: {str(exc).splitlines()[0]})"
    if len(fd) < days + 21:
        raise DataError(
            f"{symbol} has {len(fd)} daily bars; the forecast needs at least {days + 21}. "
            "Fix: an earlier --start (or [data] start), or fewer --days."
        )
    if ud is not None:
        ud = ud.reindex(fd.index).ffill()
        ref = ud["close"].to_numpy(float)
        var = ewma_variance(ref)
        trail = trailing_variance(ref)
    else:
        ref = None
        var = ewma_variance(fd["close"].to_numpy(float)) / lev**2
        trail = trailing_variance(fd["close"].to_numpy(float)) / lev**2
    today = fd.index[-1].date()
    rate = rates.at(today)
    lines = [
        f"{symbol}: {lev:+g}x {fund.underlying}, expense ratio {fund.expense_ratio:.2%}/yr; data to {today}; "
        f"financing at {rate:.2%} ({rates.source})",
        f"volatility forecast: EWMA (lambda {RISKMETRICS_LAMBDA}) of {source}: "
        f"{_sig(var[-1])}; trailing 20-session: {_sig(trail[-1])}",
        "expected decay if bought now (log points; cost = -(drag + expense + financing)):",
        f"  {'sessions':>8}  {'vol drag':>9}  {'expense':>8}  {'financing':>9}  {'expected cost':>13}",
    ]
    for n in sorted({*HORIZONS, days}):
        f = expected_decay(lev, float(var[-1]), n, fund.expense_ratio, rate)
        lines.append(
            f"  {n:>8}  {f.vol_drag:>+9.2%}  {f.expense:>+8.2%}  {f.financing:>+9.2%}  {f.cost:>13.2%}"
        )
    lines += _history(fd, ud, var, lev, fund.expense_ratio, rates, days, windows, symbol, fund.underlying)
    return "\n".join(lines)


def _sig(v: float) -> str:
    if not math.isfinite(v):
        return "n/a (too few bars)"
    return f"sigma {math.sqrt(v):.2%}/day ({math.sqrt(v * 252):.0%}/yr)"


def _history(
    fd: pd.DataFrame,
    ud: pd.DataFrame | None,
    var: np.ndarray,
    lev: float,
    er: float,
    rates: object,
    days: int,
    windows: int,
    symbol: str,
    underlying: str,
) -> list[str]:
    """The last `windows` non-overlapping windows of `days` sessions, newest last."""
    if ud is None:
        return [f"realised history: needs {underlying} bars (the gap is measured against the index)"]
    fc = fd["close"].to_numpy(float)
    uc = ud["close"].to_numpy(float)
    dates = [t.date() for t in fd.index]
    n = len(fc)
    ends = [e for e in range(n - 1, days - 1, -days)][:windows][::-1]
    out = [
        f"realised, last {len(ends)} windows of {days} sessions (log points; gap = {symbol} - ({lev:+g}x "
        f"{underlying}); forecast = what the EWMA expected at the window's start):",
        f"  {'from':>10}  {'to':>10}  {underlying:>7}  {symbol:>7}  {'gap':>7}  {'textbook':>8}  "
        f"{'forecast':>8}  {'error':>7}",
    ]
    k = drag_coefficient(lev)
    for e in ends:
        s = e - days
        r = uc[s + 1 : e + 1] / uc[s:e] - 1
        carry = (
            sum(
                (-er + financing_multiplier(lev) * rates.at(dates[t - 1])) * (dates[t] - dates[t - 1]).days  # type: ignore[attr-defined]
                for t in range(s + 1, e + 1)
            )
            / DAYS_PER_YEAR
        )
        gap = math.log(fc[e] / fc[s]) - lev * math.log(uc[e] / uc[s])
        textbook = -k * float(np.sum(r * r)) + carry
        fcast = (
            expected_decay(lev, float(var[s]), days, er, rates.at(dates[s])).total  # type: ignore[attr-defined]
            if math.isfinite(var[s])
            else float("nan")
        )
        known = math.isfinite(fcast)
        out.append(
            f"  {dates[s]!s:>10}  {dates[e]!s:>10}  {math.log(uc[e] / uc[s]):>+7.2%}  "
            f"{math.log(fc[e] / fc[s]):>+7.2%}  {gap:>+7.2%}  {textbook:>+8.2%}  "
            f"{f'{fcast:+.2%}' if known else 'n/a':>8}  {f'{gap - fcast:+.2%}' if known else 'n/a':>7}"
        )
    return out
