"""What a split does to a quantity and to an order: the one rule the engine and the in-process broker
share, so their books agree after it. `ratio` is new shares per old share (4.0 for 4-for-1, 0.1 for a
1-for-10 reverse split): quantities times ratio, prices divided by it.

Whole shares (the default): what is left below one share is paid out as cash in lieu at the
split-adjusted price, as brokers do for a reverse split; with fractional shares nothing is cut.
"""

from __future__ import annotations

import dataclasses
import math

from bot.core.events import OrderIntent


def split_qty(qty: float, ratio: float, whole: bool) -> tuple[float, float]:
    """(the quantity after the split, the part paid out as cash in lieu), both in new shares."""
    exact = qty * ratio
    if not whole:
        return exact, 0.0
    kept = float(math.floor(exact + 1e-9))
    return kept, max(exact - kept, 0.0)


def split_order(o: OrderIntent, ratio: float, whole: bool) -> OrderIntent:
    """The same order on the new share basis: quantity times ratio, stop and limit divided by it."""
    qty, _ = split_qty(o.qty, ratio, whole)
    return dataclasses.replace(
        o,
        qty=qty,
        stop_price=o.stop_price / ratio if o.stop_price is not None else None,
        limit_price=o.limit_price / ratio if o.limit_price is not None else None,
    )


def explains(before: float, after: float, ratio: float) -> bool:
    """True when a split of `ratio` turns `before` shares into `after`: exactly (a broker that keeps
    fractions), or whole shares less than one apart (cash in lieu for the rest)."""
    exact = before * ratio
    if abs(after - exact) <= 1e-6 * max(1.0, exact):
        return True
    return 0 <= exact - after < 1.0 and abs(after - round(after)) < 1e-9
