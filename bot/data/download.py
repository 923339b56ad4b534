"""`soxbot data download`: Alpaca bars into the `{SYMBOL}_{TF}.csv` files soxbot reads, incrementally.

Files are in the format of `csv_feed` (daily: ISO dates; intraday: bar starts with the New York
offset), so a backtest reads them as it reads `../shared/data`.

Why a sidecar: split- and dividend-adjusted prices are on the basis of the day they were fetched, and
an IEX volume is a fraction of a SIP one. Each file gets `{SYMBOL}_{TF}.meta.json` recording the
adjustment, feed and source it was downloaded with; a download with another adjustment or feed is
refused (the file would hold two price bases), and so is a CSV without a sidecar (its basis is
unknown).

Incremental: a symbol whose file exists is asked only from its last row on, and only rows after it
are appended (never a duplicate). The last row itself is asked again and compared: if the source
reports it differently now (a split or dividend since the last download re-based the adjusted
history), the whole file is fetched again from its first row and rewritten, so one file is never on
two bases. A `--start` before a file's first row also rewrites it from there.

Only completed bars are written (Alpaca serves today's daily bar while it forms). Every file is
replaced atomically (temporary file + rename); nothing is written unless every symbol was fetched.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bot.data.alpaca_feed import INDEXES, bar_end
from bot.data.calendar import TZ, is_intraday
from bot.data.csv_feed import COLUMNS, csv_path, file_symbol, load_csv
from bot.data.errors import DataError

_SYMBOL = re.compile(r"[A-Z][A-Z0-9.]{0,9}")
_PRICES = ["open", "high", "low", "close"]

Fetch = Callable[[list[str], pd.Timestamp, pd.Timestamp, str], dict[str, pd.DataFrame]]


@dataclass(frozen=True)
class Origin:
    """What a file was downloaded with; the sidecar's content."""

    adjustment: str
    feed: str
    source: str


@dataclass
class Outcome:
    """What happened to one file, for the one line the command prints per symbol."""

    symbol: str
    path: Path
    action: str  # created | appended | rewritten | up to date
    added: int
    rows: int
    first: str = ""
    last: str = ""
    why: str = ""

    def line(self) -> str:
        span = f" {self.first} .. {self.last}" if self.rows else ""
        why = f" ({self.why})" if self.why else ""
        return f"{self.path.name}: {self.action}, +{self.added} rows, {self.rows} rows{span}{why}"


# -- input checks (each failure is one line naming the fix) ---------------------------------------------
def parse_symbols(text: str) -> list[str]:
    syms = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not syms:
        raise DataError("--symbols is empty: give tickers separated by commas, e.g. --symbols SOXX,SOXL,SOXS")
    for s in syms:
        if s.lstrip("^") in INDEXES or s.startswith("^"):
            raise DataError(
                f"{s} is an index and Alpaca has no index data; download SOXX or SMH instead "
                "(the SOX history is in ../shared/data)."
            )
        if not _SYMBOL.fullmatch(s):
            raise DataError(f"{s!r} is not a ticker: use letters, digits and '.', e.g. SOXX or BRK.B")
    return list(dict.fromkeys(syms))


def parse_day(text: str | None, option: str) -> pd.Timestamp | None:
    if text is None:
        return None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return pd.Timestamp(dt.date.fromisoformat(text))
    except ValueError:
        pass
    raise DataError(f"{option} must be a date written YYYY-MM-DD, got {text!r}")


def check_choice(value: str, choices: tuple[str, ...], option: str) -> str:
    if value not in choices:
        raise DataError(f"{option} must be one of {', '.join(choices)}, got {value!r}")
    return value


def writable_dir(directory: Path) -> Path:
    """Create `directory` if needed and prove a file can be written there, before asking the network."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".soxbot-probe-"):
            pass
    except OSError as exc:
        raise DataError(
            f"cannot write into --dir {directory}: {exc.strerror or exc}. "
            "Choose a directory you can write to."
        ) from exc
    return directory


# -- the sidecar ---------------------------------------------------------------------------------------
def meta_path(directory: Path, symbol: str, timeframe: str) -> Path:
    return directory / f"{file_symbol(symbol)}_{timeframe}.meta.json"


def read_origin(path: Path) -> Origin | None:
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
        return Origin(d["adjustment"], d["feed"], d.get("source", ""))
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise DataError(
            f"{path} is not a readable download record ({exc}); delete it and the CSV beside it."
        ) from exc


def _check_origin(csv: Path, meta: Path, have: Origin | None, want: Origin) -> None:
    if have is None:
        raise DataError(
            f"{csv} exists but has no {meta.name}, so its price adjustment is unknown and appending could "
            "mix two bases: move it away or download into another --dir."
        )
    for what, old, new in (("adjustment", have.adjustment, want.adjustment), ("feed", have.feed, want.feed)):
        if old != new:
            raise DataError(
                f"{csv} holds {what} {old!r} bars; {what} {new!r} would mix two bases in one file: "
                f"pass --{what} {old}, or download into another --dir."
            )


# -- the download ---------------------------------------------------------------------------------------
@dataclass
class _Plan:
    symbol: str
    csv: Path
    have: pd.DataFrame | None  # the rows already in the file (as written), None for a new file
    since: pd.Timestamp  # UTC instant from which to ask
    rewrite: str = ""  # why the whole file is fetched again ("" = append)


def _instant(label: pd.Timestamp) -> pd.Timestamp:
    """UTC instant of a bar label (a daily label is midnight New York, as Alpaca's daily `t`)."""
    return (label.tz_localize(TZ) if label.tzinfo is None else label).tz_convert("UTC")


def _day_start(day: pd.Timestamp) -> pd.Timestamp:
    return day.tz_localize(TZ).tz_convert("UTC")


def _completed(df: pd.DataFrame, timeframe: str, now: pd.Timestamp) -> pd.DataFrame:
    """Drop bars still forming at `now` (only recent labels can be)."""
    if df.empty:
        return df
    recent = np.array([_instant(t) > now - pd.Timedelta(days=4) for t in df.index])
    if not recent.any():
        return df
    done = np.array([not r or _ended(t, timeframe, now) for t, r in zip(df.index, recent, strict=True)])
    return df[done]


def _ended(label: pd.Timestamp, timeframe: str, now: pd.Timestamp) -> bool:
    try:
        return bar_end(label, timeframe) <= now
    except ValueError:  # not a session: kept, so `soxbot data check` shows it rather than hiding it
        return True


def _plan(directory: Path, symbol: str, timeframe: str, start: pd.Timestamp | None, want: Origin) -> _Plan:
    csv = csv_path(directory, symbol, timeframe)
    meta = meta_path(directory, symbol, timeframe)
    if not csv.is_file():
        if start is None:
            raise DataError(f"{csv.name} does not exist yet: give --start YYYY-MM-DD for its first bar.")
        return _Plan(symbol, csv, None, _day_start(start))
    _check_origin(csv, meta, read_origin(meta), want)
    have = load_csv(directory, symbol, timeframe)
    if have.empty:
        if start is None:
            raise DataError(f"{csv.name} has no rows yet: give --start YYYY-MM-DD for its first bar.")
        return _Plan(symbol, csv, None, _day_start(start))
    first, last = have.index.min(), have.index.max()
    first_day = first.tz_localize(None).normalize() if first.tzinfo else first
    if start is not None and start < first_day:
        return _Plan(symbol, csv, have, _day_start(start), f"extended back to {start.date()}")
    return _Plan(symbol, csv, have, _instant(last))


def _rebased(have: pd.DataFrame, got: pd.DataFrame) -> bool:
    """True when the source reports the file's last bar at other prices now (a new split/dividend basis)."""
    last = have.index.max()
    if last not in got.index:
        return False
    old = have[have.index == last].iloc[-1][_PRICES].to_numpy(dtype="float64")
    new = got.loc[[last]].iloc[-1][_PRICES].to_numpy(dtype="float64")
    return not np.allclose(old, new, rtol=1e-6, atol=0.0)


def download(
    fetch: Fetch,
    directory: Path,
    symbols: list[str],
    timeframe: str,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
    origin: Origin,
    now: pd.Timestamp,
) -> list[Outcome]:
    """Bring each `{SYMBOL}_{timeframe}.csv` in `directory` up to `end` (inclusive day; default `now`).

    `fetch(symbols, start_utc, end_utc, timeframe)` returns frames in the files' format (AlpacaBars.fetch).
    """
    now = now.tz_convert("UTC") if now.tzinfo else now.tz_localize("UTC")
    upto = min(_day_start(end + pd.Timedelta(days=1)) - pd.Timedelta(microseconds=1), now) if end else now
    if start is not None and _day_start(start) > upto:
        raise DataError(
            f"--start {start.date()} is after the end of the range ({upto.tz_convert(TZ).date()}): "
            "nothing to fetch."
        )
    writable_dir(directory)
    plans = [_plan(directory, s, timeframe, start, origin) for s in symbols]

    got = _fetch_grouped(fetch, plans, upto, timeframe, now)
    for p in plans:  # a changed basis: the whole file again, from its first row (or the earlier --start)
        if p.have is not None and not p.rewrite and _rebased(p.have, got[p.symbol]):
            p.rewrite = "the source's prices changed: a split or dividend since the last download"
            p.since = _instant(p.have.index.min())
    if any(p.rewrite for p in plans):
        got.update(_fetch_grouped(fetch, [p for p in plans if p.rewrite], upto, timeframe, now))

    for p in plans:
        if p.have is None and got[p.symbol].empty:
            raise DataError(
                f"no {timeframe} bars for {p.symbol} from {p.since.tz_convert(TZ).date()} to "
                f"{upto.tz_convert(TZ).date()} on feed {origin.feed}: check the symbol (Alpaca serves US "
                "stocks and ETFs) and the dates."
            )
    return [_write(p, got[p.symbol], timeframe, origin, directory) for p in plans]


def _fetch_grouped(
    fetch: Fetch, plans: list[_Plan], upto: pd.Timestamp, timeframe: str, now: pd.Timestamp
) -> dict[str, pd.DataFrame]:
    """One request per distinct start (the usual case: every file ends on the same bar)."""
    groups: dict[pd.Timestamp, list[str]] = {}
    for p in plans:
        groups.setdefault(p.since, []).append(p.symbol)
    out: dict[str, pd.DataFrame] = {}
    for since, syms in groups.items():
        frames = fetch(syms, since, upto, timeframe) if since <= upto else {}
        for s in syms:
            df = frames.get(s, pd.DataFrame())
            out[s] = _completed(df, timeframe, now) if not df.empty else _empty(timeframe)
    return out


def _empty(timeframe: str) -> pd.DataFrame:
    idx = pd.DatetimeIndex([], name="timestamp", tz=TZ if is_intraday(timeframe) else None)
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS}, index=idx)


# -- writing -------------------------------------------------------------------------------------------
def _num(x: float) -> str:
    """Shortest text that reads back as the same float (whole numbers without '.0')."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def _stamp(t: pd.Timestamp, timeframe: str) -> str:
    return t.strftime("%Y-%m-%d") if not is_intraday(timeframe) else t.isoformat()


def _lines(df: pd.DataFrame, timeframe: str) -> str:
    cols = [df[c].to_numpy(dtype="float64") for c in COLUMNS]
    return "".join(
        ",".join([_stamp(t, timeframe), *(_num(c[i]) for c in cols)]) + "\n" for i, t in enumerate(df.index)
    )


def _replace(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write(p: _Plan, got: pd.DataFrame, timeframe: str, origin: Origin, directory: Path) -> Outcome:
    meta = meta_path(directory, p.symbol, timeframe)
    header = "timestamp," + ",".join(COLUMNS) + "\n"
    if p.have is not None and not p.rewrite:
        last = p.have.index.max()
        new = got[got.index > last]
        if new.empty:
            return _outcome(p, "up to date", 0, p.have, timeframe)
        text = p.csv.read_text()
        if text and not text.endswith("\n"):
            text += "\n"
        _replace(p.csv, text + _lines(new, timeframe))
        return _outcome(p, "appended", len(new), pd.concat([p.have, new]), timeframe)
    # a new file, or a whole file again: the sidecar first, so a CSV never exists without one
    _replace(meta, json.dumps(origin.__dict__, indent=1) + "\n")
    _replace(p.csv, header + _lines(got, timeframe))
    action = "rewritten" if p.have is not None else "created"
    return _outcome(p, action, len(got) - (0 if p.have is None else len(p.have)), got, timeframe)


def _outcome(p: _Plan, action: str, added: int, df: pd.DataFrame, timeframe: str) -> Outcome:
    first = _stamp(df.index.min(), timeframe) if len(df) else ""
    last = _stamp(df.index.max(), timeframe) if len(df) else ""
    return Outcome(p.symbol, p.csv, action, max(added, 0), len(df), first, last, p.rewrite)
