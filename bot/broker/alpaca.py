"""The Alpaca broker adapter: the engine's Broker protocol over alpaca-py's REST and trade_updates clients.

Rules it keeps (research: /work/shared/research/alpaca-api.md, peers.md pains 1-5, 9):
- Every order carries the engine's deterministic client_order_id. alpaca-py retries every request,
  POST included, on 429/504; that retry is switched off (`_retry = 0`) so the SDK can never double an
  order, and every request gets a timeout. An ambiguous outcome (timeout, connection error, 5xx, 429)
  is resolved by `get_order_by_client_id`, never by sending blindly; only a 404 there (not created)
  allows a re-send with the SAME id (bounded, with backoff); a 422 "client_order_id must be unique"
  means it was sent already, and the existing order is adopted.
- Protective orders live at the broker, so a dead bot still has them: the stop is a GTC stop right
  after the entry fill; with a take-profit both become one OCO exit (Alpaca refuses two separate
  sells on the same shares); trailing raises PATCH the stop with a new client_order_id.
- Order state comes from the trade_updates stream (a background thread that only queues), with REST
  polling when the stream is down, reconnected or silent. One reconciliation function serves both:
  it compares the broker's filled_qty with what was delivered and emits the difference once.
- Nothing reaches the engine from another thread: events are queued and delivered by `drain()`,
  which the engine's `on_bar` and the driver call on the driver's thread.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import pandas as pd
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
)
from alpaca.trading.stream import TradingStream

from bot.broker.base import ALREADY_FILLED, NOTHING_HELD, BarTuple, FillListener, UpdateListener
from bot.core.alpaca_http import env_keys, harden
from bot.core.config import BrokerConfig
from bot.core.events import Intent, OrderCanceled, OrderFilled, OrderIntent, OrderRejected, OrderType, Side
from bot.core.ids import PREFIX
from bot.core.log import get

LIVE_HOST = "api.alpaca.markets"
NY = "America/New_York"
TERMINAL = {"filled", "canceled", "expired", "rejected", "replaced", "done_for_day"}
DUPLICATE_CODE = 40010001
EPS = 1e-9

log = get("soxbot.alpaca")


class AlpacaSetupError(Exception):
    """The adapter cannot start (keys missing, live endpoint not allowed): worded for the user."""


# -- configuration -----------------------------------------------------------------------------------------
def credentials(cfg: BrokerConfig) -> tuple[str, str]:
    """Keys from the config (SecretStr; also SOXBOT_BROKER__API_KEY) or env APCA_API_KEY_ID/_SECRET_KEY."""
    env_key, env_secret = env_keys()
    key = cfg.api_key.get_secret_value() if cfg.api_key else env_key
    secret = cfg.secret_key.get_secret_value() if cfg.secret_key else env_secret
    if not key or not secret:
        raise AlpacaSetupError(
            "Alpaca keys missing: set APCA_API_KEY_ID and APCA_API_SECRET_KEY in the environment "
            "(or [broker] api_key / secret_key). Paper keys come from the Alpaca dashboard, Paper account."
        )
    return key, secret


def is_live_endpoint(base_url: str) -> bool:
    return (urlparse(base_url).hostname or "").lower() == LIVE_HOST


def check_endpoint(cfg: BrokerConfig, live_flag: bool) -> bool:
    """True for paper. A live endpoint needs `[broker] live = true` AND the --live flag."""
    if is_live_endpoint(cfg.base_url) and not (cfg.live and live_flag):
        raise AlpacaSetupError(
            f"{cfg.base_url} trades real money: it needs `[broker] live = true` and `soxbot run --live`. "
            "For paper use https://paper-api.alpaca.markets (the default)."
        )
    return not (cfg.live and live_flag)


def stream_url(base_url: str, override: str | None = None) -> str:
    """trade_updates URL: http -> ws, https -> wss, plus /stream (as Alpaca's own paper/live URLs)."""
    if override:
        return override
    u = urlparse(base_url)
    scheme = "wss" if u.scheme == "https" else "ws"
    return f"{scheme}://{u.netloc}{u.path.rstrip('/')}/stream"


# -- errors ------------------------------------------------------------------------------------------------
def _api_body(exc: APIError) -> dict[str, Any]:
    try:
        body = json.loads(str(exc))
        return body if isinstance(body, dict) else {}
    except ValueError:
        return {}


def error_kind(exc: BaseException) -> str:
    """'ambiguous' (may or may not have happened), 'duplicate', 'not_found' or 'rejected'."""
    if isinstance(exc, APIError):
        status = exc.status_code
        body = _api_body(exc)
        if status == 422 and (
            body.get("code") == DUPLICATE_CODE or "client_order_id must be unique" in str(body.get("message"))
        ):
            return "duplicate"
        if status == 404:
            return "not_found"
        if status is None or status == 429 or status >= 500:
            return "ambiguous"
        return "rejected"
    if isinstance(exc, requests.RequestException | TimeoutError | ConnectionError):
        return "ambiguous"
    raise exc


def error_message(exc: BaseException) -> str:
    if isinstance(exc, APIError):
        body = _api_body(exc)
        return f"{exc.status_code} {body.get('message', str(exc))}"
    return f"{type(exc).__name__}: {exc}"


# -- client order ids --------------------------------------------------------------------------------------
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


# -- order bookkeeping -------------------------------------------------------------------------------------
@dataclass
class Tracked:
    """One engine order at the broker. `cid` is the engine's id; `broker_cid` differs for an OCO leg."""

    intent: OrderIntent
    broker_id: str | None = None
    filled_qty: float = 0.0
    filled_value: float = 0.0
    done: bool = False
    unresolved: bool = False
    sends: int = 0
    oco_with: str | None = None  # the other engine cid of an OCO exit

    @property
    def cid(self) -> str:
        return self.intent.client_order_id


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


@dataclass
class Stats:
    fills_stream: int = 0
    fills_poll: int = 0
    fills_submit: int = 0
    sends: int = 0
    resends: int = 0
    adopted: int = 0
    ambiguous: int = 0
    polls: int = 0
    reconnects: int = 0


def _f(x: Any) -> float:
    try:
        return float(x) if x not in (None, "") else 0.0
    except (TypeError, ValueError):
        return 0.0


def _ts(value: Any) -> pd.Timestamp:
    t = pd.Timestamp(value) if value else pd.Timestamp.now(tz="UTC")
    return (t.tz_localize("UTC") if t.tzinfo is None else t).tz_convert(NY)


def price_str(p: float) -> float:
    """Alpaca's tick rule: 2 decimals at or above $1, 4 below."""
    return round(p, 2 if p >= 1.0 else 4)


class _Stream(TradingStream):
    """TradingStream that tells us each time it (re)connects, so missed updates are polled for."""

    def __init__(self, key: str, secret: str, url: str, on_connect: Callable[[], None]) -> None:
        super().__init__(key, secret, raw_data=True, url_override=url)
        self._on_connect = on_connect

    async def _start_ws(self) -> None:
        await super()._start_ws()
        self._on_connect()


class AlpacaBroker:
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
        on_status: Callable[[str, str, str | None, str], None] | None = None,
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
        self.on_status = on_status
        self.stats = Stats()
        self._on_fill: FillListener = lambda f: None
        self._on_update: UpdateListener = lambda u: None
        self._orders: dict[str, Tracked] = {}
        self._by_broker: dict[str, str] = {}
        self._alias: dict[str, str] = {}
        self._out: deque[OrderFilled | OrderRejected | OrderCanceled] = deque()
        self._inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self._pending_protect: list[OrderIntent] = []
        self._delivering = False
        self._last_price: dict[str, float] = {}
        self._assets: dict[str, dict[str, Any]] = {}
        self._last_poll = time.monotonic()
        self._need_poll = False
        self._connects = 0
        self._stream: _Stream | None = None
        self._thread: threading.Thread | None = None
        if use_stream:
            self._stream = _Stream(key, secret, self.stream_url, self._connected)
            self._stream.subscribe_trade_updates(self._on_trade_update)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the trade_updates thread (it only queues; `drain()` applies)."""
        if self._stream is not None and self._thread is None:
            self._thread = threading.Thread(target=self._stream.run, name="soxbot-trade-updates", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop listening. Broker-side orders (the protective stops) are left in place on purpose."""
        s = self._stream
        if s is not None and s._loop is not None and s._loop.is_running():
            try:
                import asyncio

                asyncio.run_coroutine_threadsafe(s.stop_ws(), s._loop).result(2)
            except Exception as exc:  # stopping is best effort: the thread is a daemon
                log.debug("stream stop", error=str(exc))

    @property
    def stream_connected(self) -> bool:
        s = self._stream
        return bool(s is not None and s._running and self._thread is not None and self._thread.is_alive())

    def _connected(self) -> None:  # on the stream's thread
        self._connects += 1
        if self._connects > 1:
            self.stats.reconnects += 1
            self._need_poll = True  # updates may have been missed while it was down

    async def _on_trade_update(self, msg: dict[str, Any]) -> None:  # on the stream's thread: queue only
        data = msg.get("data") or {}
        if isinstance(data.get("order"), dict):
            self._inbox.put(data)

    # -- Broker protocol ---------------------------------------------------------------------------------
    def set_listeners(self, on_fill: FillListener, on_update: UpdateListener) -> None:
        self._on_fill = on_fill
        self._on_update = on_update

    def on_bar(self, ts: pd.Timestamp, bars: Mapping[str, BarTuple]) -> None:
        for sym, bar in bars.items():
            self._last_price[sym] = bar[3]
        self.drain()

    def open_orders(self) -> list[OrderIntent]:
        return [t.intent for t in self._orders.values() if not t.done]

    def submit(self, intent: OrderIntent) -> None:
        if intent.intent in (Intent.STOP, Intent.TAKE_PROFIT):
            # Held until the engine's callback returns: a stop and a take-profit sent together become one OCO.
            self._pending_protect.append(intent)
            if not self._delivering:
                self._flush_protect()
            return
        tr = self._track(intent)
        if intent.side is Side.SELL:
            if not self._prepare_sell(tr):
                return
        elif not self._pretrade_buy(tr):
            return
        self._send(tr, self._request(intent))

    def cancel(self, client_order_id: str) -> None:
        self._pending_protect = [p for p in self._pending_protect if p.client_order_id != client_order_id]
        tr = self._get(client_order_id)
        if tr is None or tr.done:
            return
        if tr.broker_id is None and not self._resolve(tr):
            return
        for i in range(len(self.backoff) + 1):
            try:
                self.client.cancel_order_by_id(tr.broker_id)
                break
            except Exception as exc:
                kind = error_kind(exc)
                if kind != "ambiguous":  # 404/422: already terminal; the state below says which
                    break
                self.stats.ambiguous += 1
                if i < len(self.backoff):
                    time.sleep(self.backoff[i])
        self._refresh(tr)

    def replace_stop(self, client_order_id: str, new: OrderIntent) -> None:
        """Move a live protective order (PATCH: new stop/limit price and/or qty, new client_order_id).
        A refused move keeps the old order working and routes the new id to it."""
        old = self._get(client_order_id)
        if old is None or old.broker_id is None or old.done:
            if old is not None and old.done and old.filled_qty > 0:
                self._out.append(OrderCanceled(new.client_order_id, new.ts, new.symbol, ALREADY_FILLED))
                return
            self.submit(new)  # nothing live to move: place it afresh
            return
        fields: dict[str, Any] = {"client_order_id": new.client_order_id}
        if new.type is OrderType.STOP and new.stop_price is not None:
            fields["stop_price"] = price_str(new.stop_price)
        if new.type is OrderType.LIMIT and new.limit_price is not None:
            fields["limit_price"] = price_str(new.limit_price)
        if abs(math.floor(new.qty) - old.intent.qty) > EPS and math.floor(new.qty) >= 1:
            fields["qty"] = math.floor(new.qty)
        req = ReplaceOrderRequest(**fields)
        order: dict[str, Any] | None = None
        for i in range(len(self.backoff) + 1):
            try:
                order = self.client.replace_order_by_id(old.broker_id, req)
                break
            except Exception as exc:
                kind = error_kind(exc)
                if kind == "duplicate":
                    order = self._lookup_quiet(new.client_order_id)
                    break
                if kind != "ambiguous":
                    log.warning(
                        "move refused; the previous order stays", cid=old.cid, reason=error_message(exc)
                    )
                    self._alias[new.client_order_id] = old.cid
                    self._status(new.client_order_id, "replace_refused", None, error_message(exc))
                    self._refresh(old)
                    return
                self.stats.ambiguous += 1
                order = self._lookup_quiet(new.client_order_id)
                if order is not None:
                    break
                self._refresh(old)
                if old.done:  # it filled (or went) meanwhile: nothing left to move
                    self._alias[new.client_order_id] = old.cid
                    return
                if i < len(self.backoff):
                    time.sleep(self.backoff[i])
        if order is None:
            log.warning("move unresolved; the previous order stays", cid=old.cid)
            self._alias[new.client_order_id] = old.cid
            return
        if "qty" not in fields:
            new = _with_qty(new, old.intent.qty)
        tr = Tracked(new, oco_with=old.oco_with)
        self._orders[new.client_order_id] = tr
        if old.oco_with and old.oco_with in self._orders:
            self._orders[old.oco_with].oco_with = new.client_order_id
        for alias, target in list(self._alias.items()):
            if target == old.cid:
                self._alias[alias] = new.client_order_id
        self._register(tr, order)
        self._status(new.client_order_id, "submitted", tr.broker_id)
        old.done = True
        self._out.append(
            OrderCanceled(old.cid, new.ts, old.intent.symbol, f"replaced by {new.client_order_id}")
        )
        self._apply(order, "submit")

    def _lookup_quiet(self, cid: str) -> dict[str, Any] | None:
        try:
            return self._lookup(cid)
        except TimeoutError:
            return None

    # -- delivery ----------------------------------------------------------------------------------------
    def drain(self, poll: bool | None = None) -> int:
        """Apply queued stream updates, poll REST when needed, deliver events to the engine. Returns the
        number of events delivered. Call it on the driver's thread only."""
        if self._delivering:
            return 0
        self._delivering = True
        n = 0
        try:
            while True:
                try:
                    data = self._inbox.get_nowait()
                except queue.Empty:
                    break
                self._apply(data["order"], "stream")
            if poll or (poll is None and self._poll_due()):
                self.poll()
            while self._out:
                ev = self._out.popleft()
                n += 1
                if isinstance(ev, OrderFilled):
                    self._on_fill(ev)
                else:
                    self._on_update(ev)
                self._flush_protect()
            self._flush_protect()
        finally:
            self._delivering = False
        return n

    def _poll_due(self) -> bool:
        live = any(not t.done for t in self._orders.values())
        if not live:
            return False
        if self._need_poll or any(t.unresolved for t in self._orders.values()):
            return True
        since = time.monotonic() - self._last_poll
        if self._stream is None or not self.stream_connected:
            return since >= self.down_poll_interval
        return since >= self.poll_interval

    def poll(self) -> None:
        """REST reconciliation of every live order (the stream's fallback)."""
        self._need_poll = False
        self._last_poll = time.monotonic()
        self.stats.polls += 1
        for tr in list(self._orders.values()):
            if tr.done:
                continue
            if tr.broker_id is None:
                self._resolve(tr)
            else:
                self._refresh(tr)

    # -- reconciliation: the one place broker state becomes engine events --------------------------------
    def _apply(self, order: dict[str, Any], source: str) -> None:
        for leg in order.get("legs") or ():
            if isinstance(leg, dict):
                self._apply(leg, source)
        cid = self._by_broker.get(str(order.get("id")))
        if cid is None:
            cid = order.get("client_order_id")
            tr = self._orders.get(cid) if cid else None
            if tr is None or (tr.broker_id is not None and tr.broker_id != str(order.get("id"))):
                return  # not ours (or an old incarnation of ours)
            self._register(tr, order)
        tr = self._orders[cid]
        if tr.done and tr.filled_qty > 0 and _f(order.get("filled_qty")) <= tr.filled_qty + EPS:
            return
        filled = _f(order.get("filled_qty"))
        if filled > tr.filled_qty + EPS:
            avg = _f(order.get("filled_avg_price"))
            value = filled * avg
            dq = filled - tr.filled_qty
            px = (value - tr.filled_value) / dq if dq > 0 else avg
            if not px > 0:
                px = avg
            tr.filled_qty, tr.filled_value = filled, value
            ts = _ts(order.get("filled_at") or order.get("updated_at"))
            partial = order.get("status") != "filled"
            fill = OrderFilled(
                tr.cid, ts, tr.intent.symbol, tr.intent.side, round(dq, 9), px, partial=partial
            )
            self._out.append(fill)
            setattr(self.stats, f"fills_{source}", getattr(self.stats, f"fills_{source}") + 1)
        status = str(order.get("status") or "")
        if status == "replaced" and not tr.done:
            new_id = order.get("replaced_by")
            if new_id:  # replaced by someone else: follow the new order under the same engine id
                self._by_broker[str(new_id)] = tr.cid
                tr.broker_id = str(new_id)
                fresh = self._get_order(str(new_id))
                if fresh is not None:
                    self._apply(fresh, source)
            return
        if status in TERMINAL and not tr.done:
            tr.done = True
            tr.unresolved = False
            ts = _ts(order.get("updated_at"))
            if status == "rejected":
                self._out.append(OrderRejected(tr.cid, ts, tr.intent.symbol, "rejected by the broker"))
            elif status != "filled":
                self._out.append(OrderCanceled(tr.cid, ts, tr.intent.symbol, status))

    def _register(self, tr: Tracked, order: dict[str, Any]) -> None:
        tr.broker_id = str(order.get("id"))
        tr.unresolved = False
        self._by_broker[tr.broker_id] = tr.cid
        if tr.oco_with and order.get("order_class") == "oco" and tr.intent.intent is Intent.TAKE_PROFIT:
            stop = self._orders.get(tr.oco_with)
            legs = [leg for leg in order.get("legs") or () if isinstance(leg, dict)]
            if stop is not None and legs:
                stop.broker_id = str(legs[0].get("id"))
                stop.unresolved = False
                self._by_broker[stop.broker_id] = stop.cid

    def _refresh(self, tr: Tracked) -> None:
        if tr.broker_id is None:
            return
        order = self._get_order(tr.broker_id)
        if order is not None:
            self._apply(order, "poll")

    def _get_order(self, order_id: str) -> dict[str, Any] | None:
        for i in range(len(self.backoff) + 1):
            try:
                return self.client.get_order_by_id(order_id)
            except Exception as exc:
                if error_kind(exc) != "ambiguous":
                    return None
                if i < len(self.backoff):
                    time.sleep(self.backoff[i])
        return None

    def _lookup(self, cid: str) -> dict[str, Any] | None:
        """The order with this client_order_id; None when the broker says it does not exist. Raises
        TimeoutError when the broker cannot be asked (the outcome stays unknown)."""
        for i in range(len(self.backoff) + 1):
            try:
                return self.client.get_order_by_client_id(cid)
            except Exception as exc:
                kind = error_kind(exc)
                if kind == "not_found":
                    return None
                if kind != "ambiguous":
                    raise TimeoutError(error_message(exc)) from exc
                if i < len(self.backoff):
                    time.sleep(self.backoff[i])
        raise TimeoutError(f"could not look up {cid}")

    # -- sending -----------------------------------------------------------------------------------------
    def _track(self, intent: OrderIntent, oco_with: str | None = None) -> Tracked:
        tr = self._orders.get(intent.client_order_id)
        if tr is None:
            tr = Tracked(intent, oco_with=oco_with)
            self._orders[intent.client_order_id] = tr
        return tr

    def _get(self, cid: str) -> Tracked | None:
        return self._orders.get(self._alias.get(cid, cid))

    def _status(self, cid: str, status: str, broker_id: str | None, detail: str = "") -> None:
        if self.on_status is not None:
            self.on_status(cid, status, broker_id, detail)

    def _reject(self, tr: Tracked, reason: str) -> None:
        tr.done = True
        tr.unresolved = False
        log.warning("order rejected", cid=tr.cid, reason=reason)
        self._out.append(OrderRejected(tr.cid, tr.intent.ts, tr.intent.symbol, reason))

    def _request(self, intent: OrderIntent) -> Any:
        side = OrderSide.BUY if intent.side is Side.BUY else OrderSide.SELL
        common = {
            "symbol": intent.symbol,
            "qty": intent.qty,
            "side": side,
            "client_order_id": intent.client_order_id,
        }
        if intent.type is OrderType.MARKET:
            return MarketOrderRequest(time_in_force=TimeInForce.DAY, **common)
        if intent.type is OrderType.STOP:
            return StopOrderRequest(
                time_in_force=TimeInForce.GTC, stop_price=price_str(intent.stop_price or 0.0), **common
            )
        return LimitOrderRequest(
            time_in_force=TimeInForce.GTC, limit_price=price_str(intent.limit_price or 0.0), **common
        )

    def _send(self, tr: Tracked, req: Any) -> None:
        """Send once; resolve any ambiguous answer by looking the id up; re-send only after a 404."""
        for i in range(self.max_sends):
            if tr.sends >= self.max_sends:
                break
            tr.sends += 1
            self.stats.sends += 1
            if tr.sends > 1:
                self.stats.resends += 1
            try:
                order = self.client.submit_order(req)
            except Exception as exc:
                kind = error_kind(exc)
                if kind == "rejected":
                    self._reject(tr, error_message(exc))
                    return
                if kind == "duplicate":
                    self.stats.adopted += 1
                    log.info("order already at the broker: adopted", cid=tr.cid)
                else:
                    self.stats.ambiguous += 1
                    log.warning("ambiguous order answer; looking it up", cid=tr.cid, error=error_message(exc))
                try:
                    order = self._lookup(tr.cid)
                except TimeoutError:
                    tr.unresolved = True
                    log.warning("order outcome unknown; will reconcile", cid=tr.cid)
                    return
                if order is None:
                    if kind == "duplicate":  # duplicate but not found: never guess, leave it to polling
                        tr.unresolved = True
                        return
                    if i < len(self.backoff):
                        time.sleep(self.backoff[i])
                    continue  # not created: the same client_order_id is safe to send again
            self._register(tr, order)
            self._status(tr.cid, "submitted", tr.broker_id)
            self._apply(order, "submit")
            return
        tr.unresolved = True
        log.warning("order not confirmed after retries; will reconcile", cid=tr.cid)

    def _resolve(self, tr: Tracked) -> bool:
        """An order whose submit outcome is unknown: adopt it if it exists, send it again if it does not."""
        if tr.oco_with and tr.intent.intent is Intent.STOP:  # an OCO is known by its take-profit's id
            parent = self._orders[tr.oco_with]
            if parent.broker_id is not None:
                self._refresh(parent)
                return tr.broker_id is not None
            tr = parent
        try:
            order = self._lookup(tr.cid)
        except TimeoutError:
            return False
        if order is not None:
            self.stats.adopted += 1
            self._register(tr, order)
            self._status(tr.cid, "submitted", tr.broker_id)
            self._apply(order, "poll")
            return True
        if tr.sends >= self.max_sends:
            self._reject(tr, f"could not place the order after {tr.sends} attempts (broker unreachable)")
            return False
        self._send(tr, self._protect_request(tr) if tr.oco_with else self._request(tr.intent))
        return tr.broker_id is not None

    # -- pre-trade checks --------------------------------------------------------------------------------
    def asset(self, symbol: str) -> dict[str, Any] | None:
        a = self._assets.get(symbol)
        if a is None:
            try:
                a = self.client.get_asset(symbol)
            except Exception as exc:
                if error_kind(exc) == "not_found":
                    return None
                raise
            self._assets[symbol] = a
        return a

    def _pretrade_buy(self, tr: Tracked) -> bool:
        i = tr.intent
        try:
            acct = self.client.get_account()
            asset = self.asset(i.symbol)
        except Exception as exc:
            if error_kind(exc) == "rejected":
                self._reject(tr, f"account/asset check failed: {error_message(exc)}")
                return False
            log.warning("pre-trade check skipped: broker not answering", error=error_message(exc))
            return True
        status = str(acct.get("status", ""))
        if status and status.upper() != "ACTIVE":
            self._reject(tr, f"account status is {status}, not ACTIVE")
            return False
        for flag in ("trading_blocked", "account_blocked", "trade_suspended_by_user"):
            if acct.get(flag):
                self._reject(tr, f"account {flag.replace('_', ' ')}")
                return False
        if asset is None:
            self._reject(tr, f"asset {i.symbol} not found at the broker")
            return False
        if not asset.get("tradable", False):
            self._reject(tr, f"asset {i.symbol} is not tradable")
            return False
        qty = i.qty
        if abs(qty - round(qty)) > EPS and not (asset.get("fractionable") and self.fractional):
            qty = float(math.floor(qty))
            if qty <= 0:
                self._reject(tr, f"{i.symbol}: fractional qty {i.qty:g} not allowed and floors to 0")
                return False
            log.info("fractional qty floored", symbol=i.symbol, asked=i.qty, qty=qty)
        ref = self._last_price.get(i.symbol)
        bp = _f(acct.get("buying_power"))
        if ref is not None and qty * ref > bp + EPS:
            self._reject(tr, f"insufficient buying power: need ~{qty * ref:.2f}, have {bp:.2f}")
            return False
        if qty != i.qty:
            tr.intent = _with_qty(i, qty)
        return True

    def _position_qty(self, symbol: str) -> float | None:
        try:
            pos = self.client.get_open_position(symbol)
        except Exception as exc:
            kind = error_kind(exc)
            if kind == "not_found":
                return 0.0
            return None
        return _f(pos.get("qty"))

    def _prepare_sell(self, tr: Tracked) -> bool:
        """A closing sell: stop our own orders on the symbol first (the canceled protective orders must
        release the shares; an unfilled part of the entry must not fill later), then sell at most what
        the broker holds."""
        sym = tr.intent.symbol
        for other in list(self._orders.values()):
            if other is tr or other.done or other.intent.symbol != sym:
                continue
            if other.intent.side is Side.BUY:
                self.cancel(other.cid)
            deadline = time.monotonic() + 3.0
            while not other.done and time.monotonic() < deadline:
                self._refresh(other)
                if not other.done:
                    time.sleep(0.05)
        held = self._position_qty(sym)
        if held is not None and held < tr.intent.qty - EPS:
            if held <= EPS:
                tr.done = True
                self._out.append(OrderCanceled(tr.cid, tr.intent.ts, sym, NOTHING_HELD))
                return False
            tr.intent = _with_qty(tr.intent, held)
        return True

    # -- protective orders -------------------------------------------------------------------------------
    def _flush_protect(self) -> None:
        while self._pending_protect:
            first = self._pending_protect.pop(0)
            partner = next(
                (
                    p
                    for p in self._pending_protect
                    if p.symbol == first.symbol and p.intent is not first.intent and p.side is first.side
                ),
                None,
            )
            if partner is not None:
                self._pending_protect.remove(partner)
                stop, tp = (first, partner) if first.intent is Intent.STOP else (partner, first)
                self._place_oco(stop, tp)
            else:
                self._place_protect(first)

    def _place_protect(self, intent: OrderIntent) -> None:
        tr = self._track(intent)
        qty = intent.qty
        if abs(qty - round(qty)) > EPS:  # Alpaca takes fractional qty only on market/limit DAY orders
            qty = float(math.floor(qty))
            log.warning("protective order covers whole shares only", cid=intent.client_order_id, qty=qty)
            if qty <= 0:
                self._reject(tr, "protective order needs at least one whole share")
                return
            tr.intent = _with_qty(intent, qty)
        self._send(tr, self._request(tr.intent))

    def _place_oco(self, stop: OrderIntent, tp: OrderIntent) -> None:
        s = self._track(stop, oco_with=tp.client_order_id)
        t = self._track(tp, oco_with=stop.client_order_id)
        s.oco_with, t.oco_with = tp.client_order_id, stop.client_order_id
        self._send(t, self._protect_request(t))
        if t.done and not s.done:  # the OCO was refused: so is its stop leg (the engine flattens)
            self._reject(s, "OCO exit refused")

    def _protect_request(self, tr: Tracked) -> Any:
        """The one OCO order (take-profit parent, stop-loss leg) for an engine stop + take-profit pair."""
        other = self._orders[tr.oco_with or ""]
        stop, tp = (tr, other) if tr.intent.intent is Intent.STOP else (other, tr)
        return LimitOrderRequest(
            symbol=tp.intent.symbol,
            qty=math.floor(min(tp.intent.qty, stop.intent.qty)),
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.OCO,
            take_profit=TakeProfitRequest(limit_price=price_str(tp.intent.limit_price or 0.0)),
            stop_loss=StopLossRequest(stop_price=price_str(stop.intent.stop_price or 0.0)),
            client_order_id=tp.cid,
        )

    # -- start-up ----------------------------------------------------------------------------------------
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
        known = known or {}
        prefix = f"{PREFIX}-{set_id}-"
        rec = Reconciliation()
        acct = self._retry_get(self.client.get_account)
        rec.cash, rec.equity = _f(acct.get("cash")), _f(acct.get("equity"))
        rec.positions = self.positions()
        orders = self._retry_get(
            lambda: self.client.get_orders(
                GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500, nested=True)
            )
        )
        for o in orders:
            cid = str(o.get("client_order_id", ""))
            if not cid.startswith(prefix):
                rec.foreign_orders.append(
                    f"{o.get('side')} {o.get('qty')} {o.get('symbol')} {o.get('type')} ({cid})"
                )
                continue
            intent = _intent_from_order(o)
            tr = self._track(intent)
            legs = [leg for leg in o.get("legs") or () if isinstance(leg, dict)]
            if o.get("order_class") == "oco" and legs:
                leg = legs[0]
                stop_cid = _oco_stop_cid(cid, leg, prefix)
                st = self._track(_intent_from_order({**leg, "client_order_id": stop_cid}, Intent.STOP))
                st.oco_with, tr.oco_with = cid, stop_cid
                st.filled_qty = known.get(stop_cid, 0.0)
                rec.ours.append(st.intent)
            self._register(tr, o)
            tr.filled_qty = known.get(cid, 0.0)  # a later poll delivers only what the journal lacks
            tr.filled_value = tr.filled_qty * _f(o.get("filled_avg_price"))
            rec.ours.append(tr.intent)
        closed: dict[str, dict[str, Any]] = {}
        if since is not None:  # nested: an OCO's stop leg comes under its take-profit parent
            after = since.to_pydatetime()
            req = GetOrdersRequest(status=QueryOrderStatus.CLOSED, limit=500, after=after, nested=True)
            closed = _closed_ours(self._retry_get(lambda: self.client.get_orders(req)), prefix)
        done: dict[str, dict[str, Any]] = {}
        for cid in dict.fromkeys(lookup):
            if cid in self._orders:
                rec.found[cid] = "open"
                continue
            if cid in closed:  # also an OCO stop leg, which no lookup by the engine's id finds
                rec.found[cid] = str(closed[cid].get("status"))
                done[cid] = closed[cid]
                continue
            try:
                o = self._lookup(cid)
            except TimeoutError:
                rec.unknown.append(cid)
                continue
            if o is None:
                rec.not_sent.append(cid)
                continue
            rec.found[cid] = str(o.get("status"))
            done[cid] = o
        for cid, o in closed.items():
            if cid not in self._orders:
                done.setdefault(cid, o)
        for cid, o in done.items():
            if str(o.get("status")) not in TERMINAL:  # working after all: track it like the listed ones
                tr = self._track(_intent_from_order(o))
                self._register(tr, o)
                tr.filled_qty = known.get(cid, 0.0)
                tr.filled_value = tr.filled_qty * _f(o.get("filled_avg_price"))
                rec.ours.append(tr.intent)
        late = [
            o
            for cid, o in done.items()
            if str(o.get("status")) in TERMINAL and _f(o.get("filled_qty")) > known.get(cid, 0.0) + EPS
        ]
        for o in sorted(late, key=lambda o: _ts(o.get("filled_at") or o.get("updated_at"))):
            cid = str(o.get("client_order_id"))
            tr = self._track(_intent_from_order(o))
            tr.filled_qty = known.get(cid, 0.0)
            tr.filled_value = tr.filled_qty * _f(o.get("filled_avg_price"))
            self._apply(o, "poll")  # queues the missing fill (and the order's end)
            rec.missed.append(tr.intent)
        return rec

    def cash(self) -> float:
        return _f(self._retry_get(self.client.get_account).get("cash"))

    def positions(self) -> dict[str, tuple[float, float]]:
        """{symbol: (qty, avg_entry_price)} of everything held at the broker."""
        return {
            str(p["symbol"]): (_f(p.get("qty")), _f(p.get("avg_entry_price")))
            for p in self._retry_get(self.client.get_all_positions)
        }

    def working(self, client_order_id: str) -> bool:
        """True while the order is at the broker and not finished, or its outcome is still being resolved."""
        tr = self._get(client_order_id)
        return tr is not None and not tr.done and (tr.broker_id is not None or tr.unresolved)

    def _retry_get(self, fn: Callable[[], Any]) -> Any:
        for i in range(len(self.backoff) + 1):
            try:
                return fn()
            except Exception as exc:
                if error_kind(exc) != "ambiguous" or i == len(self.backoff):
                    raise
                time.sleep(self.backoff[i])
        raise AssertionError("unreachable")


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


def _with_qty(i: OrderIntent, qty: float) -> OrderIntent:
    from dataclasses import replace

    return replace(i, qty=qty)


def _intent_from_order(o: dict[str, Any], intent: Intent | None = None) -> OrderIntent:
    cid = str(o.get("client_order_id", ""))
    parsed = parse_cid(cid)
    kind = intent or (parsed.intent if parsed else Intent.STOP)
    otype = str(o.get("type") or o.get("order_type") or "market")
    return OrderIntent(
        cid,
        _ts(o.get("created_at")),
        str(o.get("symbol")),
        Side.BUY if o.get("side") == "buy" else Side.SELL,
        _f(o.get("qty")),
        OrderType.STOP if otype == "stop" else OrderType.LIMIT if otype == "limit" else OrderType.MARKET,
        kind,
        "found at the broker on start",
        stop_price=_f(o.get("stop_price")) or None,
        limit_price=_f(o.get("limit_price")) or None,
    )
