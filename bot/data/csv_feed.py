"""Read `{SYMBOL}_{TIMEFRAME}.csv` bar files as they are.

This module only parses: it keeps bad rows, duplicates and order exactly as in the file, so that
`bot.data.quality` can count and report every defect (a reader that silently fixed rows would hide
them). Timestamps: daily files hold ISO dates (naive session labels), intraday files hold ISO
datetimes with the New York offset, marking the bar start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bot.data.calendar import TZ, DateLike, is_intraday, session_date
from bot.data.errors import DataError

COLUMNS = ("open", "high", "low", "close", "volume")


def file_symbol(symbol: str) -> str:
    """The file-name stem of a symbol: index tickers drop their caret ("^SOX" -> "SOX")."""
    return symbol.lstrip("^").upper()


def csv_path(directory: str | Path, symbol: str, timeframe: str) -> Path:
    return Path(directory) / f"{file_symbol(symbol)}_{timeframe}.csv"


def _missing(path: Path) -> DataError:
    directory = path.parent
    if directory.is_dir():
        have = sorted(p.name for p in directory.glob("*_*.csv"))
        listing = ", ".join(have) if have else "(no *_*.csv files)"
        hint = f"Files in {directory}: {listing}."
    else:
        hint = f"The directory {directory} does not exist (set data.dir in the config)."
    return DataError(f"No bar file {path}. {hint}")


def load_csv(
    directory: str | Path,
    symbol: str,
    timeframe: str,
    start: DateLike | None = None,
    end: DateLike | None = None,
) -> pd.DataFrame:
    """Bars of one symbol, index `timestamp`, float64 open/high/low/close/volume, uncleaned.

    `start`/`end` are inclusive dates; `end` keeps every intraday bar of that day.
    """
    intraday = is_intraday(timeframe)
    path = csv_path(directory, symbol, timeframe)
    if not path.is_file():
        raise _missing(path)
    try:
        raw = pd.read_csv(path, dtype={"timestamp": str})
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a readable CSV file: {exc}") from exc
    lacking = [c for c in ("timestamp", *COLUMNS) if c not in raw.columns]
    if lacking:
        raise DataError(
            f"{path} lacks column(s) {', '.join(lacking)}; the header must be timestamp,{','.join(COLUMNS)}"
        )
    try:
        values = raw[list(COLUMNS)].apply(pd.to_numeric, errors="raise").astype("float64")
    except (ValueError, TypeError) as exc:
        row, col = _first_bad(raw, COLUMNS, lambda c: pd.to_numeric(c, errors="coerce"))
        if row is None:
            raise DataError(f"{path} has a non-numeric price or volume: {exc}") from exc
        raise DataError(
            f"{path} line {_line_of(path, row)}, column {col}: {raw[col].iat[row]!r} is not a number. "
            "Fix: correct or delete that row."
        ) from exc
    index = _parse_times(raw, intraday, path)
    df = pd.DataFrame(values.to_numpy(), index=index, columns=list(COLUMNS))
    return between(df, start, end)


def _parse_times(raw: pd.DataFrame, intraday: bool, path: Path) -> pd.DatetimeIndex:
    def parse(col: pd.Series, errors: str = "raise") -> pd.Series:
        if intraday:
            return pd.to_datetime(col, utc=True, format="ISO8601", errors=errors).dt.tz_convert(TZ)
        return pd.to_datetime(col, format="%Y-%m-%d", errors=errors)

    try:
        ts = parse(raw["timestamp"])
    except (ValueError, TypeError) as exc:
        kind = "an ISO datetime with offset (2024-03-01T09:30:00-05:00)" if intraday else "a date YYYY-MM-DD"
        row, _ = _first_bad(raw, ("timestamp",), lambda c: parse(c, "coerce"))
        where = f" line {_line_of(path, row)}" if row is not None else ""
        got = f"{raw['timestamp'].iat[row]!r}" if row is not None else "a timestamp"
        raise DataError(f"{path}{where}: {got} is not {kind}. Fix: correct or delete that row.") from exc
    return pd.DatetimeIndex(ts, name="timestamp").as_unit("ns")


def _first_bad(raw: pd.DataFrame, columns: tuple[str, ...], convert: Any) -> tuple[int | None, str]:
    """(row position, column) of the first value that is present but does not convert."""
    for col in columns:
        bad = convert(raw[col]).isna().to_numpy() & raw[col].notna().to_numpy()
        if bad.any():
            return int(bad.argmax()), col
    return None, ""


def _line_of(path: Path, row: int) -> int:
    """The 1-based line of data row `row` in the file: the header is line 1 and, like pandas, blank
    lines are not rows."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        next(fh, None)
        seen = -1
        for n, line in enumerate(fh, start=2):
            if line.strip():
                seen += 1
                if seen == row:
                    return n
    return row + 2


def between(df: pd.DataFrame, start: DateLike | None, end: DateLike | None) -> pd.DataFrame:
    """Rows whose session date is within [start, end] (inclusive; file order kept)."""
    if start is None and end is None:
        return df
    idx = df.index
    days = idx.tz_localize(None).normalize() if idx.tz is not None else idx.normalize()
    keep = np.ones(len(df), dtype=bool)
    if start is not None:
        keep &= days >= session_date(pd.Timestamp(start))
    if end is not None:
        keep &= days <= session_date(pd.Timestamp(end))
    out = df[keep]
    out.attrs.update(df.attrs)
    return out
