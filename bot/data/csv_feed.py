"""Read `{SYMBOL}_{TIMEFRAME}.csv` bar files as they are.

This module only parses: it keeps bad rows, duplicates and order exactly as in the file, so that
`bot.data.quality` can count and report every defect (a reader that silently fixed rows would hide
them). Timestamps: daily files hold ISO dates (naive session labels), intraday files hold ISO
datetimes with the New York offset, marking the bar start.
"""

from __future__ import annotations

from pathlib import Path

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
        raise DataError(f"{path} has a non-numeric price or volume: {exc}") from exc
    index = _parse_times(raw["timestamp"], intraday, path)
    df = pd.DataFrame(values.to_numpy(), index=index, columns=list(COLUMNS))
    return between(df, start, end)


def _parse_times(col: pd.Series, intraday: bool, path: Path) -> pd.DatetimeIndex:
    try:
        if intraday:
            ts = pd.to_datetime(col, utc=True, format="ISO8601").dt.tz_convert(TZ)
        else:
            ts = pd.to_datetime(col, format="%Y-%m-%d")
    except (ValueError, TypeError) as exc:
        kind = "ISO datetimes with offset" if intraday else "ISO dates YYYY-MM-DD"
        raise DataError(f"{path}: timestamps must be {kind}: {exc}") from exc
    return pd.DatetimeIndex(ts, name="timestamp").as_unit("ns")


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
