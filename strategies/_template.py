"""A template strategy plugin: copy it with `soxbot new-strategy <name>` (or bot.plugins.scaffold).

A plugin is one class in one file under strategies/ (or a file you pass as an extra path). The
engine calls `signals(bars)` on a DataFrame of bars (columns open, high, low, close, volume; one row
per bar, oldest first) and reads one row per bar back. Files whose name starts with "_", like this
one, are not loaded as plugins.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pandas_ta as ta
from pydantic import Field

from bot.strategy import Strategy, StrategyParams, finalize, labels


class MyStrategy(Strategy):
    """Close vs its SMA: +1 while the close is above SMA(length), -1 while below, 0 when equal.

    The first docstring line is what `soxbot strategies` shows; write the full rule below it.
    """

    # The name users write in the config: [[strategies]] name = "my_strategy".
    name = "my_strategy"
    # Where the report draws each indicator column: "price" (over the price) or "rsi" (oscillator).
    panels: ClassVar[dict[str, str]] = {"sma": "price"}

    class Params(StrategyParams):
        # Every parameter: a type, a default and a description (shown by `soxbot strategies`).
        # Unknown keys and bad values are rejected when the config loads, naming the key.
        length: int = Field(50, ge=2, description="SMA length, in bars.")

    params: Params

    @property
    def warmup(self) -> int:
        # Bars before the first valid direction: an SMA of n bars first exists at bar n-1.
        return self.params.length - 1

    # Only windowed indicators here, so the default `memory` (= warmup) is right. For EMA, RSI or
    # ATR, return bot.strategy.recursive_memory(length) from a `memory` property instead.

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        # Vectorised over all bars: no loop, and bar t may only use bars up to t (no look-ahead).
        close = bars["close"].astype(float)
        sma = ta.sma(close, length=self.params.length)  # None when there are too few bars
        sma = np.full(len(close), np.nan) if sma is None else sma.to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            direction = np.sign(close.to_numpy() - sma)  # NaN in warm-up: finalize makes it 0
        # labels: np.select for reason strings (the first true condition's text per bar)
        reason = labels(
            [direction > 0, direction < 0], ["close above SMA", "close below SMA"], "close at SMA"
        )
        # finalize: direction -> int8 in {-1, 0, 1}, "warm-up" before `warmup`, one float column
        # per keyword (journaled, and plotted where `panels` says).
        return finalize(bars.index, direction, reason, self.warmup, sma=sma)

    # Optional, for the live path: `stepper()`, an O(1)-per-bar twin of `signals`. Without one, each
    # live bar recomputes `signals` over a trailing window (~0.5 ms a strategy); with one, a bar
    # costs microseconds. Its `update(o, h, low, c, v)` must return, bar after bar, the last row
    # `signals()` would give on all bars so far: the same direction and reason, the same indicator
    # values (within 1e-9 relative, NaN where NaN), 0 and "warm-up" during warm-up. `soxbot
    # test-strategy` checks it bar by bar. bot.stepping has running SMA, EMA, WilderRSI, RollingMax
    # and RollingMin equal to pandas-ta's to the bit. To use it, uncomment the code below and add
    # `from bot.stepping import SMA` and `from bot.strategy import WARMUP_REASON` to the imports.
    #
    # def stepper(self) -> MyStrategyStepper:
    #     return MyStrategyStepper(self)


# class MyStrategyStepper:
#     """MyStrategy.signals one bar at a time."""
#
#     def __init__(self, s: MyStrategy) -> None:
#         self.sma = SMA(s.params.length)
#         self.warmup = s.warmup
#         self.t = 0  # bars seen
#
#     def update(self, o: float, h: float, low: float, c: float, v: float) -> tuple[int, str, dict]:
#         sma = self.sma.update(c)
#         t, self.t = self.t, self.t + 1
#         values = {"sma": sma}
#         if t < self.warmup:
#             return 0, WARMUP_REASON, values
#         if c > sma:
#             return 1, "close above SMA", values
#         if c < sma:
#             return -1, "close below SMA", values
#         return 0, "close at SMA", values
