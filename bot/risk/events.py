"""Event blackouts (`[events]`): no new entries, smaller entries or no position into an event.

An event's blackout runs from the open `sessions_before` sessions before the session its news reaches
prices in (`Event.session`, `bot/data/events.py`) until that moment (`Event.hit`). What counts is
when a decision is made: an intraday bar's close (start + bar length), a daily bar's decision time
(the close, or the close minus `[service] daily_decision_offset_minutes`). So with daily bars decided
at the close, an `amc` earnings on day D (hit: D+1's open) with `sessions_before = 1` blocks the entry
decided at D's close, which would otherwise fill at the open that takes the gap.

Per kind (`[events.policy.<kind>]`): `no_entry` refuses entries in the blackout; `reduce` sizes them x
`size_factor`; `flat` refuses them and closes a held position at the first decision of the blackout
(daily bars filling at the next open need `sessions_before >= 2` for that fill to come before the
event). The engine asks `entry` where it opens a position and `flat_due` while a flat window is open
today, in backtests and live alike, so both block the same entries on the same bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bot.data import calendar as xnys
from bot.data.events import Event, load_events

if TYPE_CHECKING:
    from bot.core.config import EventPolicy, Settings

_NS_DAY = 86_400_000_000_000


@dataclass(frozen=True, slots=True)
class Window:
    start: int  # UTC ns: the open `sessions_before` sessions before the event's session
    end: int  # UTC ns: the event's hit
    event: Event
    policy: EventPolicy

    def describe(self) -> str:
        p = self.policy
        what = {"no_entry": "no new entries", "reduce": f"size x{p.size_factor:g}", "flat": "flat"}[p.action]
        return f"event blackout ({what}, {p.sessions_before} session(s) before): {self.event.label}"


def windows(events: list[Event], policies: dict[str, EventPolicy]) -> list[Window]:
    """The blackout of every event whose kind has a policy, sorted by start."""
    out = []
    for ev in events:
        p = policies.get(ev.kind)
        if p is None:
            continue
        before = xnys.sessions(ev.session - pd.Timedelta(days=10 + 2 * p.sessions_before), ev.session)
        first = before[max(len(before) - 1 - p.sessions_before, 0)]
        start = xnys.session_bounds(first)[0].value
        out.append(Window(start, ev.hit.value, ev, p))
    out.sort(key=lambda w: w.start)
    return out


class EventGuard:
    """The blackouts of one configuration, asked at decisions (never on a quiet bar)."""

    def __init__(
        self, events: list[Event], policies: dict[str, EventPolicy], timeframe: str, offset: int
    ) -> None:
        self.events = events
        self.windows = windows(events, policies)
        self.starts = np.array([w.start for w in self.windows], np.int64)
        self.ends = np.array([w.end for w in self.windows], np.int64)
        self.intraday = xnys.is_intraday(timeframe)
        self.bar_ns = int(xnys.timeframe_delta(timeframe).value) if self.intraday else 0
        self.offset_ns = offset * 60_000_000_000
        self._close: dict[int, int] = {}

    @classmethod
    def for_settings(cls, cfg: Settings) -> EventGuard | None:
        """None without `[events] file`; a bad file raises `DataError` (one message naming the line)."""
        ev = cfg.events
        if ev.file is None:
            return None
        return cls(
            load_events(ev.file), ev.policy, cfg.data.timeframe, cfg.service.daily_decision_offset_minutes
        )

    def decision_ns(self, ts: pd.Timestamp | int, day: int) -> int:
        """When the decision on the bar starting at `ts` (session `day`, days since 1970) is made, UTC ns."""
        if self.intraday:
            return (ts if isinstance(ts, int) else ts.value) + self.bar_ns
        close = self._close.get(day)
        if close is None:
            close = self._close[day] = xnys.session_bounds(pd.Timestamp(day * _NS_DAY))[1].value
        return close - self.offset_ns

    def fill_ns(self, ts: pd.Timestamp | int, day: int) -> int:
        """When an order sent as a fill arrives on the bar starting at `ts` is placed (a flip's entry, sent
        once its close has filled): the bar's start intraday; a daily bar's open (fills at the open) or,
        decided early, its decision time (fills at that close)."""
        if self.intraday:
            return ts if isinstance(ts, int) else ts.value
        if self.offset_ns:
            return self.decision_ns(ts, day)
        return xnys.session_bounds(pd.Timestamp(day * _NS_DAY))[0].value

    def active(self, t: int) -> list[Window]:
        """The windows that contain the instant `t` (UTC ns)."""
        if not self.windows:
            return []
        k = int(np.searchsorted(self.starts, t, "right"))
        return [self.windows[i] for i in np.flatnonzero(self.ends[:k] > t)]

    def entry(self, t: int) -> tuple[str | None, float, str]:
        """(why an entry decided at `t` is refused or None, its size factor, the reduce reason)."""
        on = self.active(t)
        for w in on:
            if w.policy.action in ("no_entry", "flat"):
                return w.describe(), 1.0, ""
        reduce = [w for w in on if w.policy.action == "reduce"]
        if not reduce:
            return None, 1.0, ""
        w = min(reduce, key=lambda w: w.policy.size_factor)
        return None, w.policy.size_factor, w.describe()

    def flat_due(self, t: int) -> Window | None:
        """The `flat` window that contains `t`, if any: the position must go."""
        return next((w for w in self.active(t) if w.policy.action == "flat"), None)

    def flat_today(self, day: int) -> bool:
        """Whether a `flat` window overlaps session `day`: the engine then checks bars held through it."""
        o, c = xnys.session_bounds(pd.Timestamp(day * _NS_DAY))
        return any(w.policy.action == "flat" and w.start < c.value and w.end > o.value for w in self.windows)

    def flat_starts(self, decisions: np.ndarray) -> list[int]:
        """Indices into `decisions` (each bar's decision time, ascending) of each flat window's first bar:
        the bars a backtest must step so the position is closed there."""
        out = set()
        for w in self.windows:
            if w.policy.action != "flat":
                continue
            i = int(np.searchsorted(decisions, w.start, "left"))
            if i < len(decisions) and decisions[i] < w.end:
                out.add(i)
        return sorted(out)

    def upcoming(self, now: pd.Timestamp, n: int = 3) -> list[tuple[Event, int]]:
        """The next `n` events after `now` with the sessions until each (0: today)."""
        out = []
        today = xnys.session_date(now)
        for ev in self.events:
            if ev.hit > now:
                span = len(xnys.sessions(today, ev.session)) if ev.session >= today else 0
                out.append((ev, max(span - int(xnys.is_session(today)), 0)))
                if len(out) == n:
                    break
        return out
