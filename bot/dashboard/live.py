"""What a running service adds to the journal's view: its clock, health, schedule and live equity.

Only reads: the scheduler's plan, the health state (both thread-safe), and a few floats of the engine
(a stale read by one bar at worst). Nothing here is called on the bot's bar path.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bot.run.service.schedule import NY


class LiveView:
    """The dashboard's handle on a `ServiceLoop` (duck-typed: health, sched, clock, run, cfg)."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        self.cfg = loop.cfg

    def now(self) -> dt.datetime:
        return self.loop.clock.now()

    def keys(self) -> tuple[str | None, str | None]:
        b = self.cfg.broker
        return (
            b.api_key.get_secret_value() if b.api_key else None,
            b.secret_key.get_secret_value() if b.secret_key else None,
        )

    def clock(self) -> dict[str, Any]:
        rate = float(getattr(self.loop.run.clock, "rate", 1.0))
        sandbox = "127.0.0.1" in self.cfg.broker.base_url or "localhost" in self.cfg.broker.base_url
        kind = (
            f"sandbox clock {rate:g}x"
            if sandbox
            else ("wall clock" if abs(rate - 1) < 0.01 else f"{rate:g}x")
        )
        return {"now": self.now().astimezone(NY).isoformat(), "kind": kind, "rate": rate}

    def snapshot(self) -> dict[str, Any]:
        ok, health = self.loop.health.check()
        info = self.loop.sched.info(5)
        e = self.loop.run.engine
        return {
            "mode": "live" if self.cfg.broker.live else "paper",
            "broker": self.cfg.broker.base_url,
            "clock": self.clock(),
            "health": {"ok": ok, "status": health["status"], "reason": health["reason"]},
            "next_runs": [{"kind": j.kind, "at": j.at.astimezone(NY).isoformat()} for j in info.next_runs],
            "jobs": {"ran": info.ran, "skipped": info.skipped, "errors": info.errors},
            "engine": {
                "equity": float(e.equity_now),
                "cash": float(e.cash),
                "position": f"{e.pos.qty:g} {e.pos.symbol}" if e.pos is not None else "flat",
                "killed": bool(e.killed),
                "locked": e.locked or "",
                "bars": int(self.loop.run.bars_done),
            },
        }
