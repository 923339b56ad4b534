"""Turn several strategies' directions into one.

- unanimous: +1 (or -1) only when every strategy says so; otherwise 0.
- majority:  +1 (or -1) when more than half of the strategies say so; otherwise 0.
- weighted:  sign of the weighted mean of directions when |mean| > threshold; otherwise 0.
Works on a (bars x strategies) array, so the backtest (all bars) and the live path (one row) share it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def combine(
    directions: np.ndarray,
    mode: str = "majority",
    weights: Sequence[float] | None = None,
    threshold: float = 0.5,
) -> np.ndarray:
    d = np.asarray(directions, dtype=np.int8)
    if d.ndim == 1:
        d = d[:, None]
    n = d.shape[1]
    if n == 1:
        return d[:, 0].copy()
    if mode == "unanimous":
        up = (d == 1).all(axis=1)
        down = (d == -1).all(axis=1)
    elif mode == "majority":
        up = (d == 1).sum(axis=1) * 2 > n
        down = (d == -1).sum(axis=1) * 2 > n
    elif mode == "weighted":
        w = np.asarray(weights if weights is not None else [1.0] * n, dtype=float)
        score = (d * w).sum(axis=1) / w.sum()
        up = score > threshold
        down = score < -threshold
    else:
        raise ValueError(f"unknown combine mode {mode!r}: use unanimous, majority or weighted")
    return np.where(up, 1, np.where(down, -1, 0)).astype(np.int8)
