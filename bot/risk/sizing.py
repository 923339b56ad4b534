"""Position sizing: how many shares an entry buys. Pure functions, property-tested.

- fixed_fraction: position value = fraction x equity.
- risk_per_trade: lose at most r x equity if the stop is hit: qty = r x equity / (entry - stop).
Both are then capped at max_position_pct x equity and at the available cash, and floored to whole
shares unless fractional shares are allowed. A result of 0 means "do not enter".
`notional=True` (a back-adjusted price series, `bot/data/basis.py`): not rounded at all, so the
intended notional is put to work whatever the price; the quantity is not a share count.
"""

from __future__ import annotations

import math

from bot.core.config import RiskConfig


def position_qty(
    cfg: RiskConfig,
    equity: float,
    cash: float,
    price: float,
    stop: float | None = None,
    notional: bool = False,
) -> float:
    if not (price > 0 and equity > 0 and cash > 0) or not math.isfinite(price):
        return 0.0
    if cfg.sizing == "risk_per_trade":
        if stop is None or not stop < price:
            return 0.0
        qty = cfg.risk_per_trade * equity / (price - stop)
    else:
        qty = cfg.fraction * equity / price
    cap = min(cfg.max_position_pct * equity, cash) / price
    qty = min(qty, cap)
    if notional:
        return max(qty, 0.0)
    qty = math.floor(qty + 1e-09) if not cfg.fractional else math.floor(qty * 1000000.0) / 1000000.0
    return max(qty, 0.0)


def affordable_qty(
    qty: float, cash: float, price: float, commission: float, fractional: bool, notional: bool = False
) -> float:
    """Shrink an order to what cash pays for at the actual fill price (an open that gapped up)."""
    if price <= 0:
        return 0.0
    room = max(cash - commission, 0.0) / price
    if qty <= room:
        return qty
    if notional:
        return room
    return math.floor(room * 1e6) / 1e6 if fractional else float(math.floor(room + 1e-9))
