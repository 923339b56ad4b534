"""The fill model: how an order meets a bar. Pure functions, shared by the in-process paper broker
and the Alpaca-compatible sandbox so both fill alike.

Rules (LEAN's equity fill model is the reference for gaps):
- Market orders fill at the bar's open, worsened by `slippage_bps` (buys up, sells down).
- A sell stop triggers when the bar trades at or below the stop; it fills at the stop, or at the
  open when the bar opens through it (a gap), then slippage. A buy stop mirrors this above.
- A sell limit fills when the bar trades at or above the limit, at the limit, or at the better open
  when the bar opens through it. A buy limit mirrors this. Limits take no slippage.
- A bar touching both a sell stop and a sell limit (a wide bar) is assumed to hit the stop first:
  the conservative reading when the path inside the bar is unknown.
"""

from __future__ import annotations


def slip(price: float, is_buy: bool, slippage_bps: float) -> float:
    return price * (1.0 + slippage_bps * 1e-4) if is_buy else price * (1.0 - slippage_bps * 1e-4)


def market_fill(open_: float, is_buy: bool, slippage_bps: float = 0.0) -> float:
    return slip(open_, is_buy, slippage_bps)


def stop_fill(
    open_: float, high: float, low: float, is_buy: bool, stop: float, slippage_bps: float = 0.0
) -> float | None:
    """Fill price of a stop order on this bar, or None if it does not trigger."""
    if is_buy:
        if open_ >= stop:
            return slip(open_, True, slippage_bps)
        if high >= stop:
            return slip(stop, True, slippage_bps)
        return None
    if open_ <= stop:
        return slip(open_, False, slippage_bps)
    if low <= stop:
        return slip(stop, False, slippage_bps)
    return None


def limit_fill(open_: float, high: float, low: float, is_buy: bool, limit: float) -> float | None:
    """Fill price of a limit order on this bar, or None if it is not touched."""
    if is_buy:
        if open_ <= limit:
            return open_
        if low <= limit:
            return limit
        return None
    if open_ >= limit:
        return open_
    if high >= limit:
        return limit
    return None
