"""Position sizing: how many shares an entry buys. Pure functions, property-tested.

- fixed_fraction: position value = fraction x equity.
- risk_per_trade: lose at most r x equity if the stop is hit: qty = r x equity / (entry - stop); with
  `gap_quantile` on, the loss per share is max(entry - stop, entry x gap), `gap` the allowance for a
  bad overnight gap (a share of the price), since a gap fills a stop at the open, below it.
- vol_target: the position's expected daily volatility is `vol_target_pct` x equity:
  qty = target x equity / (price x |L| x sigma), sigma the index's daily volatility.
All are then capped at max_position_pct x equity and at the available cash, and floored to whole
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
    sigma: float | None = None,
    lev: float = 1.0,
    gap: float | None = None,
    notional: bool = False,
) -> float:
    """`sigma`: the index's daily volatility (vol_target); `lev`: |L|; `gap`: the overnight gap
    allowance as a share of the price (risk_per_trade with gap_quantile). A measure a rule needs that
    is None (not known yet) gives 0."""
    if not (price > 0 and equity > 0 and cash > 0) or not math.isfinite(price):
        return 0.0
    if cfg.sizing == "risk_per_trade":
        if stop is None or not stop < price:
            return 0.0
        loss = price - stop
        if cfg.gap_quantile > 0:
            if gap is None:
                return 0.0
            loss = max(loss, price * gap)
        qty = cfg.risk_per_trade * equity / loss
    elif cfg.sizing == "vol_target":
        if sigma is None or not sigma > 0 or not lev > 0:
            return 0.0
        qty = cfg.vol_target_pct * equity / (price * lev * sigma)
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
