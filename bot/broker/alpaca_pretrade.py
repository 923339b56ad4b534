"""Checks before an order goes out, so a doomed order is refused here with a clear reason rather than
by the broker: account status and blocks, the asset being tradable, whole shares where fractions are
not allowed, buying power; and for a closing sell, stopping our other orders on the symbol and selling no
more than the broker holds."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from alpaca.trading.client import TradingClient

from bot.broker.alpaca_book import OrderBook
from bot.broker.alpaca_errors import error_kind, error_message
from bot.broker.alpaca_types import EPS, Tracked, num, with_qty
from bot.broker.base import NOTHING_HELD
from bot.core.events import OrderCanceled, Side
from bot.core.log import get

log = get("soxbot.alpaca")


class PreTrade:
    """Pre-trade checks against the account, the asset (cached) and the last bar's price per symbol."""

    def __init__(self, client: TradingClient, book: OrderBook, fractional: bool) -> None:
        self.client = client
        self.book = book
        self.fractional = fractional
        self.last_price: dict[str, float] = {}
        self.assets: dict[str, dict[str, Any]] = {}

    def asset(self, symbol: str) -> dict[str, Any] | None:
        a = self.assets.get(symbol)
        if a is None:
            try:
                a = self.client.get_asset(symbol)
            except Exception as exc:
                if error_kind(exc) == "not_found":
                    return None
                raise
            self.assets[symbol] = a
        return a

    def check_buy(self, tr: Tracked) -> bool:
        """False (and `tr` rejected) when the buy cannot go; its qty may be floored to whole shares."""
        i = tr.intent
        try:
            acct = self.client.get_account()
            asset = self.asset(i.symbol)
        except Exception as exc:
            if error_kind(exc) == "rejected":
                self.book.reject(tr, f"account/asset check failed: {error_message(exc)}")
                return False
            log.warning("pre-trade check skipped: broker not answering", error=error_message(exc))
            return True
        status = str(acct.get("status", ""))
        if status and status.upper() != "ACTIVE":
            self.book.reject(tr, f"account status is {status}, not ACTIVE")
            return False
        for flag in ("trading_blocked", "account_blocked", "trade_suspended_by_user"):
            if acct.get(flag):
                self.book.reject(tr, f"account {flag.replace('_', ' ')}")
                return False
        if asset is None:
            self.book.reject(tr, f"asset {i.symbol} not found at the broker")
            return False
        if not asset.get("tradable", False):
            self.book.reject(tr, f"asset {i.symbol} is not tradable")
            return False
        qty = i.qty
        if abs(qty - round(qty)) > EPS and not (asset.get("fractionable") and self.fractional):
            qty = float(math.floor(qty))
            if qty <= 0:
                self.book.reject(tr, f"{i.symbol}: fractional qty {i.qty:g} not allowed and floors to 0")
                return False
            log.info("fractional qty floored", symbol=i.symbol, asked=i.qty, qty=qty)
        ref = self.last_price.get(i.symbol)
        bp = num(acct.get("buying_power"))
        if ref is not None and qty * ref > bp + EPS:
            self.book.reject(tr, f"insufficient buying power: need ~{qty * ref:.2f}, have {bp:.2f}")
            return False
        if qty != i.qty:
            tr.intent = with_qty(i, qty)
        return True

    def position_qty(self, symbol: str) -> float | None:
        """Shares held at the broker; None when it cannot be asked."""
        try:
            pos = self.client.get_open_position(symbol)
        except Exception as exc:
            kind = error_kind(exc)
            if kind == "not_found":
                return 0.0
            return None
        return num(pos.get("qty"))

    def prepare_sell(self, tr: Tracked, cancel: Callable[[str], None]) -> bool:
        """A closing sell: stop our own orders on the symbol first (the canceled protective orders must
        release the shares; an unfilled part of the entry must not fill later), then sell at most what
        the broker holds."""
        sym = tr.intent.symbol
        book = self.book.orders.values()
        others = [o for o in book if o is not tr and not o.done and o.intent.symbol == sym]
        for other in others:
            if other.intent.side is Side.BUY:
                cancel(other.cid)
        waiting = [o for o in others if self.book.look(o)]
        if waiting:
            self._await_end(tr, waiting)
        held = self.position_qty(sym)
        if held is not None and held < tr.intent.qty - EPS:
            if held <= EPS:
                tr.done = True
                self.book.out.append(OrderCanceled(tr.cid, tr.intent.ts, sym, NOTHING_HELD))
                return False
            tr.intent = with_qty(tr.intent, held)
        return True

    def _await_end(self, tr: Tracked, waiting: list[Tracked], seconds: float = 3.0) -> None:
        """Wait (at most `seconds`, saying so) for our other orders on the symbol to end: a canceled
        protective order releases its shares only once the broker has ended it."""
        log.info(
            "waiting",
            awaited=f"end of {', '.join(o.cid for o in waiting)} before selling",
            cid=tr.cid,
            seconds=seconds,
        )
        deadline = time.monotonic() + seconds
        while waiting and time.monotonic() < deadline:
            time.sleep(0.05)
            waiting = [o for o in waiting if self.book.look(o)]
        if waiting:
            log.warning(
                "still working at the broker: the sell may be refused (the engine then keeps the position "
                "protected)",
                cid=tr.cid,
                working=", ".join(o.cid for o in waiting),
            )
