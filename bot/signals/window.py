"""How many bars the live path keeps: enough that a trailing window decides like the full history.

The backtest computes signals over the whole history; live, a strategy with a stepper (all the
built-ins) updates it in O(1) and never reads the window, and one without recomputes its signals each
bar over a bounded trailing window, sized here. Recursive indicators (EMA, Wilder RSI/ATR) never
forget their seed, and TA-Lib (which pandas-ta uses here) seeds RSI with the mean gain/loss of the
window's first `length` changes, so a short window shifts RSI: on SOXX 1d (2015-2026,
`scripts/measure_live_window.py`), RSI14 from a 160-bar window is off by up to 8.0e-4 points, from
200 bars 5.0e-5, from 250 bars 1.3e-6, and it stays below 1e-6 from W = 255. At `memory` =
recursive_memory(14) = 294 bars it is 5.6e-8 (5.0e-8 on SOX since 2001, 4.8e-8 on SMH since 2015),
and at 544 bars (its live window) 2.8e-14.

Decisions also carry state: rsi and support hold a position until an exit event, so a window must
reach back to the event that set it. Measured shortest windows giving every decision of the full
history (SOXX, SOX, SMH 1d from 2015, and SOXX/SOX since 2001): ma_cross SMA 50 (= memory), EMA
20/50 277 (memory 569), rsi 234 (memory 294), rsi exit_mid 161, support 89 and 115 with volume
confirmation (memory 66). On SOXL 5-minute bars support needed up to 148, and 191 with band = 3%.
So W = max(memory) + STATE_MARGIN, with a 250-bar margin: it covers the measured state reach of the
default rules with room to spare, and costs one signals() call over ~550 rows per bar.

The margin is empirical. A strategy whose hold can outlast it (measured: rsi with 20/80 thresholds
needs 1634 bars on SOX) should set `max_hold`, which bounds the state and is counted in `memory`,
so the window is then exact by construction.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.signals.strategy import Strategy

STATE_MARGIN = 250


def live_window(strategies: Iterable[Strategy]) -> int:
    """Bars the live path keeps for these strategies: the longest `memory` plus STATE_MARGIN."""
    return max((s.memory for s in strategies), default=0) + STATE_MARGIN
