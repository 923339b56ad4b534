"""A splits table, as a broker keeps one: as-traded prices plus the splits between them (LEAN's model).

The file (`[data] splits_file`) is a CSV with the header `symbol,date,ratio` and an optional `source`
column; blank lines and lines starting with `#` are skipped:

    symbol,date,ratio,source
    SOXL,2021-03-02,15:1,Direxion press release
    SOXS,2022-03-28,1:10,Direxion press release of 2022-02-18

- `date` is the split's effective (ex-)date, the first session traded on the new basis, YYYY-MM-DD;
- `ratio` is new shares per old share, written `new:old` ("15:1" for a 15-for-1 split, "1:10" for a
  1-for-10 reverse split) or as a positive number (15, 0.1).

The bar files of the symbols it lists hold as-traded prices. Strategies read a split-adjusted copy
(`adjusted`: prices before a split / ratio, volume x ratio, so the series has no jump), while the
engine and the broker trade the as-traded prices and apply each split to the position and its orders
on its date. Every problem in the file stops the run with one message naming the line and the fix.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bot.core.config import DataConfig
from bot.data.errors import DataError

REQUIRED = ("symbol", "date", "ratio")
PRICES = ("open", "high", "low", "close")
RATIO_HELP = (
    "ratio is new shares per old share: '15:1' for a 15-for-1 split, '1:10' for a 1-for-10 reverse "
    "split, or a positive number such as 0.1"
)


@dataclass(frozen=True, slots=True)
class Split:
    symbol: str
    date: pd.Timestamp  # naive session date: the first session on the new basis
    ratio: float  # new shares per old share
    text: str  # the ratio as written ("1:10")
    source: str = ""
    line: int = 0  # where it is in the file, for messages

    @property
    def label(self) -> str:
        """'SOXS 1:10 on 2022-03-28'."""
        return f"{self.symbol} {self.text} on {self.date:%Y-%m-%d}"


def parse_ratio(text: str) -> float:
    """New shares per old share from 'new:old' or a number; ValueError when it is neither or not > 0."""
    t = text.strip()
    if ":" in t:
        new, _, old = t.partition(":")
        a, b = float(new), float(old)
        if not (a > 0 and b > 0) or not (math.isfinite(a) and math.isfinite(b)):
            raise ValueError("both sides of new:old must be positive")
        return a / b
    r = float(t)
    if not (r > 0 and math.isfinite(r)):
        raise ValueError("must be positive")
    return r


class SplitTable:
    """The splits of each symbol, oldest first."""

    def __init__(self, splits: Iterable[Split], path: Path | None = None) -> None:
        self.path = path
        self.by_symbol: dict[str, list[Split]] = {}
        for s in sorted(splits, key=lambda s: (s.symbol, s.date)):
            self.by_symbol.setdefault(s.symbol, []).append(s)

    def __bool__(self) -> bool:
        return bool(self.by_symbol)

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else "the splits table"

    def of(self, symbol: str) -> list[Split]:
        return self.by_symbol.get(symbol.lstrip("^").upper(), [])

    def within(self, symbol: str, index: pd.DatetimeIndex) -> list[Split]:
        """The splits of `symbol` that fall between two bars of `index` (a split on or before the first
        bar changes nothing inside it)."""
        if not len(index):
            return []
        days = _days(index)
        return [s for s in self.of(symbol) if days[0] < s.date <= days[-1]]

    def adjusted(self, symbol: str, df: pd.DataFrame) -> pd.DataFrame:
        """`df` (as traded) on the basis of its last bar: what strategies read."""
        return self._rebase(symbol, df, 1.0)

    def as_traded(self, symbol: str, df: pd.DataFrame) -> pd.DataFrame:
        """The inverse of `adjusted`: as-traded prices from a series adjusted to its last bar's basis.
        Right only if the table lists every split of the symbol inside the series."""
        return self._rebase(symbol, df, -1.0)

    def _rebase(self, symbol: str, df: pd.DataFrame, power: float) -> pd.DataFrame:
        """Prices divided, volume multiplied, by the splits' factor to the power `power` (1: adjust)."""
        splits = self.within(symbol, df.index)
        if not splits:
            return df
        factor = _factor(_days(df.index), splits) ** power
        out = df.copy()
        for c in PRICES:
            if c in out:
                out[c] = out[c].to_numpy(float) / factor
        if "volume" in out:
            out["volume"] = out["volume"].to_numpy(float) * factor
        out.attrs.update(df.attrs)
        return out


def _days(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Each bar's New York session date, naive."""
    if index.tz is not None:
        index = index.tz_convert("America/New_York").tz_localize(None)
    return index.normalize()


def _factor(days: pd.DatetimeIndex, splits: list[Split]) -> np.ndarray:
    """Per bar, the product of the ratios of the splits after it: adjusted = as traded / factor."""
    factor = np.ones(len(days))
    for s in splits:
        factor[days < s.date] *= s.ratio
    return factor


def read_splits(path: str | Path) -> SplitTable:
    """The table in `path`, every row checked (DataError with the line and the fix on the first bad one)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"[data] splits_file {p} does not exist. Fix: create it (header symbol,date,ratio[,source]) "
            "or remove the key."
        )
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{p} is not a readable text file: {exc}") from exc
    rows = [
        (n, line)
        for n, line in enumerate(lines, start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not rows:
        raise DataError(
            f"{p} is empty. Fix: write the header symbol,date,ratio[,source] and one row per split."
        )
    reader = csv.reader([line for _, line in rows])
    header = [h.strip().lower() for h in next(reader)]
    lacking = [c for c in REQUIRED if c not in header]
    if lacking:
        raise DataError(
            f"{p} line {rows[0][0]}: the header lacks {', '.join(lacking)}. Fix: the first line must be "
            "symbol,date,ratio (optionally ,source)."
        )
    col = {c: header.index(c) for c in header}
    out: list[Split] = []
    seen: dict[tuple[str, pd.Timestamp], int] = {}
    for (n, _), fields in zip(rows[1:], reader, strict=True):
        split = _row(p, n, fields, col, len(header))
        key = (split.symbol, split.date)
        if key in seen:
            raise DataError(
                f"{p} line {n}: {split.symbol} on {split.date:%Y-%m-%d} is listed again (first on line "
                f"{seen[key]}). Fix: keep one row per split."
            )
        seen[key] = n
        out.append(split)
    return SplitTable(out, p)


def _row(p: Path, n: int, fields: list[str], col: Mapping[str, int], width: int) -> Split:
    where = f"{p} line {n}"
    if len(fields) < len(REQUIRED) or len(fields) > width:
        raise DataError(
            f"{where}: {len(fields)} fields where the header has {width}. Fix: write symbol,date,ratio"
            "[,source] (quote a source that contains a comma)."
        )
    get = lambda c: fields[col[c]].strip() if col.get(c, width) < len(fields) else ""  # noqa: E731
    symbol = get("symbol").lstrip("^").upper()
    if not symbol:
        raise DataError(f"{where}: the symbol is empty. Fix: name the symbol whose shares split.")
    raw_date, raw_ratio = get("date"), get("ratio")
    try:
        date = pd.Timestamp(pd.to_datetime(raw_date, format="%Y-%m-%d"))
    except (ValueError, TypeError):
        raise DataError(
            f"{where}: {raw_date!r} is not a date written YYYY-MM-DD. Fix: the split's effective date, "
            "the first session on the new share basis."
        ) from None
    try:
        ratio = parse_ratio(raw_ratio)
    except ValueError:
        what = "is not a split ratio" if not _zero_or_negative(raw_ratio) else "is zero or negative"
        raise DataError(f"{where}: ratio {raw_ratio!r} {what}. Fix: {RATIO_HELP}.") from None
    if abs(ratio - 1.0) < 1e-12:
        raise DataError(f"{where}: ratio {raw_ratio!r} changes nothing (one new share per old one). "
                        f"Fix: remove the row or correct the ratio ({RATIO_HELP}).")  # fmt: skip
    return Split(symbol, date, ratio, raw_ratio, get("source"), n)


def _zero_or_negative(text: str) -> bool:
    try:
        return any(float(x) <= 0 for x in text.split(":"))
    except ValueError:
        return False


def table_for(cfg: DataConfig, symbols: Iterable[str]) -> SplitTable | None:
    """`[data] splits_file` read and checked against the bar files of `symbols` (whole files, so a
    date range chosen with start/end does not turn a good row into a bad one); None when unset."""
    if cfg.splits_file is None:
        return None
    if cfg.source != "csv":
        raise DataError(
            f"[data] splits_file declares as-traded CSV files, but source = {cfg.source!r} (its bars "
            "come split-adjusted or are synthetic). Fix: use source = 'csv' (or --data-dir), or remove "
            "splits_file."
        )
    from bot.data.csv_feed import csv_path, load_csv

    table = read_splits(cfg.splits_file)
    for sym in dict.fromkeys(symbols):
        if table.of(sym):
            full = load_csv(cfg.dir, sym, cfg.timeframe)
            check_dates(table, sym, full.index, csv_path(cfg.dir, sym, cfg.timeframe).name)
    return table


def check_dates(table: SplitTable, symbol: str, days: pd.DatetimeIndex, what: str) -> None:
    """Every split of `symbol` falls on a day with a bar, after the first one, in `days` (the whole
    file `what`): a split outside the data can not be applied, and one on a day without a bar is a
    wrong date."""
    days = _days(pd.DatetimeIndex(days))
    if not len(days):
        return
    first, last = days[0], days[-1]
    have = set(days)
    for s in table.of(symbol):
        where = f"{table.path or 'splits table'} line {s.line}" if s.line else str(table.path)
        if not first < s.date <= last:
            raise DataError(
                f"{where}: the split {s.label} is outside the data: {what} covers {first:%Y-%m-%d} .. "
                f"{last:%Y-%m-%d} (a split takes effect between two bars). Fix: correct the date or "
                "remove the row."
            )
        if s.date not in have:
            raise DataError(
                f"{where}: {s.date:%Y-%m-%d} ({s.symbol}) is not a day with a bar in {what}. Fix: the "
                "date must be the split's effective date, a trading session."
            )
