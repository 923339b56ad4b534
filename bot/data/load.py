"""One entry point from the `[data]` config section to clean bars: source, date range, bad-bar rules.

Every bar the engine sees went through `clean_bars`, whatever its source, so backtests on CSV files
and on the synthetic model obey the same rules.
"""

from __future__ import annotations

import pandas as pd

from bot.core.config import DataConfig
from bot.data.calendar import TZ
from bot.data.csv_feed import between, csv_path, file_symbol, load_csv
from bot.data.errors import DataError
from bot.data.quality import QualityReport, clean_bars
from bot.data.synthetic import generate

SYNTHETIC_START = "2020-01-02"


def load_bars(
    cfg: DataConfig, symbols: list[str], preroll: int = 0
) -> dict[str, tuple[pd.DataFrame, QualityReport]]:
    """Clean bars and their quality report per symbol, keyed as requested ("^SOX" reads file SOX).

    `preroll`: up to this many bars before `start` are kept as well (where the source has them), to
    warm strategies and risk measures up before the first traded bar. The synthetic model starts at
    `start` and has none."""
    if cfg.source == "alpaca":
        from bot.data.alpaca_feed import load_history

        if preroll and cfg.start:  # ~1.5 calendar days a daily bar; intraday: 390 minutes a session
            early = pd.Timestamp(cfg.start) - pd.Timedelta(days=int(preroll * 1.5) + 10)
            raw = load_history(cfg.model_copy(update={"start": early.date().isoformat()}), symbols)
            raw = {s: _with_preroll(df, between(df, cfg.start, None), preroll) for s, df in raw.items()}
        else:
            raw = load_history(cfg, symbols)
    elif cfg.source == "synthetic":
        # With an end date the model covers [start, end]; otherwise synthetic_years from start.
        start = pd.Timestamp(cfg.start or SYNTHETIC_START)
        years = cfg.synthetic_years
        if cfg.end is not None:
            years = max((pd.Timestamp(cfg.end) - start).days + 1, 1) / 365.25
        raw = generate(symbols, timeframe=cfg.timeframe, start=start, years=years, seed=cfg.seed)
        raw = {s: between(df, None, cfg.end) for s, df in raw.items()}
    else:
        raw = {s: _csv_in_range(cfg, s, preroll) for s in symbols}
    out = {s: clean_bars(df, file_symbol(s), cfg.timeframe, cfg.max_gap_bars) for s, df in raw.items()}
    for s, (df, _report) in out.items():
        if df.empty:
            raise DataError(
                f"No usable {cfg.timeframe} bars of {s} from the {cfg.source} source{_range(cfg)}: every "
                "bar was rejected by the bad-bar rules. Fix: check the data, or choose other dates."
            )
    return out


def _range(cfg: DataConfig) -> str:
    if cfg.start and cfg.end:
        return f" between {cfg.start} and {cfg.end}"
    return f" from {cfg.start}" if cfg.start else (f" up to {cfg.end}" if cfg.end else "")


def _with_preroll(full: pd.DataFrame, inside: pd.DataFrame, preroll: int) -> pd.DataFrame:
    """`inside` (the rows from start on) with up to `preroll` rows of `full` before its first."""
    if not preroll or inside.empty:
        return inside
    before = full[full.index < inside.index[0]]
    if before.empty:
        return inside
    out = pd.concat([before.iloc[-preroll:], inside])
    out.attrs.update(full.attrs)
    return out


def _csv_in_range(cfg: DataConfig, symbol: str, preroll: int = 0) -> pd.DataFrame:
    """The file's bars within [start, end] (and `preroll` before); a file with none within is an
    error naming what it holds."""
    full = load_csv(cfg.dir, symbol, cfg.timeframe)
    df = between(full, cfg.start, cfg.end)
    if not df.empty:
        return _with_preroll(between(full, None, cfg.end), df, preroll) if cfg.start else df
    path = csv_path(cfg.dir, symbol, cfg.timeframe)
    if full.empty:
        raise DataError(
            f"{path} has no bars, only a header. Fix: fill it (timestamp,open,high,low,close,volume "
            "rows) or point --data-dir / [data] dir at the directory that has them."
        )
    first, last = (
        t.date() if t.tzinfo is None else t.tz_convert(TZ).date()
        for t in (full.index.min(), full.index.max())
    )
    raise DataError(
        f"{path} has no bars{_range(cfg)}: it covers {first} .. {last}. "
        "Fix: choose --start/--end (or [data] start/end) within that range."
    )
