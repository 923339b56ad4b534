"""What a daily-reset leveraged fund's return is made of: pure arithmetic, no data access.

A fund with daily leverage L (SOXL +3, SOXS -3) resets its exposure to L x its net assets at every
close. Held from price P_e to P_x, its log return R = ln(P_x / P_e) splits into five terms that sum
to R exactly (the last one is defined as what the others leave):

    R = leveraged_index + vol_drag + expense + financing + rest

**Segments.** The hold is cut at the closes it spans into one segment per session t. A segment runs
from an index level U_s to U_q within session t; with U_{t-1} the index's previous close,
beta_t = U_s / U_{t-1} - 1 and alpha_t = U_q / U_{t-1} - 1 (a whole session: beta = 0 and alpha = r_t,
the index's close-to-close return; the entry session starts at the entry point, the exit session ends
at the exit point). Within a session the fund moves L x the index's return since the last reset, so
the fund's gross factor over a segment is (1 + L alpha_t) / (1 + L beta_t).

**leveraged_index** = L * sum_t ln(U_q / U_s) = L * ln(U_exit / U_entry): L times the index's log
return over the hold, what "3x the index" would have made with continuous compounding.

**vol_drag** = -(L^2 - L)/2 * sum_t (alpha_t^2 - beta_t^2): the textbook volatility drag
-(L^2 - L)/2 * sum r_t^2 over whole sessions. It is the second-order term of
ln(1 + L x) - L ln(1 + x) = -(L^2 - L)/2 x^2 + (L^3 - L)/3 x^3 - ..., the gap between compounding
L x the daily return and L x the compounded return; higher orders go to `rest`.

**expense** = -expense_ratio * D / 365, D = calendar days accrued: the fund accrues fees into its net
asset value at each close (for the calendar days since the previous one), so a close counts when the
position is held through it (bought before it, sold at or after it).

**financing** = sum over accrued closes of (1 - L) * rate * days / 365. Derivation, per unit of net
assets V at the start of a day, rate r a year (d = days/365):
* L > 1 (SOXL): exposure L V. The fund owns V and borrows (L - 1) V (directly, or implicitly inside a
  swap or futures position, whose price carries the same rate); it pays (L - 1) r d V.
* L < 0 (SOXS, |L| = 3): a short of |L| V raises |L| V of cash on top of the fund's own V, and all
  of it, (1 + |L|) V, earns r (as collateral or T-bills; a short swap pays the same rate on its
  notional); it receives (1 - L) r d V = (1 + |L|) r d V.
* Both cases, and L = 1 (nothing borrowed), are (1 - L) r d: -2 r for +3x, +4 r for -3x.
Swap spreads, stock borrow fees, dividends owed on a short and distributions paid out (the price
files are not dividend-adjusted) are not modelled: they land in `rest`.

**rest** = R - (the four above): tracking error, the higher-order compounding terms, the costs just
named, slippage against the index, the fund's premium or discount to its net assets, and data noise.

All terms are log returns (add over consecutive holds); x 100 gives log points (~percent when small).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

DAYS_PER_YEAR = 365.0  # fees and interest accrue on calendar days (ACT/365)

TERMS = ("leveraged_index", "vol_drag", "expense", "financing", "rest")


def drag_coefficient(leverage: float) -> float:
    """(L^2 - L) / 2: 3 for +3x, 6 for -3x, 0 for 1x and for 0x."""
    return (leverage * leverage - leverage) / 2.0


def financing_multiplier(leverage: float) -> float:
    """(1 - L): the net share of net assets that earns (> 0) or pays (< 0) the short rate."""
    return 1.0 - leverage


@dataclass(frozen=True, slots=True)
class Attribution:
    """One hold's log return and its five terms (they sum to `log_return`)."""

    leverage: float
    log_return: float
    index_log: float  # the index's own log return over the hold (unlevered)
    leveraged_index: float
    vol_drag: float
    expense: float
    financing: float
    rest: float
    days: float  # calendar days of fees and interest accrued
    sessions: int  # session segments spanned (1 = in and out the same session)

    def terms(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in TERMS}

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def attribute(
    leverage: float,
    entry_price: float,
    exit_price: float,
    index_entry: float,
    index_exit: float,
    alphas: Sequence[float],
    betas: Sequence[float],
    accrual_days: Sequence[float],
    accrual_rates: Sequence[float],
    expense_ratio: float,
) -> Attribution:
    """The terms for one hold (see the module docstring for each): `alphas`/`betas` per session
    segment; `accrual_days[i]` calendar days accrued at the i-th close held through, at annual
    rate `accrual_rates[i]` (a decimal)."""
    if not (entry_price > 0 and exit_price > 0 and index_entry > 0 and index_exit > 0):
        raise ValueError("prices and index levels must be positive")
    if len(alphas) != len(betas) or len(accrual_days) != len(accrual_rates):
        raise ValueError("alphas/betas and accrual_days/accrual_rates must pair up")
    total = math.log(exit_price / entry_price)
    index_log = math.log(index_exit / index_entry)
    lev = leverage * index_log
    drag = -drag_coefficient(leverage) * math.fsum(a * a - b * b for a, b in zip(alphas, betas, strict=True))
    days = math.fsum(accrual_days)
    expense = -expense_ratio * days / DAYS_PER_YEAR
    fin = (
        financing_multiplier(leverage)
        * math.fsum(r * d for r, d in zip(accrual_rates, accrual_days, strict=True))
        / DAYS_PER_YEAR
    )
    rest = total - lev - drag - expense - fin
    return Attribution(leverage, total, index_log, lev, drag, expense, fin, rest, days, len(alphas))


def implied_index(price: float, fund_ref: float, index_ref: float, leverage: float) -> float:
    """The index level a fund price implies within a session: the fund moves L x the index's
    return since the reference (the previous close), so U = U_ref (1 + (P / P_ref - 1) / L)."""
    return index_ref * (1.0 + (price / fund_ref - 1.0) / leverage)
