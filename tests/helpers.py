"""Small builders for hand-made scenarios (not mocks: they feed the real engine and broker)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from bot.broker.sim import SimBroker
from bot.core.config import Settings, load_config
from bot.execution.engine import Engine
from bot.journal.journal import Journal


def make_cfg(**risk: object) -> Settings:
    cfg = load_config()
    for k, v in risk.items():
        setattr(cfg.risk, k, v)
    return cfg


def make_engine(cfg: Settings, journal: Journal | None = None) -> tuple[Engine, SimBroker]:
    broker = SimBroker.from_settings(cfg)
    return Engine(cfg, "test0001", broker, journal), broker


def days(n: int, start: str = "2024-01-02") -> list[pd.Timestamp]:
    return list(pd.bdate_range(start, periods=n))


def drive(
    engine: Engine,
    broker: SimBroker,
    rows: Sequence[tuple[int | None, dict[str, tuple[float, float, float, float]]]],
    start: str = "2024-01-02",
    check_never_both: bool = True,
) -> list[pd.Timestamp]:
    """Step the engine over (direction, {symbol: (o,h,l,c)}) rows on consecutive business days."""
    ts = days(len(rows), start)
    for t, (d, bars) in zip(ts, rows, strict=True):
        engine.step(t, t.value // 86_400_000_000_000, bars, d)
        if check_never_both:
            assert not ("SOXL" in broker.positions and "SOXS" in broker.positions), (
                "held bull and bear at once"
            )
    return ts


def flat(px: float) -> tuple[float, float, float, float]:
    return (px, px, px, px)


def wait_until(pred, timeout: float = 30.0, step: float = 0.02) -> bool:
    """Poll `pred` until it holds or `timeout` seconds pass (a bound for a stuck run, not a pace: the
    condition is what the test waits for)."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())
