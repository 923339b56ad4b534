"""Protective exit levels for a long position. Pure functions plus an O(1) ATR.

Several stop rules may be on at once (fixed percent, ATR multiple, sigma multiple, trailing percent):
the position's stop is the tightest (highest) of them, and it only ever moves up. The trailing rule is
updated with each bar's high after that bar's stop check, so it takes effect from the next bar.

In the index's terms (`bot/risk/index.py`): `stop_sigma_mult` k puts the stop k x sigma x |L| below
the entry, sigma being the signal symbol's daily volatility and L the fund's leverage; with
`atr_source = "underlying"` the ATR stop is mult x |L| x the index's ATR as a share of its close.
"""

from __future__ import annotations

from bot.core.config import RiskConfig


def initial_stop(
    cfg: RiskConfig,
    entry: float,
    atr: float | None,
    sigma: float | None = None,
    lev: float = 1.0,
    atr_frac: float | None = None,
) -> float | None:
    """`atr`: the traded symbol's ATR; `sigma`, `atr_frac`: the index's daily sigma and its ATR as a
    share of its close; `lev`: |L|. A rule whose measure is None (not known yet) sets no level."""
    levels = []
    if cfg.stop_loss_pct > 0:
        levels.append(entry * (1.0 - cfg.stop_loss_pct))
    if cfg.atr_stop_mult > 0:
        if cfg.atr_source == "underlying":
            if atr_frac is not None and atr_frac > 0:
                levels.append(entry * (1.0 - cfg.atr_stop_mult * lev * atr_frac))
        elif atr is not None and atr > 0:
            levels.append(entry - cfg.atr_stop_mult * atr)
    if cfg.stop_sigma_mult > 0 and sigma is not None and sigma > 0:
        levels.append(entry * (1.0 - cfg.stop_sigma_mult * sigma * lev))
    if cfg.trailing_stop_pct > 0:
        levels.append(entry * (1.0 - cfg.trailing_stop_pct))
    levels = [x for x in levels if x > 0]
    return max(levels) if levels else None


def take_profit(cfg: RiskConfig, entry: float) -> float | None:
    return entry * (1.0 + cfg.take_profit_pct) if cfg.take_profit_pct > 0 else None


def trailed_stop(cfg: RiskConfig, stop: float | None, high: float) -> float | None:
    if cfg.trailing_stop_pct <= 0:
        return stop
    t = high * (1.0 - cfg.trailing_stop_pct)
    return t if stop is None or t > stop else stop


def estimated_stop(
    cfg: RiskConfig,
    price: float,
    atr: float | None,
    sigma: float | None = None,
    lev: float = 1.0,
    atr_frac: float | None = None,
) -> float | None:
    """The stop an entry at `price` would get; used to size risk_per_trade before the fill."""
    return initial_stop(cfg, price, atr, sigma, lev, atr_frac)


class Atr:
    """Wilder's average true range, updated in O(1) per bar (same recurrence as TA-Lib's ATR)."""

    __slots__ = ("_count", "_n", "_prev_close", "_seed", "_undo", "value")

    def __init__(self, period: int) -> None:
        self._n = period
        self._prev_close: float | None = None
        self._seed = 0.0
        self._count = 0
        self.value: float | None = None
        self._undo: tuple[float | None, float, int, float | None] | None = None

    def rescale(self, factor: float) -> None:
        """Prices times `factor` from here on (a split: 1 / ratio): the state follows, so the range
        across the split is not read as a jump."""
        if self._prev_close is not None:
            self._prev_close *= factor
        self._seed *= factor
        if self.value is not None:
            self.value *= factor
        self._undo = None

    def revise(self, high: float, low: float, close: float) -> float | None:
        """Redo the last update with the bar's final values (a daily bar seen before the close)."""
        if self._undo is not None:
            self._prev_close, self._seed, self._count, self.value = self._undo
        return self.update(high, low, close)

    def update(self, high: float, low: float, close: float) -> float | None:
        self._undo = (self._prev_close, self._seed, self._count, self.value)
        pc = self._prev_close
        self._prev_close = close
        if pc is None:
            return self.value  # TA-Lib's ATR starts with the first bar that has a previous close
        tr = max(high - low, abs(high - pc), abs(low - pc))
        if self.value is None:
            self._seed += tr
            self._count += 1
            if self._count == self._n:
                self.value = self._seed / self._n
        else:
            self.value = (self.value * (self._n - 1) + tr) / self._n
        return self.value
