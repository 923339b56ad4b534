"""The paper account: cash, long positions and the Alpaca-shaped account/position JSON.

Decimals go out as strings, as Alpaca sends them. The sandbox never holds a short: sells are capped
at the position (the bot only ever holds long bull/bear ETFs).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal

EXCHANGES = {
    "SOXL": "ARCA", "SOXS": "ARCA", "SPY": "ARCA", "SOXX": "NASDAQ", "SMH": "NASDAQ", "QQQ": "NASDAQ",
    "NVDA": "NASDAQ", "AMD": "NASDAQ", "INTC": "NASDAQ", "AVGO": "NASDAQ",
}
INDICES = {"SOX"}  # an index has data but can not be traded
_NS = uuid.UUID("6b1f6f5e-2f0e-4b53-9c1c-5d0a1e0f7a11")


def dec(x: float | None, places: int = 9) -> str | None:
    """A float as Alpaca's decimal string: no exponent, no trailing zeros ("100000", "12.34")."""
    if x is None:
        return None
    d = Decimal(repr(round(float(x), places))).normalize()
    if d == 0:
        return "0"
    s = format(d, "f")
    return s


def asset_id(symbol: str) -> str:
    return str(uuid.uuid5(_NS, symbol))


def asset_json(symbol: str) -> dict:
    tradable = symbol not in INDICES
    return {
        "id": asset_id(symbol), "class": "us_equity", "exchange": EXCHANGES.get(symbol, "NYSE"),
        "symbol": symbol, "name": f"{symbol} (soxbot sandbox)", "status": "active", "tradable": tradable,
        "marginable": tradable, "shortable": False, "easy_to_borrow": False, "fractionable": tradable,
        "maintenance_margin_requirement": 30, "margin_requirement_long": "30",
        "margin_requirement_short": "100", "min_order_size": "0.000000001",
        "min_trade_increment": "0.000000001", "price_increment": "0.01", "attributes": [],
    }


@dataclass
class Position:
    symbol: str
    qty: float = 0.0
    avg_entry_price: float = 0.0

    @property
    def cost_basis(self) -> float:
        return self.qty * self.avg_entry_price


@dataclass
class Portfolio:
    starting_cash: float
    multiplier: float = 2.0
    cash: float = 0.0
    positions: dict[str, Position] = field(default_factory=dict)
    last_equity: float = 0.0
    lastday_price: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cash = self.starting_cash
        self.last_equity = self.starting_cash

    def apply_fill(self, symbol: str, is_buy: bool, qty: float, price: float) -> float:
        """Book one execution; returns the position quantity after it."""
        pos = self.positions.setdefault(symbol, Position(symbol))
        if is_buy:
            new_qty = pos.qty + qty
            pos.avg_entry_price = (pos.cost_basis + qty * price) / new_qty
            pos.qty = new_qty
            self.cash -= qty * price
        else:
            pos.qty -= qty
            self.cash += qty * price
        pos.qty = _clean(pos.qty)
        if pos.qty <= 0:
            del self.positions[symbol]
            return 0.0
        return pos.qty

    def long_market_value(self, prices: dict[str, float]) -> float:
        return sum(p.qty * prices.get(s, p.avg_entry_price) for s, p in self.positions.items())

    def equity(self, prices: dict[str, float]) -> float:
        return self.cash + self.long_market_value(prices)

    def buying_power(self, prices: dict[str, float], reserved: float) -> float:
        """Reg-T style: multiplier x equity less what positions and open buy orders already use."""
        return max(0.0, self.multiplier * self.equity(prices) - self.long_market_value(prices) - reserved)

    def account_json(self, prices: dict[str, float], reserved: float, created_at: str, balance_asof: str
                     ) -> dict:
        lmv = self.long_market_value(prices)
        eq = self.cash + lmv
        bp = self.buying_power(prices, reserved)
        return {
            "id": asset_id("account"), "account_number": "PA3SOXBOT01", "status": "ACTIVE",
            "crypto_status": "INACTIVE", "currency": "USD", "buying_power": dec(bp, 2),
            "regt_buying_power": dec(bp, 2), "daytrading_buying_power": "0",
            "non_marginable_buying_power": dec(max(0.0, self.cash - reserved), 2),
            "options_buying_power": dec(max(0.0, self.cash - reserved), 2),
            "cash": dec(self.cash, 2), "accrued_fees": "0", "pending_transfer_in": "0",
            "pending_transfer_out": "0", "portfolio_value": dec(eq, 2), "pattern_day_trader": False,
            "trading_blocked": False, "transfers_blocked": False, "account_blocked": False,
            "created_at": created_at, "trade_suspended_by_user": False, "multiplier": dec(self.multiplier),
            "shorting_enabled": False, "equity": dec(eq, 2), "last_equity": dec(self.last_equity, 2),
            "long_market_value": dec(lmv, 2), "short_market_value": "0",
            "initial_margin": dec(lmv * 0.5, 2), "maintenance_margin": dec(lmv * 0.3, 2),
            "last_maintenance_margin": "0", "sma": "0", "daytrade_count": 0, "balance_asof": balance_asof,
            "options_approved_level": 0, "options_trading_level": 0, "intraday_adjustments": "0",
            "pending_reg_taf_fees": "0",
        }

    def position_json(self, symbol: str, price: float, held: float) -> dict:
        p = self.positions[symbol]
        mv = p.qty * price
        last = self.lastday_price.get(symbol, p.avg_entry_price)
        upl = mv - p.cost_basis
        intraday_base = p.qty * last
        return {
            "asset_id": asset_id(symbol), "symbol": symbol, "exchange": EXCHANGES.get(symbol, "NYSE"),
            "asset_class": "us_equity", "asset_marginable": True,
            "avg_entry_price": dec(p.avg_entry_price, 6),
            "qty": dec(p.qty), "qty_available": dec(max(0.0, p.qty - held)), "side": "long",
            "market_value": dec(mv, 2), "cost_basis": dec(p.cost_basis, 2), "unrealized_pl": dec(upl, 2),
            "unrealized_plpc": dec(upl / p.cost_basis if p.cost_basis else 0.0, 6),
            "unrealized_intraday_pl": dec(mv - intraday_base, 2),
            "unrealized_intraday_plpc": dec(
                (mv - intraday_base) / intraday_base if intraday_base else 0.0, 6),
            "current_price": dec(price, 4), "lastday_price": dec(last, 4),
            "change_today": dec((price - last) / last if last else 0.0, 6),
        }


def _clean(q: float) -> float:
    """Drop float dust so 0.1+0.2-0.3 style leftovers do not leave phantom positions."""
    r = round(q, 9)
    return 0.0 if abs(r) < 1e-9 else r
