"""`soxbot hedge`: how much SOXS offsets a set of semiconductor holdings, what it costs, how it drifts,
and what it would have done over the history the data covers (the math is in bot/risk/hedge.py).

Data: daily bars of each holding, the index proxy and the fund, from `[data]` (a CSV directory or
Alpaca). Figures are as of the last session all of them have a close on (said in the output), with
betas over the `window` sessions before it. The backtest holds the current weights.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from bot.core.config import ConfigError, Settings
from bot.data.errors import DataError
from bot.risk import hedge as hm
from bot.risk.attribution import daily_bars, rates_for
from bot.risk.decay import ewma_variance, expected_decay

HORIZON = 20  # sessions each backtest window holds the hedge
COST_SESSIONS = {"week": 5, "month": 21}


def _closes(cfg: Settings, symbol: str, role: str) -> pd.Series:
    from bot.data.load import load_bars

    data = cfg.data.model_copy(update={"timeframe": "1d"})
    try:
        df = load_bars(data, [symbol])[symbol][0]
    except (DataError, OSError) as exc:
        first = str(exc).splitlines()[0]
        where = f"{data.dir}/{symbol}_1d.csv" if data.source == "csv" else f"the {data.source} source"
        fix = f"Fix: add daily bars at {where} (soxbot data download --symbols {symbol} --dir DIR)" + (
            f", or drop {symbol} from the holdings." if role == "holding" else f", or choose another {role}."
        )
        raise DataError(f"no daily data for {symbol} ({role}): {first} {fix}") from None
    return daily_bars(df)["close"].rename(symbol)


def analyse(
    cfg: Settings, holdings: dict[str, float], ratio: float | None = None, window: int | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the report as JSON-able figures, the series the HTML page plots). Raises DataError/ConfigError."""
    h = cfg.hedge
    ratio = h.ratio if ratio is None else ratio
    window = h.beta_window if window is None else window
    fund = cfg.leveraged.fund(h.instrument)
    if fund is None:
        raise ConfigError(
            f"{h.instrument} is not a declared leveraged fund. Fix: declare it under [[leveraged.funds]] "
            'or use [hedge] instrument = "SOXS".'
        )
    own = {h.index, h.instrument}
    clash = sorted(own & set(holdings))
    if clash:
        raise DataError(f"{', '.join(clash)} is the hedge's own index or fund, not a holding. Fix: drop it.")
    lev = fund.leverage
    series = {s: _closes(cfg, s, "holding") for s in holdings}
    index = _closes(cfg, h.index, "index proxy")
    fclose = _closes(cfg, h.instrument, "hedge fund")
    frame = pd.concat([*series.values(), index], axis=1, join="inner").dropna()
    frame = frame.join(fclose, how="inner").dropna()
    if len(frame) < window + 1:
        short = min(holdings, key=lambda s: len(series[s].dropna()))
        raise DataError(
            f"{len(frame)} sessions where every holding, {h.index} and {h.instrument} have a close "
            f"(fewest: {short}, {len(series[short])}); betas need {window + 1}. Fix: a smaller --window, "
            "or holdings with a longer common history."
        )
    as_of = frame.index[-1]
    rets = frame.pct_change()
    last = rets.iloc[-window:]
    betas = {s: hm.ols_beta(last[s].to_numpy(), last[h.index].to_numpy()) for s in holdings}
    prices = {s: float(frame[s].iloc[-1]) for s in holdings}
    values = {s: holdings[s] * prices[s] for s in holdings}
    exposure = sum(betas[s] * values[s] for s in holdings)
    total = sum(values.values())
    if exposure <= 0:
        raise DataError(
            f"the holdings' beta-weighted exposure to {h.index} is {exposure:,.0f}, not positive: an inverse "
            "fund would add risk, not reduce it. Fix: check the holdings."
        )
    fpx = float(frame[h.instrument].iloc[-1])
    notional = hm.hedge_notional(exposure, ratio, lev)
    shares = math.floor(notional / fpx)
    var = float(ewma_variance(index.loc[:as_of].to_numpy(float))[-1])
    rate = rates_for(cfg.leveraged).at(as_of.date())
    costs = {}
    for name, n in COST_SESSIONS.items():
        f = expected_decay(lev, var, n, fund.expense_ratio, rate)
        costs[name] = {
            "sessions": n,
            "log_points": f.cost,
            "dollars": notional * -math.expm1(f.total),
            "vol_drag": f.vol_drag,
            "expense": f.expense,
            "financing": f.financing,
        }
    down, up = hm.band_moves(betas, values, lev, h.band)
    weights = {s: values[s] / total for s in holdings}
    port = sum(weights[s] * rets[s] for s in holdings).to_numpy()
    bt = hm.backtest(
        port, frame[h.index].to_numpy(float), frame[h.instrument].to_numpy(float), ratio, lev, window, HORIZON
    )
    report = {
        "as_of": str(as_of.date()),
        "index": h.index,
        "instrument": h.instrument,
        "leverage": lev,
        "ratio": ratio,
        "beta_window": window,
        "holdings": [
            {
                "symbol": s,
                "quantity": holdings[s],
                "price": prices[s],
                "value": values[s],
                "beta": betas[s],
                "exposure": betas[s] * values[s],
            }
            for s in holdings
        ],
        "total_value": total,
        "exposure": exposure,
        "hedge": {
            "notional": notional,
            "price": fpx,
            "shares": shares,
            "per_100k_held": notional / total * 1e5,
        },
        "expected_cost": costs,
        "cost_inputs": {
            "index_sigma_daily": math.sqrt(var),
            "rate": rate,
            "expense_ratio": fund.expense_ratio,
        },
        "drift_per_1pct": {
            "up": hm.drift(betas, values, lev, 0.01),
            "down": hm.drift(betas, values, lev, -0.01),
        },
        "band": {"band": h.band, "min_trade": h.min_trade, "index_move_down": down, "index_move_up": up},
        "backtest": {
            "from": str(frame.index[0].date()),
            "to": str(as_of.date()),
            "horizon": HORIZON,
            **bt.figures(),
        },
    }
    last_fund = fclose.index[-1]
    if last_fund > as_of:  # the fund's file runs on: its older prices are on its latest split basis
        now_px = float(fclose.iloc[-1])
        report["hedge"]["note"] = (
            f"{h.instrument} prices are on the data's basis (split-adjusted to {last_fund.date()}); "
            f"shares at its latest close {now_px:,.2f}: {math.floor(notional / now_px):,}"
        )
    plots = {"frame": frame, "backtest": bt, "betas": betas}
    return report, plots


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:+.2%}"


def render(r: dict[str, Any]) -> str:
    """The plain table `soxbot hedge` prints."""
    ix, fund = r["index"], r["instrument"]
    lines = [
        f"hedge of {len(r['holdings'])} holdings with {fund} ({r['leverage']:+g}x), betas to {ix} over "
        f"{r['beta_window']} sessions, as of {r['as_of']} (the last session all have a close)",
        f"  {'symbol':<8} {'quantity':>10} {'price':>10} {'value':>13} {'beta':>6} {'exposure':>13}",
    ]
    for hd in r["holdings"]:
        lines.append(
            f"  {hd['symbol']:<8} {hd['quantity']:>10,.4g} {hd['price']:>10,.2f} {hd['value']:>13,.0f} "
            f"{hd['beta']:>6.2f} {hd['exposure']:>13,.0f}"
        )
    hg, c, b, bt = r["hedge"], r["expected_cost"], r["band"], r["backtest"]
    lines += [
        f"  {'total':<8} {'':>10} {'':>10} {r['total_value']:>13,.0f} {'':>6} {r['exposure']:>13,.0f}",
        f"hedge ratio {r['ratio']:g}: {fund} notional {hg['notional']:,.0f} = {hg['shares']:,} shares at "
        f"{hg['price']:,.2f} ({hg['per_100k_held']:,.0f} per 100k held)",
        *([f"  note: {hg['note']}"] if "note" in hg else []),
        "expected cost (decay forecast + expense + financing): "
        + "; ".join(
            f"per {k} {v['dollars']:,.0f} ({v['log_points']:+.2%} of the hedge)" for k, v in c.items()
        ),
        f"drift per 1% index move: {_pct(r['drift_per_1pct']['up'])} of target on +1%, "
        f"{_pct(r['drift_per_1pct']['down'])} on -1%",
        f"rebalance band +/-{b['band']:.0%} (min trade {b['min_trade']:,.0f}): reached after an index move "
        f"of {_pct(b['index_move_down'])} or {_pct(b['index_move_up'])}",
        f"backtest {bt['from']} .. {bt['to']}, hedge held {bt['horizon']} sessions from each of "
        f"{bt['windows']} starts (sized on the beta before each start):",
        f"  {'':<14} {'volatility':>10} {'worst':>8} {'mean':>8}   ({bt['horizon']}-session returns)",
        *(
            f"  {name:<14} {bt[k]['volatility']:>10.2%} {bt[k]['worst']:>+8.2%} {bt[k]['mean']:>+8.2%}"
            for name, k in (("without hedge", "without"), ("with hedge", "with"))
        ),
        f"  hedge cost: {bt['mean_cost']:.2%} of the portfolio per {bt['horizon']} sessions on average "
        f"({fund}'s return short of {r['leverage']:+g}x {ix}); median notional "
        f"{bt['median_notional_per_dollar'] * 1e5:,.0f} per 100k held",
    ]
    return "\n".join(lines)


def broker_holdings(positions: list[Any], own: set[str]) -> dict[str, float]:
    """Long positions at the broker outside `own` (the bot's symbols), as holdings."""
    out = {}
    for p in positions:
        sym = str(getattr(p, "symbol", "")).upper()
        qty = float(getattr(p, "qty", 0) or 0)
        if sym and sym not in own and qty > 0:
            out[sym] = qty
    if not out:
        raise DataError(
            "the broker holds nothing outside the bot's own symbols to hedge. "
            "Fix: pass --holdings SYM=QTY,..."
        )
    return out
