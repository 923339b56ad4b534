"""How the bot and soxbot's own sandbox agree on time, so that no start-up can lose a scheduled job.

`soxbot sandbox --hold-clock` starts with its clock standing still and says so in a header of its
`GET /v2/clock` answer (`X-Soxbot-Sandbox-Clock: speed=400; held=true`). A bot that sees the header
knows the sandbox's speed exactly (nothing to measure) and, once it has reconciled, warmed up and
planned its jobs, releases the clock (`POST /admin/clock {"held": false}`), so a slow start-up costs
no market time. Alpaca never sends the header: against it the bot measures the clock as before and
never sends the release.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

HEADER = "X-Soxbot-Sandbox-Clock"
CLOCK_PATH = "/admin/clock"  # GET: the clock; POST {"held": bool}: hold or release it


@dataclass(frozen=True, slots=True)
class ClockNote:
    """What the sandbox says about its clock: its speed (sim seconds per wall second) and whether it
    stands still until released."""

    speed: float
    held: bool

    def header(self) -> str:
        return f"speed={self.speed:g}; held={'true' if self.held else 'false'}"

    @classmethod
    def parse(cls, value: str | None) -> ClockNote | None:
        """The header's value back into a note; None when absent or not ours."""
        if not value:
            return None
        parts = dict(p.strip().partition("=")[::2] for p in value.split(";"))
        try:
            return cls(float(parts["speed"]), parts["held"].strip().lower() == "true")
        except (KeyError, ValueError):
            return None


class SandboxLink:
    """Listens to an alpaca-py client's answers for the sandbox's clock header and releases a held clock.

    `note` stays None against Alpaca (no header), and `release` then sends nothing."""

    def __init__(self, client: Any) -> None:
        self._session = client._session  # the requests session alpaca-py sends every request with
        self._session.hooks["response"].append(self._seen)
        self.note: ClockNote | None = None
        self.base: str | None = None  # the server that sent the header: the only one released

    def _seen(self, response: Any, *args: Any, **kwargs: Any) -> None:
        note = ClockNote.parse(response.headers.get(HEADER))
        if note is not None:
            u = urlsplit(response.url)
            self.note, self.base = note, f"{u.scheme}://{u.netloc}"

    def release(self) -> str | None:
        """Start the sandbox's clock if it is held; its time (RFC 3339) as it starts, None if not held."""
        if self.note is None or not self.note.held or self.base is None:
            return None
        r = self._session.post(self.base + CLOCK_PATH, json={"held": False})
        r.raise_for_status()
        return str(r.json()["now"])
