"""A split found by a position check: the engine holds one quantity, the broker another, and a split
of the symbol (Alpaca's corporate actions, or the bot's splits table) explains the difference. Then
the split is booked (position, prices, protective stop placed again at the new price, journaled and
alerted, `bot/execution/splits.py`) instead of stopping new entries as an unknown state.

Used at a restart (the split happened while the bot was down) and by the pre-open and end-of-day
position checks (a split the stream did not show, e.g. an order Alpaca adjusted instead of canceling).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from bot.broker.alpaca import AlpacaBroker
from bot.core.config import Settings
from bot.data.splits import read_splits
from bot.execution.engine import Engine


def use_splits_table(cfg: Settings, broker: AlpacaBroker) -> None:
    """The bot's own splits table (`[data] splits_file`) as the second source of splits."""
    if cfg.data.splits_file is not None:
        broker.splits.known = read_splits(cfg.data.splits_file)


def settle_splits(
    engine: Engine, broker: AlpacaBroker, held: Mapping[str, float], when: pd.Timestamp
) -> bool:
    """Book a split that explains the broker holding `held[symbol]` of the engine's position; True
    when the engine holds that now."""
    pos = engine.pos
    if pos is None or pos.symbol not in held or abs(held[pos.symbol] - pos.qty) <= 1e-9:
        return False
    sym = pos.symbol
    broker.drain(poll=True)  # a stop the split canceled carries it (SplitWatch.on_canceled)
    pos = engine.pos
    if pos is None or pos.symbol != sym:
        return False
    if abs(held[sym] - pos.qty) <= 1e-9:
        return True
    found = broker.splits.explain(sym, pos.qty, held[sym], when)
    if found is None:
        return False
    engine.apply_split(when, found.symbol, found.ratio, found.qty_after, found.source)
    broker.drain(poll=False)  # a refused stop reaches the engine now, which flattens
    return True
