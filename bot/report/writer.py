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


def _source(cfg: Settings, synthetic: bool) -> str:
    d = cfg.data
    if synthetic:
        return f"SYNTHETIC bars (seed {d.seed}), not market history"
    if d.source == "csv":
        return f"CSV files in {d.dir}"
    return f"Alpaca {d.feed} feed" if d.source == "alpaca" else d.source


def _costs(cfg: Settings) -> dict[str, float]:
    return {"slippage_bps": cfg.broker.slippage_bps, "commission": cfg.broker.commission}


def write_outputs(
    cfg: Settings,
    strategies: Sequence[Strategy],
    bars: dict[str, pd.DataFrame],
    out: Path,
    synthetic: bool = False,
    progress: bool = False,
    leverage: LeverageContext | None = None,
    splits: SplitTable | None = None,
    lookahead_check: bool = False,
) -> dict[str, Any]:
    """`leverage`: the underlyings' bars and rates for the decay attribution (`bot/run/leveraged.py`);
    None: loaded here, a problem only noted. Bars before `[data] start` are pre-roll (warm-up only).
    `lookahead_check`: refuse a plugin whose signals change when later bars are removed."""
    from bot.data.calendar import bars_per_year
    from bot.report.attribution import attribute_backtest, journal_attribution, panel_html
    from bot.report.coverage import coverage
    from bot.report.events import event_stats
    from bot.report.events import panel_html as events_html
    from bot.report.metrics import summarize
    from bot.report.report import write_report
    from bot.report.tables import assumptions, exit_reasons, period_returns, settings, trade_returns

    out.mkdir(parents=True, exist_ok=True)
    jpath = out / "journal.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(jpath) + suffix).unlink(missing_ok=True)
    journal = Journal(jpath, buffered=True)
    journal.start_run("backtest", set_id_for(cfg), json.loads(cfg.model_dump_json()), synthetic)
    try:
        result = run_backtest(
            cfg, strategies, bars, journal, progress=progress, splits=splits, lookahead_check=lookahead_check
        )
    except BaseException:
        journal.end_run("failed")
        journal.close()
        raise
    ctx = leverage if leverage is not None else prepare(cfg, bars, strict=False)
    trades, attribution = attribute_backtest(cfg, result.trades, bars, ctx)
    journal_attribution(journal, trades)
    journal.end_run("ok")
    journal.close()

    uni = cfg.universe
    eq = result.equity.copy()
    eq.index.name = "timestamp"
    t0 = eq.index[0]
    bars = {s: df[df.index >= t0] for s, df in bars.items()}  # without the pre-roll
    sig = bars[uni.signal]
    trades.to_csv(out / "trades.csv", index=False)
    eq.to_csv(out / "equity.csv")
    cov = coverage(bars, [uni.signal, *uni.traded], pd.DatetimeIndex(eq.index), result.trades)
    measured = eq[(eq.index >= cov.start) & (eq.index <= cov.end)]
    held = {s: bars[s]["close"] for s in dict.fromkeys([uni.signal, uni.bull]) if s and s in bars}
    summary = summarize(
        measured,
        result.trades,
        sig["close"],
        bars_per_year(cfg.data.timeframe),
        cfg.broker.starting_cash,
        benchmarks=held,
    )
    summary["period"]["run"] = {"start": eq.index[0].isoformat(), "end": eq.index[-1].isoformat()}
    summary["period"]["preroll_bars"] = result.preroll
    summary["period"]["warnings"] = cov.warnings  # instruments without data for part of the run
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
    summary["warnings"] = [*cov.warnings, *(u.message(frac) for u in result.unsizable)]
    summary["checks"] = result.checks
    summary["unsizable"] = [u.as_dict(frac) for u in result.unsizable]
    summary["entries_blocked_size_0"] = dict(result.engine.size_zero)
    ev_syms = list(dict.fromkeys([cfg.universe.signal, *cfg.universe.traded]))
    ev_guard = result.engine.events
    summary["events"] = event_stats(ev_guard.events, bars, eq, ev_syms) if ev_guard is not None else {}
    summary["entries_blocked_by_events"] = result.engine.event_blocks
    summary = _clean(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    panels: dict[str, str] = {}
    for s in strategies:
        panels.update(s.panels)
    indicators = result.signals.indicators()
    indicators = indicators[indicators.index >= t0]
    traded = {s: bars[s] for s in uni.traded if s in bars}
    ppy = bars_per_year(cfg.data.timeframe)
    risk = cfg.risk.model_dump(exclude_none=True)  # a side table: only the keys it sets
    cash = cfg.broker.starting_cash
    tables = [
        (
            "Assumptions",
            assumptions(
                slippage_bps=cfg.broker.slippage_bps,
                commission=cfg.broker.commission,
                starting_cash=cfg.broker.starting_cash,
                fractional=cfg.risk.fractional,
                price_basis={s: b.statement for s, b in result.basis.items()},
                data=_source(cfg, synthetic),
                timeframe=cfg.data.timeframe,
                preroll=result.preroll,
            ),
        ),
        ("Returns by month and year (strategy)", period_returns(measured["equity"], cash)),
        ("Trades by exit reason", exit_reasons(result.trades, pd.DatetimeIndex(eq.index))),
        ("Decay and carry (leveraged funds)", panel_html(attribution)),
        ("Event days against the rest", events_html(summary["events"], ev_syms)),
        (
            "Settings",
            settings(
                [(repr(s).split("(")[0], s.params.model_dump()) for s in strategies],
                {
                    "universe": uni.model_dump(),
                    "combine": cfg.combine.model_dump(),
                    "risk": risk,
                    "broker": {"starting_cash": cfg.broker.starting_cash, **_costs(cfg)},
                    "data": {k: v for k, v in cfg.data.model_dump().items() if v is not None},
                },
            ),
        ),
    ]
    write_report(
        out / "report.html",
        title=f"soxbot backtest: {uni.signal} signal -> {uni.bull or '-'} / {uni.bear or '-'}",
        bars=sig,
        indicators=indicators,
        panels=panels,
        trades=result.trades,
        equity=measured,
        benchmark_close=sig["close"],
        summary=summary,
        synthetic=synthetic,
        bear=cfg.universe.bear,
        warnings=summary["warnings"],
        notes=[
            *[f"warm-up check: {c}" for c in result.checks],
            *[f"entries blocked at size 0: {n} into {sym}" for sym, n in result.engine.size_zero.items()],
        ],
        sections=tables,
        traded=traded,
        periods_per_year=ppy,
        pnl=trade_returns(result.trades),
    )
    return summary
