"""What the journal remembers, read back for a restart: the fills already recorded (so a broker fill is
journaled once), the orders sent but never seen answered (to look up by client_order_id), the order
intents as the engine made them (their time fixes the ids of later protective orders) and the
position the fills add up to.

The broker stays the source of truth: the driver compares this with what the broker holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bot.core.events import ExitReason, Intent, OrderIntent, OrderType, Side
from bot.core.ids import PREFIX
from bot.data.calendar import TZ
from bot.journal.journal import UNANSWERED, Journal

FINAL = {"filled", "canceled", "expired", "rejected", "replaced", "done_for_day"}
EPS = 1e-9


@dataclass(frozen=True, slots=True)
class HeldPosition:
    """A position as the journal's fills add it up."""

    symbol: str
    qty: float
    entry_price: float
    entry_time: pd.Timestamp
    entry_cid: str
    commission: float


@dataclass
class JournalBooks:
    fills: dict[str, float] = field(default_factory=dict)  # filled qty per client_order_id, every run
    pending: list[str] = field(default_factory=list)  # unanswered in an earlier run
    intents: dict[str, OrderIntent] = field(default_factory=dict)  # the latest journaled intent per id
    positions: dict[str, HeldPosition] = field(default_factory=dict)
    last_fill: pd.Timestamp | None = None
    first_order: pd.Timestamp | None = None

    def since(self) -> pd.Timestamp | None:
        """From when the broker's finished orders may hold fills the journal lacks (a week's margin)."""
        t = self.last_fill if self.last_fill is not None else self.first_order
        return None if t is None else t - pd.Timedelta(days=7)


def _stamp(text: str) -> pd.Timestamp:
    t = pd.Timestamp(text)
    return t.tz_convert(TZ) if t.tzinfo is not None else t


def _exit_reason(intent: Intent, reason: str) -> ExitReason | None:
    """The journal keeps the reason text, not the enum: the engine's words map back to it."""
    if intent is Intent.STOP:
        return ExitReason.STOP_LOSS
    if intent is Intent.TAKE_PROFIT:
        return ExitReason.TAKE_PROFIT
    if intent is not Intent.CLOSE:
        return None
    if reason.startswith("direction"):
        return ExitReason.SIGNAL
    if "max hold" in reason:
        return ExitReason.MAX_HOLD
    return ExitReason.RISK


def read_books(journal: Journal, set_id: str) -> JournalBooks:
    """The journal's view of this strategy set's orders, fills and position (all runs before this one)."""
    like = f"{PREFIX}-{set_id}-%"
    books = JournalBooks()
    rows = journal.db.execute(
        "SELECT client_order_id, ts, symbol, side, qty, type, intent, stop_price, limit_price, reason, "
        "status, run_id FROM orders WHERE client_order_id LIKE ? ORDER BY run_id, rowid",
        (like,),
    ).fetchall()
    for cid, ts, sym, side, qty, otype, intent, stop, limit, reason, status, run_id in rows:
        kind = Intent(intent)
        books.intents[cid] = OrderIntent(
            cid, _stamp(ts), sym, Side(side), float(qty), OrderType(otype), kind, reason or "",
            stop_price=stop, limit_price=limit, exit_reason=_exit_reason(kind, reason or ""),
        )  # fmt: skip
        if status in UNANSWERED and run_id != journal.run_id:
            books.pending.append(cid)
        t = books.intents[cid].ts
        t = t.tz_localize(TZ) if t.tzinfo is None else t
        books.first_order = t if books.first_order is None or t < books.first_order else books.first_order
    held: dict[str, list] = {}
    for cid, ts, sym, side, qty, price, commission in journal.db.execute(
        "SELECT client_order_id, ts, symbol, side, qty, price, commission FROM fills "
        "WHERE client_order_id LIKE ? ORDER BY rowid",
        (like,),
    ).fetchall():
        books.fills[cid] = books.fills.get(cid, 0.0) + qty
        t = _stamp(ts)
        books.last_fill = t if books.last_fill is None or t > books.last_fill else books.last_fill
        p = held.get(sym)
        if side == Side.BUY.value:
            if p is None or p[0] <= EPS:
                held[sym] = [qty, qty * price, t, cid, commission or 0.0]
            else:
                p[0] += qty
                p[1] += qty * price
                p[4] += commission or 0.0
        elif p is not None:
            avg = p[1] / p[0] if p[0] > EPS else 0.0
            p[0] -= qty
            p[1] = p[0] * avg
    for sym, (qty, value, t, cid, commission) in held.items():
        if qty > EPS:
            books.positions[sym] = HeldPosition(sym, qty, value / qty, t, cid, commission)
    books.pending = list(dict.fromkeys(c for c in books.pending if c not in _answered(rows, journal.run_id)))
    return books


def _answered(rows: list[tuple], run_id: int) -> set[str]:
    """Ids whose latest row (any run) already carries a final status: nothing left to look up."""
    latest: dict[str, str] = {}
    for r in rows:
        latest[r[0]] = r[10]
    return {cid for cid, status in latest.items() if status in FINAL or status == "not_sent"}


__all__ = ["UNANSWERED", "HeldPosition", "JournalBooks", "read_books"]
