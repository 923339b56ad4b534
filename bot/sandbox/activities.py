"""Account activities (GET /v2/account/activities[/{activity_type}]): every execution as a FILL activity,
shaped and filtered as Alpaca's Trading API serves them (OpenAPI `TradingActivities`), so a client can
learn its fills from the account rather than from each order. The sandbox has no dividends, fees or
transfers: asking for those types answers an empty list, as an account without them would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from bot.sandbox.accounts import dec
from bot.sandbox.clock import rfc3339, to_utc
from bot.sandbox.orders import ApiError, Order

# Alpaca's ActivityType enum (trading-api.json); only FILL ever has entries here.
ACTIVITY_TYPES = (
    "FILL", "TRANS", "MISC", "ACATC", "ACATS", "CFEE", "CGD", "CSD", "CSW", "DIV", "DIVCGL", "DIVCGS",
    "DIVFEE", "DIVFT", "DIVNRA", "DIVROC", "DIVTW", "DIVTXEX", "FEE", "INT", "INTNRA", "INTTW", "JNL",
    "JNLC", "JNLS", "MA", "NC", "OPASN", "OPCA", "OPCSH", "OPEXC", "OPEXP", "OPTRD", "PTC", "PTR", "REO",
    "REORG", "SPIN", "SPLIT", "FOPT", "OCT",
)  # fmt: skip
MAX_PAGE = 100


@dataclass(frozen=True)
class Execution:
    """One fill of one order, as the account remembers it."""

    id: str  # "<UTC yyyymmddHHMMSSfff>::<execution id>", Alpaca's activity id (and page token)
    at: pd.Timestamp
    order_id: str
    symbol: str
    side: str
    qty: float
    price: float
    cum_qty: float
    leaves_qty: float
    full: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "activity_type": "FILL",
            "transaction_time": rfc3339(self.at),
            "type": "fill" if self.full else "partial_fill",
            "price": dec(self.price, 6),
            "qty": dec(self.qty),
            "side": self.side,
            "symbol": self.symbol,
            "leaves_qty": dec(self.leaves_qty),
            "order_id": self.order_id,
            "cum_qty": dec(self.cum_qty),
            "order_status": "filled" if self.full else "partially_filled",
        }


class Activities:
    """The account's executions, oldest first."""

    def __init__(self) -> None:
        self.executions: list[Execution] = []

    def record(self, o: Order, qty: float, price: float, at: pd.Timestamp, execution_id: str) -> None:
        stamp = to_utc(at).strftime("%Y%m%d%H%M%S") + f"{to_utc(at).microsecond // 1000:03d}"
        self.executions.append(
            Execution(f"{stamp}::{execution_id}", at, o.id, o.symbol, o.side, qty, price, o.filled_qty,
                      o.remaining, o.remaining <= 1e-9)
        )  # fmt: skip

    def query(self, q: dict[str, str], activity_type: str | None = None) -> list[dict[str, Any]]:
        """The page of activities that the query string `q` asks for (see the OpenAPI parameters)."""
        types = [activity_type.upper()] if activity_type else _csv(q.get("activity_types"))
        for t in types:
            if t not in ACTIVITY_TYPES:
                raise ApiError(422, 42210000, f"invalid activity type: {t!r}")
        if q.get("category") and types and not activity_type:
            raise ApiError(422, 42210000, "category can not be used with activity_types")
        if q.get("category") not in (None, "", "trade_activity", "non_trade_activity"):
            raise ApiError(422, 42210000, f"invalid category: {q['category']!r}")
        direction = q.get("direction") or "desc"
        if direction not in ("asc", "desc"):
            raise ApiError(422, 42210000, f"invalid direction: {direction!r}")
        size = _page_size(q.get("page_size"))
        wants_fills = ("FILL" in types) if types else q.get("category") != "non_trade_activity"
        if not wants_fills:
            return []
        rows = list(self.executions)
        if q.get("order_id"):
            rows = [e for e in rows if e.order_id == q["order_id"]]
        date, after, until = (_when(q.get(k), k) for k in ("date", "after", "until"))
        if date is not None:
            rows = [e for e in rows if to_utc(e.at).normalize() == date.normalize()]
        if after is not None:
            rows = [e for e in rows if to_utc(e.at) > after]
        if until is not None:
            rows = [e for e in rows if to_utc(e.at) < until]
        if direction == "desc":
            rows.reverse()
        token = q.get("page_token")
        if token:
            ids = [e.id for e in rows]
            rows = rows[ids.index(token) + 1 :] if token in ids else []
        return [e.to_json() for e in rows[:size]]


def _csv(v: str | None) -> list[str]:
    return [s.strip().upper() for s in (v or "").split(",") if s.strip()]


def _page_size(v: str | None) -> int:
    if v in (None, ""):
        return MAX_PAGE
    try:
        n = int(v)
    except ValueError:
        raise ApiError(422, 42210000, f"invalid page_size: {v!r}") from None
    if not 1 <= n <= MAX_PAGE:
        raise ApiError(422, 42210000, f"page_size must be between 1 and {MAX_PAGE}")
    return n


def _when(v: str | None, name: str) -> pd.Timestamp | None:
    """YYYY-MM-DD or an RFC 3339 time (UTC when it has no offset)."""
    if v in (None, ""):
        return None
    try:
        return to_utc(v)
    except (ValueError, TypeError):
        raise ApiError(422, 42210000, f"invalid {name}: {v!r}") from None
