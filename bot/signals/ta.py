"""The three indicators the built-in strategies use, as pandas-ta computes them, without importing
pandas-ta where TA-Lib is installed.

pandas-ta imports numba at start-up (~0.2 s of every `soxbot` process); with TA-Lib installed its
`sma`, `ema` and `rsi` only hand the series to TA-Lib (`talib.SMA(close, n)` etc.), so calling TA-Lib
here gives the same numbers to the bit for a fraction of the import. Without TA-Lib, or where
pandas-ta does something else (length 1, too short a series), pandas-ta itself is called, imported
then.
"""

from __future__ import annotations

from functools import cache
from types import ModuleType
from typing import Any

import pandas as pd


@cache
def _talib() -> ModuleType | None:
    try:
        import talib
    except ImportError:
        return None
    return talib


def _pandas_ta() -> Any:
    import pandas_ta

    return pandas_ta


def _call(fn: str, close: pd.Series, length: int, shortest: int) -> pd.Series | None:
    lib = _talib()
    if lib is None or (fn != "RSI" and length <= 1):
        return getattr(_pandas_ta(), fn.lower())(close, length=length)
    if not isinstance(close, pd.Series) or close.size < shortest:
        return None  # pandas-ta's answer to a series shorter than the indicator needs
    out = pd.Series(getattr(lib, fn)(close.to_numpy(dtype=float), length), index=close.index)
    out.name = f"{fn}_{length}"
    return out


def sma(close: pd.Series, length: int) -> pd.Series | None:
    """`pandas_ta.sma(close, length=length)`."""
    return _call("SMA", close, length, length)


def ema(close: pd.Series, length: int) -> pd.Series | None:
    """`pandas_ta.ema(close, length=length)`."""
    return _call("EMA", close, length, length)


def rsi(close: pd.Series, length: int) -> pd.Series | None:
    """`pandas_ta.rsi(close, length=length)`."""
    return _call("RSI", close, length, length + 1)
