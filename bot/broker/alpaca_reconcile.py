"""Start-up: what the broker holds after a restart. Our open orders (ids `sx-<set_id>-...`, read back with
`parse_cid`) are tracked again so their fills reach the engine, fills made while the bot was down are
queued once, and anything not ours is reported and left alone. Also the plain account reads (cash,
positions) the driver uses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from bot.broker.alpaca_book import OrderBook
from bot.broker.alpaca_retry import RestRetry
from bot.broker.alpaca_types import EPS, TERMINAL, num, ny_time
from bot.core.events import Intent, OrderIntent, OrderType, Side
from bot.core.ids import PREFIX


@dataclass(frozen=True, slots=True)
class ParsedCid:
    set_id: str
    symbol: str
    signal_ts: pd.Timestamp  # naive UTC wall time, as written into the id
    intent: Intent
    revision: int


def parse_cid(cid: str) -> ParsedCid | None:
    """Inverse of bot.core.ids.client_order_id for ids this bot made; None for anyone else's."""
    parts = cid.split("-")
    if len(parts) not in (5, 6) or parts[0] != PREFIX:
        return None
    try:
        ts = pd.Timestamp(pd.to_datetime(parts[3], format="%Y%m%d%H%M"))
        intent = Intent(parts[4])
        rev = int(parts[5][1:]) if len(parts) == 6 and parts[5].startswith("r") else 0
    except (ValueError, TypeError):
        return None
    return ParsedCid(parts[1], parts[2], ts, intent, rev)


@dataclass
class Reconciliation:
    """What the broker holds at start. Positions are {symbol: (qty, avg_entry_price)}. `ours`: our open
    orders; `missed`: our finished orders with fills the journal lacks (queued for `drain`, in fill
    order); `found`: broker status of each looked-up id; `not_sent`: looked-up ids the broker never
    had; `unknown`: ids the broker could not be asked about."""

    positions: dict[str, tuple[float, float]] = field(default_factory=dict)
    ours: list[OrderIntent] = field(default_factory=list)
    foreign_orders: list[str] = field(default_factory=list)
    cash: float = 0.0
    equity: float = 0.0
    missed: list[OrderIntent] = field(default_factory=list)
    found: dict[str, str] = field(default_factory=dict)
    not_sent: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


class Reconciler:
    """Reads the account and our orders at the broker into the book (see `reconcile`)."""

    def __init__(self, client: TradingClient, book: OrderBook, rest: RestRetry) -> None:
        self.client = client
        self.book = book
        self.rest = rest

    def cash(self) -> float:
        return num(self.rest.get(self.client.get_account).get("cash"))

    def positions(self) -> dict[str, tuple[float, float]]:
        """{symbol: (qty, avg_entry_price)} of everything held at the broker."""
        return {
            str(p["symbol"]): (num(p.get("qty")), num(p.get("avg_entry_price")))
            for p in self.rest.get(self.client.get_all_positions)
        }

    def reconcile(
        self,
        set_id: str,
        known: Mapping[str, float] | None = None,
        lookup: Iterable[str] = (),
        since: pd.Timestamp | None = None,
    ) -> Reconciliation:
        """See `AlpacaBroker.reconcile`."""
        known = known or {}
        prefix = f"{PREFIX}-{set_id}-"
        rec = Reconciliation()
        acct = self.rest.get(self.client.get_account)
        rec.cash, rec.equity = num(acct.get("cash")), num(acct.get("equity"))
        rec.positions = self.positions()
        orders = self.rest.get(
            lambda: self.client.get_orders(
                GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500, nested=True)
            )
        )
        for o in orders:
            self._open(o, prefix, known, rec)
        closed: dict[str, dict[str, Any]] = {}
        if since is not None:  # nested: an OCO's stop leg comes under its take-profit parent
            after = since.to_pydatetime()
            req = GetOrdersRequest(status=QueryOrderStatus.CLOSED, limit=500, after=after, nested=True)
            closed = _closed_ours(self.rest.get(lambda: self.client.get_orders(req)), prefix)
        done = self._looked_up(lookup, closed, rec)
        for cid, o in closed.items():
            if cid not in self.book.orders:
                done.setdefault(cid, o)
        self._finished(done, known, rec)
        return rec

    def _open(self, o: dict[str, Any], prefix: str, known: Mapping[str, float], rec: Reconciliation) -> None:
        """One open order at the broker: ours is tracked again (an OCO with its stop leg), others listed."""
        book = self.book
        cid = str(o.get("client_order_id", ""))
        if not cid.startswith(prefix):
            rec.foreign_orders.append(
                f"{o.get('side')} {o.get('qty')} {o.get('symbol')} {o.get('type')} ({cid})"
            )
            return
        intent = _intent_from_order(o)
        tr = book.track(intent)
        legs = [leg for leg in o.get("legs") or () if isinstance(leg, dict)]
        if o.get("order_class") == "oco" and legs:
            leg = legs[0]
            stop_cid = _oco_stop_cid(cid, leg, prefix)
            st = book.track(_intent_from_order({**leg, "client_order_id": stop_cid}, Intent.STOP))
            st.oco_with, tr.oco_with = cid, stop_cid
            st.filled_qty = known.get(stop_cid, 0.0)
            rec.ours.append(st.intent)
        book.register(tr, o)
        tr.filled_qty = known.get(cid, 0.0)  # a later poll delivers only what the journal lacks
        tr.filled_value = tr.filled_qty * num(o.get("filled_avg_price"))
        rec.ours.append(tr.intent)

    def _looked_up(
        self, lookup: Iterable[str], closed: dict[str, dict[str, Any]], rec: Reconciliation
    ) -> dict[str, dict[str, Any]]:
        """The broker's answer for each journaled id never seen answered; the ones it has are returned."""
        done: dict[str, dict[str, Any]] = {}
        for cid in dict.fromkeys(lookup):
            if cid in self.book.orders:
                rec.found[cid] = "open"
                continue
            if cid in closed:  # also an OCO stop leg, which no lookup by the engine's id finds
                rec.found[cid] = str(closed[cid].get("status"))
                done[cid] = closed[cid]
                continue
            try:
                o = self.rest.lookup(cid)
            except TimeoutError:
                rec.unknown.append(cid)
                continue
            if o is None:
                rec.not_sent.append(cid)
                continue
            rec.found[cid] = str(o.get("status"))
            done[cid] = o
        return done

    def _finished(
        self, done: dict[str, dict[str, Any]], known: Mapping[str, float], rec: Reconciliation
    ) -> None:
        """Orders found outside the open listing: a working one is tracked, a finished one with fills
        beyond `known` has them queued for `drain` in fill order."""
        book = self.book
        for cid, o in done.items():
            if str(o.get("status")) not in TERMINAL:  # working after all: track it like the listed ones
                tr = book.track(_intent_from_order(o))
                book.register(tr, o)
                tr.filled_qty = known.get(cid, 0.0)
                tr.filled_value = tr.filled_qty * num(o.get("filled_avg_price"))
                rec.ours.append(tr.intent)
        late = [
            o
            for cid, o in done.items()
            if str(o.get("status")) in TERMINAL and num(o.get("filled_qty")) > known.get(cid, 0.0) + EPS
        ]
        for o in sorted(late, key=lambda o: ny_time(o.get("filled_at") or o.get("updated_at"))):
            cid = str(o.get("client_order_id"))
            tr = book.track(_intent_from_order(o))
            tr.filled_qty = known.get(cid, 0.0)
            tr.filled_value = tr.filled_qty * num(o.get("filled_avg_price"))
            book.apply(o, "poll")  # queues the missing fill (and the order's end)
            rec.missed.append(tr.intent)


def _oco_stop_cid(parent_cid: str, leg: Mapping[str, Any], prefix: str) -> str:
    """The engine's id of an OCO exit's stop leg. Once a trailing raise renamed it, the leg carries it;
    before that the leg has the broker's id, and the engine knows it as the parent's '...-stop'."""
    leg_cid = str(leg.get("client_order_id", ""))
    if leg_cid.startswith(prefix):
        return leg_cid
    return "-".join([*parent_cid.split("-")[:4], Intent.STOP.value])  # sx-set-SYM-stamp-stop


def _closed_ours(orders: Iterable[dict[str, Any]], prefix: str) -> dict[str, dict[str, Any]]:
    """Our finished orders from a nested listing, by the engine's ids: each of our orders without its
    legs, and each OCO stop leg on its own under the id the engine knows it by, so that a stop-leg or
    take-profit fill made while the bot was down is seen exactly once. A leg a replaced parent still
    lists is taken once."""
    out: dict[str, dict[str, Any]] = {}
    for o in orders:
        cid = str(o.get("client_order_id", ""))
        if not cid.startswith(prefix):
            continue
        out.setdefault(cid, {**o, "legs": None})
        if o.get("order_class") == "oco":
            for leg in (leg for leg in o.get("legs") or () if isinstance(leg, dict)):
                stop_cid = _oco_stop_cid(cid, leg, prefix)
                out.setdefault(stop_cid, {**leg, "client_order_id": stop_cid})
    return out


def _intent_from_order(o: dict[str, Any], intent: Intent | None = None) -> OrderIntent:
    cid = str(o.get("client_order_id", ""))
    parsed = parse_cid(cid)
    kind = intent or (parsed.intent if parsed else Intent.STOP)
    otype = str(o.get("type") or o.get("order_type") or "market")
    return OrderIntent(
        cid,
        ny_time(o.get("created_at")),
        str(o.get("symbol")),
        Side.BUY if o.get("side") == "buy" else Side.SELL,
        num(o.get("qty")),
        OrderType.STOP if otype == "stop" else OrderType.LIMIT if otype == "limit" else OrderType.MARKET,
        kind,
        "found at the broker on start",
        stop_price=num(o.get("stop_price")) or None,
        limit_price=num(o.get("limit_price")) or None,
    )
