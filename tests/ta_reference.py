"""Independent indicator and bar builders for the strategy tests (plain numpy, no pandas-ta/TA-Lib).

The conventions follow TA-Lib's published definitions, which pandas-ta delegates to here: the EMA is
seeded with the SMA of its first `n` values; Wilder's RSI with the mean gain and loss of the first
`n` changes, then smoothed with alpha = 1/n; an RSI with no gain and no loss is 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import strategies as st


def sma(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        out[n - 1 :] = np.lib.stride_tricks.sliding_window_view(x, n).mean(axis=1)
    return out


def ema(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if len(x) < n:
        return out
    a = 2.0 / (n + 1)
    out[n - 1] = x[:n].mean()
    for i in range(n, len(x)):
        out[i] = a * x[i] + (1 - a) * out[i - 1]
    return out


def wilder_rsi(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if len(x) <= n:
        return out
    d = np.diff(x)
    gain, loss = np.clip(d, 0, None), np.clip(-d, 0, None)
    ag, al = gain[:n].mean(), loss[:n].mean()
    for i in range(n, len(x)):
        if i > n:
            ag = (ag * (n - 1) + gain[i - 1]) / n
            al = (al * (n - 1) + loss[i - 1]) / n
        out[i] = 100.0 * ag / (ag + al) if ag + al > 0 else 0.0
    return out


# Log returns that are either exactly 0 (flat bars happen) or at least 1e-4 in size, so that RSI's
# "no movement" case is exact rather than a float near-tie.
RETURNS = st.one_of(st.just(0.0), st.floats(1e-4, 0.08), st.floats(-0.08, -1e-4))


def bars_from_returns(
    returns: list[float], spread: list[float] | None = None, volume: list[int] | None = None
) -> pd.DataFrame:
    """Daily OHLCV bars whose close follows `returns` from 100; high/low straddle the close."""
    close = 100.0 * np.exp(np.cumsum(np.r_[0.0, returns]))
    n = len(close)
    s = np.asarray(spread if spread is not None else np.full(n, 0.01))[:n]
    s = np.resize(s, n)
    vol = np.resize(np.asarray(volume if volume is not None else [1_000], dtype=float), n)
    idx = pd.bdate_range("2020-01-01", periods=n, name="timestamp")
    return pd.DataFrame(
        {
            "open": close * (1 - s / 3),
            "high": close * (1 + s),
            "low": close * (1 - s),
            "close": close,
            "volume": vol,
        },
        index=idx,
    )
