"""Alpaca orders in the sandbox: the mutable order record, its JSON, and request validation.

Validation mirrors Alpaca's server-side checks (codes from the research notes) because alpaca-py's
own pydantic checks can be bypassed by raw HTTP, and the bot must see the same errors as in paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bot.sandbox.accounts import asset_id, dec
from bot.sandbox.clock import rfc3339

TYPES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
TIFS = ("day", "gtc", "ioc", "fok")
OPEN_STATUSES = ("new", "partially_filled", "accepted", "held", "pending_new")
TERMINAL = ("filled", "canceled", "expired", "replaced", "rejected")


class ApiError(Exception):
    """An Alpaca-style error: HTTP status plus the JSON body `{"code", "message", ...}`."""

    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def body(self) -> dict:
        return {"code": self.code, "message": self.message, **self.extra}


def unprocessable(message: str, **extra: Any) -> ApiError:
    return ApiError(422, 42210000, message, **extra)


@dataclass
class Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    created_at: pd.Timestamp
    qty: float | None = None
    notional: float | None = None
    limit_price: float | None = None
    stop_price: float | None = None
    trail_price: float | None = None
    trail_percent: float | None = None
    hwm: float | None = None
    extended_hours: bool = False
    order_class: str = ""
    status: str = "new"
    updated_at: pd.Timestamp | None = None
    filled_at: pd.Timestamp | None = None
    expired_at: pd.Timestamp | None = None
    canceled_at: pd.Timestamp | None = None
    failed_at: pd.Timestamp | None = None
    replaced_at: pd.Timestamp | None = None
    expires_at: pd.Timestamp | None = None
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    parent_id: str | None = None
    leg_ids: list[str] = field(default_factory=list)
    past_leg_ids: list[str] = field(default_factory=list)  # legs replaced since: still listed as legs
    eligible_after: pd.Timestamp | None = None  # trades only on bars starting strictly later
    triggered: bool = False  # stop_limit: the stop has been elected
    seq: int = 0

    @property
    def is_buy(self) -> bool:
        return self.side == "buy"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> float:
        return max(0.0, (self.qty or 0.0) - self.filled_qty) if self.qty is not None else 0.0

    @property
    def trailing_stop(self) -> float | None:
        """The current stop of a trailing order, from its high (low) water mark."""
        if self.hwm is None:
            return None
        if self.trail_price is not None:
            return self.hwm - self.trail_price if not self.is_buy else self.hwm + self.trail_price
        pct = (self.trail_percent or 0.0) / 100.0
        return self.hwm * (1 - pct) if not self.is_buy else self.hwm * (1 + pct)

    def to_json(self, legs: list[Order] | None = None) -> dict:
        stop = self.trailing_stop if self.type == "trailing_stop" else self.stop_price
        return {
            "id": self.id, "client_order_id": self.client_order_id,
            "created_at": rfc3339(self.created_at), "updated_at": rfc3339(self.updated_at or self.created_at),
            "submitted_at": rfc3339(self.created_at), "filled_at": rfc3339(self.filled_at),
            "expired_at": rfc3339(self.expired_at), "canceled_at": rfc3339(self.canceled_at),
            "failed_at": rfc3339(self.failed_at), "replaced_at": rfc3339(self.replaced_at),
            "replaced_by": self.replaced_by, "replaces": self.replaces,
            "expires_at": rfc3339(self.expires_at), "asset_id": asset_id(self.symbol),
            "symbol": self.symbol, "asset_class": "us_equity",
            "notional": dec(self.notional, 2), "qty": dec(self.qty),
            "filled_qty": dec(self.filled_qty), "filled_avg_price": dec(self.filled_avg_price, 6),
            "order_class": self.order_class, "order_type": self.type, "type": self.type, "side": self.side,
            "position_intent": "buy_to_open" if self.is_buy else "sell_to_close",
            "time_in_force": self.time_in_force, "limit_price": dec(self.limit_price, 4),
            "stop_price": dec(stop, 4), "status": self.status, "extended_hours": self.extended_hours,
            "legs": [leg.to_json() for leg in legs] if legs else None,
            "trail_percent": dec(self.trail_percent), "trail_price": dec(self.trail_price, 4),
            "hwm": dec(self.hwm, 4),
        }


# ---------------------------------------------------------------- request parsing


@dataclass(frozen=True)
class LegSpec:
    type: str
    limit_price: float | None = None
    stop_price: float | None = None


@dataclass(frozen=True)
class OrderSpec:
    """A validated POST /v2/orders body."""

    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: float | None
    notional: float | None
    limit_price: float | None
    stop_price: float | None
    trail_price: float | None
    trail_percent: float | None
    extended_hours: bool
    client_order_id: str | None
    order_class: str
    take_profit: LegSpec | None
    stop_loss: LegSpec | None


def number(body: dict, key: str, positive: bool = True) -> float | None:
    """A JSON number or numeric string (Alpaca accepts both); None when absent."""
    v = body.get(key)
    if v is None or v == "":
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise unprocessable(f"invalid {key}: {v!r}") from None
    if not math.isfinite(x) or (positive and x <= 0):
        raise unprocessable(f"{key} must be > 0")
    return x


def check_increment(key: str, price: float | None) -> None:
    """Alpaca's sub-penny rule: 2 decimals at or above $1, 4 below."""
    if price is None:
        return
    places = 2 if price >= 1.0 else 4
    if abs(round(price, places) - price) > 1e-9:
        raise unprocessable(
            f"invalid {key} {price}. sub-penny increment does not fulfill minimum pricing criteria"
        )


def parse_order(body: Any) -> OrderSpec:
    if not isinstance(body, dict):
        raise ApiError(400, 40010000, "request body format is invalid")
    symbol = str(body.get("symbol") or "").upper()
    if not symbol:
        raise unprocessable("symbol is required")
    side = body.get("side")
    if side not in ("buy", "sell"):
        raise unprocessable(f"invalid side: {side!r}")
    otype = body.get("type") or body.get("order_type")
    if otype not in TYPES:
        raise unprocessable(f"invalid order type: {otype!r}")
    tif = body.get("time_in_force")
    if tif in ("opg", "cls"):
        raise unprocessable(f"time_in_force {tif} is not supported by the sandbox")
    if tif not in TIFS:
        raise unprocessable(f"invalid time_in_force: {tif!r}")
    qty, notional = number(body, "qty"), number(body, "notional")
    if (qty is None) == (notional is None):
        raise unprocessable(
            "qty or notional is required" if qty is None else "qty and notional can not both be set")
    limit_price, stop_price = number(body, "limit_price"), number(body, "stop_price")
    trail_price, trail_percent = number(body, "trail_price"), number(body, "trail_percent")
    ext = body.get("extended_hours") in (True, "true", "True")
    cid = body.get("client_order_id")
    if cid is not None:
        cid = str(cid)
        if not cid or len(cid) > 128:
            raise unprocessable("client_order_id must be 1 to 128 characters")
    oclass = body.get("order_class") or ""
    if oclass == "simple":
        oclass = ""
    if oclass not in ("", "bracket", "oco", "oto"):
        raise unprocessable(f"order_class {oclass!r} is not supported")

    tp = _leg(body.get("take_profit"), "take_profit")
    sl = _leg(body.get("stop_loss"), "stop_loss")
    if oclass == "oco":
        if otype != "limit":
            raise unprocessable("oco orders must be limit orders")
        if tp is None or sl is None:
            raise unprocessable("oco orders require take_profit and stop_loss")
        limit_price = tp.limit_price
    if otype in ("limit", "stop_limit") and limit_price is None:
        raise unprocessable("limit_price is required for limit orders")
    if otype in ("stop", "stop_limit") and stop_price is None:
        raise unprocessable("stop_price is required for stop orders")
    if otype == "market" and (limit_price or stop_price):
        raise unprocessable("market orders take no limit_price or stop_price")
    if otype == "limit" and stop_price is not None:
        raise unprocessable("stop_price is not allowed for limit orders")
    if otype == "trailing_stop":
        if (trail_price is None) == (trail_percent is None):
            raise unprocessable("trailing_stop orders need exactly one of trail_price or trail_percent")
        if tif not in ("day", "gtc"):
            raise unprocessable("trailing_stop orders must be day or gtc")
    elif trail_price is not None or trail_percent is not None:
        raise unprocessable("trail_price/trail_percent are only for trailing_stop orders")
    for key, p in (("limit_price", limit_price), ("stop_price", stop_price)):
        check_increment(key, p)
    if notional is not None and (otype != "market" or tif != "day" or oclass):
        raise unprocessable("notional orders must be simple market day orders")
    if qty is not None and qty != int(qty) and (tif != "day" or oclass or otype not in ("market", "limit")):
        raise unprocessable("fractional orders must be simple market or limit day orders")
    if ext and (otype != "limit" or tif not in ("day", "gtc") or oclass):
        raise unprocessable("extended hours order must be DAY or GTC limit orders")
    if oclass in ("bracket", "oto"):
        if otype not in ("market", "limit", "stop", "stop_limit"):
            raise unprocessable(f"{oclass} entry must be market, limit, stop or stop_limit")
        if tif not in ("day", "gtc"):
            raise unprocessable(f"{oclass} orders must be day or gtc")
        if oclass == "bracket" and (tp is None or sl is None):
            raise unprocessable("bracket orders require take_profit and stop_loss")
        if oclass == "oto" and (tp is None) == (sl is None):
            raise unprocessable("oto orders require exactly one of take_profit or stop_loss")
    elif oclass == "oco":
        if tif not in ("day", "gtc"):
            raise unprocessable("oco orders must be day or gtc")
    elif tp is not None or sl is not None:
        raise unprocessable("take_profit/stop_loss need order_class bracket, oco or oto")
    if tp is not None and sl is not None:
        exit_is_sell = (side == "buy") if oclass == "bracket" else (side == "sell")
        if exit_is_sell and not tp.limit_price > sl.stop_price:
            raise unprocessable("take_profit.limit_price must be greater than stop_loss.stop_price")
        if not exit_is_sell and not tp.limit_price < sl.stop_price:
            raise unprocessable("take_profit.limit_price must be less than stop_loss.stop_price")
    return OrderSpec(symbol, side, otype, tif, qty, notional, limit_price, stop_price, trail_price,
                     trail_percent, ext, cid, oclass, tp, sl)


def _leg(raw: Any, name: str) -> LegSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise unprocessable(f"invalid {name}")
    lp, sp = number(raw, "limit_price"), number(raw, "stop_price")
    check_increment(f"{name}.limit_price", lp)
    check_increment(f"{name}.stop_price", sp)
    if name == "take_profit":
        if lp is None:
            raise unprocessable("take_profit.limit_price is required")
        return LegSpec("limit", lp, None)
    if sp is None:
        raise unprocessable("stop_loss.stop_price is required")
    return LegSpec("stop_limit" if lp is not None else "stop", lp, sp)
