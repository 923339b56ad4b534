"""`soxbot status`: the decay and carry attribution of an open position in a leveraged fund, from its
entry fill to the journal's latest mark (bot/risk/leverage.py has the terms).

The bars are read as the run read them: the run's own `[data]` and `[leveraged]` settings, as its
journal recorded them (a replay's synthetic market is regenerated from its seed), else the config
`soxbot status` was given. A position that cannot be attributed gets one line saying why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from bot.core.config import DataConfig, LeveragedConfig, Settings
from bot.risk.attribution import Pair, rates_for
from bot.risk.leverage import TERMS, Attribution


def _section(model: type, raw: Any, fallback: Any) -> Any:
    if not isinstance(raw, Mapping):
        return fallback
    try:
        return model.model_validate(dict(raw))
    except ValueError:
        return fallback


def line(symbol: str, att: Attribution, underlying: str) -> str:
    return (
        f"    decay/carry since entry (log points): {att.log_return * 100:+.2f} = "
        f"{att.leverage:+g}x {underlying} {att.leveraged_index * 100:+.2f}, "
        f"vol drag {att.vol_drag * 100:+.2f}, expense {att.expense * 100:+.2f}, "
        f"financing {att.financing * 100:+.2f}, rest {att.rest * 100:+.2f}"
    )


def position_lines(
    cfg: Settings, positions: Sequence[Any], mark_ts: str | None, run_config: Mapping[str, Any]
) -> list[str]:
    """One line per open position in a declared leveraged fund (`positions`: the journal's, with
    symbol, entry_time, entry_price, mark)."""
    from bot.data.load import load_bars

    data: DataConfig = _section(DataConfig, run_config.get("data"), cfg.data)
    lev: LeveragedConfig = _section(LeveragedConfig, run_config.get("leveraged"), cfg.leveraged)
    out: list[str] = []
    for p in positions:
        fund = lev.fund(p.symbol)
        if fund is None:
            continue
        if p.mark is None or mark_ts is None:
            out.append(f"    decay/carry: n/a (no mark for {p.symbol} yet)")
            continue
        try:
            loaded = load_bars(data, [p.symbol, fund.underlying])
            pair = Pair.of(fund, loaded[p.symbol][0], loaded[fund.underlying][0])
            att = pair.attribute(p.entry_time, p.entry_price, mark_ts, p.mark, rates_for(lev))
        except Exception as exc:  # bars missing, a bad file, a day not there: status still prints
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            out.append(f"    decay/carry: n/a ({why})")
            continue
        out.append(line(p.symbol, att, fund.underlying))
    return out


def position_decay(
    run_config: Mapping[str, Any],
    positions: Sequence[Mapping[str, Any]],
    mark_ts: str | None,
    load: Callable[[list[str]], dict[str, pd.DataFrame]],
) -> dict[str, dict[str, float] | str]:
    """The dashboard's figures: per open position in a declared leveraged fund, its attribution terms
    (log returns) from the entry fill to the journal's latest mark, or a line saying why there are none.
    `load(symbols)` gives the bars as the run read them."""
    lev: LeveragedConfig = _section(LeveragedConfig, run_config.get("leveraged"), LeveragedConfig())
    out: dict[str, dict[str, float] | str] = {}
    for p in positions:
        fund = lev.fund(p["symbol"])
        if fund is None:
            continue
        if p.get("mark") is None or mark_ts is None:
            out[p["symbol"]] = f"n/a (no mark for {p['symbol']} yet)"
            continue
        try:
            bars = load([p["symbol"], fund.underlying])
            pair = Pair.of(fund, bars[p["symbol"]], bars[fund.underlying])
            att = pair.attribute(p["entry_time"], p["entry_price"], mark_ts, p["mark"], rates_for(lev))
        except Exception as exc:  # the underlying has no bars there (an index at a broker), a day missing
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            out[p["symbol"]] = (
                f"n/a ({fund.underlying} bars: {why}; declare [[leveraged.funds]] with an underlying "
                "that has data, e.g. SOXX)"
            )
            continue
        out[p["symbol"]] = {"underlying": fund.underlying, "leverage": fund.leverage,
                            **{k: float(getattr(att, k)) for k in ("log_return", *TERMS)}}  # fmt: skip
    return out
