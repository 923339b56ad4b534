"""Fault switches for tests: injected HTTP errors, slow responses, dropped sockets, partial fills and
rejections, and a market that moves on while a request is in flight (`advance`: the sim clock steps
forward, filling what comes due, before the matched request is answered, e.g. between a client's read
of its positions and of its orders). Errors on a state-changing route can land BEFORE the handler runs
(nothing happened) or AFTER it (the order exists but the client saw an error): the two ambiguous cases
a bot must reconcile through GET /v2/orders:by_client_order_id.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any

WS_PATHS = ("/stream", "/v2/iex", "/v2/sip", "/v2/test", "/v2/delayed_sip")

ERROR_BODIES = {
    429: {"code": 42910000, "message": "rate limit exceeded"},
    500: {"code": 50010000, "message": "internal server error (sandbox fault)"},
    504: {"code": 50410000, "message": "gateway timeout (sandbox fault)"},
}


@dataclass
class Faults:
    rate_429: float = 0.0  # share of matched requests answered 429
    rate_500: float = 0.0
    rate_504: float = 0.0
    delay: float = 0.0  # seconds added to matched requests (delay_rate of them)
    delay_rate: float = 1.0
    advance: float = 0.0  # sim seconds the market moves on while a matched request is in flight
    routes: list[str] = field(default_factory=list)  # "POST /v2/orders" or "/v2/orders"; [] = every route
    when: str = "before"  # "before": fault instead of the handler; "after": handler runs, then the fault
    times: int = 0  # HTTP faults still to inject; 0 = no limit
    partial_fill_prob: float = 0.0
    reject_next: int = 0
    reject_mode: str = "event"  # "event": 200 + `rejected` update; "http": 403 and nothing created
    rate_limit: int = 0  # real limit of requests per minute (429 past it); 0 = off
    seed: int = 7

    def validate(self) -> Faults:
        for name in ("rate_429", "rate_500", "rate_504", "delay_rate", "partial_fill_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {v}")
        if min(self.delay, self.advance, self.times, self.reject_next, self.rate_limit) < 0:
            raise ValueError("delay, advance, times, reject_next and rate_limit must be >= 0")
        if self.when not in ("before", "after"):
            raise ValueError(f"when must be 'before' or 'after', got {self.when!r}")
        if self.reject_mode not in ("event", "http"):
            raise ValueError(f"reject_mode must be 'event' or 'http', got {self.reject_mode!r}")
        return self

    def merged(self, patch: dict[str, Any]) -> Faults:
        """A copy with `patch` applied; unknown keys are an error so typos do not pass silently."""
        names = {f.name: f.type for f in fields(self)}
        unknown = set(patch) - set(names)
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}; known: {sorted(names)}")
        data = asdict(self)
        for k, v in patch.items():
            cur = data[k]
            if isinstance(cur, (bool, str)):
                data[k] = str(v)
            elif isinstance(cur, list):
                data[k] = [s.strip() for s in v.split(",")] if isinstance(v, str) else list(v)
            elif isinstance(cur, int):
                data[k] = int(v)
            else:
                data[k] = float(v)
        return Faults(**data).validate()


@dataclass(frozen=True)
class Decision:
    status: int | None = None
    delay: float = 0.0
    advance: float = 0.0  # sim seconds to move the clock on before the handler runs


def route_matches(routes: list[str], method: str, path: str) -> bool:
    if not routes:
        return True
    for r in routes:
        parts = r.split(None, 1)
        if len(parts) == 2:
            m, prefix = parts
            if m.upper() == method.upper() and path.startswith(prefix):
                return True
        elif path.startswith(parts[0]):
            return True
    return False


class FaultInjector:
    """Seeded decisions so a failing test run can be replayed exactly."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.initial = (faults or Faults()).validate()
        self.reset()

    def reset(self) -> None:
        self.faults = Faults(**asdict(self.initial))
        self.rng = random.Random(self.faults.seed)
        self.injected: Counter[str] = Counter()
        self.delays_done = 0  # delayed requests whose server side is over (tests wait for it, not time)
        self._window: list[float] = []

    def update(self, patch: dict[str, Any]) -> Faults:
        new = self.faults.merged(patch)
        if "seed" in patch:
            self.rng = random.Random(new.seed)
        self.faults = new
        return new

    def applies(self, method: str, path: str) -> bool:
        return not path.startswith("/admin") and path not in WS_PATHS and route_matches(
            self.faults.routes, method, path)

    def decide(self, method: str, path: str) -> Decision:
        f = self.faults
        if not self.applies(method, path):
            return Decision()
        status = None
        r = self.rng.random()
        for code, rate in ((429, f.rate_429), (500, f.rate_500), (504, f.rate_504)):
            if r < rate:
                status = code
                break
            r -= rate
        delay = f.delay if f.delay > 0 and self.rng.random() < f.delay_rate else 0.0
        advance = f.advance
        if status is None and not delay and not advance:
            return Decision()
        if f.times > 0:
            self.faults.times -= 1
            if self.faults.times == 0:
                self._exhausted()
        self.injected[str(status) if status else "delay" if delay else "advance"] += 1
        return Decision(status, delay, advance)

    def _exhausted(self) -> None:
        """A counted fault set ran out: switch its HTTP faults off."""
        self.faults.rate_429 = self.faults.rate_500 = self.faults.rate_504 = 0.0
        self.faults.delay = self.faults.advance = 0.0

    def rate_limited(self, now: float) -> tuple[bool, int, int]:
        """Real per-minute limit: (over, remaining, reset unix seconds)."""
        limit = self.faults.rate_limit or 200
        self._window = [t for t in self._window if now - t < 60.0]
        self._window.append(now)
        remaining = max(0, limit - len(self._window))
        reset = int((self._window[0] if self._window else now) + 60)
        over = bool(self.faults.rate_limit) and len(self._window) > self.faults.rate_limit
        return over, remaining, reset
