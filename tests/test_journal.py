"""The journal as a restart reads and corrects it."""

from __future__ import annotations

import pandas as pd

from bot.core.events import Intent, OrderIntent, OrderType, Side
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
    j.start_run("paper-alpaca", "s", {})  # the restart: order_status would touch only this run's rows
    j.mark_unanswered({"sent": "canceled", "journaled": "not_sent", "done": "canceled", "absent": "x"})
    rows = dict(j.db.execute("SELECT client_order_id, status FROM orders").fetchall())
    assert rows == {"sent": "canceled", "journaled": "not_sent", "done": "filled"}
    j.close()
