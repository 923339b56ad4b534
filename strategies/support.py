"""Support and resistance from confirmed swing pivots: bounce, breakdown and breakout."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field, ValidationInfo, field_validator

from bot.signals import ta
from bot.stepping import NAN, SMA, RollingMax, RollingMin
from bot.strategy import WARMUP_REASON, Strategy, StrategyParams, finalize, labels

_NO_EVENT, _BREAKOUT, _BOUNCE, _BREAKDOWN, _STALE = 0, 1, 2, 3, 4


def _last_index(mask: np.ndarray) -> np.ndarray:
    """Index of the most recent True at or before each bar (-1 before the first): a vectorised ffill."""
    idx = np.where(mask, np.arange(len(mask)), -1)
    return np.maximum.accumulate(idx) if len(idx) else idx


class SupportResistance(Strategy):
    """Support/resistance: +1 on a bounce off support or a breakout above resistance, -1 on a breakdown.

    Levels, from swing pivots: a pivot high (low) is a bar whose high (low) is the highest (lowest)
    of the `pivot` bars on each side. It is only known `pivot` bars later, so it becomes a level on
    the bar that confirms it, never before (no look-ahead). Support is the most recent confirmed
    pivot low, resistance the most recent confirmed pivot high, each only if the pivot bar lies
    within the last `lookback` bars.
    Events on a bar's close (band b = `band` %):
    - bounce: the low touched support (low <= support) and the close is back within b above it -> +1;
    - breakout: close > resistance x (1 + b) -> +1;
    - breakdown: close < support x (1 - b) -> -1.
    With `vol_mult` > 0, breakouts and breakdowns also need volume > vol_mult x SMA(volume,
    `vol_length`); where the bars carry no volume (an index such as SOX) that check is skipped, with
    a one-time warning. The direction holds until an opposite event (or, with `max_hold` > 0, for at
    most `max_hold` bars after the latest event, which also bounds the live window exactly); a bar
    with both a long and a short event keeps the previous direction. 0 before the first event and
    during warm-up.
    """

    name = "support"
    panels: ClassVar[dict[str, str]] = {"support": "price", "resistance": "price"}

    class Params(StrategyParams):
        pivot: int = Field(
            5, ge=1, description="A swing high (low) is the highest (lowest) of this many bars on each side."
        )
        lookback: int = Field(
            60, ge=2, validate_default=True, description="Only pivots of the last this many bars are levels."
        )
        band: float = Field(1.0, gt=0, lt=50, description="Tolerance around a level, in percent.")
        vol_mult: float = Field(
            0.0, ge=0, description="Breakouts/breakdowns need volume > this x its SMA; 0 = off."
        )
        vol_length: int = Field(20, ge=2, description="SMA length of the volume check, in bars.")
        max_hold: int = Field(
            0, ge=0, description="Go flat this many bars after the latest event; 0 = hold until the next one."
        )

        @field_validator("lookback")
        @classmethod
        def _covers_pivot(cls, lookback: int, info: ValidationInfo) -> int:
            pivot = info.data.get("pivot")
            if pivot is not None and lookback <= pivot:
                raise ValueError(
                    f"lookback ({lookback}) must exceed pivot ({pivot}): "
                    "a pivot is only confirmed pivot bars after it"
                )
            return lookback

    params: Params

    def __init__(self, params: StrategyParams | Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self._warned_no_volume = False

    @property
    def warmup(self) -> int:
        p = self.params
        return max(p.lookback + p.pivot, p.vol_length - 1 if p.vol_mult > 0 else 0)

    @property
    def memory(self) -> int:
        # Levels need lookback + pivot bars; with max_hold the held state reaches back max_hold more.
        return self.warmup + 1 + self.params.max_hold

    def _level(self, price: np.ndarray, extreme: np.ndarray) -> np.ndarray:
        """Most recent confirmed pivot's price, NaN when that pivot is older than `lookback` bars."""
        p, n = self.params.pivot, len(price)
        confirmed = np.zeros(n, dtype=bool)
        if n > p:
            # bar t confirms a pivot at t - p when price[t-p] is the extreme of bars t-2p .. t
            confirmed[p:] = price[:-p] == extreme[p:]
        last = _last_index(confirmed)
        pivot_bar = last - p
        t = np.arange(n)
        ok = (last >= 0) & (t - pivot_bar <= self.params.lookback)
        return np.where(ok, price[np.clip(pivot_bar, 0, None)], np.nan) if n else np.full(0, np.nan)

    def _warn_no_volume(self) -> None:
        if not self._warned_no_volume:
            self._warned_no_volume = True
            warnings.warn(
                f"{self.name}: the bars carry no volume (an index?); vol_mult={self.params.vol_mult:g} "
                "volume confirmation is ignored where volume is 0",
                UserWarning,
                stacklevel=4,
            )

    def _volume_ok(self, bars: pd.DataFrame) -> np.ndarray:
        p, n = self.params, len(bars)
        if p.vol_mult <= 0:
            return np.ones(n, dtype=bool)
        if "volume" not in bars:
            vol = pd.Series(np.zeros(n), index=bars.index)
        else:
            vol = bars["volume"].astype(float).fillna(0.0)
        out = ta.sma(vol, length=p.vol_length)
        avg = np.full(n, np.nan) if out is None else out.to_numpy(dtype=float)
        no_volume = avg <= 0  # no volume over the whole SMA window: nothing to confirm against
        if no_volume[self.warmup :].any():
            self._warn_no_volume()
        with np.errstate(invalid="ignore"):
            return no_volume | (vol.to_numpy() > p.vol_mult * avg)

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        p = self.params
        high = bars["high"].to_numpy(dtype=float)
        low = bars["low"].to_numpy(dtype=float)
        close = bars["close"].to_numpy(dtype=float)
        w = 2 * p.pivot + 1
        hi_max = pd.Series(high).rolling(w, min_periods=w).max().to_numpy()
        lo_min = pd.Series(low).rolling(w, min_periods=w).min().to_numpy()
        resistance = self._level(high, hi_max)
        support = self._level(low, lo_min)

        b = p.band / 100.0
        vol_ok = self._volume_ok(bars)
        with np.errstate(invalid="ignore"):
            breakout = (close > resistance * (1 + b)) & vol_ok
            breakdown = (close < support * (1 - b)) & vol_ok
            bounce = (low <= support) & (close >= support) & (close <= support * (1 + b))
        up = breakout | bounce
        conflict = up & breakdown
        up &= ~conflict
        breakdown &= ~conflict

        kind = np.select([breakout & up, bounce & up, breakdown], [_BREAKOUT, _BOUNCE, _BREAKDOWN], _NO_EVENT)
        last = _last_index(kind != _NO_EVENT)
        held = np.where(last >= 0, kind[np.clip(last, 0, None)], _NO_EVENT) if len(kind) else kind
        stale = (held != _NO_EVENT) & (np.arange(len(kind)) - last >= p.max_hold) if p.max_hold else None
        if stale is not None:
            held = np.where(stale, _STALE, held)
        direction = np.select([held == _BREAKDOWN, (held != _NO_EVENT) & (held != _STALE)], [-1, 1], 0)
        texts = self._reasons()
        reason = labels(
            [held == _BREAKOUT, held == _BOUNCE, held == _BREAKDOWN, held == _STALE],
            texts[1:],
            default=texts[_NO_EVENT],
        )
        return finalize(bars.index, direction, reason, self.warmup, support=support, resistance=resistance)

    def _reasons(self) -> tuple[str, ...]:
        """The reason for each held state, by its code (_NO_EVENT, _BREAKOUT, ..., _STALE)."""
        p = self.params
        pct = f"{p.band:g}%"
        return (
            "no support/resistance event yet",
            f"close broke out {pct} above resistance: long until a breakdown",
            f"bounced off support (close within {pct}): long until a breakdown",
            f"close broke down {pct} below support: short until a bounce or breakout",
            f"flat: no support/resistance event in max_hold={p.max_hold} bars",
        )

    def stepper(self) -> _SupportStepper:
        return _SupportStepper(self)


_DIRECTION_OF = (0, 1, 1, -1, 0)  # by held state: none, breakout, bounce, breakdown, stale


class _SupportStepper:
    """SupportResistance.signals one bar at a time: rolling extremes as monotonic queues, the last
    `pivot` highs and lows in rings (a pivot bar's price is read when it is confirmed), the latest
    confirmed pivot of each side, and the latest event with its bar."""

    __slots__ = (
        "_avg",
        "_band_dn",
        "_band_up",
        "_event",
        "_event_bar",
        "_highs",
        "_hold",
        "_lookback",
        "_lows",
        "_max",
        "_min",
        "_pivot",
        "_reasons",
        "_res",
        "_res_bar",
        "_strategy",
        "_sup",
        "_sup_bar",
        "_t",
        "_vol_mult",
        "_warmup",
    )

    def __init__(self, s: SupportResistance) -> None:
        p = s.params
        w = 2 * p.pivot + 1
        self._strategy = s  # for its one-time "no volume" warning
        self._pivot, self._lookback, self._hold = p.pivot, p.lookback, p.max_hold
        b = p.band / 100.0
        self._band_up, self._band_dn = 1 + b, 1 - b
        self._vol_mult = p.vol_mult
        self._avg = SMA(p.vol_length) if p.vol_mult > 0 else None
        self._max, self._min = RollingMax(w), RollingMin(w)
        self._highs = [NAN] * (p.pivot + 1)  # ring: the high of bar t sits at t % (pivot + 1)
        self._lows = [NAN] * (p.pivot + 1)
        self._res = self._sup = NAN
        self._res_bar = self._sup_bar = -1  # pivot bar of the latest confirmed level, -1 for none
        self._event, self._event_bar = _NO_EVENT, -1
        self._reasons = s._reasons()
        self._warmup = s.warmup
        self._t = 0

    def update(self, o: float, h: float, low: float, c: float, v: float) -> tuple[int, str, dict[str, float]]:
        h, low, c = float(h), float(low), float(c)
        t, p = self._t, self._pivot
        self._t = t + 1
        ring = p + 1
        self._highs[t % ring] = h
        self._lows[t % ring] = low
        hi_max, lo_min = self._max.update(h), self._min.update(low)
        if t >= p:  # bar t confirms a pivot at t - p when its price is the extreme of t-2p .. t
            pivot_high, pivot_low = self._highs[(t - p) % ring], self._lows[(t - p) % ring]
            if pivot_high == hi_max:
                self._res, self._res_bar = pivot_high, t - p
            if pivot_low == lo_min:
                self._sup, self._sup_bar = pivot_low, t - p
        res = self._res if self._res_bar >= 0 and t - self._res_bar <= self._lookback else NAN
        sup = self._sup if self._sup_bar >= 0 and t - self._sup_bar <= self._lookback else NAN

        vol_ok = True
        if self._avg is not None:
            vol = 0.0 if v != v else float(v)  # NaN volume counts as none
            avg = self._avg.update(vol)
            no_volume = avg <= 0  # no volume over the whole SMA window: nothing to confirm against
            if no_volume and t >= self._warmup:
                self._strategy._warn_no_volume()
            vol_ok = no_volume or vol > self._vol_mult * avg
        breakout = vol_ok and c > res * self._band_up
        breakdown = vol_ok and c < sup * self._band_dn
        bounce = low <= sup and c >= sup and c <= sup * self._band_up
        up = breakout or bounce
        if up and breakdown:  # both ways at once: no event, the previous direction holds
            up = breakdown = False
        if up:
            self._event, self._event_bar = (_BREAKOUT if breakout else _BOUNCE), t
        elif breakdown:
            self._event, self._event_bar = _BREAKDOWN, t
        held = self._event
        if self._hold and held != _NO_EVENT and t - self._event_bar >= self._hold:
            held = _STALE
        values = {"support": sup, "resistance": res}
        if t < self._warmup:
            return 0, WARMUP_REASON, values
        return _DIRECTION_OF[held], self._reasons[held], values
