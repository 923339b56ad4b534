"""Splits at Alpaca: finding the split that explains a held position changing by itself.

Alpaca applies a split overnight, before the ex-date's open: the position's quantity is multiplied by
the ratio and its average price divided by it. What happens to open orders is not documented for stop
orders (its docs say only that non-marketable GTC limit orders are price-adjusted for corporate
actions, and that an order can be `replaced` by a corporate action); the industry rule (FINRA 5330) is
that a reverse split cancels open orders. So a protective order of ours that the broker ends without
us asking is the first sign: before that cancel reaches the engine (which would place the stop again
with the old quantity and price), the adapter looks for a split of the symbol:

1. Alpaca's corporate actions announcements (`GET /v2/corporate_actions/announcements`, ca_types=split,
   ex-date within the last week); else
2. a split in the bot's own splits table (`[data] splits_file`) dated within that week.

If one is found, a `SplitDetected` (ratio, the quantity the broker holds now, the source) goes to the
engine ahead of the cancel; the engine checks it against its own quantity and re-places the stop at
the new price (`bot/execution/splits.py`). A quantity change no split explains stays an unknown state:
nothing is guessed. Each split is reported once.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient

from bot.broker.alpaca_errors import error_kind, error_message
from bot.broker.alpaca_retry import RestRetry
from bot.broker.alpaca_types import NY, Tracked, num
from bot.core.events import Intent, OrderCanceled, SplitDetected
from bot.core.log import get
from bot.core.splits import explains
from bot.data.splits import SplitTable

log = get("soxbot.alpaca")
WINDOW = pd.Timedelta(days=7)  # how far back an ex-date may lie from the day the change is seen
ANNOUNCEMENTS = "/corporate_actions/announcements"


class SplitWatch:
    def __init__(self, client: TradingClient, rest: RestRetry, known: SplitTable | None = None) -> None:
        self.client = client
        self.rest = rest
        self.known = known  # the bot's own splits table, when configured
        self.asked: set[str] = set()  # protective orders the engine canceled itself
        self.applied: set[tuple[str, str]] = set()  # (symbol, ex-date) already reported

    def asked_cancel(self, client_order_id: str) -> None:
        self.asked.add(client_order_id)

    def on_canceled(self, ev: OrderCanceled, tr: Tracked | None) -> SplitDetected | None:
        """A protective order the broker ended by itself: the split behind it, if there is one."""
        if tr is None or tr.intent.intent not in (Intent.STOP, Intent.TAKE_PROFIT):
            return None
        if ev.client_order_id in self.asked or ev.reason != "canceled":
            return None
        day = _day(ev.ts)
        found = self.find(ev.symbol, day)
        if found is None:
            return None
        ratio, ex, source = found
        held = self.held(ev.symbol)
        if held is None:
            return None
        self.applied.add((ev.symbol, ex))
        log.warning("split found", symbol=ev.symbol, ratio=ratio, ex_date=ex, held=held, source=source)
        return SplitDetected(ev.symbol, ev.ts, ratio, held, source)

    def explain(self, symbol: str, before: float, after: float, when: pd.Timestamp) -> SplitDetected | None:
        """The split that turns `before` shares of `symbol` into `after` (a position check saw the
        change), or None."""
        found = self.find(symbol, _day(when))
        if found is None or not explains(before, after, found[0]):
            return None
        self.applied.add((symbol, found[1]))
        return SplitDetected(symbol, when, found[0], after, found[2])

    def find(self, symbol: str, day: pd.Timestamp) -> tuple[float, str, str] | None:
        """(ratio, ex-date, source) of the latest split of `symbol` with an ex-date in the week up to
        `day` that was not reported yet: Alpaca's announcements first, then the bot's table."""
        since = day - WINDOW
        for a in sorted(
            self.announced(symbol, since, day), key=lambda a: str(a.get("ex_date")), reverse=True
        ):
            ex = str(a.get("ex_date"))
            old, new = num(a.get("old_rate")), num(a.get("new_rate"))
            if (symbol, ex) in self.applied or not (old > 0 and new > 0) or abs(new / old - 1) < 1e-12:
                continue
            return new / old, ex, f"Alpaca corporate actions {a.get('id', '')}".strip()
        for s in reversed(self.known.of(symbol) if self.known is not None else []):
            ex = f"{s.date:%Y-%m-%d}"
            if since <= s.date <= day and (symbol, ex) not in self.applied:
                return s.ratio, ex, f"{self.known.name} line {s.line}"  # type: ignore[union-attr]
        return None

    def announced(self, symbol: str, since: pd.Timestamp, until: pd.Timestamp) -> list[dict[str, Any]]:
        """Split announcements of `symbol` with an ex-date in [since, until]; [] when Alpaca cannot say."""
        params = {
            "ca_types": "split",
            "since": f"{since:%Y-%m-%d}",
            "until": f"{until:%Y-%m-%d}",
            "symbol": symbol,
            "date_type": "ex_date",
        }
        try:
            rows = self.rest.get(lambda: self.client.get(ANNOUNCEMENTS, params))
        except Exception as exc:
            log.warning("corporate actions not available", symbol=symbol, error=error_message(exc))
            return []
        out = []
        for a in rows if isinstance(rows, list) else []:
            if not isinstance(a, dict) or str(a.get("ca_type", "")).lower() != "split":
                continue
            if symbol in (a.get("target_symbol"), a.get("initiating_symbol")):
                out.append(a)
        return out

    def held(self, symbol: str) -> float | None:
        """The quantity of `symbol` the broker holds now (0 when none); None when it cannot say."""
        try:
            p = self.rest.get(lambda: self.client.get_open_position(symbol))
        except Exception as exc:
            if isinstance(exc, APIError) and error_kind(exc) == "not_found":
                return 0.0
            log.warning("position not available", symbol=symbol, error=error_message(exc))
            return None
        return num(p.get("qty") if isinstance(p, dict) else getattr(p, "qty", None))


def _day(ts: pd.Timestamp) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    if t.tzinfo is not None:
        t = t.tz_convert(NY).tz_localize(None)
    return t.normalize()
