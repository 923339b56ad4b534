"""Start-up: what the broker holds after a restart. Our open orders (ids `sx-<set_id>-...`, read back with
`parse_cid`) are tracked again so their fills reach the engine, fills made while the bot was down are
queued once, and anything not ours is reported and left alone. Also the plain account reads (cash,
positions) the driver uses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pandas as pd
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from bot.broker.alpaca_book import OrderBook
from bot.broker.alpaca_retry import RestRetry
from bot.broker.alpaca_types import EPS, TERMINAL, num, ny_time, stop_leg
from bot.core.events import Intent, OrderIntent, OrderType, Side
from bot.core.ids import PREFIX
from bot.core.log import get

log = get("soxbot.alpaca")


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
        acct, rec.positions, orders, listed = self._snapshot(since)
        rec.cash, rec.equity = num(acct.get("cash")), num(acct.get("equity"))
        for o in orders:
            self._open(o, prefix, known, rec)
        closed = _closed_ours([*listed, *orders], prefix)  # + legs replaced under a working OCO
        done = self._looked_up(lookup, closed, rec)
        for cid, o in closed.items():
            if cid not in self.book.orders:
                done.setdefault(cid, o)
        self._finished(done, known, rec)
        return rec

    def _snapshot(self, since: pd.Timestamp | None, tries: int = 4) -> tuple[Any, ...]:
        """The account, positions, open orders and orders closed after `since`, as one consistent view:
        read again while the positions read after the orders differ from those read before (a fill
        landed in between, e.g. a stop that triggered during the read: the orders would say it filled
        while the positions still held the shares)."""
        open_req = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500, nested=True)
        for attempt in range(tries):
            acct = self.rest.get(self.client.get_account, "the account")
            before = self.positions()
            orders = self.rest.get(partial(self.client.get_orders, open_req), "open orders")
            closed: list[dict[str, Any]] = []
            if since is not None:  # nested: an OCO's stop leg comes under its take-profit parent
                req = GetOrdersRequest(
                    status=QueryOrderStatus.CLOSED, limit=500, after=since.to_pydatetime(), nested=True
                )
                closed = self.rest.get(partial(self.client.get_orders, req), "closed orders")
            after = self.positions()
            if after == before:
                return acct, after, orders, closed
            log.info("positions changed while the orders were read: reading again", attempt=attempt + 1)
        return self.rest.get(self.client.get_account, "the account"), after, orders, closed

    def fills_after(self, after: pd.Timestamp | None, set_id: str, known: Mapping[str, float]) -> int:
        """Settle from the account's fills: every execution after `after` (Alpaca's FILL activities) on
        an order of ours whose fill is neither delivered by the book nor in `known` (the journal's filled
        qty per client_order_id) is queued for `drain`. For a difference between the engine's and the
        broker's positions that a poll of the orders did not explain (an order the book no longer
        follows, or one it could not read). Returns the number of orders settled."""
        prefix = f"{PREFIX}-{set_id}-"
        settled = 0
        for oid, cum in self._executions(after).items():
            cid = self.book.by_broker.get(oid)
            tr = self.book.orders.get(cid) if cid else None
            if tr is not None:
                if cum > tr.filled_qty + EPS:
                    self.book.refresh(tr)
                    settled += 1
                continue
            o = self.rest.get_order(oid)
            cid = str((o or {}).get("client_order_id", ""))
            if o is None or not cid.startswith(prefix):
                continue
            if num(o.get("filled_qty")) <= known.get(cid, 0.0) + EPS:
                continue
            tr = self.book.track(_intent_from_order(o))
            tr.filled_qty = known.get(cid, 0.0)
            tr.filled_value = tr.filled_qty * num(o.get("filled_avg_price"))
            self.book.apply(o, "poll")
            settled += 1
        return settled

    def _executions(self, after: pd.Timestamp | None) -> dict[str, float]:
        """{broker order id: filled qty so far} from the account's FILL activities after `after`."""
        params: dict[str, Any] = {"direction": "asc", "page_size": 100}
        if after is not None:
            params["after"] = after.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
        out: dict[str, float] = {}
        while True:
            read = partial(self.client.get, "/account/activities/FILL", dict(params))
            rows = self.rest.get(read, "the account's fills") or []
            for a in rows:
                oid = str(a.get("order_id"))
                out[oid] = max(out.get(oid, 0.0), num(a.get("cum_qty")))
            if len(rows) < params["page_size"]:
                return out
            params["page_token"] = rows[-1]["id"]

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
        leg = stop_leg(o)
        if o.get("order_class") == "oco" and leg is not None:
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
    """Our orders from a nested listing, by the engine's ids: each of our orders without its legs, and
    each OCO stop leg on its own under the id the engine knows it by, so that a stop-leg or take-profit
    fill made while the bot was down is seen exactly once, and a leg replaced since (still listed under
    its OCO, working or not) is found by the id the journal has for it. A leg a replaced parent still
    lists is taken once; orders tracked as working are left out by the caller."""
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
