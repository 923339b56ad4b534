"""A backtest's event days against the rest: do the calendar's events move the market, and the strategy?

An event day is the session its news reaches prices in (`Event.session`: the next session for an `amc`
earnings). Per kind and for all other sessions: how many, the mean close-to-close return and the mean
absolute overnight gap (open / previous close - 1) of the signal and each traded symbol, the share of
gaps beyond 2%, and the strategy's mean daily return (its equity at each session's last bar).
Intraday bars are reduced to sessions first (first open, last close).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from bot.data.events import Event

BIG_GAP = 0.02


def _daily(df: pd.DataFrame) -> pd.DataFrame:
    idx = df.index
    day = idx.tz_convert("America/New_York").tz_localize(None).normalize() if idx.tz is not None else idx
    g = df.groupby(day)
    return pd.DataFrame({"open": g["open"].first(), "close": g["close"].last()})


def _figures(d: pd.DataFrame, on: pd.Index) -> dict[str, float | None]:
    prev = d["close"].shift(1)
    ret = (d["close"] / prev - 1).reindex(on).dropna()
    gap = (d["open"] / prev - 1).reindex(on).dropna()
    if len(ret) == 0:
        return {"mean_return": None, "mean_abs_gap": None, "share_gap_over_2pct": None}
    return {
        "mean_return": float(ret.mean()),
        "mean_abs_gap": float(gap.abs().mean()),
        "share_gap_over_2pct": float((gap.abs() > BIG_GAP).mean()),
    }


def event_stats(
    events: list[Event], bars: Mapping[str, pd.DataFrame], equity: pd.DataFrame, symbols: list[str]
) -> dict[str, Any]:
    """The `events` block of summary.json (see the module docstring)."""
    daily = {s: _daily(bars[s]) for s in symbols if s in bars}
    sessions = next(iter(daily.values())).index if daily else pd.DatetimeIndex([])
    eq = equity["equity"]
    eq_day = _daily(pd.DataFrame({"open": eq, "close": eq}))["close"]
    strat = (eq_day / eq_day.shift(1) - 1).dropna()
    days: dict[str, set[pd.Timestamp]] = {}
    for ev in events:
        if ev.session in sessions:
            days.setdefault(ev.kind, set()).add(ev.session)
    groups = {k: pd.DatetimeIndex(sorted(v)) for k, v in days.items()}
    every = set().union(*days.values()) if days else set()
    groups["rest"] = sessions.difference(pd.DatetimeIndex(sorted(every)))
    out: dict[str, Any] = {}
    for kind, on in groups.items():
        s = strat.reindex(on).dropna()
        out[kind] = {
            "sessions": len(on),
            "strategy_mean_return": float(s.mean()) if len(s) else None,
            **{sym: _figures(d, on) for sym, d in daily.items()},
        }
    return out


def panel_html(block: Mapping[str, Any], symbols: list[str]) -> str:
    """A table: per event kind and the rest, the figures of `event_stats`."""
    if not block:
        return "<p>no event calendar ([events] file)</p>"

    def pct(x: Any) -> str:
        return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x * 100:+.2f}%"

    head = "<tr><th class='l'>days</th><th>sessions</th><th>strategy mean</th>" + "".join(
        f"<th>{e} mean</th><th>{e} mean |gap|</th><th>{e} gaps &gt;2%</th>" for e in map(html.escape, symbols)
    )
    rows = []
    for kind, r in block.items():
        cells = "".join(
            f"<td>{pct(r[s]['mean_return'])}</td><td>{pct(r[s]['mean_abs_gap'])}</td>"
            f"<td>{pct(r[s]['share_gap_over_2pct'])}</td>"
            for s in symbols
            if s in r
        )
        rows.append(
            f"<tr><td class='l'>{html.escape(kind)}</td><td>{r['sessions']}</td>"
            f"<td>{pct(r['strategy_mean_return'])}</td>{cells}</tr>"
        )
    foot = (
        "<div class='foot'>An event day is the session the news reaches prices in (the next session for "
        "an after-close release). Returns close to close; gap = open / previous close - 1.</div>"
    )
    return f"<table class='attribution'>{head}</tr>{''.join(rows)}</table>{foot}"
