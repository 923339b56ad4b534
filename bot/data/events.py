"""The event calendar: earnings, rate decisions and releases that move the semiconductor sector overnight.

The file format (documented in README "Events"):

    date,time,kind,symbol,note
    2024-09-18,14:00,fomc,,FOMC statement (Federal Reserve)
    2024-08-28,amc,earnings,NVDA,Q2 FY25 results

- `date` YYYY-MM-DD, the calendar day the event happens (New York);
- `time` `bmo` (before the market opens; also an empty cell), `amc` (after the close), or `HH:MM` in
  New York time (24 h);
- `kind` a lower-case word (`fomc`, `cpi`, `payrolls`, `earnings`, ...): `[events.policy.<kind>]` says
  what to do around it;
- `symbol` the company for earnings, empty for macro events; `note` free text (the source, say).
Lines starting with `#` are comments. Anything else is a `DataError` naming the line and the fix.

Each event gets the instant its news reaches prices (`hit`): the open of its day for `bmo`, the next
session's open for `amc` or a time after the close, the time itself during regular hours, and the next
open when the day is not a session. That is where a position would take the gap.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bot.data import calendar as xnys
from bot.data.errors import DataError

HEADER = ["date", "time", "kind", "symbol", "note"]
FIX = (
    "Fix: a CSV with header date,time,kind,symbol,note and rows like "
    "2024-09-18,14:00,fomc,,FOMC statement (time: bmo, amc or HH:MM New York time)."
)
_KIND = re.compile(r"^[a-z][a-z0-9_]*$")
_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}$")
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class Event:
    day: pd.Timestamp  # naive date
    time: str  # "bmo", "amc" or "HH:MM"
    kind: str
    symbol: str
    note: str
    hit: pd.Timestamp  # New York time the news reaches prices (a session open or an in-session time)
    session: pd.Timestamp  # the session (naive date) that contains `hit`

    @property
    def label(self) -> str:
        who = f" {self.symbol}" if self.symbol else ""
        return f"{self.kind}{who} {self.day.date()} {self.time}"


def _next_open(day: pd.Timestamp) -> pd.Timestamp:
    """The first session open strictly after `day` (a naive date)."""
    s = xnys.sessions(day + pd.Timedelta(days=1), day + pd.Timedelta(days=15))
    return xnys.session_bounds(s[0])[0]


def hit_time(day: pd.Timestamp, time: str) -> pd.Timestamp:
    """When an event at `time` on `day` reaches prices (see the module docstring)."""
    if not xnys.is_session(day):
        return _next_open(day)
    o, c = xnys.session_bounds(day)
    if time == "bmo":
        return o
    if time == "amc":
        return _next_open(day)
    h, m = (int(x) for x in time.split(":"))
    at = pd.Timestamp(day.year, day.month, day.day, h, m, tz=xnys.TZ)
    return o if at <= o else (_next_open(day) if at >= c else at)


def _parse_row(row: list[str], where: str) -> Event:
    cells = [c.strip() for c in row] + [""] * (5 - len(row))
    if len(row) > 5 and any(c.strip() for c in row[5:]):
        raise DataError(f"{where}: {len(row)} columns, expected 5 (a comma in the note? quote it). {FIX}")
    d, t, kind, sym, note = cells[:5]
    try:
        day = pd.Timestamp(dt_check(d))
    except ValueError:
        raise DataError(f"{where}: date {d!r} is not YYYY-MM-DD. {FIX}") from None
    t = t.lower() or "bmo"
    if t not in ("bmo", "amc") and not _HHMM.match(t):
        raise DataError(f"{where}: time {t!r} is not bmo, amc or HH:MM. {FIX}")
    if t not in ("bmo", "amc"):
        t = f"{int(t.split(':')[0]):02d}:{t.split(':')[1]}"
    if not _KIND.match(kind):
        raise DataError(f"{where}: kind {kind!r} must be a lower-case word like fomc or earnings. {FIX}")
    if sym and not _SYMBOL.match(sym):
        raise DataError(f"{where}: symbol {sym!r} is not a ticker (upper case, e.g. NVDA). {FIX}")
    hit = hit_time(day, t)
    return Event(day, t, kind, sym, note, hit, xnys.session_date(hit))


def dt_check(text: str) -> str:
    """`text` when it is a real YYYY-MM-DD date, else ValueError."""
    if not re.match(r"^\d{4}-\d{2}-\d{2}$", text):
        raise ValueError(text)
    pd.Timestamp(text)  # raises on 2024-02-30
    return text


def load_events(path: str | Path) -> list[Event]:
    """Read an events CSV (see the module docstring), sorted by `hit`."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"Events file {p} does not exist ([events] file). {FIX}")
    out: list[Event] = []
    with p.open(newline="", encoding="utf-8-sig") as fh:
        lines = [
            (n, line) for n, line in enumerate(fh, 1) if line.strip() and not line.lstrip().startswith("#")
        ]
    if not lines:
        raise DataError(f"{p}: no header line. {FIX}")
    n0, first = lines[0]
    header = [c.strip().lower() for c in next(csv.reader([first]))]
    if header[:5] != HEADER:
        raise DataError(
            f"{p} line {n0}: the header must be {','.join(HEADER)}, got {','.join(header)}. {FIX}"
        )
    for n, line in lines[1:]:
        row = next(csv.reader([line]))
        out.append(_parse_row(row, f"{p} line {n}"))
    out.sort(key=lambda e: e.hit)
    return out
