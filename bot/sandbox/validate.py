"""Request checks that need the venue's state (known assets, the last price, an order's status).

orders.parse_order checks a request on its own; the checks here come after it and before anything
is built, so a refused request leaves no trace but the error Alpaca would return.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from bot.sandbox.accounts import INDICES, dec
from bot.sandbox.orders import ApiError, Order, OrderSpec, check_increment, number


def check_asset_and_id(spec: OrderSpec, symbols: Container[str], client_ids: Container[str]) -> None:
    if spec.symbol not in symbols:
        raise ApiError(422, 42210000, f'asset "{spec.symbol}" not found')
    if spec.symbol in INDICES:
        raise ApiError(422, 42210000, f'asset "{spec.symbol}" is not tradable')
    if spec.client_order_id is not None and spec.client_order_id in client_ids:
        raise ApiError(422, 40010001, "client_order_id must be unique")


def check_bracket_base(spec: OrderSpec, last: float | None) -> None:
    """A bracket's exits must sit at least a cent beyond its base price (limit, else last trade)."""
    base = spec.limit_price if spec.type == "limit" else last
    if base is None or spec.take_profit is None or spec.stop_loss is None:
        return
    if spec.side == "buy":
        if spec.take_profit.limit_price < base + 0.01:
            raise ApiError(
                422,
                42210000,
                "take_profit.limit_price must be >= base_price + 0.01",
                base_price=dec(base, 4),
            )
        if spec.stop_loss.stop_price > base - 0.01:
            raise ApiError(
                422, 42210000, "stop_loss.stop_price must be <= base_price - 0.01", base_price=dec(base, 4)
            )
    else:
        if spec.take_profit.limit_price > base - 0.01:
            raise ApiError(
                422,
                42210000,
                "take_profit.limit_price must be <= base_price - 0.01",
                base_price=dec(base, 4),
            )
        if spec.stop_loss.stop_price < base + 0.01:
            raise ApiError(
                422, 42210000, "stop_loss.stop_price must be >= base_price + 0.01", base_price=dec(base, 4)
            )


@dataclass(frozen=True)
class Replacement:
    """The fields a PATCH /v2/orders/{id} may change; None keeps the old order's value."""

    qty: float | None
    limit_price: float | None
    stop_price: float | None
    trail: float | None
    time_in_force: str


def parse_replacement(old: Order, body: Any) -> Replacement:
    if not isinstance(body, dict):
        raise ApiError(400, 40010000, "request body format is invalid")
    if old.status not in ("new", "partially_filled"):
        raise ApiError(422, 42210000, f'unable to replace order in "{old.status}" state')
    if old.notional is not None:
        raise ApiError(422, 42210000, "notional orders can not be replaced")
    qty = number(body, "qty")
    limit_price, stop_price = number(body, "limit_price"), number(body, "stop_price")
    trail = number(body, "trail")
    tif = body.get("time_in_force") or old.time_in_force
    if tif not in ("day", "gtc", "ioc", "fok"):
        raise ApiError(422, 42210000, f"invalid time_in_force: {tif!r}")
    if limit_price is not None and old.type not in ("limit", "stop_limit"):
        raise ApiError(422, 42210000, "limit_price is only for limit and stop_limit orders")
    if stop_price is not None and old.type not in ("stop", "stop_limit"):
        raise ApiError(422, 42210000, "stop_price is only for stop and stop_limit orders")
    if trail is not None and old.type != "trailing_stop":
        raise ApiError(422, 42210000, "trail is only for trailing_stop orders")
    check_increment("limit_price", limit_price)
    check_increment("stop_price", stop_price)
    return Replacement(qty, limit_price, stop_price, trail, tif)


def check_list_params(status: str, direction: str, limit: int) -> None:
    if status not in ("open", "closed", "all"):
        raise ApiError(422, 42210000, f"invalid status: {status}")
    if direction not in ("asc", "desc"):
        raise ApiError(422, 42210000, f"invalid direction: {direction}")
    if not 1 <= limit <= 500:
        raise ApiError(422, 42210000, "limit must be between 1 and 500")


def close_qty(held: float, qty: str | None, percentage: str | None) -> float | None:
    """How many shares DELETE /v2/positions/{symbol} sells: `qty`, `percentage` of `held`, or all."""
    if qty is not None and percentage is not None:
        raise ApiError(422, 42210000, "only one of qty or percentage may be given")
    if qty is not None:
        return number({"qty": qty}, "qty")
    if percentage is not None:
        pct = number({"percentage": percentage}, "percentage")
        if pct > 100:
            raise ApiError(422, 42210000, "percentage must be between 0 and 100")
        return round(held * pct / 100.0, 9)
    return held
