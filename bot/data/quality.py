"""Bad-bar rules: what is repaired, what is rejected, and which bars are not traded on.

A bad bar that reaches a strategy can open a position on a price that never existed, so every
bar passes these rules once, in this order. Each kind is counted in a `QualityReport` and logged
as one line with its count and first timestamps.

| kind                     | rule                                                    | action        |
|--------------------------|---------------------------------------------------------|---------------|
| out_of_order             | a timestamp earlier than the row before it              | sorted        |
| duplicate                | a timestamp seen again                                  | last row kept |
| nan_price                | NaN in open, high, low or close                         | rejected      |
| non_positive             | open, high, low or close <= 0                           | rejected      |
| high_below_low           | high < low                                              | rejected      |
| not_a_session            | daily: the date is not an XNYS session                  | rejected      |
| outside_hours            | intraday: not a bar start of a session on the grid      | rejected      |
|                          | (outside regular hours, or off the bar grid)            |               |
| open_close_outside_range | open or close outside [low, high]                       | high/low widened |
| bad_volume               | NaN or negative volume                                  | set to 0      |
| missing_bars             | expected bars absent between the first and last bar     | counted       |
|                          | (XNYS sessions, or bar starts within sessions)          |               |
| gap_untradable           | a bar after more than `max_gap_bars` missing bars       | tradable=False |

"Last row kept" means the last in file order. Rules run in this order and a rejected bar is
counted once, under its first failing rule. Rejected bars leave holes, so they count as missing.
`tradable = False` means the engine makes no new entries on that bar; the first bar is tradable.
Thin 1-minute files have legitimate gaps (minutes with no trades): the rule still applies, and it is
the engine's choice what to do with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import structlog

from bot.data.calendar import is_intraday, session_grid, sessions

log = structlog.get_logger(__name__)

PRICE_COLS = ("open", "high", "low", "close")
KINDS = (
    "out_of_order",
    "duplicate",
    "nan_price",
    "non_positive",
    "high_below_low",
    "not_a_session",
    "outside_hours",
    "open_close_outside_range",
    "bad_volume",
    "missing_bars",
    "gap_untradable",
)
REJECTED = ("duplicate", "nan_price", "non_positive", "high_below_low", "not_a_session", "outside_hours")
REPAIRED = ("out_of_order", "open_close_outside_range", "bad_volume")
N_EXAMPLES = 5


@dataclass(frozen=True)
class QualityReport:
    symbol: str
    n_in: int
    n_out: int
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    timeframe: str = ""

    @property
    def rejected(self) -> int:
        return sum(self.counts.get(k, 0) for k in REJECTED)

    @property
    def repaired(self) -> int:
        return sum(self.counts.get(k, 0) for k in REPAIRED)

    def summary(self) -> str:
        """One line for logs and the UI: kept/in counts, then each non-zero kind with an example."""
        name = f"{self.symbol} {self.timeframe}" if self.timeframe else self.symbol
        head = f"{name}: {self.n_out}/{self.n_in} bars kept"
        parts = [
            f"{k}={n}" + (f" (first {self.examples[k][0]})" if self.examples.get(k) else "")
            for k, n in self.counts.items()
            if n
        ]
        return head + ("; " + ", ".join(parts) if parts else "; no defects")


def _iso(index: pd.DatetimeIndex, mask: np.ndarray) -> list[str]:
    return [ts.isoformat() for ts in index[np.flatnonzero(mask)[:N_EXAMPLES]]]


def _ns(index: pd.DatetimeIndex) -> np.ndarray:
    """Timestamps as int64 ns (UTC for tz-aware), whatever the index's unit."""
    return pd.DatetimeIndex(index).as_unit("ns").asi8


def clean_bars(
    df: pd.DataFrame, symbol: str, timeframe: str, max_gap_bars: int = 1
) -> tuple[pd.DataFrame, QualityReport]:
    """Apply the rules in the module docstring; return the clean bars plus a bool `tradable` column."""
    intraday = is_intraday(timeframe)
    counts = dict.fromkeys(KINDS, 0)
    examples: dict[str, list[str]] = {}
    n_in = len(df)

    def note(kind: str, index: pd.DatetimeIndex, mask: np.ndarray) -> None:
        n = int(mask.sum())
        counts[kind] += n
        if n:
            examples[kind] = _iso(index, mask)

    idx = pd.DatetimeIndex(df.index)
    t = _ns(idx)
    # 1. order: count rows that step back, then a stable sort keeps file order among equal stamps.
    back = np.zeros(len(t), dtype=bool)
    back[1:] = t[1:] < t[:-1]
    note("out_of_order", idx, back)
    order = np.argsort(t, kind="stable") if back.any() else np.arange(len(t))
    idx, t = idx[order], t[order]
    vals = {c: df[c].to_numpy(dtype="float64")[order] for c in PRICE_COLS}
    vol = (df["volume"].to_numpy(dtype="float64") if "volume" in df else np.zeros(len(t)))[order]

    # 2. duplicates: keep the last row of each timestamp.
    dup = np.zeros(len(t), dtype=bool)
    dup[:-1] = t[:-1] == t[1:]
    note("duplicate", idx, dup)
    keep = ~dup

    # 3.-5. prices that cannot be right: rejected, each bar counted under its first failing rule.
    o, h, lo, c = (vals[k] for k in PRICE_COLS)
    nan = np.isnan(o) | np.isnan(h) | np.isnan(lo) | np.isnan(c)
    note("nan_price", idx, keep & nan)
    keep &= ~nan
    with np.errstate(invalid="ignore"):
        nonpos = (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0)
        note("non_positive", idx, keep & nonpos)
        keep &= ~nonpos
        inverted = h < lo
    note("high_below_low", idx, keep & inverted)
    keep &= ~inverted

    # 6. calendar: position of each bar on the expected grid (-1 = not on it).
    pos = _grid_positions(idx, t, timeframe)
    off = pos < 0
    note("outside_hours" if intraday else "not_a_session", idx, keep & off)
    keep &= ~off

    idx, t, pos, vol = idx[keep], t[keep], pos[keep], vol[keep]
    o, h, lo, c = o[keep], h[keep], lo[keep], c[keep]

    # 7. open/close outside the range: the extremes are wrong, not the prints, so widen them.
    outside = (o > h) | (c > h) | (o < lo) | (c < lo)
    note("open_close_outside_range", idx, outside)
    if outside.any():
        h = np.maximum.reduce([h, o, c])
        lo = np.minimum.reduce([lo, o, c])

    # 8. volume: unknown or impossible volume becomes 0 rather than costing the bar.
    badvol = np.isnan(vol) | (vol < 0)
    note("bad_volume", idx, badvol)
    vol = np.where(badvol, 0.0, vol)

    # 9. gaps on the calendar grid; rejected bars are absent, so they count as missing.
    missing = np.zeros(len(pos), dtype=np.int64)
    missing[1:] = pos[1:] - pos[:-1] - 1
    counts["missing_bars"] = int(missing.sum())
    if counts["missing_bars"]:
        examples["missing_bars"] = _iso(idx, missing > 0)
    untradable = missing > max_gap_bars
    note("gap_untradable", idx, untradable)

    out = pd.DataFrame(
        {"open": o, "high": h, "low": lo, "close": c, "volume": vol, "tradable": ~untradable},
        index=pd.DatetimeIndex(idx, name="timestamp"),
    )
    out.attrs.update(df.attrs)
    report = QualityReport(symbol, n_in, len(out), counts, examples, timeframe)
    _log(report)
    return out, report


def _grid_positions(idx: pd.DatetimeIndex, t: np.ndarray, timeframe: str) -> np.ndarray:
    """Index of each timestamp on the expected XNYS grid spanning the data, or -1 if not on it."""
    if len(t) == 0:
        return np.array([], dtype=np.int64)
    if is_intraday(timeframe):
        local = idx.tz_convert("America/New_York") if idx.tz is not None else idx
        days = local.tz_localize(None).normalize() if idx.tz is not None else local.normalize()
        grid, _, _ = session_grid(sessions(days.min(), days.max()), timeframe)
        if idx.tz is None:  # naive intraday stamps are read as New York wall time
            t = _ns(idx.tz_localize("America/New_York"))
    else:
        if idx.tz is not None:
            raise ValueError("daily bars must have naive date labels")
        grid = _ns(sessions(idx.min(), idx.max()))
    if len(grid) == 0:
        return np.full(len(t), -1, dtype=np.int64)
    pos = np.searchsorted(grid, t)
    hit = (pos < len(grid)) & (grid[np.minimum(pos, len(grid) - 1)] == t)
    return np.where(hit, pos, -1)


def _log(report: QualityReport) -> None:
    for kind, n in report.counts.items():
        if not n:
            continue
        level = log.info if kind in ("missing_bars", "gap_untradable") else log.warning
        level(
            "bad_bars",
            symbol=report.symbol,
            timeframe=report.timeframe,
            kind=kind,
            count=n,
            first=report.examples.get(kind, []),
        )


def check_bar(
    symbol: str,
    ts: pd.Timestamp,
    o: float,
    h: float,
    l: float,  # noqa: E741 - the OHLC convention
    c: float,
    v: float,
    prev_ts: pd.Timestamp | None,
) -> str | None:
    """Rejection reason (a `KINDS` name) for one live bar, or None if it may be used.

    The live twin of `clean_bars`' rejection rules, cheap enough for every incoming bar.
    `symbol` and `v` are accepted for a uniform call site; volume never rejects a bar.
    """
    if math.isnan(o) or math.isnan(h) or math.isnan(l) or math.isnan(c):
        return "nan_price"
    if o <= 0 or h <= 0 or l <= 0 or c <= 0:
        return "non_positive"
    if h < l:
        return "high_below_low"
    if prev_ts is not None:
        if ts == prev_ts:
            return "duplicate"
        if ts < prev_ts:
            return "out_of_order"
    return None
