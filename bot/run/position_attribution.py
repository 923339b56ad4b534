"""`soxbot status`: the decay and carry attribution of an open position in a leveraged fund, from its
entry fill to the journal's latest mark (bot/risk/leverage.py has the terms).

The bars are read as the run read them: the run's own `[data]` and `[leveraged]` settings, as its
journal recorded them (a replay's synthetic market is regenerated from its seed), else the config
`soxbot status` was given. A position that cannot be attributed gets one line saying why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.core.config import DataConfig, LeveragedConfig, Settings
from bot.risk.attribution import Pair, rates_for
from bot.risk.leverage import Attribution


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
