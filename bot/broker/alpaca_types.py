"""What the Alpaca helper modules share: the per-order bookkeeping record, the counters and the small
conversions of Alpaca's JSON. Kept apart so the helpers depend on it and never on each other in a circle."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from bot.core.events import OrderIntent

NY = "America/New_York"
TERMINAL = {"filled", "canceled", "expired", "rejected", "replaced", "done_for_day"}
EPS = 1e-9


@dataclass
class Tracked:
    """One engine order at the broker. `cid` is the engine's id; `broker_cid` differs for an OCO leg."""

    intent: OrderIntent
    broker_id: str | None = None
    filled_qty: float = 0.0
    filled_value: float = 0.0
    done: bool = False
    unresolved: bool = False
    sends: int = 0
    oco_with: str | None = None  # the other engine cid of an OCO exit

    @property
    def cid(self) -> str:
        return self.intent.client_order_id


@dataclass
class Stats:
    fills_stream: int = 0
    fills_poll: int = 0
    fills_submit: int = 0
    sends: int = 0
    resends: int = 0
    adopted: int = 0
    ambiguous: int = 0
    polls: int = 0
    reconnects: int = 0


def num(x: Any) -> float:
    """A number from Alpaca's JSON (strings, None, ""): 0.0 when it is not one."""
    try:
        return float(x) if x not in (None, "") else 0.0
    except (TypeError, ValueError):
        return 0.0


def ny_time(value: Any) -> pd.Timestamp:
    """An Alpaca timestamp (now when missing) in New York time."""
    t = pd.Timestamp(value) if value else pd.Timestamp.now(tz="UTC")
    return (t.tz_localize("UTC") if t.tzinfo is None else t).tz_convert(NY)


def price_str(p: float) -> float:
    """Alpaca's tick rule: 2 decimals at or above $1, 4 below."""
    return round(p, 2 if p >= 1.0 else 4)


def with_qty(i: OrderIntent, qty: float) -> OrderIntent:
    return replace(i, qty=qty)


def stop_leg(order: dict[str, Any]) -> dict[str, Any] | None:
    """An OCO's stop leg as a nested answer lists it. Alpaca keeps the legs replaced since (a trailing
    raise) under the parent too, so the first leg is not always the live one: the working leg, else the
    end of the replacement chain. None when the answer carries no legs (a look-up by client_order_id)."""
    legs = [leg for leg in order.get("legs") or () if isinstance(leg, dict)]
    live = [leg for leg in legs if str(leg.get("status")) not in TERMINAL]
    ends = [leg for leg in legs if not leg.get("replaced_by")]
    pick = live or ends or legs
    return pick[-1] if pick else None
