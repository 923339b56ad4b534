"""support: levels from confirmed pivots (known only `pivot` bars later) and the three events."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.signals.strategy import WARMUP_REASON
from strategies.support import SupportResistance
from tests.ta_reference import RETURNS, bars_from_returns

P = {"pivot": 2, "lookback": 20, "band": 1.0}  # warm-up = lookback + pivot = 22 bars

# (close, low override, volume); high = close + 0.2 and low = close - 0.2 unless overridden.
ROWS: list[tuple[float, float | None, float]] = (
    [(110.0 - i, None, 1000) for i in range(11)]  # 0..10: monotone fall, no pivot; bar 10 low 99.8
    + [(101, None, 1000), (102, None, 1000), (103, None, 1000), (104, None, 1000)]  # 11..14
    + [(105, None, 1000), (106, None, 1000), (105, None, 1000), (104, None, 1000)]  # 15..18: high 106.2 @16
    + [(103.5, None, 1000), (103, None, 1000), (102.5, None, 1000), (102, None, 1000)]  # 19..22
    + [(101.5, None, 1000)]  # 23: still more than 1% above support, no event
    + [(100.5, 99.7, 1000)]  # 24: low touches support 99.8, close within 1% above: bounce (+1)
    + [(101, None, 1000), (101.5, None, 1000)]  # 25..26: inside the range, hold +1
    + [(98.5, None, 3000)]  # 27: close < 99.7 x 0.99 (support moved to bar 24's low): breakdown (-1)
    + [(98.0, None, 1000), (97.5, None, 1000)]  # 28..29: lower still, hold -1
    + [(108.0, None, 500)]  # 30: close > 101.7 x 1.01 (bar 26's pivot high): breakout (+1), low volume
    + [(108.5, None, 1000), (109.0, None, 1000)]  # 31..32
)
BOUNCE, BREAKDOWN, BREAKOUT = 24, 27, 30


def hand_bars(volume_scale: float = 1.0) -> pd.DataFrame:
    close = np.array([r[0] for r in ROWS], dtype=float)
    low = np.array([r[1] if r[1] is not None else r[0] - 0.2 for r in ROWS], dtype=float)
    vol = np.array([r[2] for r in ROWS], dtype=float) * volume_scale
    idx = pd.bdate_range("2023-01-02", periods=len(ROWS))
    return pd.DataFrame({"open": close, "high": close + 0.2, "low": low, "close": close, "volume": vol}, idx)


def test_levels_appear_only_when_the_pivot_is_confirmed() -> None:
    out = SupportResistance(P).signals(hand_bars())
    s, r = out["support"].to_numpy(), out["resistance"].to_numpy()
    # pivot low at bar 10 (99.8) is confirmed at bar 12; bar 24's lower low (99.7) at bar 26;
    # bar 29's low (97.3) at bar 31 (bars 30 and 31 are higher).
    assert np.isnan(s[:12]).all()
    assert (s[12:26] == pytest.approx(99.8)) and (s[26:31] == pytest.approx(99.7))
    assert s[31:] == pytest.approx(97.3)
    # pivot high at bar 16 (106.2) is confirmed at bar 18; bar 26's high (101.7, above bars 24-25
    # and 27-28) replaces it at bar 28
    assert np.isnan(r[:18]).all() and r[18:28] == pytest.approx(106.2) and r[28:] == pytest.approx(101.7)


def test_bounce_breakdown_breakout_and_hold() -> None:
    out = SupportResistance(P).signals(hand_bars())
    d = out["direction"].to_numpy()
    assert (d[:22] == 0).all() and (out["reason"].iloc[:22] == WARMUP_REASON).all()
    assert (d[22:BOUNCE] == 0).all()
    assert (d[BOUNCE:BREAKDOWN] == 1).all()
    assert (d[BREAKDOWN:BREAKOUT] == -1).all()
    assert (d[BREAKOUT:] == 1).all()
    assert out["reason"].iloc[BOUNCE].startswith("bounced off support")
    assert out["reason"].iloc[BREAKDOWN].startswith("close broke down 1% below support")
    assert out["reason"].iloc[BREAKOUT].startswith("close broke out 1% above resistance")
    assert out["reason"].iloc[23] == "no support/resistance event yet"


def test_lookback_expires_old_pivots() -> None:
    # With lookback 13, bar 10's pivot low is too old from bar 24 on (24 - 10 > 13): no support to
    # bounce off until bar 24's own low is confirmed at bar 26.
    out = SupportResistance({**P, "lookback": 13}).signals(hand_bars())
    s = out["support"].to_numpy()
    assert s[23] == pytest.approx(99.8) and np.isnan(s[24:26]).all() and s[26] == pytest.approx(99.7)
    d = out["direction"].to_numpy()
    assert (d[:BREAKDOWN] == 0).all() and (d[BREAKDOWN:BREAKOUT] == -1).all() and (d[BREAKOUT:] == 1).all()


def test_volume_confirmation_gates_breakouts_not_bounces() -> None:
    # vol SMA5 around bar 27 is 1400: the 3000-share breakdown passes 1.5x, the 500-share breakout
    # does not, so the short holds to the end.
    out = SupportResistance({**P, "vol_mult": 1.5, "vol_length": 5}).signals(hand_bars())
    d = out["direction"].to_numpy()
    assert (d[BOUNCE:BREAKDOWN] == 1).all()
    assert (d[BREAKDOWN:] == -1).all()


def test_no_volume_skips_confirmation_with_one_warning() -> None:
    s = SupportResistance({**P, "vol_mult": 1.5, "vol_length": 5})
    bars = hand_bars(volume_scale=0.0)
    with pytest.warns(UserWarning, match="no volume") as caught:
        out = s.signals(bars)
    assert len([w for w in caught if "no volume" in str(w.message)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = s.signals(bars)  # the same instance does not warn twice
    plain = SupportResistance(P).signals(bars)
    assert out["direction"].tolist() == plain["direction"].tolist() == again["direction"].tolist()
    assert (plain["direction"].iloc[BREAKOUT:] == 1).all()


def test_max_hold_goes_flat_after_the_latest_event() -> None:
    out = SupportResistance({**P, "max_hold": 2}).signals(hand_bars())
    d = out["direction"].to_numpy()
    assert d[BOUNCE : BOUNCE + 2].tolist() == [1, 1] and d[BOUNCE + 2] == 0
    assert (d[BREAKDOWN:BREAKOUT] == -1).all()  # each lower close is a new breakdown event
    assert (d[BREAKOUT:] == 1).all()
    assert out["reason"].iloc[BOUNCE + 2].startswith("flat: no support/resistance event")


def test_params_validation() -> None:
    with pytest.raises(ValueError, match="lookback"):
        SupportResistance({"pivot": 10, "lookback": 10})
    s = SupportResistance({"vol_mult": 2.0, "vol_length": 100, "lookback": 30})
    assert s.warmup == 99 and s.memory == 100


def rule_reference(bars: pd.DataFrame, pivot: int, lookback: int, band: float) -> np.ndarray:
    """The rule as a plain loop: at bar t, only bars <= t are looked at."""
    h, lo, c = (bars[k].to_numpy() for k in ("high", "low", "close"))
    b, state, out = band / 100, 0, []
    for t in range(len(c)):
        levels = {}
        for name, price, better in (("r", h, np.greater_equal), ("s", lo, np.less_equal)):
            level = np.nan
            for j in range(t - pivot, max(t - lookback, pivot) - 1, -1):  # newest confirmed first
                win = price[j - pivot : j + pivot + 1]
                if all(better(price[j], win)):
                    level = price[j]
                    break
            levels[name] = level
        s, r = levels["s"], levels["r"]
        up = (c[t] > r * (1 + b)) or (lo[t] <= s and s <= c[t] <= s * (1 + b))
        down = c[t] < s * (1 - b)
        if up != down:
            state = 1 if up else -1
        out.append(state if t >= lookback + pivot else 0)
    return np.asarray(out)


@settings(max_examples=40, deadline=None)
@given(
    returns=st.lists(RETURNS, min_size=10, max_size=150),
    spreads=st.lists(st.floats(0.0, 0.03), min_size=1, max_size=20),
    pivot=st.integers(1, 4),
    extra=st.integers(1, 25),
    band=st.sampled_from([0.5, 1.0, 2.5]),
)
def test_direction_matches_a_plain_loop(returns, spreads, pivot, extra, band) -> None:
    bars = bars_from_returns(returns, spread=spreads)
    lookback = pivot + extra
    out = SupportResistance({"pivot": pivot, "lookback": lookback, "band": band}).signals(bars)
    assert out["direction"].tolist() == rule_reference(bars, pivot, lookback, band).tolist()
