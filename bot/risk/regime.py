"""The regime gate: whether a side may be entered at a decision bar, from the signal symbol's figures
(`bot/signals/regime.py`). Bull entries need the signal's close above its SMA and a drawdown from its
peak shallower than the limit; bear entries the close below the SMA and a drawdown at least that deep.
Only the conditions set count; all of them must hold. Read only when the engine decides (a change of
direction), so it costs nothing per bar and the event-skipping backtest decides as the plain one does.
"""

from __future__ import annotations

import math
from typing import Any

from bot.core.config import RegimeGate
from bot.signals.regime import Regime


def regime_block(
    rules: RegimeGate, side: str, signal: str, fig: Regime | None
) -> tuple[str, dict[str, Any]] | None:
    """Why `side` ('bull' or 'bear') may not be entered now, in words with the figures; None when the
    gate lets the entry through."""
    if fig is None:
        return "regime gate: no figures of the signal yet", {}
    sma, peak = fig.of(side)
    close = fig.close
    why: list[str] = []
    details: dict[str, Any] = {"close": round(close, 4)}
    n = rules.regime_sma
    if n:
        details["sma"] = round(sma, 4) if not math.isnan(sma) else None
        if math.isnan(sma):
            why.append(f"{signal} SMA{n} not known yet (needs {n} bars)")
        elif side == "bull" and not close > sma:
            why.append(f"{signal} close {close:.2f} {'at' if close == sma else 'below'} SMA{n} {sma:.2f}")
        elif side == "bear" and not close < sma:
            why.append(f"{signal} close {close:.2f} {'at' if close == sma else 'above'} SMA{n} {sma:.2f}")
    limit = rules.regime_drawdown_pct
    if limit:
        p = rules.regime_peak_bars
        details["peak"] = round(peak, 4) if not math.isnan(peak) else None
        if math.isnan(peak) or not peak > 0:
            why.append(f"{signal} {p}-bar peak not known yet (needs {p} bars)")
        else:
            dd = 1.0 - close / peak
            details["drawdown"] = round(dd, 6)
            where = f"{signal} drawdown {dd:.1%} from its {p}-bar peak {peak:.2f}"
            if side == "bull" and not dd < limit:
                why.append(f"{where} is {limit * 100:g}% or deeper")
            elif side == "bear" and not dd >= limit:
                why.append(f"{where} is shallower than {limit * 100:g}%")
    if not why:
        return None
    return "regime gate: " + "; ".join(why), details
