"""The journal's `attribution` table: one row per attributed hold (a closed trade, or an open position
as of a mark), with the decay and carry terms of bot/risk/leverage.py. Its own table, created on first
use, so the journal's other tables are untouched (an older journal simply has none)."""

from __future__ import annotations

import sqlite3

import pandas as pd

from bot.journal.journal import Journal
from bot.risk.leverage import TERMS

DDL = (
    "CREATE TABLE IF NOT EXISTS attribution (run_id INTEGER, symbol TEXT, entry_ts TEXT, exit_ts TEXT, "
    '"open" INTEGER, underlying TEXT, leverage REAL, log_return REAL, index_log_return REAL, '
    + ", ".join(f"{t} REAL" for t in TERMS)
    + ")"
)


def ensure(db: sqlite3.Connection) -> None:
    db.execute(DDL)


def write_rows(journal: Journal, frame: pd.DataFrame, is_open: bool) -> int:
    """Rows of a trades frame that carry attribution columns (`attr_*`); returns how many."""
    if not len(frame) or "log_return" not in frame:
        return 0
    done = frame.dropna(subset=["log_return"])
    ensure(journal.db)
    rows = [
        (
            journal.run_id,
            str(r.symbol),
            pd.Timestamp(r.entry_time).isoformat(),
            pd.Timestamp(r.exit_time).isoformat(),
            int(is_open),
            str(r.underlying),
            float(r.leverage),
            float(r.log_return),
            float(r.index_log_return),
            *(float(getattr(r, f"attr_{t}")) for t in TERMS),
        )
        for r in done.itertuples(index=False)
    ]
    journal.db.executemany(f"INSERT INTO attribution VALUES ({','.join('?' * (9 + len(TERMS)))})", rows)
    return len(rows)
