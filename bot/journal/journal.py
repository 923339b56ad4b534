"""The SQLite journal: runs, signals, risk verdicts, orders, fills, equity and persistent state.

It answers "why did it buy?" after the fact, and it is the bot's memory across restarts (WAL mode).
Order intents are committed *before* the order is sent (`order_intent`), so a crash between the two
leaves a row to reconcile by client_order_id rather than a silent gap.

A journal that writes through (every `soxbot run`) is durable: SQLite `synchronous=FULL`, so each
commit waits for the disk and a power cut cannot lose an intent written before its order was sent.
Only the per-bar record (signals, equity), which nothing reads back to trade, goes through a second
connection that does not wait; it shares the WAL file, so the next durable commit syncs it too.
Backtests use `buffered=True` (the fast path): rows collect in memory and are written in batches,
since nothing there can be lost to a crash.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from bot.core.events import EquityPoint, OrderFilled, OrderIntent, RiskVerdict

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY, started_at TEXT, ended_at TEXT, mode TEXT, set_id TEXT,
  config TEXT, status TEXT, synthetic INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS signals (
  run_id INTEGER, ts TEXT, symbol TEXT, strategy TEXT, direction INTEGER, reason TEXT, "values" TEXT);
CREATE TABLE IF NOT EXISTS risk (
  run_id INTEGER, ts TEXT, action TEXT, reason TEXT, details TEXT);
CREATE TABLE IF NOT EXISTS orders (
  run_id INTEGER, client_order_id TEXT, ts TEXT, symbol TEXT, side TEXT, qty REAL, type TEXT,
  intent TEXT, stop_price REAL, limit_price REAL, reason TEXT, status TEXT, broker_id TEXT,
  detail TEXT, updated_at TEXT, PRIMARY KEY (run_id, client_order_id));
CREATE TABLE IF NOT EXISTS fills (
  run_id INTEGER, client_order_id TEXT, ts TEXT, symbol TEXT, side TEXT, qty REAL, price REAL,
  commission REAL);
CREATE TABLE IF NOT EXISTS equity (
  run_id INTEGER, ts TEXT, equity REAL, cash REAL, position_value REAL);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT, updated_at TEXT);
CREATE INDEX IF NOT EXISTS ix_signals_run ON signals(run_id, ts);
CREATE INDEX IF NOT EXISTS ix_orders_cid ON orders(client_order_id);
CREATE INDEX IF NOT EXISTS ix_fills_run ON fills(run_id, ts);
"""
UNANSWERED = ("intent", "submitted")  # journaled before sending / sent, final outcome not journaled


def _ts(ts: Any) -> str:
    return pd.Timestamp(ts).isoformat()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


PER_BAR = frozenset({"signals", "equity"})  # a durable journal commits these without waiting for the disk


class Journal:
    def __init__(self, path: str | Path, buffered: bool = False, durable: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.durable = durable and not buffered
        self.db.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
        self.db.executescript(SCHEMA)
        self._bar_db = self.db  # the per-bar record's connection: its own, at NORMAL, when durable
        if self.durable:  # one WAL file: the next FULL commit on `db` syncs these rows too
            self._bar_db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._bar_db.execute("PRAGMA synchronous=NORMAL")
        self.buffered = buffered
        self._buf: dict[str, list[tuple[Any, ...]]] = {"signals": [], "risk": [], "fills": [], "equity": []}
        self.run_id = 0

    # -- runs --------------------------------------------------------------------------------
    def start_run(self, mode: str, set_id: str, config: dict[str, Any], synthetic: bool = False) -> int:
        cur = self.db.execute(
            "INSERT INTO runs(started_at, mode, set_id, config, status, synthetic) VALUES (?,?,?,?,?,?)",
            (_now(), mode, set_id, json.dumps(config, default=str), "running", int(synthetic)),
        )
        self.run_id = int(cur.lastrowid or 0)
        if self.buffered:  # a backtest: one transaction, committed by flush()
            self.db.execute("BEGIN")
        return self.run_id

    def end_run(self, status: str = "ok") -> None:
        self.flush()
        self.db.execute("UPDATE runs SET ended_at=?, status=? WHERE id=?", (_now(), status, self.run_id))

    # -- rows --------------------------------------------------------------------------------
    def _add(self, table: str, row: tuple[Any, ...], sql: str) -> None:
        if self.buffered:
            self._buf[table].append(row)
        else:
            (self._bar_db if table in PER_BAR else self.db).execute(sql, row)

    def signal(
        self,
        ts: Any,
        symbol: str,
        strategy: str,
        direction: int,
        reason: str,
        values: dict[str, float] | None = None,
    ) -> None:
        vals = json.dumps({k: (None if v != v else round(float(v), 6)) for k, v in (values or {}).items()})
        self._add(
            "signals",
            (self.run_id, _ts(ts), symbol, strategy, int(direction), reason, vals),
            "INSERT INTO signals VALUES (?,?,?,?,?,?,?)",
        )

    def risk(self, v: RiskVerdict) -> None:
        self._add(
            "risk",
            (self.run_id, _ts(v.ts), v.action, v.reason, json.dumps(v.details, default=str)),
            "INSERT INTO risk VALUES (?,?,?,?,?)",
        )

    def order_intent(self, o: OrderIntent) -> None:
        """Record an order before it is sent. Always written through, even when buffered."""
        self.db.execute(
            "INSERT OR IGNORE INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                self.run_id,
                o.client_order_id,
                _ts(o.ts),
                o.symbol,
                o.side.value,
                o.qty,
                o.type.value,
                o.intent.value,
                o.stop_price,
                o.limit_price,
                o.reason,
                "intent",
                None,
                "",
                _now(),
            ),
        )

    def order_status(
        self, client_order_id: str, status: str, broker_id: str | None = None, detail: str = ""
    ) -> None:
        """The broker's latest word on an order, in this run's row; an order an earlier run sent (a stop
        adopted on restart that fills now) has its row in that run, and that row is the one updated."""
        row = (status, broker_id, detail, _now(), client_order_id)
        sql = "UPDATE orders SET status=?, broker_id=COALESCE(?, broker_id), detail=?, updated_at=? "
        if self.db.execute(sql + "WHERE client_order_id=? AND run_id=?", (*row, self.run_id)).rowcount:
            return
        self.db.execute(
            sql
            + "WHERE client_order_id=? AND run_id=(SELECT max(run_id) FROM orders WHERE client_order_id=?)",
            (*row, client_order_id),
        )

    def mark_unanswered(self, statuses: Mapping[str, str]) -> None:
        """Record what the broker said about orders an earlier run left unanswered (still 'intent' or
        'submitted'), in whichever run's row holds them: `order_status` only touches this run's. A row
        that already has a final status keeps it."""
        now = _now()
        for cid, status in statuses.items():
            self.db.execute(
                "UPDATE orders SET status=?, updated_at=? WHERE client_order_id=? AND status IN (?, ?)",
                (status, now, cid, *UNANSWERED),
            )

    def fill(self, f: OrderFilled) -> None:
        self._add(
            "fills",
            (self.run_id, f.client_order_id, _ts(f.ts), f.symbol, f.side.value, f.qty, f.price, f.commission),
            "INSERT INTO fills VALUES (?,?,?,?,?,?,?,?)",
        )

    def equity(self, p: EquityPoint) -> None:
        self._add(
            "equity",
            (self.run_id, _ts(p.ts), p.equity, p.cash, p.position_value),
            "INSERT INTO equity VALUES (?,?,?,?,?)",
        )

    def equity_bulk(self, frame: pd.DataFrame) -> None:
        idx = frame.index
        stamps = idx.strftime("%Y-%m-%d") if idx.tz is None and (idx == idx.normalize()).all() else None
        rows = zip(
            [self.run_id] * len(frame),
            stamps.tolist() if stamps is not None else [t.isoformat() for t in idx],
            frame["equity"].tolist(),
            frame["cash"].tolist(),
            frame["position_value"].tolist(),
            strict=True,
        )
        self.db.executemany("INSERT INTO equity VALUES (?,?,?,?,?)", rows)

    def flush(self) -> None:
        if not self.buffered:
            return
        places = {"signals": 7, "risk": 5, "fills": 8, "equity": 5}
        if not self.db.in_transaction:
            self.db.execute("BEGIN")
        for table, rows in self._buf.items():
            if rows:
                self.db.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * places[table])})", rows)
                rows.clear()
        self.db.execute("COMMIT")

    # -- state -------------------------------------------------------------------------------
    def get_state(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_state(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO state VALUES (?,?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value, "
            "updated_at=excluded.updated_at",
            (key, value, _now()),
        )

    # -- reading -----------------------------------------------------------------------------
    def query(self, sql: str, params: tuple[Any, ...] = ()) -> pd.DataFrame:
        return pd.read_sql_query(sql, self.db, params=params)

    def close(self) -> None:
        self.flush()
        if self._bar_db is not self.db:
            self._bar_db.close()
        self.db.close()
