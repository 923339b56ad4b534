"""The Alpaca broker adapter: the engine's Broker protocol over alpaca-py's REST and trade_updates clients.

Rules it keeps (research: /work/shared/research/alpaca-api.md, peers.md pains 1-5, 9):
- Every order carries the engine's deterministic client_order_id. alpaca-py retries every request,
  POST included, on 429/504; that retry is switched off (`_retry = 0`) so the SDK can never double an
  order, and every request gets a timeout. An ambiguous outcome is resolved by looking the id up, never
  by sending blindly (alpaca_send, alpaca_retry, alpaca_errors).
- Protective orders live at the broker, so a dead bot still has them: the stop is a GTC stop right
  after the entry fill; with a take-profit both become one OCO exit (alpaca_protect); trailing raises
  PATCH the stop with a new client_order_id (alpaca_replace). An OCO's stop leg is learned from the
  order read with its legs (a look-up by client_order_id has none); a stop refused for "insufficient
  qty" is first checked against our own working stop, which is moved instead of the engine flattening.
- Order state comes from the trade_updates stream (a background thread that only queues, alpaca_stream),
  with REST polling when the stream is down, reconnected or silent. One reconciliation function serves
  both (`OrderBook.apply`, alpaca_book): it compares the broker's filled_qty with what was delivered and
  emits the difference once.
- Every wait on the driver's thread (a retry's backoff, a sell waiting for our other orders to end)
  logs one line saying what it waits for (alpaca_retry.pause).
- Nothing reaches the engine from another thread: events are queued and delivered by `drain()`,
  which the engine's `on_bar` and the driver call on the driver's thread.

This module wires those parts together and is the one other modules import from; the names they use
are re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from alpaca.trading.client import TradingClient

from bot.broker.alpaca_book import OrderBook, StatusListener
from bot.broker.alpaca_errors import DUPLICATE_CODE, error_kind, error_message
from bot.broker.alpaca_orders import order_request
from bot.broker.alpaca_pretrade import PreTrade
from bot.broker.alpaca_protect import Protector
from bot.broker.alpaca_reconcile import ParsedCid, Reconciler, Reconciliation, parse_cid
from bot.broker.alpaca_replace import StopMover
from bot.broker.alpaca_retry import RestRetry
from bot.broker.alpaca_send import Sender
from bot.broker.alpaca_setup import (
    LIVE_HOST,
    AlpacaSetupError,
    check_endpoint,
    credentials,
    is_live_endpoint,
    stream_url,
)
from bot.broker.alpaca_splits import SplitWatch
from bot.broker.alpaca_stream import TradeUpdates, _Stream
from bot.broker.alpaca_types import EPS, NY, TERMINAL, Stats, Tracked, price_str
from bot.broker.base import ALREADY_FILLED, BarTuple, FillListener, UpdateListener
from bot.core.alpaca_http import harden
from bot.core.config import BrokerConfig
from bot.core.events import Intent, OrderCanceled, OrderFilled, OrderIntent, Side
from bot.core.log import get

__all__ = [
    "DUPLICATE_CODE",
    "EPS",
    "LIVE_HOST",
    "NY",
    "TERMINAL",
    "AlpacaBroker",
    "AlpacaSetupError",
    "ParsedCid",
    "Reconciliation",
    "Stats",
    "Tracked",
    "check_endpoint",
    "credentials",
    "error_kind",
    "error_message",
    "is_live_endpoint",
    "parse_cid",
    "price_str",
    "stream_url",
]

log = get("soxbot.alpaca")


class AlpacaBroker:
    """The engine's Broker over Alpaca. It owns the engine-facing calls and the delivery of events; the
    order book, sending, moving, protective orders, pre-trade checks, start-up reconciliation and the
    stream are the helpers it wires together in `__init__`."""

    kind = "alpaca"

    def __init__(
        self,
        cfg: BrokerConfig,
        live_flag: bool = False,
        *,
        timeout: float = 10.0,
        poll_interval: float = 15.0,
        down_poll_interval: float = 0.5,
        backoff: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0),
        max_sends: int = 4,
        fractional: bool = False,
        use_stream: bool = True,
        on_status: StatusListener | None = None,
    ) -> None:
        paper = check_endpoint(cfg, live_flag)
        key, secret = credentials(cfg)
        self.paper = paper
        self.client = TradingClient(key, secret, paper=paper, raw_data=True, url_override=cfg.base_url)
        harden(self.client, timeout)
        self.stream_url = stream_url(cfg.base_url, cfg.stream_url)
        self.poll_interval = poll_interval
        self.down_poll_interval = down_poll_interval
        self.backoff = backoff
        self.max_sends = max_sends
        self.fractional = fractional
        self.stats = Stats()
        self._on_fill: FillListener = lambda f: None
        self._on_update: UpdateListener = lambda u: None
        self._delivering = False
        self._last_poll = time.monotonic()
        self.rest = RestRetry(self.client, backoff, self.stats)
        self.book = OrderBook(self.rest, self.stats, on_status)
        self.sender = Sender(self.client, self.book, self.rest, self.stats, backoff, max_sends)
        self.mover = StopMover(self.client, self.book, self.rest, self.stats, backoff)
        self.protect = Protector(self.book, self.sender, self.mover)
        self.pretrade = PreTrade(self.client, self.book, fractional)
        self.reconciler = Reconciler(self.client, self.book, self.rest)
        self.splits = SplitWatch(self.client, self.rest)  # a split behind a stop the broker ended
        self.updates = TradeUpdates(key, secret, self.stream_url, self.stats, use_stream)

    @property
    def on_status(self) -> StatusListener | None:
        """Called with (client_order_id, status, broker_id, detail): an order placed, a move refused."""
        return self.book.on_status

    @on_status.setter
    def on_status(self, fn: StatusListener | None) -> None:
        self.book.on_status = fn

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the trade_updates thread (it only queues; `drain()` applies)."""
        self.updates.start()

    def close(self) -> None:
        """Stop listening. Broker-side orders (the protective stops) are left in place on purpose."""
        self.updates.close()

    @property
    def stream_connected(self) -> bool:
        return self.updates.connected

    @property
    def _stream(self) -> _Stream | None:
        return self.updates.stream

    # -- Broker protocol ---------------------------------------------------------------------------------
    def set_listeners(self, on_fill: FillListener, on_update: UpdateListener) -> None:
        self._on_fill = on_fill
        self._on_update = on_update

    def on_bar(self, ts: pd.Timestamp, bars: Mapping[str, BarTuple]) -> None:
        for sym, bar in bars.items():
            self.pretrade.last_price[sym] = bar[3]
        self.drain()

    def open_orders(self) -> list[OrderIntent]:
        return self.book.open_intents()

    def submit(self, intent: OrderIntent) -> None:
        if intent.intent in (Intent.STOP, Intent.TAKE_PROFIT):
            # Held until the engine's callback returns: a stop and a take-profit sent together become one OCO.
            self.protect.pending.append(intent)
            if not self._delivering:
                self.protect.flush()
            return
        tr = self.book.track(intent)
        if intent.side is Side.SELL:
            if not self.pretrade.prepare_sell(tr, self.cancel):
                return
        elif not self.pretrade.check_buy(tr):
            return
        self.sender.send(tr, order_request(tr.intent))  # as checked: floored to whole shares, capped to held

    def cancel(self, client_order_id: str) -> None:
        self.splits.asked_cancel(client_order_id)
        self.protect.drop(client_order_id)
        tr = self.book.get(client_order_id)
        if tr is None or tr.done:
            return
        if tr.broker_id is None and not self.sender.resolve(tr):
            return
        self.rest.cancel(tr.broker_id)
        self.book.refresh(tr)

    def replace_stop(self, client_order_id: str, new: OrderIntent) -> None:
        """Move a live protective order (PATCH: new stop/limit price and/or qty, new client_order_id).
        A refused move keeps the old order working and routes the new id to it."""
        old = self.book.get(client_order_id)
        if old is not None and old.broker_id is None and not old.done:
            self.book.look(old)  # an OCO stop leg never seen, or a submit still unresolved: look first
        if old is None or old.broker_id is None or old.done:
            if old is not None and old.done and old.filled_qty > 0:
                self.book.out.append(OrderCanceled(new.client_order_id, new.ts, new.symbol, ALREADY_FILLED))
                return
            self.submit(new)  # nothing live to move: place it afresh
            return
        self.mover.move(old, new)

    # -- delivery ----------------------------------------------------------------------------------------
    def drain(self, poll: bool | None = None) -> int:
        """Apply queued stream updates, poll REST when needed, deliver events to the engine. Returns the
        number of events delivered. Call it on the driver's thread only."""
        if self._delivering:
            return 0
        self._delivering = True
        n = 0
        try:
            for order in self.updates.take():
                self.book.apply(order, "stream")
            if poll or (poll is None and self._poll_due()):
                self.poll()
            out = self.book.out
            while out:
                ev = out.popleft()
                n += 1
                if isinstance(ev, OrderFilled):
                    self._on_fill(ev)
                else:
                    if isinstance(ev, OrderCanceled):  # a split first, if one ended this stop
                        split = self.splits.on_canceled(ev, self.book.get(ev.client_order_id))
                        if split is not None:
                            self._on_update(split)
                    self._on_update(ev)
                self.protect.flush()
            self.protect.flush()
        finally:
            self._delivering = False
        return n

    def _poll_due(self) -> bool:
        if not self.book.live():
            return False
        if self.updates.need_poll or self.book.unresolved():
            return True
        since = time.monotonic() - self._last_poll
        if self.updates.stream is None or not self.stream_connected:
            return since >= self.down_poll_interval
        return since >= self.poll_interval

    def poll(self) -> None:
        """REST reconciliation of every live order (the stream's fallback)."""
        self.updates.need_poll = False
        self._last_poll = time.monotonic()
        self.stats.polls += 1
        for tr in list(self.book.orders.values()):
            if tr.done:
                continue
            if tr.broker_id is None:
                self.sender.resolve(tr)
            else:
                self.book.refresh(tr)

    # -- account and start-up ----------------------------------------------------------------------------
    def asset(self, symbol: str) -> dict[str, Any] | None:
        return self.pretrade.asset(symbol)

    def reconcile(
        self,
        set_id: str,
        known: Mapping[str, float] | None = None,
        lookup: Iterable[str] = (),
        since: pd.Timestamp | None = None,
    ) -> Reconciliation:
        """Open orders and positions at the broker. Our open orders (ids `sx-<set_id>-...`) are tracked
        again so their fills reach the engine; anything else is reported and left alone.

        `known` is what the journal already holds (filled qty per client_order_id): fills beyond it, on
        the ids in `lookup` (journaled but never seen answered) and on our orders closed after `since`,
        are queued for `drain()` in fill order, so a fill made while the bot was down is delivered once."""
        return self.reconciler.reconcile(set_id, known, lookup, since)

    def fills_after(self, after: pd.Timestamp | None, set_id: str, known: Mapping[str, float]) -> int:
        """Queue the fills of our orders after `after` that the book and the journal (`known`) lack,
        read from the account's fills; the number of orders settled (see `Reconciler.fills_after`)."""
        return self.reconciler.fills_after(after, set_id, known)

    def cash(self) -> float:
        return self.reconciler.cash()

    def positions(self) -> dict[str, tuple[float, float]]:
        """{symbol: (qty, avg_entry_price)} of everything held at the broker."""
        return self.reconciler.positions()

    def working(self, client_order_id: str) -> bool:
        """True while the order is at the broker and not finished, or its outcome is still being resolved."""
        tr = self.book.get(client_order_id)
        return tr is not None and not tr.done and (tr.broker_id is not None or tr.unresolved)
