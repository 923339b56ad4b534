"""rsi: the reversion state machine on a price path built phase by phase, and RSI against numpy.

Construction: Wilder's RSI is unchanged by a flat bar (both averages decay by the same factor), so a
path of single jumps separated by flat bars sets RSI to one level per phase. The levels (checked
below against an independent Wilder computation) are: 0 after 20 falling bars, 43 after +10 (an
up-cross of 30), 59 after +6, 89 after +40, 67 after -12 (a down-cross of 70), 45 after -20, 22
after -50.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.signals.strategy import WARMUP_REASON
from strategies.rsi import RsiReversion
from tests.ta_reference import RETURNS, bars_from_returns, sma, wilder_rsi

CHANGES = [-1.0] * 20 + [10] + [0] * 4 + [6] + [0] * 4 + [40] + [0] * 4 + [-12] + [0] * 2 + [-20] + [0] * 2
CHANGES += [-50] + [0] * 3
# bar index of each jump (bar i carries CHANGES[i-1])
UP30, UP59, UP89, DOWN67, DOWN45, DOWN22 = 21, 26, 31, 36, 39, 42


def path(changes: list[float]) -> pd.DataFrame:
    close = 100.0 + np.r_[0.0, np.cumsum(changes)]
    return pd.DataFrame({"close": close}, index=pd.bdate_range("2022-01-03", periods=len(close)))


def phases(n: int, spans: list[tuple[int, int, int]]) -> list[int]:
    out = np.zeros(n, dtype=int)
    for start, stop, d in spans:
        out[start:stop] = d
    return out.tolist()


def test_construction_levels() -> None:
    rsi = wilder_rsi(path(CHANGES)["close"].to_numpy(), 14)
    assert (rsi[14:UP30] == 0).all()
    assert 30 < rsi[UP30] < 50 and 50 < rsi[UP59] < 70 and rsi[UP89] > 70
    assert 50 < rsi[DOWN67] < 70 and 30 < rsi[DOWN45] < 50 and rsi[DOWN22] < 30
    for a, b in [(UP30, UP59), (UP59, UP89), (UP89, DOWN67), (DOWN67, DOWN45), (DOWN45, DOWN22)]:
        assert np.allclose(rsi[a:b], rsi[a])  # flat bars hold RSI


def test_exit_at_the_opposite_extreme() -> None:
    bars = path(CHANGES)
    out = RsiReversion().signals(bars)
    # long from the up-cross of 30 until RSI >= 70; short from the down-cross of 70 until RSI <= 30
    assert out["direction"].tolist() == phases(len(bars), [(UP30, UP89, 1), (DOWN67, DOWN22, -1)])
    assert (out["reason"].iloc[:15] == WARMUP_REASON).all()
    assert out["reason"].iloc[UP30] == "RSI14 crossed up through 30: long until RSI14 >= 70"
    assert out["reason"].iloc[DOWN67] == "RSI14 crossed down through 70: short until RSI14 <= 30"
    assert out["reason"].iloc[UP89] == "RSI14: no open reversion trade"
    np.testing.assert_allclose(out["rsi"], wilder_rsi(bars["close"].to_numpy(), 14), atol=1e-9)


def test_exit_at_the_midline() -> None:
    bars = path(CHANGES)
    out = RsiReversion({"exit_mid": True}).signals(bars)
    assert out["direction"].tolist() == phases(len(bars), [(UP30, UP59, 1), (DOWN67, DOWN45, -1)])


def test_max_hold_closes_the_trade() -> None:
    bars = path(CHANGES)
    out = RsiReversion({"max_hold": 3}).signals(bars)
    assert out["direction"].tolist() == phases(len(bars), [(UP30, UP30 + 3, 1), (DOWN67, DOWN67 + 3, -1)])
    assert out["reason"].iloc[UP30 + 3] == "RSI14 reversion trade closed after max_hold=3 bars"


def test_trend_filter_exit_when_close_crosses_the_sma() -> None:
    # SMA5: the long entered at 90 (SMA 83.2) ends when five flat bars pull the SMA up to 90 (close
    # no longer above it); the short entered at 124 (SMA 133.6) stays below the falling SMA.
    bars = path(CHANGES)
    out = RsiReversion({"trend_filter": 5}).signals(bars)
    assert out["direction"].tolist() == phases(len(bars), [(UP30, UP30 + 4, 1), (DOWN67, DOWN22, -1)])
    np.testing.assert_allclose(out["trend_sma"], sma(bars["close"].to_numpy(), 5), rtol=1e-12, equal_nan=True)


def test_trend_filter_blocks_entries_on_the_wrong_side() -> None:
    # 15 flat bars first so SMA30 exists at the entries: the long entry closes at 90 under an SMA30
    # of 92.7, the short entry at 124 above an SMA30 of 98.2, so neither may be taken.
    bars = path([0.0] * 15 + CHANGES)
    c = bars["close"].to_numpy()
    s = sma(c, 30)
    assert c[15 + UP30] < s[15 + UP30] and c[15 + DOWN67] > s[15 + DOWN67]
    plain = RsiReversion().signals(bars)["direction"]
    assert plain.iloc[15 + UP30] == 1 and plain.iloc[15 + DOWN67] == -1
    assert (RsiReversion({"trend_filter": 30}).signals(bars)["direction"] == 0).all()


def test_entry_and_exit_on_one_bar_stay_flat() -> None:
    # A jump from RSI 0 straight past 70 crosses up through 30 and reaches the target at once.
    bars = path([-1.0] * 20 + [80] + [0] * 5)
    out = RsiReversion().signals(bars)
    assert out["rsi"].iloc[21] > 70
    assert (out["direction"] == 0).all()


def test_warmup_and_short_input() -> None:
    s = RsiReversion({"length": 10, "trend_filter": 40})
    assert s.warmup == 39
    out = s.signals(path([1.0, -1.0] * 4))
    assert (out["direction"] == 0).all() and (out["reason"] == WARMUP_REASON).all()
    assert RsiReversion().warmup == 15


@settings(max_examples=60, deadline=None)
@given(returns=st.lists(RETURNS, min_size=1, max_size=300), length=st.integers(2, 30))
def test_rsi_matches_wilder_in_numpy(returns, length) -> None:
    bars = bars_from_returns(returns)
    out = RsiReversion({"length": length}).signals(bars)
    ref = wilder_rsi(bars["close"].to_numpy(), length)
    np.testing.assert_allclose(out["rsi"], ref, atol=1e-8, equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(returns=st.lists(RETURNS, min_size=20, max_size=200))
def test_direction_follows_the_rule_bar_by_bar(returns) -> None:
    # The vectorised state machine against the rule written as a plain loop over bars.
    bars = bars_from_returns(returns)
    p = {"oversold": 35.0, "overbought": 65.0, "exit_mid": False}
    out = RsiReversion(p).signals(bars)
    rsi = wilder_rsi(bars["close"].to_numpy(), 14)
    state, expected = 0, []
    for i in range(len(rsi)):
        prev = rsi[i - 1] if i else np.nan
        if prev <= 35 < rsi[i]:
            state = 1
        elif prev >= 65 > rsi[i]:
            state = -1
        if (state == 1 and rsi[i] >= 65) or (state == -1 and rsi[i] <= 35):
            state = 0
        expected.append(state if i >= 15 else 0)
    near = np.zeros(len(rsi), dtype=bool)  # bars within float noise of a threshold are ambiguous
    for level in (35.0, 65.0):
        near |= np.abs(np.nan_to_num(rsi, nan=-1) - level) < 1e-7
    if near.any():
        expected_arr = np.asarray(expected)
        first = int(np.argmax(near))
        assert (out["direction"].to_numpy()[:first] == expected_arr[:first]).all()
    else:
        assert out["direction"].tolist() == expected


@pytest.mark.parametrize("params", [{}, {"trend_filter": 400}, {"max_hold": 60}, {"length": 2}])
def test_memory_covers_the_seed_decay_the_sma_and_the_hold(params) -> None:
    s = RsiReversion(params)
    n = s.params.length
    decay = n + math.ceil(math.log(1e-9) / math.log(1 - 1 / n))  # Wilder seed weight below 1e-9
    assert (1 - 1 / n) ** (decay - n) < 1e-9
    assert s.memory == max(decay, s.params.trend_filter) + s.params.max_hold
