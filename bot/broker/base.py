"""What the engine needs from a broker. Backtest and live differ only in which one is plugged in.

A broker accepts order intents, and reports what happened through two callbacks: `on_fill` and
`on_update` (rejected / canceled / accepted). The in-process broker fills on `on_bar`; a remote broker
reports fills from its own stream and ignores `on_bar`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import pandas as pd

from bot.core.events import OrderCanceled, OrderFilled, OrderIntent, OrderRejected, SplitDetected

BarTuple = tuple[float, float, float, float]  # open, high, low, close
# Reasons an OrderCanceled carries when the order never worked at the broker (besides the broker's
# own words such as "canceled" or "expired"):
NOTHING_HELD = "nothing left to sell at the broker"  # a closing sell: the broker holds none of it
ALREADY_FILLED = "already filled"  # a stop move: the stop it was to replace has filled meanwhile
FillListener = Callable[[OrderFilled], None]
# a remote broker also reports a split it applied to a held position (SplitDetected)
UpdateListener = Callable[[OrderRejected | OrderCanceled | SplitDetected], None]


class Broker(Protocol):
    def set_listeners(self, on_fill: FillListener, on_update: UpdateListener) -> None: ...

    def submit(self, intent: OrderIntent) -> None: ...

    def cancel(self, client_order_id: str) -> None: ...

    def replace_stop(self, client_order_id: str, new: OrderIntent) -> None: ...

    def on_bar(self, ts: pd.Timestamp, bars: Mapping[str, BarTuple]) -> None: ...

    def open_orders(self) -> list[OrderIntent]: ...
