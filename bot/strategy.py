"""The plugin author's import path: `from bot.strategy import Strategy, StrategyParams, ...`.

Stable public API for strategy plugins; the code lives in `bot.signals.strategy`. Kept as its own
module so plugins written against it keep loading whatever the package layout becomes.
"""

from bot.signals.strategy import (
    DIRECTION,
    REASON,
    WARMUP_REASON,
    Stepper,
    Strategy,
    StrategyParams,
    finalize,
    labels,
    recursive_memory,
)

__all__ = [
    "DIRECTION",
    "REASON",
    "WARMUP_REASON",
    "Stepper",
    "Strategy",
    "StrategyParams",
    "finalize",
    "labels",
    "recursive_memory",
]
