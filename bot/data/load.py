"""One entry point from the `[data]` config section to clean bars: source, date range, bad-bar rules.

Every bar the engine sees went through `clean_bars`, whatever its source, so backtests on CSV files
and on the synthetic model obey the same rules.
"""

from __future__ import annotations

import pandas as pd

from bot.core.config import DataConfig
from bot.data.csv_feed import between, file_symbol, load_csv
from bot.data.quality import QualityReport, clean_bars
from bot.data.synthetic import generate

SYNTHETIC_START = "2020-01-02"


def load_bars(cfg: DataConfig, symbols: list[str]) -> dict[str, tuple[pd.DataFrame, QualityReport]]:
    """Clean bars and their quality report per symbol, keyed as requested ("^SOX" reads file SOX)."""
    if cfg.source == "alpaca":
        from bot.data.alpaca_feed import load_history

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
        raw = {s: load_csv(cfg.dir, s, cfg.timeframe, cfg.start, cfg.end) for s in symbols}
    return {s: clean_bars(df, file_symbol(s), cfg.timeframe, cfg.max_gap_bars) for s, df in raw.items()}
