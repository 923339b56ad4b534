"""The journal as a restart reads and corrects it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd

from bot.broker.sim import SimBroker
from bot.core.config import Settings, load_config
from bot.core.events import Intent, OrderIntent, OrderType, Side
from bot.execution.engine import Engine
from bot.journal.journal import Journal


def _intent(cid: str) -> OrderIntent:
    return OrderIntent(
        cid, pd.Timestamp("2024-06-03"), "BBB", Side.BUY, 1, OrderType.MARKET, Intent.OPEN, "x"
    )


def test_mark_unanswered_settles_an_earlier_runs_orders_and_keeps_final_ones(tmp_path):
    j = Journal(tmp_path / "j.db")
    j.start_run("paper-alpaca", "s", {})
    for cid in ("sent", "journaled", "done"):
        j.order_intent(_intent(cid))
    j.order_status("sent", "submitted")
    j.order_status("done", "filled")
    j.start_run("paper-alpaca", "s", {})  # the restart
    j.mark_unanswered({"sent": "canceled", "journaled": "not_sent", "done": "canceled", "absent": "x"})
    rows = dict(j.db.execute("SELECT client_order_id, status FROM orders").fetchall())
    assert rows == {"sent": "canceled", "journaled": "not_sent", "done": "filled"}
    j.close()


def test_an_order_status_reaches_the_row_of_the_run_that_sent_the_order(tmp_path):
    """A stop sent by an earlier run and adopted on restart: its fill in this run marks that run's row;
    an order this run journaled itself keeps its status in this run's row."""
    j = Journal(tmp_path / "j.db")
    j.start_run("paper-alpaca", "s", {})
    j.order_intent(_intent("stop"))
    j.order_intent(_intent("again"))
    j.order_status("stop", "submitted")
    first = j.run_id
    j.start_run("paper-alpaca", "s", {})
    j.order_intent(_intent("again"))  # journaled again by this run (e.g. the first never reached the broker)
    j.order_status("stop", "filled")
    j.order_status("again", "submitted")
    rows = j.db.execute(
        "SELECT run_id, client_order_id, status FROM orders ORDER BY run_id, rowid"
    ).fetchall()
    assert rows == [
        (first, "stop", "filled"),
        (first, "again", "intent"),
        (j.run_id, "again", "submitted"),
    ]
    j.close()


# -- durable intents -----------------------------------------------------------------------------------
FULL, NORMAL = 2, 1  # PRAGMA synchronous


def _sync(j: Journal) -> int:
    return j.db.execute("PRAGMA synchronous").fetchone()[0]


def test_a_run_journal_commits_with_synchronous_full_and_a_backtest_journal_does_not(tmp_path):
    """`soxbot run` opens `Journal(path)`: each commit waits for the disk (WAL, synchronous=FULL), so a
    power cut cannot lose an intent written before its order was sent. A backtest's journal
    (`buffered=True`, as the report writer opens it) keeps the fast path. Read back from the real
    connections."""
    run = Journal(tmp_path / "run.db")
    backtest = Journal(tmp_path / "backtest.db", buffered=True)
    scratch = Journal(tmp_path / "scratch.db", durable=False)
    try:
        assert run.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert (_sync(run), _sync(backtest), _sync(scratch)) == (FULL, NORMAL, NORMAL)
        # the per-bar record (signals, equity) goes through a connection of its own that does not wait
        assert run._bar_db.execute("PRAGMA synchronous").fetchone()[0] == NORMAL
    finally:
        for j in (run, backtest, scratch):
            j.close()


class PeekingBroker(SimBroker):
    """The in-process broker, which first reads the order's row from the journal file through a
    connection of its own: what another process, or the file after a crash, would find."""

    def __init__(self, path: Path, cfg: Settings) -> None:
        super().__init__(cfg.broker.starting_cash)
        self.path = path
        self.seen: dict[str, tuple | None] = {}

    def submit(self, intent: OrderIntent) -> None:
        db = sqlite3.connect(self.path)
        try:
            sql = "SELECT status, qty FROM orders WHERE client_order_id=?"
            self.seen[intent.client_order_id] = db.execute(sql, (intent.client_order_id,)).fetchone()
        finally:
            db.close()
        super().submit(intent)


def _entry_and_stop(tmp_path: Path, **journal: bool) -> dict[str, tuple | None]:
    cfg = load_config()
    path = tmp_path / f"j-{'-'.join(journal)}.db"
    j = Journal(path, **journal)
    j.start_run("test", "x", {})
    broker = PeekingBroker(path, cfg)
    eng = Engine(cfg, "test0001", broker, j)
    for day, px in (("2024-06-03", 30.0), ("2024-06-04", 31.0)):  # +1: buy SOXL; it fills, its stop goes out
        t = pd.Timestamp(day)
        eng.step(
            t, t.value // 86_400_000_000_000, {"SOXL": (px, px, px, px), "SOXS": (9.0, 9.0, 9.0, 9.0)}, 1
        )
    j.close()
    return broker.seen


def test_an_intent_is_committed_before_the_broker_is_asked(tmp_path):
    seen = _entry_and_stop(tmp_path)
    assert [k.split("-")[-1] for k in seen] == ["open", "stop"]
    assert all(row is not None and row[0] == "intent" and row[1] > 0 for row in seen.values()), seen
    # a backtest's journal writes in one transaction: the broker sees nothing yet (nothing to lose there)
    assert set(_entry_and_stop(tmp_path, buffered=True).values()) == {None}
