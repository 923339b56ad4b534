"""The price basis of each traded symbol, and what it means for quantities.

A share count is a market fact only on as-traded prices. On a back-adjusted series (the usual
downloaded "split-adjusted" file) the prices before a split are the traded ones times the later
splits' factors: SOXS in `../shared/data` starts at 3.9e10 because of ~9.6e8 in reverse splits. Whole
shares of such a price are not what anyone could have bought; rounding to them just throws the
notional away ("size is 0"). So each traded symbol gets one of three bases:

- `as_traded`: prices as traded; whole shares unless `[risk] fractional`;
- `as_traded_splits`: as traded, with splits from `[data] splits_file` applied on their dates;
- `adjusted`: back-adjusted prices, sized by notional: fractional quantities on the adjusted prices,
  which are not share counts.

`[data] price_basis` chooses for the symbols the splits file does not list: "as_traded", "adjusted",
or "auto" (default): adjusted when the symbol's highest price in the data is above the starting
cash, where not one whole share could be bought and rounding would distort every entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from bot.data.splits import SplitTable

Kind = Literal["as_traded", "as_traded_splits", "adjusted"]


@dataclass(frozen=True, slots=True)
class Basis:
    symbol: str
    kind: Kind
    why: str

    @property
    def notional(self) -> bool:
        """Sized by notional: quantities are fractional and not share counts."""
        return self.kind == "adjusted"

    @property
    def statement(self) -> str:
        """One line for the screen, summary.json and the report."""
        if self.kind == "adjusted":
            return (
                f"{self.symbol}: back-adjusted prices ({self.why}); sized by notional: fractional "
                "quantities on back-adjusted prices, not share counts"
            )
        if self.kind == "as_traded_splits":
            return f"{self.symbol}: as-traded prices; {self.why}"
        return f"{self.symbol}: prices used as given ({self.why})"


def price_basis(
    choice: str,
    starting_cash: float,
    frames: Mapping[str, pd.DataFrame],
    traded: Sequence[str],
    splits: SplitTable | None,
    fractional: bool,
) -> dict[str, Basis]:
    """The basis of each traded symbol that has bars in `frames` (see the module docstring)."""
    out: dict[str, Basis] = {}
    for sym in traded:
        df = frames.get(sym)
        if df is None or df.empty:
            continue
        if splits is not None and splits.of(sym):
            n = len(splits.within(sym, df.index))
            out[sym] = Basis(
                sym,
                "as_traded_splits",
                f"{n} split{'s' if n != 1 else ''} from {splits.name} applied to positions and orders on "
                "their dates; strategies read the split-adjusted series",
            )
            continue
        top = float(df["high"].max()) if "high" in df else float(df["close"].max())
        if choice == "adjusted":
            out[sym] = Basis(sym, "adjusted", "[data] price_basis = 'adjusted'")
        elif choice == "auto" and top > starting_cash:
            out[sym] = Basis(
                sym,
                "adjusted",
                f"highest price {top:.4g} is above the starting cash {starting_cash:,.0f}: found by "
                "[data] price_basis = 'auto'",
            )
        else:
            shares = "fractional shares" if fractional else "whole shares"
            why = (
                "[data] price_basis = 'as_traded'"
                if choice == "as_traded"
                else f"highest price {top:.4g}, not above the starting cash"
            )
            out[sym] = Basis(sym, "as_traded", f"{shares}; {why}")
    return out
