"""O(1)-per-bar indicators for strategy steppers, equal bit for bit to what pandas-ta returns.

A stepper (`Strategy.stepper()`) decides each new bar from its running state instead of recomputing
`signals()` over a trailing window. To decide exactly as the backtest does, its indicators must
equal the vectorised ones to the last bit, not just closely: a direction flips on `rsi > 30` or on
`fast == slow`. pandas-ta delegates to TA-Lib here, so these replay TA-Lib's own arithmetic in its
order: the SMA as a running sum (add the new value, divide, subtract the oldest), the EMA seeded
with the mean of its first `n` values, Wilder's RSI seeded with the mean gain/loss of the first `n`
changes. TA-Lib builds differ in two details (the EMA step fused into one multiply-add on CPUs
with FMA; RSI smoothing by division or by a multiply with 1/n and its zero test), so the variant is
chosen once per process by comparing both against pandas-ta on a fixed probe series.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from functools import cache

NAN = float("nan")

if hasattr(math, "fma"):  # Python >= 3.13
    _fma = math.fma
else:  # pragma: no cover - Python 3.12: exact via rationals (slower, still O(1))
    from fractions import Fraction

    def _fma(x: float, y: float, z: float) -> float:
        return float(Fraction(x) * Fraction(y) + Fraction(z))


class SMA:
    """Simple moving average of the last `n` values (NaN before `n` values), summed like TA-Lib."""

    __slots__ = ("_buf", "_i", "_total", "n")

    def __init__(self, n: int) -> None:
        self.n = int(n)
        self._buf = [0.0] * self.n
        self._i = 0
        self._total = 0.0

    def update(self, x: float) -> float:
        n, i = self.n, self._i
        self._total += x
        self._buf[i % n] = x
        self._i = i + 1
        if i < n - 1:
            return NAN
        value = self._total / n
        self._total -= self._buf[(i + 1) % n]  # the oldest value leaves the next window
        return value


class EMA:
    """Exponential moving average, alpha 2/(n+1), seeded with the SMA of the first `n` values."""

    __slots__ = ("_fused", "_i", "_k", "_sum", "n", "value")

    def __init__(self, n: int, fused: bool | None = None) -> None:
        self.n = int(n)
        self._k = 2.0 / (self.n + 1)
        self._i = 0
        self._sum = 0.0
        self.value = NAN
        self._fused = talib_variant()[0] if fused is None else fused

    def update(self, x: float) -> float:
        i = self._i
        self._i = i + 1
        if i >= self.n:
            v = self.value
            self.value = _fma(x - v, self._k, v) if self._fused else (x - v) * self._k + v
        else:
            self._sum += x
            if i == self.n - 1:
                self.value = self._sum / self.n
        return self.value


class WilderRSI:
    """Wilder's RSI(n) of a series: NaN for the first `n` values, 0 when nothing moved."""

    __slots__ = ("_gain", "_i", "_inv", "_loss", "_m", "_modern", "_prev", "n")

    def __init__(self, n: int, modern: bool | None = None) -> None:
        self.n = int(n)
        self._inv = 1.0 / self.n
        self._m = float(self.n - 1)
        self._i = 0
        self._prev = NAN
        self._gain = 0.0
        self._loss = 0.0
        self._modern = talib_variant()[1] if modern is None else modern

    def update(self, x: float) -> float:
        i = self._i
        self._i = i + 1
        d = x - self._prev
        self._prev = x
        if i == 0:
            return NAN
        n, g, lo = self.n, self._gain, self._loss
        if self._modern:  # TA-Lib >= 0.7: multiply by 1/n, RSI 0 unless gain + loss > 0
            up = d if d > 0 else 0.0
            if i < n:
                self._gain, self._loss = g + up, lo + (up - d)
                return NAN
            if i == n:
                g, lo = (g + up) * self._inv, (lo + (up - d)) * self._inv
            else:
                g, lo = (g * self._m + up) * self._inv, ((up - d) + lo * self._m) * self._inv
            self._gain, self._loss = g, lo
            t = lo + g
            return g / t * 100.0 if t > 0 else 0.0
        if i > n:  # TA-Lib 0.6 and earlier: divide by n, RSI 0 while |gain + loss| < 1e-8
            g, lo = g * self._m, lo * self._m
        if d < 0:
            lo -= d
        else:
            g += d
        if i < n:
            self._gain, self._loss = g, lo
            return NAN
        g, lo = g / n, lo / n
        self._gain, self._loss = g, lo
        t = g + lo
        return 100.0 * (g / t) if not -1e-8 < t < 1e-8 else 0.0


class RollingMax:
    """Maximum of the last `n` values (NaN before `n` values); a monotonic queue, amortised O(1)."""

    __slots__ = ("_i", "_q", "_sign", "n")

    def __init__(self, n: int, minimum: bool = False) -> None:
        self.n = int(n)
        self._q: deque[tuple[int, float]] = deque()
        self._i = 0
        self._sign = -1.0 if minimum else 1.0

    def update(self, x: float) -> float:
        i, q, y = self._i, self._q, x * self._sign
        self._i = i + 1
        while q and q[-1][1] <= y:
            q.pop()
        q.append((i, y))
        if q[0][0] <= i - self.n:
            q.popleft()
        return q[0][1] * self._sign if i >= self.n - 1 else NAN


class RollingMin(RollingMax):
    """Minimum of the last `n` values (NaN before `n` values)."""

    __slots__ = ()

    def __init__(self, n: int) -> None:
        super().__init__(n, minimum=True)


@cache
def talib_variant() -> tuple[bool, bool]:
    """(EMA step fused, RSI of TA-Lib >= 0.7), as the installed pandas-ta/TA-Lib compute them.

    Both candidates of each run over a fixed series; the one closer to pandas-ta's output wins, and
    with TA-Lib installed it is equal to the bit (tests/test_steppers.py checks that on random
    series; tests/test_strategies_common.py that pandas-ta does use TA-Lib)."""
    import numpy as np
    import pandas as pd
    import pandas_ta as ta

    x = 100.0 * np.exp(np.cumsum(np.random.default_rng(7).normal(0.0, 0.02, 2000)))
    x[40:48] = x[39]  # a flat stretch: RSI's "no movement" branch
    s = pd.Series(x)
    xs = x.tolist()

    def err(fn: Callable[..., pd.Series | None], make: Callable[[int], EMA | WilderRSI]) -> float:
        total = 0.0
        for n in (2, 9, 21):
            ref, ind = fn(s, length=n), make(n)
            got = np.array([ind.update(v) for v in xs])
            want = np.full(len(xs), np.nan) if ref is None else ref.to_numpy(dtype=float)
            ok = ~np.isnan(want)
            total += float(np.abs(want[ok] - got[ok]).sum())
        return total

    fused = err(ta.ema, lambda n: EMA(n, fused=True)) < err(ta.ema, lambda n: EMA(n, fused=False))
    modern = err(ta.rsi, lambda n: WilderRSI(n, modern=True)) < err(
        ta.rsi, lambda n: WilderRSI(n, modern=False)
    )
    return fused, modern
