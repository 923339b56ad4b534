"""`soxbot data check DIR`: the bad-bar rules of `quality.py` over every `{SYMBOL}_{TF}.csv`, as tables.

The same rules run on every load before a backtest or a live warm-up; this shows, before that, what
they would reject or repair, per file and per rule. A *problem* is a bar the rules reject or repair,
or a file that cannot be read; missing bars (gaps on the XNYS grid) are shown but are not problems,
because thin intraday files legitimately miss minutes without trades.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.data.calendar import TIMEFRAMES
from bot.data.csv_feed import load_csv
from bot.data.errors import DataError
from bot.data.quality import KINDS, REJECTED, REPAIRED, QualityReport, clean_bars

ACTIONS = {
    "out_of_order": "sorted",
    "duplicate": "last row kept",
    "nan_price": "rejected",
    "non_positive": "rejected",
    "high_below_low": "rejected",
    "not_a_session": "rejected",
    "outside_hours": "rejected",
    "open_close_outside_range": "high/low widened",
    "bad_volume": "set to 0",
    "missing_bars": "counted (gap)",
    "gap_untradable": "no entries on it",
}


@dataclass(frozen=True)
class FileCheck:
    path: Path
    rows: int = 0
    first: str = ""
    last: str = ""
    report: QualityReport | None = None
    error: str = ""

    @property
    def problems(self) -> int:
        if self.error:
            return 1
        return self.report.rejected + self.report.repaired if self.report else 0


def bar_files(directory: Path) -> list[tuple[Path, str, str]]:
    """(path, symbol, timeframe) of each `{SYMBOL}_{TF}.csv` in `directory`, sorted by name."""
    if not directory.is_dir():
        raise DataError(
            f"{directory} is not a directory: give the folder holding the {{SYMBOL}}_{{TF}}.csv files."
        )
    out = []
    for p in sorted(directory.glob("*_*.csv")):
        symbol, _, tf = p.stem.rpartition("_")
        if symbol and tf in TIMEFRAMES:
            out.append((p, symbol, tf))
    if not out:
        raise DataError(
            f"no bar files in {directory}: expected names like SOXX_1d.csv ({', '.join(TIMEFRAMES)})."
        )
    return out


def check_file(path: Path, symbol: str, timeframe: str, max_gap_bars: int = 1) -> FileCheck:
    try:
        raw = load_csv(path.parent, symbol, timeframe)
    except DataError as exc:
        return FileCheck(path, error=str(exc))
    if raw.empty:
        return FileCheck(path, error="no rows (header only)")
    _, report = clean_bars(raw, symbol, timeframe, max_gap_bars)
    first, last = (_stamp(t.isoformat()) for t in (raw.index.min(), raw.index.max()))
    return FileCheck(path, len(raw), first, last, report)


def _stamp(iso: str) -> str:
    """A daily label reads as its date."""
    return iso.removesuffix("T00:00:00")


def render(fc: FileCheck) -> str:
    """One table: the file's rows and range, then each rule that fired with its count, action, first bar."""
    if fc.error:
        return f"{fc.path.name}: UNREADABLE\n  {fc.error}"
    assert fc.report is not None
    head = f"{fc.path.name}: {fc.rows} rows, {fc.first} .. {fc.last}"
    fired = [k for k in KINDS if fc.report.counts.get(k)]
    if not fired:
        return head + "\n  no problems, no gaps"
    w = max(len(k) for k in fired)
    lines = [head, f"  {'rule':<{w}}  {'bars':>6}  {'action':<17} first"]
    for k in fired:
        first = _stamp((fc.report.examples.get(k) or [""])[0])
        lines.append(f"  {k:<{w}}  {fc.report.counts[k]:>6}  {ACTIONS[k]:<17} {first}")
    n = fc.problems
    rejected = sum(fc.report.counts.get(k, 0) for k in REJECTED)
    repaired = sum(fc.report.counts.get(k, 0) for k in REPAIRED)
    lines.append(
        f"  {n} problem{'s' if n != 1 else ''} ({rejected} rejected, {repaired} repaired)"
        if n
        else "  no problems (gaps only)"
    )
    return "\n".join(lines)
