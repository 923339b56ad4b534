"""What the dashboard shows from a journal: plain dicts and lists, ready for JSON and the templates.

The journal is opened read-only for each request (SQLite WAL lets a running bot write meanwhile), so
the dashboard can never change it and never holds a lock the bot would wait on. The same code reads
a running service's journal and one at rest (a backtest's journal.db, a stopped service's).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bot.data import calendar as xnys
from bot.run.service.status import (
    NY,
    _bar_end,
    _locks,
    _session_of,
    journal_positions,
    open_orders,
)

TABLES = ("orders", "fills", "signals", "risk")
ROW_LIMIT = 500
TAIL = 2000  # equity rows the overview reads from the end: more than a session of 1-minute bars


def _equity_tail(db: sqlite3.Connection, run_id: int) -> list[sqlite3.Row]:
    """The equity rows the overview needs, oldest first: the last TAIL, which hold today's session and the
    close before it. Polled every 2 s by an open page, so it must not read the whole curve: a year of
    1-minute bars is ~100k rows. Only a run shorter than TAIL rows (the starting cash is then the base)
    or a session longer than TAIL rows is read whole."""
    q = "SELECT ts, equity, cash, position_value FROM equity WHERE run_id=? ORDER BY rowid DESC LIMIT ?"
    rows = db.execute(q, (run_id, TAIL)).fetchall()[::-1]
    if len(rows) == TAIL and _session_of(rows[0]["ts"]) == _session_of(rows[-1]["ts"]):
        q = "SELECT ts, equity, cash, position_value FROM equity WHERE run_id=? ORDER BY rowid"
        rows = db.execute(q, (run_id,)).fetchall()
    return rows


class JournalView:
    """Read-only queries over one journal file; `run_id` None = its latest run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection, closed on leaving the block (sqlite3's own `with` only ends the
        transaction: an open page polling every 2 s left a connection and its file descriptors per
        request until the garbage collector ran)."""
        if not self.path.is_file():
            raise FileNotFoundError(f"No journal at {self.path}.")
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    def _run(self, db: sqlite3.Connection) -> sqlite3.Row | None:
        return db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()

    def run(self) -> dict[str, Any] | None:
        """The latest run: id, mode, status, times, whether its data was synthetic, and its config."""
        with self.connect() as db:
            r = self._run(db)
        if r is None:
            return None
        return {
            "id": int(r["id"]),
            "mode": r["mode"],
            "status": r["status"],
            "started_at": r["started_at"],
            "ended_at": r["ended_at"],
            "synthetic": bool(r["synthetic"]),
            "set_id": r["set_id"],
            "config": json.loads(r["config"] or "{}"),
        }

    def rows(self, table: str, day: str | None = None, limit: int = ROW_LIMIT) -> list[dict[str, Any]]:
        """The latest run's rows of `table` (orders, fills, signals, risk), newest first; `day` =
        YYYY-MM-DD keeps that day's (by the row's own time stamp)."""
        if table not in TABLES:
            raise ValueError(f"table must be one of {TABLES}")
        if day is not None:
            dt.date.fromisoformat(day)  # a bad day is a ValueError, never SQL
        with self.connect() as db:
            r = self._run(db)
            if r is None:
                return []
            sql = f"SELECT * FROM {table} WHERE run_id=?"
            args: list[Any] = [int(r["id"])]
            if day is not None:
                sql += " AND substr(ts, 1, 10)=?"
                args.append(day)
            sql += " ORDER BY rowid DESC LIMIT ?"
            args.append(limit)
            out = [dict(x) for x in db.execute(sql, args)]
        for row in out:
            row.pop("run_id", None)
            for k in ("values", "details"):
                if isinstance(row.get(k), str) and row[k]:
                    with contextlib.suppress(ValueError):
                        row[k] = json.loads(row[k])
        return out

    def days(self) -> list[str]:
        """Days with signals or risk verdicts in the latest run, newest first (the filter's choices)."""
        with self.connect() as db:
            r = self._run(db)
            if r is None:
                return []
            q = (
                "SELECT DISTINCT substr(ts, 1, 10) AS d FROM signals WHERE run_id=? UNION "
                "SELECT DISTINCT substr(ts, 1, 10) FROM risk WHERE run_id=? ORDER BY d DESC LIMIT 400"
            )
            return [x[0] for x in db.execute(q, (r["id"], r["id"]))]

    def equity(self) -> dict[str, list[Any]]:
        """The equity curve of the latest run and its drawdown from the running peak."""
        with self.connect() as db:
            r = self._run(db)
            rows = (
                db.execute(
                    "SELECT ts, equity FROM equity WHERE run_id=? ORDER BY rowid", (r["id"],)
                ).fetchall()
                if r is not None
                else []
            )
        ts = [x["ts"] for x in rows]
        eq = [float(x["equity"]) for x in rows]
        dd, peak = [], float("-inf")
        for v in eq:
            peak = max(peak, v)
            dd.append(v / peak - 1.0 if peak > 0 else 0.0)
        return {"ts": ts, "equity": eq, "drawdown": dd}

    def overview(self, now: dt.datetime) -> dict[str, Any]:
        """Positions with entry/stop/P&L, open orders, today's P&L, locks and data age, at `now`."""
        with self.connect() as db:
            r = self._run(db)
            if r is None:
                return {"run": None}
            run_id = int(r["id"])
            config = json.loads(r["config"] or "{}")
            orders = open_orders(db, run_id)
            pos = journal_positions(db, run_id, orders)
            eq = _equity_tail(db, run_id)
            locks = _locks(db, run_id, eq[-1]["ts"] if eq else None)
            fills = db.execute("SELECT COUNT(*) FROM fills WHERE run_id=?", (run_id,)).fetchone()[0]
        out: dict[str, Any] = {
            "run": {"id": run_id, "mode": r["mode"], "status": r["status"], "synthetic": bool(r["synthetic"]),
                    "started_at": r["started_at"], "ended_at": r["ended_at"]},
            "positions": [_position(p) for p in pos],
            "open_orders": [o.__dict__ if hasattr(o, "__dict__") else _slots(o) for o in orders],
            "locks": locks,
            "fills": int(fills),
            "equity": None,
            "pnl_today": None,
            "data": {"last_bar": None, "age_seconds": None, "stale": False},
        }  # fmt: skip
        if eq:
            last = eq[-1]
            day = _session_of(last["ts"])
            before = next((x for x in reversed(eq) if _session_of(x["ts"]) < day), None)  # the last close
            start = (
                float(before["equity"])
                if before is not None
                else float(config.get("broker", {}).get("starting_cash", eq[0]["equity"]))
            )
            end = float(last["equity"])
            out["equity"] = {
                "value": end,
                "cash": float(last["cash"]),
                "position_value": float(last["position_value"]),
            }
            out["pnl_today"] = {
                "day": str(day),
                "value": end - start,
                "pct": end / start - 1 if start else 0.0,
            }
            tf = config.get("data", {}).get("timeframe", "1d")
            out["data"] = data_age(last["ts"], tf, now)
        return out


def _slots(o: Any) -> dict[str, Any]:
    return {k: getattr(o, k) for k in o.__slots__}


def _position(p: Any) -> dict[str, Any]:
    d = _slots(p)
    d["pnl"] = (p.mark - p.entry_price) * p.qty if p.mark is not None else None
    d["pnl_pct"] = p.mark / p.entry_price - 1 if p.mark is not None and p.entry_price else None
    return d


def data_age(last_ts: str, timeframe: str, now: dt.datetime) -> dict[str, Any]:
    """How old the newest bar is at `now`, and whether it is stale: a newer bar should have closed by now
    (the next session's close for daily bars, the next bar's end intraday), with a minute of slack."""
    end = _bar_end(last_ts, timeframe)
    if xnys.is_intraday(timeframe):
        due = end + xnys.timeframe_delta(timeframe).to_pytimedelta()
        if not _in_session(end):
            due = end + dt.timedelta(days=4)  # over a close, a weekend or a holiday: lenient
    else:
        day = end.astimezone(NY).date()
        later = xnys.sessions(day + dt.timedelta(days=1), day + dt.timedelta(days=10))
        due = xnys.session_bounds(later[0])[1].to_pydatetime() if len(later) else end + dt.timedelta(days=4)
    age = (now - end).total_seconds()
    return {
        "last_bar": last_ts,
        "runs_to": end.astimezone(NY).isoformat(),
        "age_seconds": age,
        "stale": now > due + dt.timedelta(minutes=1),
    }


def _in_session(t: dt.datetime) -> bool:
    day = t.astimezone(NY).date()
    if not xnys.is_session(day):
        return False
    o, c = xnys.session_bounds(day)
    return o.to_pydatetime() <= t < c.to_pydatetime()
