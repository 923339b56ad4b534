"""`[risk] max_expected_decay_pct`: no entry into a leveraged fund whose expected decay over the
planned hold exceeds the limit. The engine's entry decision asks it (bot/execution/decide.py), so a
backtest and a live run apply it the same way.

The volatility comes from the traded fund's own closes, which every run has (Alpaca has no index
data): the fund's daily variance is L^2 x the index's, so the index's forecast is the fund's EWMA
divided by L^2. One O(1) EWMA step per traded symbol per bar, and only while the gate is on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from bot.core.config import LeveragedConfig, RiskConfig
from bot.data.rates import Rates
from bot.risk.decay import MIN_OBS, DecayForecast, EwmaVariance, expected_decay


class DecayGate:
    def __init__(self, risk: RiskConfig, lev: LeveragedConfig, rates: Rates, symbols: Iterable[str]) -> None:
        self.limit = risk.max_expected_decay_pct
        self.hold = risk.hold_days
        self.lev = lev
        self.rates = rates
        self.vol = {s: EwmaVariance() for s in symbols}

    def update(self, bars: Mapping[str, tuple[float, ...]]) -> None:
        """Each traded symbol's close of this bar into its EWMA."""
        vol = self.vol
        for sym, bar in bars.items():
            v = vol.get(sym)
            if v is not None:
                v.update(bar[3])

    def update_closes(self, symbol: str, closes: Iterable[float]) -> None:
        """Several closes at once, oldest first (quiet bars, a live warm-up)."""
        v = self.vol.get(symbol)
        if v is not None:
            for c in closes:
                v.update(c)

    def revise(self, symbol: str, close: float) -> None:
        v = self.vol.get(symbol)
        if v is not None:
            v.revise(close)

    def forecast(self, symbol: str, day: dt.date) -> DecayForecast | None:
        """The expected decay over the planned hold for an entry into `symbol` on `day`; None when
        `symbol` is not a declared leveraged fund or has no forecast yet."""
        fund = self.lev.fund(symbol)
        v = self.vol.get(symbol)
        if fund is None or v is None or v.value is None:
            return None
        var_index = v.value / (fund.leverage * fund.leverage)
        return expected_decay(fund.leverage, var_index, self.hold, fund.expense_ratio, self.rates.at(day))

    def check(self, symbol: str, day: dt.date) -> tuple[str, dict[str, object]] | None:
        """Why an entry into `symbol` is blocked, with the figures; None: it may go ahead."""
        if self.lev.fund(symbol) is None:
            return None
        f = self.forecast(symbol, day)
        if f is None:
            return (
                f"no entry into {symbol}: no volatility forecast yet (needs {MIN_OBS} closes of {symbol})",
                {"limit": self.limit},
            )
        if f.cost <= self.limit:
            return None
        details: dict[str, object] = {
            "expected_decay": round(f.cost, 6),
            "limit": self.limit,
            "hold_days": f.sessions,
            "vol_drag": round(f.vol_drag, 6),
            "expense": round(f.expense, 6),
            "financing": round(f.financing, 6),
            "index_sigma_annual": round(f.sigma_annual, 4),
            "rate": self.rates.at(day),
        }
        reason = (
            f"no entry into {symbol}: expected decay {f.cost:.2%} over {f.sessions} sessions exceeds "
            f"max_expected_decay_pct {self.limit:.2%} (drag {-f.vol_drag:.2%} at index sigma "
            f"{f.sigma_annual:.0%}/yr, expense {-f.expense:.2%}, financing {f.financing:+.2%})"
        )
        return reason, details
