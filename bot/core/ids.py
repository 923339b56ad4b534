"""Deterministic client order ids.

An id is derived from (strategy set, symbol, signal bar time, intent[, revision]), so the same
decision always yields the same id: after a crash or an ambiguous broker answer the bot looks the
order up by this id instead of sending it again, and the broker refuses a duplicate.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

PREFIX = "sx"
_EPOCH = datetime(1970, 1, 1)


def strategy_set_id(
    strategies: list[dict[str, Any]], universe: dict[str, Any], combine: dict[str, Any]
) -> str:
    """A short stable hash of what decides trades: plugins with params, routing and combiner."""
    blob = json.dumps(
        {"strategies": strategies, "universe": universe, "combine": combine}, sort_keys=True, default=str
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:8]


_last_minute: tuple[int | None, str] = (None, "")


def _minute(ns: int) -> str:
    """'YYYYMMDDHHMM' of a Timestamp's ns value (UTC when tz-aware, the wall time when naive), formatted
    by hand (tz_convert + strftime cost ~6 us). The last one is kept: a decision's ids come in a row
    with the same time (the close, the entry, then the entry's protective stop), ~half of a
    backtest's ids. One entry only, so a rerun over the same bars gains nothing from the one before."""
    global _last_minute
    last_ns, stamp = _last_minute
    if ns == last_ns:
        return stamp
    t = _EPOCH + timedelta(microseconds=ns // 1000)
    stamp = f"{t.year:04d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}"
    _last_minute = (ns, stamp)
    return stamp


def client_order_id(set_id: str, symbol: str, signal_ts: pd.Timestamp, intent: str, revision: int = 0) -> str:
    """E.g. 'sx-1a2b3c4d-SOXL-202401021600-open' (<= 48 chars for the usual tickers). The time is
    the signal bar's UTC minute (a naive time is taken as it is)."""
    ts = signal_ts if isinstance(signal_ts, pd.Timestamp) else pd.Timestamp(signal_ts)
    stamp = _minute(ts.value)
    sym = symbol.replace("^", "").replace("/", "")[:8]
    cid = f"{PREFIX}-{set_id}-{sym}-{stamp}-{intent}"
    return f"{cid}-r{revision}" if revision else cid


def split_revision(cid: str) -> tuple[str, int]:
    """(the id without its revision, the revision) of an id made by `client_order_id`."""
    head, _, last = cid.rpartition("-")
    if head and last[:1] == "r" and last[1:].isdigit():
        return head, int(last[1:])
    return cid, 0


def next_revision(cid: str) -> str:
    """The id of the same decision's next order (a stop moved, a close sent again): '...-close-r1'."""
    head, rev = split_revision(cid)
    return f"{head}-r{rev + 1}"
