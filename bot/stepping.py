"""The plugin author's import path for running indicators: `from bot.stepping import SMA, EMA, ...`.

Stable public API for strategy plugins' steppers; the code lives in `bot.signals.stepping`.
"""

from bot.signals.stepping import EMA, NAN, SMA, RollingMax, RollingMin, WilderRSI, talib_variant

__all__ = ["EMA", "NAN", "SMA", "RollingMax", "RollingMin", "WilderRSI", "talib_variant"]
