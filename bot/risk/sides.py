"""Each side's own rules: `[risk.bull]` / `[risk.bear]` override [risk] keys for the instrument of that
side (a 3x bear fund decays faster than the bull one and is held shorter, so it gets its own stop,
size and max hold). Resolved once per traded symbol when the engine is built, never per bar.
"""

from __future__ import annotations

from bot.core.config import RegimeGate, RiskConfig, Settings


def side_of(cfg: Settings, symbol: str) -> str | None:
    """'bull' or 'bear' for a traded symbol, None for any other."""
    uni = cfg.universe
    return "bull" if symbol and symbol == uni.bull else "bear" if symbol and symbol == uni.bear else None


def side_rules(cfg: Settings, symbol: str) -> RegimeGate | None:
    """The `[risk.bull]` / `[risk.bear]` table of `symbol`'s side; None when it has none."""
    side = side_of(cfg, symbol)
    return getattr(cfg.risk, side) if side is not None else None


def risk_for(cfg: Settings, symbol: str) -> RiskConfig:
    """The [risk] rules that apply to `symbol`: [risk] with its side's overrides. Validated when the
    configuration was loaded (`RiskConfig`), so a plain copy here."""
    rules = side_rules(cfg, symbol)
    if rules is None:
        return cfg.risk
    return cfg.risk.model_copy(update={**rules.overrides(), "bull": None, "bear": None})
