"""Short-term interest rates for a leveraged fund's financing: a constant or a CSV the user supplies.

The file format (documented in README "Leveraged funds"):

    date,rate
    2022-03-17,0.375
    2022-05-05,0.875

`date` is YYYY-MM-DD, ascending; `rate` is the annual rate in PERCENT (5.33 = 5.33%), as FRED
publishes DFF or DTB3, so such a download works as is (its header `observation_date,DFF` or
`DATE,DTB3` is accepted too, and its "." for a missing day is skipped). A rate holds from its date
until the next row; dates before the first row use the first rate. Anything else is a `DataError`
naming the line and the fix.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import math
from pathlib import Path

from bot.data.errors import DataError

_RATE_RANGE = (-5.0, 30.0)  # percent a year; outside it the file is surely in other units


class Rates:
    """An annual short rate (decimal) by date: `at(date)`. O(log n) a lookup."""

    def __init__(self, dates: list[dt.date], rates: list[float], source: str) -> None:
        if not dates:
            raise ValueError("Rates need at least one date")
        self.dates = dates
        self.rates = rates
        self.source = source

    @classmethod
    def constant(cls, rate: float) -> Rates:
        return cls([dt.date(1900, 1, 1)], [float(rate)], f"short_rate {rate:g}")

    def at(self, day: dt.date) -> float:
        i = bisect.bisect_right(self.dates, day) - 1
        return self.rates[max(i, 0)]


def load_rates(path: str | Path) -> Rates:
    """Read a rates CSV (see the module docstring)."""
    p = Path(path)
    fix = "Fix: a CSV with header date,rate and rows like 2024-01-02,5.33 (percent a year)."
    if not p.is_file():
        raise DataError(f"Rates file {p} does not exist ([leveraged] rates_file). {fix}")
    dates: list[dt.date] = []
    rates: list[float] = []
    with p.open(newline="", encoding="utf-8-sig") as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        if header is None or len(header) < 2 or "date" not in header[0].strip().lower():
            raise DataError(f"{p}: the first line must be the header date,rate, got {header!r}. {fix}")
        for n, row in enumerate(rows, start=2):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2:
                raise DataError(f"{p} line {n}: expected date,rate, got {','.join(row)!r}. {fix}")
            raw_date, raw_rate = row[0].strip(), row[1].strip()
            try:
                day = dt.date.fromisoformat(raw_date)
            except ValueError:
                raise DataError(f"{p} line {n}: {raw_date!r} is not a YYYY-MM-DD date. {fix}") from None
            if raw_rate in (".", ""):  # FRED's mark for a day without a value
                continue
            try:
                value = float(raw_rate)
            except ValueError:
                raise DataError(f"{p} line {n}: rate {raw_rate!r} is not a number. {fix}") from None
            if not math.isfinite(value) or not _RATE_RANGE[0] <= value <= _RATE_RANGE[1]:
                raise DataError(
                    f"{p} line {n}: rate {raw_rate} is outside {_RATE_RANGE[0]:g}..{_RATE_RANGE[1]:g} "
                    f"(percent a year). {fix}"
                )
            if dates and day <= dates[-1]:
                raise DataError(f"{p} line {n}: {day} is not after the line before ({dates[-1]}). {fix}")
            dates.append(day)
            rates.append(value / 100.0)
    if not dates:
        raise DataError(f"{p} has no rates. {fix}")
    return Rates(dates, rates, f"rates file {p}")
