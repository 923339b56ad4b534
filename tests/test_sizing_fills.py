"""Property tests for position sizing, stop levels and the fill model."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core import fills
from bot.core.config import RiskConfig
from bot.risk import stops
from bot.risk.sizing import affordable_qty, position_qty

price = st.floats(0.5, 5000, allow_nan=False)
equity = st.floats(1_000, 10_000_000, allow_nan=False)
frac = st.floats(0.01, 1.0)


@given(equity, st.floats(0, 1), price, frac, frac, st.booleans())
def test_fixed_fraction_never_exceeds_cash_cap_or_fraction(eq, cash_share, px, f, cap, fractional):
    cfg = RiskConfig(sizing="fixed_fraction", fraction=f, max_position_pct=cap, fractional=fractional)
    cash = eq * cash_share
    q = position_qty(cfg, eq, cash, px)
    assert q >= 0
    assert q * px <= cash + 1e-6
    assert q * px <= cap * eq + 1e-6
    assert q * px <= f * eq + 1e-6
    if not fractional:
        assert q == math.floor(q)
    # and it is not needlessly small: one more share would break a limit
    step = 1.0 if not fractional else 1e-6
    assert (q + step) * px > min(cash, cap * eq, f * eq) - 1e-6


@given(equity, price, st.floats(0.001, 0.2), st.floats(0.001, 0.5), st.booleans())
def test_risk_per_trade_loses_at_most_r_at_the_stop(eq, px, r, stop_pct, fractional):
    cfg = RiskConfig(sizing="risk_per_trade", risk_per_trade=r, stop_loss_pct=stop_pct, fractional=fractional)
    stop = stops.initial_stop(cfg, px, None)
    q = position_qty(cfg, eq, eq, px, stop)
    assert q * (px - stop) <= r * eq * (1 + 1e-9) + 1e-9
    assert q * px <= eq + 1e-6


@settings(max_examples=200)
@given(st.floats(0.01, 1e6), st.floats(0, 1e7), price, st.floats(0, 50), st.booleans())
def test_affordable_qty_fits_cash(qty, cash, px, commission, fractional):
    q = affordable_qty(qty, cash, px, commission, fractional)
    assert 0 <= q <= qty
    assert q == 0 or q * px + commission <= cash + 1e-6


bars = st.tuples(price, st.floats(0, 0.2), st.floats(0, 0.2), st.floats(-0.2, 0.2)).map(
    lambda t: (t[0], t[0] * (1 + t[1]), t[0] * (1 - t[2]))
)


@given(bars, st.floats(0.3, 6000), st.floats(0, 100))
def test_sell_stop_fills_at_stop_or_worse_open_and_only_when_traded_through(bar, stop, bps):
    o, h, lo = bar
    p = fills.stop_fill(o, h, lo, False, stop, bps)
    if lo > stop:
        assert p is None
        return
    raw = o if o <= stop else stop  # a gap through the stop fills at the open (LEAN's equity model)
    assert p == fills.slip(raw, False, bps)
    assert p <= stop + 1e-9
    assert lo * (1 - bps * 1e-4) - 1e-9 <= p <= h


@given(bars, st.floats(0.3, 6000))
def test_sell_limit_fills_at_limit_or_better_open(bar, limit):
    o, h, lo = bar
    p = fills.limit_fill(o, h, lo, False, limit)
    if h < limit:
        assert p is None
    else:
        assert p >= limit and p in (o, limit)


@given(bars, st.floats(0.3, 6000), st.floats(0, 100))
def test_buy_stop_mirrors_sell_stop(bar, stop, bps):
    o, h, lo = bar
    p = fills.stop_fill(o, h, lo, True, stop, bps)
    if h < stop:
        assert p is None
    else:
        assert p >= stop - 1e-9 and p == fills.slip(max(o, stop) if o >= stop else stop, True, bps)


@given(
    st.lists(st.tuples(st.floats(1, 100), st.floats(0, 5), st.floats(0, 5)), min_size=20, max_size=80),
    st.integers(2, 15),
)
def test_incremental_atr_matches_ta_lib(rows, n):
    import numpy as np
    import talib

    close = np.array([r[0] for r in rows])
    high = close + np.array([r[1] for r in rows])
    low = close - np.array([r[2] for r in rows])
    ref = talib.ATR(high, low, close, timeperiod=n)
    atr = stops.Atr(n)
    got = [atr.update(h, lo, c) for h, lo, c in zip(high, low, close, strict=True)]
    for g, r in zip(got, ref, strict=True):
        if math.isnan(r):
            assert g is None
        else:
            assert g is not None and math.isclose(g, r, rel_tol=1e-9, abs_tol=1e-12)


@given(price, st.floats(0, 0.5), st.floats(0, 0.5), st.floats(0, 5), st.floats(0, 10))
def test_tightest_stop_wins_and_trailing_only_rises(px, pct, trail, mult, atr):
    cfg = RiskConfig(stop_loss_pct=min(pct, 0.99), trailing_stop_pct=min(trail, 0.99), atr_stop_mult=mult)
    s = stops.initial_stop(cfg, px, atr)
    cands = [
        x
        for x in (
            px * (1 - cfg.stop_loss_pct) if cfg.stop_loss_pct else None,
            px - mult * atr if mult and atr else None,
            px * (1 - cfg.trailing_stop_pct) if cfg.trailing_stop_pct else None,
        )
        if x and x > 0
    ]
    assert s == (max(cands) if cands else None)
    if s is not None:
        assert s < px or math.isclose(s, px)
        assert stops.trailed_stop(cfg, s, px * 0.5) >= s


@given(
    rows=st.lists(
        st.tuples(st.floats(1, 100), st.floats(0, 5), st.floats(0, 5), st.floats(0, 1)),
        min_size=2,
        max_size=40,
    ),
    final=st.tuples(st.floats(1, 100), st.floats(0, 5), st.floats(0, 5), st.floats(0, 1)),
    n=st.integers(1, 10),
)
def test_atr_revised_with_a_bars_final_values_equals_atr_fed_the_final_bar(rows, final, n):
    """A daily bar seen before the close, then revised, leaves the ATR as if only the final bar came."""

    def hlc(r):
        mid, up, down, pos = r
        return mid + up, mid - down * 0.1, mid - down * 0.1 + pos * (up + down * 0.1)

    a, b = stops.Atr(n), stops.Atr(n)
    for r in rows[:-1]:
        a.update(*hlc(r))
        b.update(*hlc(r))
    a.update(*hlc(rows[-1]))  # the day so far
    a.revise(*hlc(final))
    b.update(*hlc(final))
    assert a.value == b.value
