"""Splits simulated during a session, the way Alpaca applies one (`POST /admin/split`).

At the moment of the split (the sandbox's now; Alpaca applies them overnight, before the ex-date's
open, and so should a test; the ex-date is the session of the first bar that starts after now):
- the position's quantity is multiplied by the ratio (new shares per old share) and its average entry
  price divided by it; a fraction is kept, since the sandbox's assets are fractionable;
- every open order in the symbol is canceled (a `canceled` trade update each). Alpaca documents a
  price adjustment only for non-marketable GTC limit orders and says nothing about stops; the
  industry rule (FINRA 5330) cancels open orders on a reverse split. Canceling them all is the case in
  which a client has to act, so it is the one simulated;
- prices from the first bar starting at or after now are divided by the ratio (volume multiplied):
  the as-traded series has its jump there. `GET /v2/stocks/bars` answers on that raw basis with
  `adjustment=raw` (Alpaca's default) and splits-adjusts the earlier bars for `split` and `all`;
- the split is announced at `GET /v2/corporate_actions/announcements` (ca_types=split), unless the
  admin call says `"announce": false` (Alpaca warns its corporate actions may come late).

`/admin/reset` undoes the price changes, so every test starts from the files' prices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bot.sandbox.accounts import dec
from bot.sandbox.market import MarketData
from bot.sandbox.orders import ApiError

if TYPE_CHECKING:
    from bot.sandbox.exchange import Exchange


@dataclass(frozen=True)
class AppliedSplit:
    id: str
    symbol: str
    t_ns: int  # bars starting at or after this are on the new basis
    label_ns: int  # the REST label (`t`) of the first of them: earlier labels are before the split
    new_rate: float
    old_rate: float
    ex_date: pd.Timestamp  # naive session date
    announced: bool

    @property
    def ratio(self) -> float:
        return self.new_rate / self.old_rate

    def announcement(self) -> dict[str, Any]:
        """As Alpaca's `CorporateAnnouncement`. `ca_type` is lower case, as alpaca-py's model reads it
        (the published spec's enum says "Split")."""
        ex = f"{self.ex_date:%Y-%m-%d}"
        declared = f"{self.ex_date - pd.Timedelta(days=14):%Y-%m-%d}"
        return {
            "id": self.id, "corporate_action_id": f"SPLIT-{self.symbol}-{ex}", "ca_type": "split",
            "ca_sub_type": "stock_split" if self.ratio > 1 else "reverse_split",
            "initiating_symbol": self.symbol, "initiating_original_cusip": "", "target_symbol": self.symbol,
            "target_original_cusip": "", "declaration_date": declared,
            "effective_date": ex, "ex_date": ex, "record_date": ex, "payable_date": ex, "cash": "0",
            "old_rate": dec(self.old_rate), "new_rate": dec(self.new_rate),
        }  # fmt: skip


class Splits:
    def __init__(self) -> None:
        self.applied: list[AppliedSplit] = []

    def apply(self, ex: Exchange, body: Mapping[str, Any]) -> dict[str, Any]:
        """`{"symbol": "SOXS", "new_rate": 1, "old_rate": 10, "announce": true}` at the sandbox's now."""
        symbol = str(body.get("symbol", "")).upper()
        try:
            new, old = float(body.get("new_rate", 0)), float(body.get("old_rate", 0))
        except (TypeError, ValueError):
            raise ApiError(422, 42210000, "new_rate and old_rate must be numbers") from None
        if symbol not in ex.market.bars:
            raise ApiError(422, 42210000, f"unknown symbol {symbol!r}")
        if not (new > 0 and old > 0) or new == old:
            raise ApiError(422, 42210000, "new_rate and old_rate must be positive and differ")
        now = ex.sync()
        sb = ex.market.bars[symbol]
        k = int(np.searchsorted(sb.start, now.value, "left"))
        if k >= len(sb):
            raise ApiError(422, 42210000, f"no {symbol} bar after now to take the split")
        label = int(sb.label[k])
        first = pd.Timestamp(int(sb.start[k]), tz="UTC").tz_convert("America/New_York")
        split = AppliedSplit(
            ex.book.new_id(), symbol, now.value, label, new, old, first.tz_localize(None).normalize(),
            bool(body.get("announce", True)),
        )  # fmt: skip
        _rescale(ex.market, symbol, split.t_ns, 1.0 / split.ratio)
        ex.market.factors.setdefault(symbol, []).append((split.t_ns, 1.0 / split.ratio))
        p = ex.portfolio
        pos = p.positions.get(symbol)
        before = pos.qty if pos is not None else 0.0
        if pos is not None:
            pos.qty = round(pos.qty * split.ratio, 9)
            pos.avg_entry_price /= split.ratio
        if symbol in p.lastday_price:
            p.lastday_price[symbol] /= split.ratio
        canceled = []
        for o in ex.book.open_orders(symbol):
            if o.is_open:  # canceling a group's root may have ended its legs already
                ex.legs.finish(o, "canceled")
                canceled.append(o.client_order_id)
        self.applied.append(split)
        return {
            "symbol": symbol, "ratio": split.ratio, "ex_date": f"{split.ex_date:%Y-%m-%d}",
            "qty_before": before, "qty_after": pos.qty if pos is not None else 0.0, "canceled": canceled,
            "announced": split.announced,
        }  # fmt: skip

    def undo(self, market: MarketData) -> None:
        """The files' prices again (a reset)."""
        for s in reversed(self.applied):
            _rescale(market, s.symbol, s.t_ns, s.ratio)
        self.applied.clear()
        market.factors.clear()

    def announcements(self, q: Mapping[str, str]) -> list[dict[str, Any]]:
        """`GET /v2/corporate_actions/announcements`: ca_types, since, until (required), symbol,
        date_type (only the ex-date is kept, so every date type reads it)."""
        types = {t.strip().lower() for t in q.get("ca_types", "").split(",") if t.strip()}
        if not types or not q.get("since") or not q.get("until"):
            raise ApiError(422, 42210000, "ca_types, since and until are required")
        try:
            since, until = pd.Timestamp(q["since"][:10]), pd.Timestamp(q["until"][:10])
        except ValueError:
            raise ApiError(422, 42210000, "since and until must be dates written YYYY-MM-DD") from None
        if until < since or (until - since).days > 90:
            raise ApiError(422, 42210000, "the date range is limited to 90 days")
        sym = q.get("symbol", "").upper()
        return [
            s.announcement()
            for s in self.applied
            if "split" in types and s.announced and since <= s.ex_date <= until and sym in ("", s.symbol)
        ]

    def adjust_page(self, page: dict[str, list[dict]], adjustment: str) -> dict[str, list[dict]]:
        """Bars of a history page before a split put on its basis (`split`, `all`); `raw` as traded."""
        if adjustment not in ("split", "all") or not self.applied:
            return page
        for sym, rows in page.items():
            splits = [s for s in self.applied if s.symbol == sym]
            for row in rows if splits else ():
                t = pd.Timestamp(row["t"]).value
                f = float(np.prod([s.ratio for s in splits if t < s.label_ns]))
                if f != 1.0:
                    for k in ("o", "h", "l", "c", "vw"):
                        row[k] = row[k] / f
                    row["v"] = round(row["v"] * f)
        return page


def _rescale(market: MarketData, symbol: str, t_ns: int, factor: float) -> None:
    """Prices of bars starting at or after `t_ns` times `factor`, volume divided by it."""
    sb = market.bars[symbol]
    after = sb.start >= t_ns
    if not after.any():
        return
    scaled = {
        k: np.where(after, getattr(sb, k) * factor, getattr(sb, k)) for k in ("open", "high", "low", "close")
    }
    volume = np.where(after, sb.volume / factor, sb.volume)
    market.bars[symbol] = dataclasses.replace(sb, volume=volume, **scaled)
