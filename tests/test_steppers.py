"""Steppers: the live path's O(1)-per-bar twins of the built-in strategies' `signals()`.

Each must decide every bar exactly as `signals()` does on the whole history up to that bar (same
direction and reason; indicator values within 1e-9 relative, NaN where NaN), whatever the
parameters and however awkward the bars: flat stretches, prices on a tick grid (exact ties between
averages, pivots and RSI at 50), no volume. TrailingSignals uses them and must keep doing so when a
bar decided before the close is revised to its final values.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pandas_ta as ta
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.core.config import StrategyConfig, load_config
from bot.data.synthetic import generate
from bot.signals.live import Decision, TrailingSignals
from bot.signals.plugin_check import check_plugin
from bot.signals.plugins import create, scaffold
from bot.signals.stepping import EMA, SMA, RollingMax, RollingMin, WilderRSI
from bot.signals.strategy import DIRECTION, REASON, Strategy
from strategies.ma_cross import MaCross
from strategies.rsi import RsiReversion
from strategies.support import SupportResistance
from tests.ta_reference import RETURNS, bars_from_returns

COLS = ["open", "high", "low", "close", "volume"]


# --- bars ------------------------------------------------------------------------------------------


def tick_bars(ticks: list[int], spreads: list[int], volume: list[int]) -> pd.DataFrame:
    """Bars on a 0.25 price grid: sums are exact, so averages tie, pivots repeat and RSI hits 50."""
    close = 100.0 + 0.25 * np.cumsum(np.r_[0, ticks])
    n = len(close)
    s = 0.25 * np.resize(np.asarray(spreads, dtype=float), n)
    vol = np.resize(np.asarray(volume, dtype=float), n)
    idx = pd.bdate_range("2021-01-04", periods=n, name="timestamp")
    return pd.DataFrame(
        {"open": close - s / 2, "high": close + s, "low": close - s, "close": close, "volume": vol},
        index=idx,
    )


VOLUMES = st.lists(st.sampled_from([0, 0, 0, 500, 1000, 5000]), min_size=1, max_size=12)


@st.composite
def any_bars(draw: st.DrawFn) -> pd.DataFrame:
    if draw(st.booleans()):
        # runs of one return: flat stretches (return 0) of up to 12 bars and steady trends
        runs = draw(st.lists(st.tuples(RETURNS, st.integers(1, 12)), min_size=1, max_size=40))
        returns = [r for r, k in runs for _ in range(k)][:160]
        spreads = draw(st.lists(st.sampled_from([0.0, 0.0, 0.004, 0.02]), min_size=1, max_size=12))
        return bars_from_returns(returns, spread=spreads, volume=draw(VOLUMES))
    ticks = draw(st.lists(st.integers(-3, 3), min_size=1, max_size=160))
    spreads = draw(st.lists(st.integers(0, 2), min_size=1, max_size=12))
    return tick_bars(ticks, spreads, draw(VOLUMES))


# --- parameters ------------------------------------------------------------------------------------


@st.composite
def ma_params(draw: st.DrawFn) -> dict:
    fast = draw(st.integers(1, 12))
    return {
        "fast": fast,
        "slow": fast + draw(st.integers(1, 20)),
        "kind": draw(st.sampled_from(["sma", "ema"])),
    }


@st.composite
def rsi_params(draw: st.DrawFn) -> dict:
    lo = draw(st.sampled_from([10.0, 20.0, 30.0, 40.0, 45.0, 50.0, 33.3]))
    hi = draw(st.sampled_from([50.0, 55.0, 60.0, 70.0, 80.0, 66.7]))
    assume(hi > lo)
    return {
        "length": draw(st.integers(2, 16)),
        "oversold": lo,
        "overbought": hi,
        "trend_filter": draw(st.sampled_from([0, 0, 2, 5, 12, 30])),
        "exit_mid": lo < 50 < hi and draw(st.booleans()),
        "max_hold": draw(st.sampled_from([0, 0, 1, 3, 8])),
    }


@st.composite
def support_params(draw: st.DrawFn) -> dict:
    pivot = draw(st.integers(1, 5))
    return {
        "pivot": pivot,
        "lookback": pivot + draw(st.integers(1, 30)),
        "band": draw(st.sampled_from([0.1, 0.5, 1.0, 2.5, 5.0])),
        "vol_mult": draw(st.sampled_from([0.0, 0.0, 0.5, 1.0, 1.7])),
        "vol_length": draw(st.integers(2, 10)),
        "max_hold": draw(st.sampled_from([0, 0, 1, 4, 10])),
    }


# --- the property ----------------------------------------------------------------------------------


def same_values(got: dict[str, float], want: dict[str, float]) -> bool:
    if list(got) != list(want):
        return False
    for k, w in want.items():
        g = got[k]
        if math.isnan(w) or math.isnan(g):
            if not (math.isnan(w) and math.isnan(g)):
                return False
        elif not math.isclose(g, w, rel_tol=1e-9, abs_tol=0.0):
            return False
    return True


def row(out: pd.DataFrame, i: int) -> tuple[int, str, dict[str, float]]:
    vals = {c: float(out[c].iat[i]) for c in out.columns if c not in (DIRECTION, REASON)}
    return int(out[DIRECTION].iat[i]), str(out[REASON].iat[i]), vals


def assert_steps_like_signals(s: Strategy, bars: pd.DataFrame, cuts: list[float]) -> None:
    """At every bar the stepper gives the full run's row; at a few cuts, also `signals()` run on the
    history up to that bar only (the literal "history so far")."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zero-volume notice
        full = s.signals(bars)
        stepper = s.stepper()
        assert stepper is not None
        steps = [stepper.update(*b) for b in bars[COLS].itertuples(index=False, name=None)]
        for i, (d, r, vals) in enumerate(steps):
            wd, wr, wv = row(full, i)
            assert (d, r) == (wd, wr), f"bar {i}: stepper {d} {r!r}, signals {wd} {wr!r}"
            assert same_values(vals, wv), f"bar {i}: stepper {vals}, signals {wv}"
        for cut in cuts:
            k = max(1, round(cut * len(bars)))
            d, r, vals = steps[k - 1]
            wd, wr, wv = row(s.signals(bars.iloc[:k]), -1)
            assert (d, r) == (wd, wr) and same_values(vals, wv), f"history of {k} bars"


CUTS = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=3)


@settings(max_examples=150, deadline=None)
@given(bars=any_bars(), params=ma_params(), cuts=CUTS)
def test_ma_cross_stepper_equals_signals_at_every_bar(bars, params, cuts) -> None:
    assert_steps_like_signals(MaCross(params), bars, cuts)


@settings(max_examples=150, deadline=None)
@given(bars=any_bars(), params=rsi_params(), cuts=CUTS)
def test_rsi_stepper_equals_signals_at_every_bar(bars, params, cuts) -> None:
    assert_steps_like_signals(RsiReversion(params), bars, cuts)


@settings(max_examples=150, deadline=None)
@given(bars=any_bars(), params=support_params(), cuts=CUTS)
def test_support_stepper_equals_signals_at_every_bar(bars, params, cuts) -> None:
    try:
        s = SupportResistance(params)
    except ValidationError:  # e.g. lookback must exceed pivot: drawn valid, but keep the test honest
        assume(False)
    assert_steps_like_signals(s, bars, cuts)


@pytest.mark.parametrize(
    ("ticks", "params", "direction"),
    [
        ([2, -2, 2], {"length": 2, "oversold": 50.0, "overbought": 80.0}, 1),  # from exactly 50 up
        ([2, -2, -2], {"length": 2, "oversold": 20.0, "overbought": 50.0}, -1),  # from exactly 50 down
    ],
)
def test_rsi_stepper_crosses_from_exactly_the_threshold(ticks, params, direction) -> None:
    """RSI lands exactly on the threshold (gain = loss: 50) and crosses on the next bar: an entry,
    since the rule is previous <= oversold < RSI (>= and > for the short side)."""
    bars = tick_bars(ticks, [0], [1000])
    out = RsiReversion(params).signals(bars)
    assert out["rsi"].iat[2] == 50.0 and out[DIRECTION].iat[3] == direction
    assert_steps_like_signals(RsiReversion(params), bars, [1.0])


def test_support_stepper_ignores_a_bar_that_breaks_both_ways() -> None:
    """Resistance (10) below support (95): a close at 50 is both a breakout and a breakdown, so no
    event; the breakout before it goes stale after max_hold=3 bars counted from that earlier bar."""
    rows = [(10.0, 10.0, 10.0)] * 15 + [(11, 10, 10.5), (100, 97, 98), (101, 95, 96), (102, 95, 98)]
    rows += [(103, 50, 50), (104, 97, 98), (105, 97.5, 98), (106, 98, 99)]
    high, low, close = (np.array(x, dtype=float) for x in zip(*rows, strict=True))
    bars = pd.DataFrame(
        {"open": close, "high": high, "low": low, "close": close, "volume": 1000.0},
        index=pd.bdate_range("2022-01-03", periods=len(rows)),
    )
    s = SupportResistance({"pivot": 1, "lookback": 6, "max_hold": 3})
    out = s.signals(bars)
    assert (out["support"].iat[19], out["resistance"].iat[19]) == (95.0, 10.0)
    assert list(out[DIRECTION].iloc[18:22]) == [1, 1, 1, 0]  # stale 3 bars after bar 18's breakout
    assert_steps_like_signals(s, bars, [1.0])


def test_support_stepper_warns_once_when_the_bars_carry_no_volume() -> None:
    s = SupportResistance({"pivot": 1, "lookback": 5, "vol_mult": 1.5, "vol_length": 3})
    bars = tick_bars([1, -1, 2, 0, -2] * 10, [1], [0])
    stepper = s.stepper()
    with pytest.warns(UserWarning, match="no volume") as caught:
        for b in bars[COLS].itertuples(index=False, name=None):
            stepper.update(*b)
    assert len(caught) == 1


@pytest.mark.parametrize(
    "s",
    [
        MaCross(),
        MaCross({"kind": "ema"}),
        RsiReversion(),
        SupportResistance(),
        SupportResistance({"vol_mult": 1.5}),
    ],
    ids=repr,
)
def test_builtin_steppers_on_six_years_of_synthetic_daily_bars(s: Strategy) -> None:
    bars = generate(["SOXX"], "1d", "2015-01-02", 6, seed=11)["SOXX"]
    assert_steps_like_signals(s, bars, [0.5, 1.0])


# --- the indicators: pandas-ta's values to the bit -------------------------------------------------

SERIES = st.one_of(
    st.lists(st.integers(-4, 4), min_size=1, max_size=200).map(lambda t: 50.0 + 0.5 * np.cumsum(t)),
    st.lists(RETURNS, min_size=1, max_size=200).map(lambda r: 100.0 * np.exp(np.cumsum(r))),
)


def run(ind: SMA | EMA | WilderRSI | RollingMax, x: np.ndarray) -> np.ndarray:
    return np.array([ind.update(v) for v in x.tolist()])


def pandas_ta(fn: Callable[..., pd.Series | None], x: np.ndarray, n: int) -> np.ndarray:
    out = fn(pd.Series(x), length=n)
    return np.full(len(x), np.nan) if out is None else out.to_numpy(dtype=float)


@settings(max_examples=120, deadline=None)
@given(x=SERIES, n=st.integers(2, 30))
def test_indicators_equal_pandas_ta_bit_for_bit(x, n) -> None:
    # Exact, not close: a direction turns on `rsi > 30` or `fast == slow`.
    assert np.array_equal(run(SMA(n), x), pandas_ta(ta.sma, x, n), equal_nan=True)
    assert np.array_equal(run(EMA(n), x), pandas_ta(ta.ema, x, n), equal_nan=True)
    assert np.array_equal(run(WilderRSI(n), x), pandas_ta(ta.rsi, x, n), equal_nan=True)
    s = pd.Series(x)
    w = n // 3 + 1
    assert np.array_equal(run(RollingMax(w), x), s.rolling(w, min_periods=w).max().to_numpy(), equal_nan=True)
    assert np.array_equal(run(RollingMin(w), x), s.rolling(w, min_periods=w).min().to_numpy(), equal_nan=True)


# --- TrailingSignals -------------------------------------------------------------------------------


def windowed(s: Strategy) -> Strategy:
    """The same strategy without its stepper: TrailingSignals evaluates it on the trailing window."""
    cls = type(f"Windowed{type(s).__name__}", (type(s),), {"stepper": lambda self: None})
    return cls(s.params)


def trailing(strategies: list[Strategy], window: int, mode: str = "majority") -> TrailingSignals:
    cfg = load_config()
    cfg.strategies = [StrategyConfig(name=s.name, params=s.params.model_dump()) for s in strategies]
    cfg.combine.mode = mode
    return TrailingSignals(cfg, strategies, window)


def same_decision(a: Decision, b: Decision) -> bool:
    return (
        (a.ts, a.direction, a.reason) == (b.ts, b.direction, b.reason)
        and list(a.per_strategy) == list(b.per_strategy)
        and all(
            a.per_strategy[k][:2] == b.per_strategy[k][:2]
            and same_values(a.per_strategy[k][2], b.per_strategy[k][2])
            for k in a.per_strategy
        )
    )


def test_steppers_decide_like_the_full_history_with_any_window() -> None:
    """Steppers do not read the window: with a 10-bar ring every bar still gets the full history's
    row, including an RSI trade held for far longer than 10 bars. The same strategies evaluated on
    that window (no stepper) decide differently: the window is too short for them."""
    bars = generate(["SOXX"], "1d", "2015-01-02", 6, seed=11)["SOXX"]
    strats = [
        MaCross({"fast": 5, "slow": 9}),
        RsiReversion({"oversold": 25, "overbought": 75}),
        SupportResistance({"pivot": 2, "lookback": 7}),
    ]
    live = trailing([*strats, *(windowed(s) for s in strats)], window=10)
    assert live._windowed == [3, 4, 5]
    full = [s.signals(bars) for s in strats]
    held = (full[1][DIRECTION] != 0).astype(int).groupby((full[1][DIRECTION] == 0).cumsum()).sum()
    assert held.max() > 10  # an RSI trade outlasts the window
    window_differs = 0
    for i, (ts, *b) in enumerate(bars[COLS].itertuples(name=None)):
        dec = live.push(ts, *b)
        if dec.direction is None:
            continue
        rows = list(dec.per_strategy.values())
        for k, out in enumerate(full):
            d, r, vals = rows[k]
            wd, wr, wv = row(out, i)
            assert (d, r) == (wd, wr) and same_values(vals, wv), (i, k)
            window_differs += rows[3 + k][:2] != (wd, wr)
    assert window_differs > 0


def test_windowed_strategies_read_the_last_row_of_signals_on_the_window() -> None:
    bars = generate(["SOXX"], "1d", "2015-01-02", 2, seed=5)["SOXX"]
    s = windowed(RsiReversion({"trend_filter": 20}))
    live = trailing([s], window=60)
    for i, (ts, *b) in enumerate(bars[COLS].itertuples(name=None)):
        dec = live.push(ts, *b)
        if i % 37 == 0 and dec.direction is not None:
            want = row(s.signals(bars.iloc[max(0, i - 59) : i + 1]), -1)
            got = dec.per_strategy["rsi"]
            assert got[:2] == want[:2] and same_values(got[2], want[2])
            assert dec.direction == want[0]


def test_frame_holds_the_newest_bars_with_their_time_zone() -> None:
    bars = generate(["SOXX"], "1m", "2024-03-04", 0.02, seed=2)["SOXX"]
    assert bars.index.tz is not None
    live = trailing([MaCross({"fast": 2, "slow": 3})], window=25)
    for ts, *b in bars.iloc[:113][COLS].itertuples(name=None):  # several compactions of the ring
        live.push(ts, *b)
    want = bars.iloc[113 - 25 : 113][COLS].astype(float)
    want.index.name = "timestamp"
    pd.testing.assert_frame_equal(live.frame(), want)
    assert live.last_ts() == bars.index[112]


@settings(max_examples=40, deadline=None)
@given(
    bars=any_bars(),
    revised=st.lists(st.booleans(), min_size=1, max_size=20),
    moves=st.lists(st.tuples(st.floats(-0.05, 0.05), st.floats(0.0, 1.0)), min_size=1, max_size=20),
)
def test_a_revised_bar_leaves_the_path_as_if_the_final_bar_had_come(bars, revised, moves) -> None:
    """Daily bars decided before the close: push the day so far, revise it to the final bar, go on.
    Every later decision equals pushing the final bars only, on the stepper and the window path."""
    strats = lambda: [  # noqa: E731
        MaCross({"fast": 2, "slow": 5}),
        RsiReversion({"length": 3, "oversold": 40, "overbought": 60}),
        SupportResistance({"pivot": 1, "lookback": 6, "vol_mult": 1.0, "vol_length": 3, "max_hold": 4}),
        windowed(RsiReversion({"length": 4, "exit_mid": True})),
    ]
    early, final = trailing(strats(), 40, "weighted"), trailing(strats(), 40, "weighted")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zero-volume notice
        for i, (ts, o, h, lo, c, v) in enumerate(bars[COLS].itertuples(name=None)):
            want = final.push(ts, o, h, lo, c, v)
            if revised[i % len(revised)]:
                move, part = moves[i % len(moves)]
                so_far = c * (1 + move)
                early.push(ts, o, max(h, so_far), min(lo, so_far), so_far, v * part)
                early.revise(ts, o, h, lo, c, v)
            else:
                got = early.push(ts, o, h, lo, c, v)
                assert same_decision(got, want), i
        ts = bars.index[-1] + pd.Timedelta(days=1)
        bar = (100.0, 101.0, 99.0, 100.5, 1000.0)
        assert same_decision(early.push(ts, *bar), final.push(ts, *bar))


def test_revise_needs_the_newest_bar() -> None:
    live = trailing([MaCross({"fast": 2, "slow": 3})], window=10)
    ts = pd.Timestamp("2024-01-02")
    live.push(ts, 1.0, 1.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="newest bar"):
        live.revise(ts - pd.Timedelta(days=1), 1.0, 1.0, 1.0, 1.0, 0.0)


def test_a_plugin_without_a_stepper_has_none() -> None:
    class Plain(Strategy):
        name = "plain"

    assert Plain().stepper() is None


# --- plugins: the template's example and `soxbot test-strategy` ------------------------------------


def plugin_with_stepper(name: str, dest: Path, bug: tuple[str, str] | None = None) -> None:
    """Scaffold a plugin and switch on the template's commented stepper, as its comment says to."""
    path = scaffold(name, dest)
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("# def stepper(self)"))
    for i in range(start, len(lines)):
        lines[i] = re.sub(r"^(\s*)# ?", r"\1", lines[i]) if lines[i].lstrip().startswith("#") else lines[i]
    text = "\n".join(lines) + "\n"
    text = text.replace(
        "from bot.strategy import", "from bot.stepping import SMA\nfrom bot.strategy import WARMUP_REASON,", 1
    )
    if bug:
        assert bug[0] in text
        text = text.replace(*bug)
    path.write_text(text)


def test_the_templates_stepper_example_passes_test_strategy(tmp_path: Path) -> None:
    plugin_with_stepper("stepped_idea", tmp_path)
    s = create("stepped_idea", {"length": 20}, [tmp_path])
    assert s.stepper() is not None
    assert check_plugin("stepped_idea", [tmp_path]) == []
    bars = generate(["SOXX"], "1d", "2015-01-02", 2, seed=4)["SOXX"]
    assert_steps_like_signals(s, bars, [0.3])


def test_test_strategy_reports_a_stepper_that_differs_from_signals(tmp_path: Path) -> None:
    # Off by one: the warm-up ends a bar early, where signals() still says "warm-up".
    plugin_with_stepper("stepped_bug", tmp_path, ("self.warmup = s.warmup", "self.warmup = s.warmup - 1"))
    problems = check_plugin("stepped_bug", [tmp_path])
    assert problems == [
        "stepper decides 0 'close at SMA' at bar 48, signals() 0 'warm-up'"
    ]  # default length 50: warm-up is bars 0..48
