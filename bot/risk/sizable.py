"""Can a side be sized at all? Told once at the start of a run, not bar after bar in the journal.

Whatever the sizing rule, a position is never worth more than `max_position_pct` (and, for
fixed_fraction, `fraction`) of equity. When the smallest order the broker takes costs more than that,
every entry into the symbol comes out at size 0: one whole share without `fractional`; one whole share
also with it on Alpaca when a stop rule is on (Alpaca places protective stops on whole shares only);
a millionth of a share otherwise (the quantity step of fractional sizing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.core.config import Settings

FRACTION_STEP = 1e-6  # the quantity step of fractional sizing (`bot/risk/sizing.py`)


@dataclass(frozen=True, slots=True)
class Unsizable:
    """A traded symbol that cannot be bought on `bars` of `of` bars (prices from `first` to `last`)."""

    side: str
    symbol: str
    bars: int
    of: int
    first: str
    last: str
    min_qty: float
    budget: float

    @property
    def never(self) -> bool:
        return self.bars == self.of

    def message(self, fractional: bool) -> str:
        span = f"on {self.bars} of {self.of} bars ({self.first} .. {self.last})"
        when = "on every bar" if self.never else span
        unit = "one whole share" if self.min_qty >= 1 else f"{self.min_qty:g} share"
        fix = (
            "set [risk] fractional = true, raise starting cash or max_position_pct, or trade another symbol"
            if not fractional
            else "raise starting cash or max_position_pct, or use as-traded prices"
        )
        return (
            f"{self.side} {self.symbol} cannot be sized {when}: {unit} costs more than the largest "
            f"position ({self.budget:,.2f}); entries into it are skipped there. Fix: {fix}"
        )

    def as_dict(self, fractional: bool) -> dict[str, object]:
        return {
            "side": self.side,
            "symbol": self.symbol,
            "bars": self.bars,
            "of": self.of,
            "first": self.first,
            "last": self.last,
            "message": self.message(fractional),
        }


def min_qty(cfg: Settings) -> float:
    """The smallest quantity an entry can have with this broker and these rules."""
    r = cfg.risk
    if not r.fractional:
        return 1.0
    protected = r.stop_loss_pct > 0 or r.atr_stop_mult > 0 or r.stop_sigma_mult > 0 or r.trailing_stop_pct > 0
    if cfg.broker.kind == "alpaca" and protected:
        return 1.0
    return FRACTION_STEP


def budget(cfg: Settings, equity: float) -> float:
    """The largest position value any sizing rule can give at `equity`."""
    r = cfg.risk
    share = r.max_position_pct * (r.fraction if r.sizing == "fixed_fraction" else 1.0)
    return share * equity


def unsizable(
    cfg: Settings, side: str, symbol: str, prices: Sequence[float], times: Sequence[object], equity: float
) -> Unsizable | None:
    """The bars (by their price; NaN: no bar) on which `symbol` cannot be sized at `equity`, or None."""
    q = min_qty(cfg)
    cap = budget(cfg, equity)
    px = np.asarray(prices, float)
    hit = np.flatnonzero(px * q > cap * (1 + 1e-12))  # NaN compares False
    if not len(hit):
        return None
    n = int(np.count_nonzero(~np.isnan(px)))
    return Unsizable(side, symbol, len(hit), n, _day(times[hit[0]]), _day(times[hit[-1]]), q, cap)


def _day(t: object) -> str:
    s = str(t)
    return s[:10] if len(s) >= 10 and s[4] == "-" else s


def sides(cfg: Settings) -> list[tuple[str, str]]:
    u = cfg.universe
    return [(side, sym) for side, sym in (("bull", u.bull), ("bear", u.bear)) if sym]
