"""`soxbot status`: the next events of the calendar with a countdown, and whether a blackout is on now."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from bot.core.config import Settings
from bot.data import calendar as xnys
from bot.risk.events import EventGuard


def event_lines(cfg: Settings, now: dt.datetime, n: int = 3) -> list[str]:
    """Lines for the status report; [] without `[events] file`."""
    guard = EventGuard.for_settings(cfg)
    if guard is None:
        return []
    t = pd.Timestamp(now).tz_convert(xnys.TZ)
    on = guard.active(t.value)
    lines = [f"events ({cfg.events.file}):"]
    for w in on:
        lines.append(f"  BLACKOUT NOW until {w.event.hit:%a %Y-%m-%d %H:%M %Z}: {w.describe()}")
    nxt = guard.upcoming(t, n)
    if not nxt:
        lines.append("  no upcoming event in the file")
    by_start = {id(w.event): w for w in guard.windows}
    for ev, left in nxt:
        when = "today" if left == 0 else f"in {left} session{'s' if left != 1 else ''}"
        w = by_start.get(id(ev))
        policy = (
            f"; blackout from {pd.Timestamp(w.start, tz='UTC').tz_convert(xnys.TZ):%a %Y-%m-%d %H:%M %Z}"
            f" ({w.policy.action})"
            if w is not None
            else "; no policy for this kind"
        )
        left_h = (ev.hit - t).total_seconds() / 3600
        at = f"{ev.hit:%a %Y-%m-%d %H:%M %Z}"
        lines.append(f"  {ev.label} ({ev.note or '-'}): {when}, {left_h:,.1f} h, at {at}{policy}")
    return lines
