"""Build the run's parts from the configuration: strategies and market data.

Kept apart from the CLI so tests, the service and the benchmarks assemble a run the same way.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bot.core.config import ConfigError, Settings
from bot.signals.strategy import Strategy


def plugin_paths(cfg: Settings, extra_paths: tuple[Path, ...] = ()) -> tuple[Path, ...]:
    """Where plugins outside the package live: `[plugins] paths` plus `extra_paths`. A path that does
    not exist is a ConfigError (a typo there would otherwise surface as "unknown strategy")."""
    paths = (*cfg.plugins.paths, *extra_paths)
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise ConfigError(
            f"Plugin path {', '.join(missing)} does not exist ([plugins] paths or --path). "
            "Fix: correct the path, or create the directory (`soxbot new-strategy NAME --dest DIR`)."
        )
    return paths


def build_strategies(
    cfg: Settings, source: str = "config", extra_paths: tuple[Path, ...] = ()
) -> list[Strategy]:
    """The configured strategies, found in the package, entry points and `[plugins] paths`."""
    from bot.signals.plugins import PluginError, create

    paths = plugin_paths(cfg, extra_paths)
    out = []
    for i, sc in enumerate(cfg.strategies):
        try:
            out.append(create(sc.name, sc.params, paths))
        except PluginError as exc:
            raise ConfigError(
                f"Invalid configuration in {source}:\n  - strategies[{i}] ({sc.name}): {exc}"
            ) from exc
    return out


def preroll_bars(cfg: Settings, strategies: list[Strategy]) -> int:
    """Bars before `[data] start` a backtest loads to warm up: what a live start warms up from (the
    live window, the regime gates' lookback, the index measures' history), so that the first traded
    bar decides as a run from the data's start would."""
    from bot.data.calendar import is_intraday
    from bot.risk.index import IndexRisk
    from bot.signals.regime import regime_window
    from bot.signals.window import live_window

    ix = IndexRisk.for_settings(cfg)
    per_session = 390 if is_intraday(cfg.data.timeframe) else 1  # sessions -> bars (1-minute worst case)
    return max(live_window(strategies), regime_window(cfg), (ix.history_bars if ix else 0) * per_session)


def load_market(cfg: Settings, preroll: int = 0) -> tuple[dict[str, pd.DataFrame], bool]:
    """Bars for every symbol of the universe, cleaned by the stated bad-bar rules (logged).

    Returns the bars and whether they are synthetic (to be labelled wherever shown). `preroll`: bars
    before `[data] start` to keep for warm-up (`preroll_bars`).
    """
    from bot.data.load import load_bars

    symbols = list(cfg.universe.symbols)
    if cfg.hedge.holdings.strip() and cfg.hedge.holdings.strip().lower() != "broker":  # hedge mode's bars
        from bot.data.holdings import parse_holdings

        extra = [*parse_holdings(cfg.hedge.holdings), cfg.hedge.index, cfg.hedge.instrument]
        symbols += [s for s in extra if s not in symbols]
    loaded = load_bars(cfg.data, symbols, preroll)
    bars = {sym: df for sym, (df, _report) in loaded.items()}
    return bars, cfg.data.source == "synthetic"
