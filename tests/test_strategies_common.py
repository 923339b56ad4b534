"""Properties every built-in strategy must have: no look-ahead, and live (trailing window) decisions
equal to full-history decisions on real data with the window the live path keeps."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pandas_ta
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.signals.strategy import DIRECTION, REASON, WARMUP_REASON, Strategy, finalize, recursive_memory
from bot.signals.window import STATE_MARGIN, live_window
from strategies.ma_cross import MaCross
from strategies.rsi import RsiReversion
from strategies.support import SupportResistance
from tests.ta_reference import RETURNS, bars_from_returns

VARIANTS: list[Strategy] = [
    MaCross({"fast": 3, "slow": 8}),
    MaCross({"fast": 4, "slow": 9, "kind": "ema"}),
    RsiReversion({"length": 5}),
    RsiReversion({"length": 6, "oversold": 40, "overbought": 60, "exit_mid": True, "trend_filter": 10}),
    RsiReversion({"length": 4, "max_hold": 5}),
    SupportResistance({"pivot": 2, "lookback": 12}),
    SupportResistance(
        {"pivot": 1, "lookback": 8, "band": 2.0, "vol_mult": 1.2, "vol_length": 4, "max_hold": 6}
    ),
]


def test_pandas_ta_uses_talib() -> None:
    # The indicator seeds (and so the live-window analysis) assume TA-Lib; pandas-ta silently falls
    # back to its own code, seeded differently, when TA-Lib is missing.
    assert pandas_ta.Imports["talib"]


@settings(max_examples=40, deadline=None)
@given(
    returns=st.lists(RETURNS, min_size=2, max_size=120),
    spreads=st.lists(st.floats(0.0, 0.03), min_size=1, max_size=10),
    volume=st.lists(st.sampled_from([0, 0, 500, 1000, 5000]), min_size=1, max_size=10),
    cut=st.floats(0.0, 1.0),
)
def test_no_look_ahead(returns, spreads, volume, cut) -> None:
    """Signals on bars[:k] are the first k rows of signals on all bars, for every strategy."""
    bars = bars_from_returns(returns, spread=spreads, volume=volume)
    k = max(1, int(cut * len(bars)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zero-volume notice
        for s in VARIANTS:
            full, head = s.signals(bars), s.signals(bars.iloc[:k])
            pd.testing.assert_frame_equal(head, full.iloc[:k], check_exact=False, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("s", VARIANTS, ids=repr)
def test_output_shape(s: Strategy) -> None:
    bars = bars_from_returns(list(np.random.default_rng(3).normal(0, 0.02, 80)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = s.signals(bars)
    assert out.index.equals(bars.index)
    assert out[DIRECTION].dtype == np.int8 and set(out[DIRECTION].unique()) <= {-1, 0, 1}
    assert out[REASON].map(lambda r: isinstance(r, str) and r != "").all()
    assert set(s.panels) <= set(out.columns) | {"trend_sma"}
    assert (out[DIRECTION].iloc[: s.warmup] == 0).all()


# --- trailing-window parity on real data -----------------------------------------------------------

PARITY = [
    (MaCross(), "ma_fast"),
    (MaCross({"kind": "ema"}), "ma_slow"),
    (RsiReversion(), "rsi"),
    (RsiReversion({"exit_mid": True, "trend_filter": 200}), "rsi"),
    (SupportResistance(), None),
    (SupportResistance({"vol_mult": 1.5}), None),
]


@pytest.fixture(scope="module")
def soxx(request) -> pd.DataFrame:
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "SOXX_1d.csv"
    if not path.is_file():
        pytest.skip(f"real market data not found at {SHARED_DATA} (../shared/data beside the repo)")
    return pd.read_csv(path, index_col="timestamp", parse_dates=True).loc["2015-01-01":]


def window_rows(s: Strategy, bars: pd.DataFrame, window: int, sample: np.ndarray) -> pd.DataFrame:
    rows = [s.signals(bars.iloc[max(0, i - window + 1) : i + 1]).iloc[-1] for i in sample]
    return pd.DataFrame(rows, index=bars.index[sample])


@pytest.mark.parametrize(("s", "column"), PARITY, ids=[repr(s) for s, _ in PARITY])
def test_live_window_decides_like_full_history(soxx: pd.DataFrame, s: Strategy, column: str | None) -> None:
    full = s.signals(soxx)
    w = live_window([s])
    assert w == s.memory + STATE_MARGIN
    sample = np.unique(np.linspace(s.warmup, len(soxx) - 1, 300).astype(int))
    live = window_rows(s, soxx, w, sample)
    assert (live[DIRECTION].to_numpy(dtype=int) == full[DIRECTION].to_numpy()[sample]).all()
    assert (live[REASON].to_numpy() == full[REASON].to_numpy()[sample]).all()
    if column:
        dev = np.abs(live[column].to_numpy(dtype=float) - full[column].to_numpy()[sample])
        assert np.nanmax(dev) < 1e-6


@pytest.mark.parametrize(
    "s",
    [RsiReversion({"oversold": 20, "overbought": 80, "max_hold": 60}), SupportResistance({"max_hold": 10})],
    ids=repr,
)
def test_max_hold_makes_memory_alone_exact(soxx: pd.DataFrame, s: Strategy) -> None:
    """With max_hold the state is bounded, so `memory` bars decide exactly, with no margin."""
    full = s.signals(soxx)
    sample = np.unique(np.linspace(s.warmup, len(soxx) - 1, 200).astype(int))
    live = window_rows(s, soxx, s.memory, sample)
    assert (live[DIRECTION].to_numpy(dtype=int) == full[DIRECTION].to_numpy()[sample]).all()


def test_short_window_would_not_do(soxx: pd.DataFrame) -> None:
    """The window length matters: a 100-bar window moves RSI14 by far more than 1e-6."""
    s = RsiReversion()
    full = s.signals(soxx)["rsi"].to_numpy()
    sample = np.arange(200, len(soxx), 97)
    live = window_rows(s, soxx, 100, sample)["rsi"].to_numpy(dtype=float)
    assert np.nanmax(np.abs(live - full[sample])) > 1e-3


def test_live_window_takes_the_longest_memory() -> None:
    group = [MaCross(), RsiReversion(), SupportResistance()]
    assert max(s.memory for s in group) == recursive_memory(14)
    assert live_window(group) == recursive_memory(14) + STATE_MARGIN


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 40),
    warmup=st.integers(0, 45),
    kind=st.sampled_from(["float", "int", "bool"]),
    seed=st.integers(0, 2**16),
)
def test_finalize_builds_the_plain_frame(n, warmup, kind, seed) -> None:
    """finalize (built without second copies) gives the frame the obvious construction gives, and
    leaves the caller's arrays as they were."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(-1, 2, n)
    direction = {
        "float": np.where(rng.random(n) < 0.2, np.nan, raw.astype(float)),
        "int": raw,
        "bool": raw > 0,
    }[kind]
    reason = np.array(["up", "down", "flat"], dtype=object)[rng.integers(0, 3, n)]
    value = rng.normal(size=n)
    before = (direction.copy(), reason.copy(), value.copy())
    index = pd.bdate_range("2020-01-01", periods=n, name="timestamp")
    got = finalize(index, direction, reason, warmup, x=value, y=list(range(n)))
    d = np.nan_to_num(np.asarray(direction, dtype=float)).astype(np.int8)
    d[:warmup] = 0
    r = reason.copy()
    r[:warmup] = WARMUP_REASON
    want = pd.DataFrame({DIRECTION: d, REASON: r, "x": value, "y": np.arange(n, dtype=float)}, index=index)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert np.array_equal(before[0], direction, equal_nan=kind == "float")
    assert (before[1] == reason).all() and (before[2] == value).all()
