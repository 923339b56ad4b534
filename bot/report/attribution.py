"""The backtest's decay and carry attribution: trades.csv columns, the summary.json block, the
report's panel and the journal's rows (bot/risk/leverage.py has the definitions)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import pandas as pd

from bot.core.config import Settings
from bot.journal.attribution import write_rows
from bot.journal.journal import Journal
from bot.risk.attribution import attribute_trades, summarize_attribution
from bot.risk.leverage import TERMS
from bot.run.leveraged import LeverageContext

LABELS = {
    "log_return": "trade log return",
    "leveraged_index": "L x index",
    "vol_drag": "volatility drag",
    "expense": "expense ratio",
    "financing": "financing",
    "rest": "unexplained rest",
}


def attribute_backtest(
    cfg: Settings, trades: pd.DataFrame, bars: Mapping[str, pd.DataFrame], ctx: LeverageContext
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """`trades` with the attribution columns appended, and the summary.json block."""
    every = {**ctx.underlyings, **bars}
    tol = cfg.broker.slippage_bps / 10_000.0
    cols, notes = attribute_trades(trades, every, cfg.leveraged, ctx.rates, tol)
    out = (
        pd.concat([trades, cols], axis=1) if len(trades) else trades.reindex(columns=[*trades.columns, *cols])
    )
    block: dict[str, Any] = {
        "units": "log return (x100 = log points); the terms sum to log_return",
        "by_symbol": summarize_attribution(out) if len(out) else {},
        "rates": ctx.rates.source,
        "funds": {
            s: cfg.leveraged.fund(s).model_dump()  # type: ignore[union-attr]
            for s in cfg.universe.traded
            if cfg.leveraged.fund(s) is not None
        },
        "notes": [*ctx.notes, *notes],
    }
    return out, block


def journal_attribution(journal: Journal, trades: pd.DataFrame) -> None:
    """One journal row per attributed trade (table `attribution`)."""
    write_rows(journal, trades, is_open=False)


def panel_html(block: Mapping[str, Any]) -> str:
    """A small table: per symbol, the sum of each term over its trades, in log points."""
    rows = block.get("by_symbol") or {}
    if not rows:
        notes = block.get("notes") or ["no leveraged fund was traded"]
        return "<p>" + html.escape("; ".join(notes)) + "</p>"
    keys = ["log_return", *TERMS]
    head = (
        '<tr><th class="l">symbol</th><th>trades</th>'
        + "".join(f"<th>{html.escape(LABELS[k])}</th>" for k in keys)
        + "</tr>"
    )
    body = []
    for sym, r in rows.items():
        cells = "".join(f"<td>{r[k] * 100:+,.2f}</td>" for k in keys)
        body.append(f'<tr><td class="l">{html.escape(sym)}</td><td>{r["trades"]}</td>{cells}</tr>')
    foot = (
        '<div class="foot">Sums over the trades, in log points (100 x log return): the columns after the '
        "first add up to it. Financing: " + html.escape(str(block.get("rates", ""))) + ". Definitions: "
        "bot/risk/leverage.py.</div>"
    )
    notes = block.get("notes") or []
    extra = "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>" if notes else ""
    return f'<table class="attribution">{head}{"".join(body)}</table>{foot}{extra}'
