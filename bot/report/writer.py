"""Run a backtest and write its files: trades.csv, equity.csv, summary.json, report.html, journal.db."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bot.core.config import Settings
from bot.data.splits import SplitTable
from bot.journal.journal import Journal
from bot.run.backtest import run_backtest, set_id_for
from bot.run.leveraged import LeverageContext, prepare
from bot.signals.strategy import Strategy


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def write_outputs(
    cfg: Settings,
    strategies: Sequence[Strategy],
    bars: dict[str, pd.DataFrame],
    out: Path,
    synthetic: bool = False,
    progress: bool = False,
    leverage: LeverageContext | None = None,
    splits: SplitTable | None = None,
) -> dict[str, Any]:
    """`leverage`: the underlyings' bars and rates for the decay attribution (`bot/run/leveraged.py`);
    None: loaded here, a problem only noted."""
    from bot.data.calendar import bars_per_year
    from bot.report.attribution import attribute_backtest, journal_attribution, panel_html
    from bot.report.events import event_stats
    from bot.report.events import panel_html as events_html
    from bot.report.metrics import summarize
    from bot.report.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    jpath = out / "journal.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(jpath) + suffix).unlink(missing_ok=True)
    journal = Journal(jpath, buffered=True)
    journal.start_run("backtest", set_id_for(cfg), json.loads(cfg.model_dump_json()), synthetic)
    result = run_backtest(cfg, strategies, bars, journal, progress=progress, splits=splits)
    ctx = leverage if leverage is not None else prepare(cfg, bars, strict=False)
    trades, attribution = attribute_backtest(cfg, result.trades, bars, ctx)
    journal_attribution(journal, trades)
    journal.end_run("ok")
    journal.close()

    sig = bars[cfg.universe.signal]
    trades.to_csv(out / "trades.csv", index=False)
    eq = result.equity.copy()
    eq.index.name = "timestamp"
    eq.to_csv(out / "equity.csv")
    summary = summarize(
        eq, result.trades, sig["close"], bars_per_year(cfg.data.timeframe), cfg.broker.starting_cash
    )
    summary["run"] = {
        "signal": cfg.universe.signal,
        "bull": cfg.universe.bull,
        "bear": cfg.universe.bear,
        "strategies": [repr(s) for s in strategies],
        "combine": cfg.combine.mode,
        "data": cfg.data.source,
        "synthetic": synthetic,
        "timeframe": cfg.data.timeframe,
        "engine_seconds": round(result.seconds, 4),
        "bars_per_second": round(len(sig) / result.seconds) if result.seconds > 0 else None,
    }
    summary["attribution"] = attribution
    # how quantities relate to prices: as traded (with splits applied), or notional on adjusted prices
    summary["price_basis"] = {s: {"basis": b.kind, "statement": b.statement} for s, b in result.basis.items()}
    frac = cfg.risk.fractional
    summary["warnings"] = [u.message(frac) for u in result.unsizable]
    summary["unsizable"] = [u.as_dict(frac) for u in result.unsizable]
    summary["entries_blocked_size_0"] = dict(result.engine.size_zero)
    ev_syms = list(dict.fromkeys([cfg.universe.signal, *cfg.universe.traded]))
    ev_guard = result.engine.events
    summary["events"] = event_stats(ev_guard.events, bars, eq, ev_syms) if ev_guard is not None else {}
    summary["entries_blocked_by_events"] = result.engine.event_blocks
    summary = _clean(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    uni = cfg.universe
    panels: dict[str, str] = {}
    for s in strategies:
        panels.update(s.panels)
    indicators = result.signals.indicators()
    write_report(
        out / "report.html",
        title=f"soxbot backtest: {uni.signal} signal -> {uni.bull or '-'} / {uni.bear or '-'}",
        bars=sig,
        indicators=indicators,
        panels=panels,
        trades=result.trades,
        equity=eq,
        benchmark_close=sig["close"],
        summary=summary,
        synthetic=synthetic,
        bear=cfg.universe.bear,
        warnings=summary["warnings"],
        notes=[
            f"strategies: {', '.join(repr(s) for s in strategies)}; combine: {cfg.combine.mode}",
            f"risk: {cfg.risk.model_dump(exclude_none=True)}",  # a side table: only the keys it sets
            *(f"price basis: {b.statement}" for b in result.basis.values()),
            *[f"entries blocked at size 0: {n} into {sym}" for sym, n in result.engine.size_zero.items()],
        ],
        sections=[
            ("Decay and carry (leveraged funds)", panel_html(attribution)),
            ("Event days against the rest", events_html(summary["events"], ev_syms)),
        ],
    )
    return summary
