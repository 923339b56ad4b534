"""ma_cross: the direction rule on step-shaped prices, and its averages against plain numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.signals.strategy import WARMUP_REASON
from strategies.ma_cross import MaCross
from tests.ta_reference import RETURNS, bars_from_returns, ema, sma


def steps(levels: list[float], length: int) -> pd.DataFrame:
    close = np.repeat(np.asarray(levels, dtype=float), length)
    return pd.DataFrame({"close": close}, index=pd.bdate_range("2021-01-04", periods=len(close)))


def test_sma_cross_on_steps_follows_the_rule() -> None:
    # Integer plateaus of 8 bars. After a step from a to b, the fast window holds a larger share of
    # b than the slow one until the slow window is all b: sign(b - a) for slow-1 bars, then both
    # averages equal b exactly and the direction is 0.
    fast, slow, plateau = 2, 4, 8
    levels = [10, 20, 5, 5, 7]
    bars = steps(levels, plateau)
    out = MaCross({"fast": fast, "slow": slow}).signals(bars)

    expected = np.zeros(len(bars), dtype=int)
    for k in range(1, len(levels)):
        t0 = k * plateau
        expected[t0 : t0 + slow - 1] = np.sign(levels[k] - levels[k - 1])
    expected[: slow - 1] = 0
    assert out["direction"].tolist() == expected.tolist()
    assert (out["reason"].iloc[: slow - 1] == WARMUP_REASON).all()
    assert out["reason"].iloc[8] == "SMA2 > SMA4"
    assert out["reason"].iloc[16] == "SMA2 < SMA4"
    assert out["reason"].iloc[7] == "SMA2 = SMA4"


def test_ema_cross_keeps_the_side_of_the_last_step() -> None:
    # Both EMAs start from the same plateau (their SMA seeds equal it) and approach the new level
    # from the same side, the fast one faster: sign(b - a) on every bar of the new plateau.
    fast, slow, plateau = 3, 6, 8
    levels = [10, 20, 12, 30]
    bars = steps(levels, plateau)
    out = MaCross({"fast": fast, "slow": slow, "kind": "ema"}).signals(bars)
    d = out["direction"].to_numpy()
    assert (d[: slow - 1] == 0).all()
    assert (d[slow - 1 : plateau] == 0).all()  # both seeded on the flat first plateau: equal
    for k in range(1, len(levels)):
        assert (d[k * plateau : (k + 1) * plateau] == np.sign(levels[k] - levels[k - 1])).all()
    assert out["reason"].iloc[plateau] == "EMA3 > EMA6"


def test_warmup_is_flat_with_warmup_reason_even_on_a_trend() -> None:
    bars = pd.DataFrame({"close": np.arange(1.0, 80.0)}, index=pd.bdate_range("2021-01-04", periods=79))
    s = MaCross()
    out = s.signals(bars)
    assert s.warmup == 49
    assert (out["direction"].iloc[:49] == 0).all() and (out["reason"].iloc[:49] == WARMUP_REASON).all()
    assert (out["direction"].iloc[49:] == 1).all()


def test_fewer_bars_than_the_slow_average_is_all_warmup() -> None:
    bars = pd.DataFrame({"close": np.arange(1.0, 11.0)}, index=pd.bdate_range("2021-01-04", periods=10))
    out = MaCross().signals(bars)
    assert len(out) == 10 and (out["direction"] == 0).all() and out["ma_slow"].isna().all()


@settings(max_examples=60, deadline=None)
@given(
    returns=st.lists(RETURNS, min_size=1, max_size=250),
    fast=st.integers(1, 15),
    gap=st.integers(1, 30),
    kind=st.sampled_from(["sma", "ema"]),
)
def test_averages_and_direction_match_numpy(returns, fast, gap, kind) -> None:
    bars = bars_from_returns(returns)
    slow = fast + gap
    out = MaCross({"fast": fast, "slow": slow, "kind": kind}).signals(bars)
    ref = ema if kind == "ema" else sma
    c = bars["close"].to_numpy()
    f, s = ref(c, fast), ref(c, slow)
    np.testing.assert_allclose(out["ma_fast"], f, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(out["ma_slow"], s, rtol=1e-9, equal_nan=True)
    # The rule on the reference values, away from float near-ties.
    clear = np.abs(f - s) > 1e-8 * np.abs(s)
    clear[: slow - 1] = False
    assert (out["direction"].to_numpy()[clear] == np.sign(f - s)[clear]).all()
    assert (out["direction"].iloc[: slow - 1] == 0).all()


@pytest.mark.parametrize(
    ("params", "memory"),
    [({"fast": 20, "slow": 50}, 50), ({"fast": 20, "slow": 50, "kind": "ema"}, 50 + 519)],
)
def test_memory(params, memory) -> None:
    # EMA: the seed's weight (1 - 2/51)^k falls below 1e-9 after k = 519 bars.
    assert (1 - 2 / 51) ** 519 < 1e-9 < (1 - 2 / 51) ** 518
    assert MaCross(params).memory == memory
