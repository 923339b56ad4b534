"""`soxbot run` with `[broker] kind = "sim"`: the real service against soxbot's own sandbox.

The CLI starts the sandbox (only the CLI may); this module turns the user's config into the one the
service runs on: Alpaca's broker and data adapters pointed at the sandbox's loopback URL with the
paper keys generated for this run, a cache and a journal of their own. The sandbox starts a fresh
account on every run, so the run starts a fresh journal too (the one before is kept beside it):
reconciling a new account against an old journal would only find ghosts.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import SecretStr

from bot.core.config import Settings


@dataclass(frozen=True, slots=True)
class SandboxPlan:
    """What the CLI hands the sandbox it starts: keys, clock, bars, account."""

    key: str
    secret: str
    speed: float
    data_dir: Path | None
    symbols: list[str]
    start: str | None
    seed: int
    synthetic_years: float
    timeframe: str
    starting_cash: float
    slippage_bps: float

    def server_args(self) -> dict[str, Any]:
        """Keyword arguments of `bot.sandbox.SandboxServer`; its clock is held until the service is ready."""
        return {
            "key": self.key,
            "secret": self.secret,
            "speed": self.speed,
            "data_dir": self.data_dir,
            "symbols": self.symbols,
            "start": self.start,
            "seed": self.seed,
            "synthetic_years": self.synthetic_years,
            "timeframe": self.timeframe,
            "starting_cash": self.starting_cash,
            "slippage_bps": self.slippage_bps,
            "hold_clock": True,
        }


def plan(cfg: Settings) -> SandboxPlan:
    """The sandbox for `cfg`: synthetic bars (the seeded model), or `[data] dir` with source = 'csv'."""
    d = cfg.data
    csv = d.source == "csv"
    return SandboxPlan(
        key="PK" + secrets.token_hex(8).upper(),
        secret=secrets.token_urlsafe(24),
        speed=cfg.run.sandbox_speed,
        data_dir=Path(d.dir) if csv else None,
        symbols=cfg.universe.symbols,
        start=d.start if csv else None,
        seed=d.seed,
        synthetic_years=d.synthetic_years,
        timeframe=d.timeframe,
        starting_cash=cfg.broker.starting_cash,
        slippage_bps=cfg.broker.slippage_bps,
    )


LEAD_SESSIONS = 3  # sessions of market the service sees before the strategies' next change of direction


def demo_start(cfg: Settings, bars: pd.DataFrame, default: pd.Timestamp) -> pd.Timestamp:
    """Where the sandbox's clock starts when the user named no date: `LEAD_SESSIONS` sessions before the
    configured strategies' first change of combined direction after `default` (the service enters on a
    change, not on the direction it found while warming up), so a newcomer sees it trade within seconds
    rather than after months of simulated market. `bars`: the signal symbol's, indexed by bar start
    (UTC); `default` is kept when no change comes."""
    from bot.run.assemble import build_strategies
    from bot.run.backtest import compute_signals

    strategies = build_strategies(cfg)
    combined = compute_signals(cfg, strategies, bars).combined
    after = np.flatnonzero(bars.index >= default)
    if not len(after):
        return default
    first = int(after[0])
    d = np.asarray(combined)
    changes = np.flatnonzero(d[first + 1 :] != d[first:-1]) + first + 1
    if not len(changes):
        return default
    at = max(first, int(changes[0]) - LEAD_SESSIONS)
    return max(default, pd.Timestamp(bars.index[at]) - pd.Timedelta(minutes=30))


def sandbox_journal(path: Path) -> Path:
    """`soxbot.db` -> `soxbot-sandbox.db`, a fresh file; the previous run's moves to `-sandbox.prev.db`."""
    path = Path(path)
    fresh = path.with_name(f"{path.stem}-sandbox{path.suffix or '.db'}")
    prev = fresh.with_name(f"{fresh.stem}.prev{fresh.suffix}")
    for ext in ("", "-wal", "-shm"):
        old = Path(str(prev) + ext)
        old.unlink(missing_ok=True)
        cur = Path(str(fresh) + ext)
        if cur.exists():
            cur.rename(old)
    return fresh


def settings_for(cfg: Settings, url: str, p: SandboxPlan, cache_dir: Path) -> Settings:
    """`cfg` as the service runs it on the sandbox at `url`: paper, the generated keys, its own journal."""
    out = cfg.model_copy(deep=True)
    b = out.broker
    b.kind, b.base_url, b.stream_url, b.live = "alpaca", url, None, False
    b.api_key, b.secret_key = SecretStr(p.key), SecretStr(p.secret)
    out.data.source, out.data.base_url, out.data.stream_url = "alpaca", url, None
    out.data.cache_dir = cache_dir
    out.service.scheduler = True
    out.journal.path = sandbox_journal(cfg.journal.path)
    return out
