"""What a run needs to attribute its leveraged holds: the underlyings' bars and the short rates.

Checked before anything trades (`prepare(strict=True)`, from `soxbot backtest` and `soxbot run`): a
fund the config itself declares (`[[leveraged.funds]]`) whose underlying has no data, or a bad rates
file, stops the run with one message naming the fix. For the built-in SOXL/SOXS declarations an
underlying without data (no SOX file, or Alpaca, which has no index data) is only a note: the run
goes on without attribution for that fund.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bot.core.config import Settings
from bot.data.errors import DataError
from bot.data.rates import Rates
from bot.risk.attribution import rates_for


@dataclass
class LeverageContext:
    rates: Rates
    underlyings: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def underlyings_needed(cfg: Settings) -> dict[str, str]:
    """Traded symbol -> its underlying, for the traded symbols declared leveraged."""
    out = {}
    for sym in cfg.universe.traded:
        fund = cfg.leveraged.fund(sym)
        if fund is not None:
            out[sym] = fund.underlying
    return out


def prepare(
    cfg: Settings, bars: dict[str, pd.DataFrame] | None = None, strict: bool = True
) -> LeverageContext:
    """The rates and the underlyings' bars (those already in `bars` are reused). `strict`: a problem
    with what the config declares raises DataError; otherwise it becomes a note."""
    from bot.data.load import load_bars

    try:
        rates = rates_for(cfg.leveraged)
    except DataError:
        if strict:
            raise
        rates = Rates.constant(cfg.leveraged.short_rate)
    ctx = LeverageContext(rates)
    have = dict(bars or {})
    for sym, und in underlyings_needed(cfg).items():
        if und in have:
            ctx.underlyings[und] = have[und]
            continue
        try:
            df, _report = load_bars(cfg.data, [und])[und]
        except (DataError, OSError, ValueError) as exc:
            if strict and cfg.leveraged.declared(sym):
                raise DataError(
                    f"{sym} is declared leveraged on {und} ([[leveraged.funds]]), but {und} has no data: "
                    f"{exc}\nFix: add {und}_{cfg.data.timeframe}.csv to the data directory, or set its "
                    "underlying to a symbol with data (SOXX follows the index SOXL/SOXS track since "
                    "2021-08-25)."
                ) from exc
            ctx.notes.append(
                f"no decay attribution for {sym}: its underlying {und} has no data "
                f"({str(exc).splitlines()[0]}); declare it in [[leveraged.funds]] with an underlying "
                "that has data"
            )
            continue
        have[und] = ctx.underlyings[und] = df
    return ctx


def journal_closed_trades(
    cfg: Settings, journal: object, trades: list[object], bars: dict[str, pd.DataFrame]
) -> int:
    """The decay and carry of a run's closed trades into the journal's `attribution` table (a replay's,
    at its end); returns the rows written. A trade that cannot be attributed is left out."""
    from bot.journal.attribution import write_rows
    from bot.risk.attribution import attribute_trades
    from bot.run.backtest import trades_frame

    if not trades:
        return 0
    ctx = prepare(cfg, bars, strict=False)
    frame = trades_frame(trades)  # type: ignore[arg-type]
    cols, _notes = attribute_trades(
        frame, {**ctx.underlyings, **bars}, cfg.leveraged, ctx.rates, cfg.broker.slippage_bps / 10_000.0
    )
    return write_rows(journal, pd.concat([frame, cols], axis=1), is_open=False)  # type: ignore[arg-type]
