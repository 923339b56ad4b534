"""The period a backtest's figures are measured over: where every instrument it uses has data.

SOX has bars from 1994, SOXL from 2010: over the whole file the strategy cannot trade for 16 years,
and a CAGR, a Sharpe ratio or a buy-and-hold measured over 32 years would mix those years in. So the
strategy and every buy-and-hold are measured over the bars where the signal symbol and every traded
symbol have data (extended to cover any trade made outside it), and each instrument missing part of
the range is named in a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Coverage:
    start: pd.Timestamp
    end: pd.Timestamp
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def _day(t: pd.Timestamp) -> str:
    return str(t.date()) if t.tzinfo is None else str(t.tz_convert("America/New_York").date())


def coverage(
    bars: Mapping[str, pd.DataFrame], symbols: Sequence[str], index: pd.DatetimeIndex, trades: pd.DataFrame
) -> Coverage:
    """The bars of `index` (the run's equity index) where every one of `symbols` has data."""
    first, last = index[0], index[-1]
    start, end = first, last
    gaps: list[tuple[str, pd.Timestamp | None, pd.Timestamp | None]] = []
    for sym in dict.fromkeys(symbols):
        df = bars.get(sym)
        own = df.index[(df.index >= first) & (df.index <= last)] if df is not None else index[:0]
        if not len(own):
            gaps.append((sym, None, None))
            continue
        start, end = max(start, own[0]), min(end, own[-1])
        if own[0] > first or own[-1] < last:
            gaps.append((sym, own[0], own[-1]))
    if len(trades):  # a trade outside (a side whose instrument exists) stays inside the measured period
        start = min(start, pd.Timestamp(trades["entry_time"].min()))
        end = max(end, pd.Timestamp(trades["exit_time"].max()))
    if start > end:
        start, end = first, last
    cov = Coverage(start, end)
    for sym, a, b in gaps:
        if a is None:
            cov.warnings.append(f"{sym} has no data between {_day(first)} and {_day(last)}: never traded.")
            continue
        cov.warnings.append(
            f"{sym} has data only from {_day(a)} to {_day(b)} of the range {_day(first)} .. {_day(last)}; "
            f"the figures and buy-and-hold cover {_day(start)} .. {_day(end)}, where every instrument has"
            " data."
        )
    return cov
