"""The account's limits: max hold, the daily loss lock and the max-drawdown kill switch.

Kept apart from the engine so the rules can be read and tested alone: `AccountLimits` holds the state
the rules need (the day's starting equity, the peak, the lock and the kill flag) and says, bar by bar,
what must happen. The engine carries the actions out (journal, close, flatten); the limits never
trade. Exits are never blocked by a limit; entries are, while `locked` says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.core.config import RiskConfig

Action = Literal["max_hold", "unlock", "lock", "kill"]


@dataclass(frozen=True, slots=True)
class LimitHit:
    """What a limit asks for: `max_hold` (close the position), `unlock` (nothing to do but record it),
    `lock` (flatten, no entries until the next session), `kill` (flatten, no entries until rearmed)."""

    action: Action
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


class AccountLimits:
    def __init__(
        self, risk: RiskConfig, equity: float, killed: bool = False, sides: Sequence[RiskConfig] = ()
    ) -> None:
        """`sides`: the rules of each traded symbol (their max hold may differ from [risk]'s)."""
        self.risk = risk
        holds = any(r.max_hold_days > 0 for r in (sides or [risk]))
        self.on = risk.max_drawdown_pct > 0 or risk.daily_loss_limit_pct > 0 or holds
        self.killed = killed
        self.locked_until: int | None = None  # the session from which entries are allowed again
        self.day_start_equity = equity
        self.peak_equity = equity

    def locked(self, session: int | None) -> str | None:
        """Why entries are blocked now, in words; None when they are not."""
        if self.killed:
            return "kill switch on (max drawdown); run `soxbot rearm` after review"
        if self.locked_until is not None and session is not None and session < self.locked_until:
            return "daily loss limit hit; locked until next session"
        return None

    def check(
        self, equity: float, session: int | None, held: int | None, closing: bool, max_hold: int | None = None
    ) -> list[LimitHit]:
        """The limits at a bar's close, in the order they are acted on. `held`: sessions the position
        has been held (None when flat); `closing`: its close is already on its way; `max_hold`: the
        held symbol's max_hold_days (its side's; None = [risk]'s)."""
        r = self.risk
        mh = r.max_hold_days if max_hold is None else max_hold
        hits: list[LimitHit] = []
        if equity > self.peak_equity:
            self.peak_equity = equity
        if held is not None and not closing and mh > 0 and held >= mh:
            hits.append(LimitHit("max_hold", f"held {held} sessions >= max_hold_days {mh}"))
        if self.locked_until is not None and session is not None and session >= self.locked_until:
            self.locked_until = None
            hits.append(LimitHit("unlock", "new session: daily loss lock lifted"))
        if (
            r.daily_loss_limit_pct > 0
            and self.locked_until is None
            and equity <= self.day_start_equity * (1 - r.daily_loss_limit_pct)
        ):
            self.locked_until = session + 1  # type: ignore[operator]
            loss = 1 - equity / self.day_start_equity
            hits.append(
                LimitHit(
                    "lock",
                    f"daily loss {loss:.2%} >= limit {r.daily_loss_limit_pct:.2%}; "
                    "flatten and lock until next session",
                    {"equity": round(equity, 2)},
                )
            )
        if (
            r.max_drawdown_pct > 0
            and not self.killed
            and equity <= self.peak_equity * (1 - r.max_drawdown_pct)
        ):
            self.killed = True
            dd = 1 - equity / self.peak_equity
            hits.append(
                LimitHit(
                    "kill",
                    f"drawdown {dd:.2%} >= max_drawdown_pct {r.max_drawdown_pct:.2%}",
                    {"equity": round(equity, 2), "peak": round(self.peak_equity, 2)},
                )
            )
        return hits

    def rearm(self) -> None:
        self.killed = False
