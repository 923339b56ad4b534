"""alpaca-py order requests from the engine's intents: entries and exits, the one OCO that carries a
stop + take-profit pair (Alpaca refuses two separate sells on the same shares), and a stop move's PATCH
fields. Pure functions: no state, no network."""

from __future__ import annotations

import math
from typing import Any

from alpaca.trading.enums import OrderClass, OrderSide, TimeInForce
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
)

from bot.broker.alpaca_types import EPS, price_str
from bot.core.events import OrderIntent, OrderType, Side


def order_request(intent: OrderIntent) -> Any:
    """A plain order: market DAY, stop GTC or limit GTC, under the engine's client_order_id."""
    side = OrderSide.BUY if intent.side is Side.BUY else OrderSide.SELL
    common = {
        "symbol": intent.symbol,
        "qty": intent.qty,
        "side": side,
        "client_order_id": intent.client_order_id,
    }
    if intent.type is OrderType.MARKET:
        return MarketOrderRequest(time_in_force=TimeInForce.DAY, **common)
    if intent.type is OrderType.STOP:
        return StopOrderRequest(
            time_in_force=TimeInForce.GTC, stop_price=price_str(intent.stop_price or 0.0), **common
        )
    return LimitOrderRequest(
        time_in_force=TimeInForce.GTC, limit_price=price_str(intent.limit_price or 0.0), **common
    )


def oco_request(stop: OrderIntent, tp: OrderIntent) -> Any:
    """The one OCO order (take-profit parent, stop-loss leg) for an engine stop + take-profit pair."""
    return LimitOrderRequest(
        symbol=tp.symbol,
        qty=math.floor(min(tp.qty, stop.qty)),
        side=OrderSide.SELL,
        time_in_force=TimeInForce.GTC,
        order_class=OrderClass.OCO,
        take_profit=TakeProfitRequest(limit_price=price_str(tp.limit_price or 0.0)),
        stop_loss=StopLossRequest(stop_price=price_str(stop.stop_price or 0.0)),
        client_order_id=tp.client_order_id,
    )


def replace_fields(new: OrderIntent, old_qty: float) -> dict[str, Any]:
    """PATCH fields moving a live order to `new`: its id, its price, and its qty when that changed."""
    fields: dict[str, Any] = {"client_order_id": new.client_order_id}
    if new.type is OrderType.STOP and new.stop_price is not None:
        fields["stop_price"] = price_str(new.stop_price)
    if new.type is OrderType.LIMIT and new.limit_price is not None:
        fields["limit_price"] = price_str(new.limit_price)
    if abs(math.floor(new.qty) - old_qty) > EPS and math.floor(new.qty) >= 1:
        fields["qty"] = math.floor(new.qty)
    return fields


def replace_request(fields: dict[str, Any]) -> ReplaceOrderRequest:
    return ReplaceOrderRequest(**fields)
