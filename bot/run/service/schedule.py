"""When the bot acts: market-aware jobs in New York wall time, planned session by session.

Per XNYS session (holidays have none; 13:00 early closes and DST come from `bot.data.calendar`):
- `pre_open`      open - 30 min (09:00 ET): reconcile with the broker, warm up data;
- `decision`      daily bars: close - offset (15:50 ET, 12:50 on an early close), so orders reach the
                  market before it closes; intraday: each bar close (bar start + timeframe, the last
                  one clipped to the close). An intraday decision at the close itself sends orders that
                  fill at the next open, as in the backtest;
- `flat_by_close` optional, close - N min: flatten; decisions at or after it are not planned, since a
                  position opened then would be held over the close;
- `end_of_day`    close + 5 min: daily summary; the next session is planned after it.

Times are computed in UTC and shown in New York time, so a DST change keeps the ET wall times.

Misfire policy (`MarketScheduler`): a decision that starts later than `misfire_grace` after its
time (machine asleep, process paused, the previous job overran) is skipped, logged and counted:
acting on a stale bar is worse than not acting. pre_open, flat_by_close and end_of_day run late
rather than not at all (they reconcile, reduce risk or report), and are logged as late.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

import pandas as pd
from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from bot.core.log import get
from bot.data import calendar as xnys

NY = ZoneInfo("America/New_York")
UTC = dt.UTC

JobKind = Literal["pre_open", "decision", "flat_by_close", "end_of_day"]
Outcome = Literal["ran", "skipped", "error"]
_RANK = {"pre_open": 0, "decision": 1, "flat_by_close": 2, "end_of_day": 3}

DateLike = dt.date | str | pd.Timestamp


# -- pure planning ---------------------------------------------------------------------------
def _ny(ts: pd.Timestamp | dt.datetime) -> dt.datetime:
    t = ts.to_pydatetime() if isinstance(ts, pd.Timestamp) else ts
    return t.astimezone(NY)


def _shift(t: dt.datetime, delta: dt.timedelta) -> dt.datetime:
    """`t + delta` on the absolute time line (not wall-clock arithmetic), shown in New York time."""
    return (t.astimezone(UTC) + delta).astimezone(NY)


def _bounds(session: DateLike) -> tuple[dt.datetime, dt.datetime]:
    o, c = xnys.session_bounds(session)
    return _ny(o), _ny(c)


def decision_times(
    session: DateLike,
    timeframe: str,
    daily_offset: dt.timedelta = dt.timedelta(minutes=10),
    bar_lag: dt.timedelta = dt.timedelta(0),
) -> list[dt.datetime]:
    """Decision times of one session (New York time); [] on a non-session day.

    `bar_lag` delays intraday decisions past the bar close, for feeds that publish a bar late."""
    if not xnys.is_session(session):
        return []
    o, c = _bounds(session)
    if not xnys.is_intraday(timeframe):
        at = _shift(c, -daily_offset)
        if at <= o:
            raise ValueError(f"daily_offset {daily_offset} leaves no time in the session of {session}")
        return [at]
    step = xnys.timeframe_delta(timeframe).to_pytimedelta()
    return [_shift(min(_ny(s) + step, c), bar_lag) for s in xnys.bar_starts(session, timeframe)]


def pre_open_time(session: DateLike, lead: dt.timedelta = dt.timedelta(minutes=30)) -> dt.datetime:
    """When to reconcile and warm up before the open (09:00 ET by default)."""
    return _shift(_bounds(session)[0], -lead)


def end_of_day_time(session: DateLike, delay: dt.timedelta = dt.timedelta(minutes=5)) -> dt.datetime:
    """After the close, when the day's fills are in: daily summary, plan the next session."""
    return _shift(_bounds(session)[1], delay)


def flat_by_close_time(session: DateLike, minutes: float) -> dt.datetime:
    """When to flatten so that nothing is held over the close."""
    return _shift(_bounds(session)[1], -dt.timedelta(minutes=minutes))


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """Everything that decides the plan. `flat_by_close=None` = no flat-by-close job."""

    timeframe: str = "1d"
    daily_offset: dt.timedelta = dt.timedelta(minutes=10)
    pre_open_lead: dt.timedelta = dt.timedelta(minutes=30)
    end_of_day_delay: dt.timedelta = dt.timedelta(minutes=5)
    flat_by_close: dt.timedelta | None = None
    bar_lag: dt.timedelta = dt.timedelta(0)

    @classmethod
    def from_settings(cls, cfg: Any) -> ScheduleSpec:
        """From a `bot.core.config.Settings` ([data] timeframe and [service])."""
        svc = cfg.service
        return cls(
            timeframe=cfg.data.timeframe,
            daily_offset=dt.timedelta(minutes=svc.daily_decision_offset_minutes),
            flat_by_close=dt.timedelta(minutes=svc.flat_by_close_minutes) if svc.flat_by_close else None,
        )


@dataclass(frozen=True, slots=True)
class Job:
    kind: JobKind
    at: dt.datetime  # New York time (sim time under a SimClock)
    session: dt.date

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S %Z} {self.kind}"


def session_jobs(session: DateLike, spec: ScheduleSpec | str) -> list[Job]:
    """Every job of one session in time order; [] on a holiday or weekend."""
    spec = ScheduleSpec(spec) if isinstance(spec, str) else spec
    if not xnys.is_session(session):
        return []
    day = pd.Timestamp(session).date()
    jobs = [Job("pre_open", pre_open_time(session, spec.pre_open_lead), day)]
    flat = None
    if spec.flat_by_close is not None:
        flat = _shift(_bounds(session)[1], -spec.flat_by_close)
    for at in decision_times(session, spec.timeframe, spec.daily_offset, spec.bar_lag):
        if flat is None or at < flat:
            jobs.append(Job("decision", at, day))
    if flat is not None:
        jobs.append(Job("flat_by_close", flat, day))
    jobs.append(Job("end_of_day", end_of_day_time(session, spec.end_of_day_delay), day))
    return sorted(jobs, key=lambda j: (j.at, _RANK[j.kind]))


def _sessions_from(day: dt.date, span_days: int = 14) -> list[dt.date]:
    return [d.date() for d in xnys.sessions(day, day + dt.timedelta(days=span_days))]


def next_jobs(now: dt.datetime, spec: ScheduleSpec | str, n: int = 8) -> list[Job]:
    """The next `n` jobs strictly after `now` (for `soxbot status`)."""
    out: list[Job] = []
    day = now.astimezone(NY).date()
    while len(out) < n:
        for s in _sessions_from(day):
            out += [j for j in session_jobs(s, spec) if j.at > now]
            if len(out) >= n:
                break
        day += dt.timedelta(days=15)
    return out[:n]


def last_due(
    now: dt.datetime, spec: ScheduleSpec | str, slack: dt.timedelta = dt.timedelta(0), lookback_days: int = 10
) -> Job | None:
    """The latest job whose time is at or before `now - slack` (None if none in `lookback_days`)."""
    cut = now - slack
    day = cut.astimezone(NY).date()
    for s in reversed(_sessions_from(day - dt.timedelta(days=lookback_days), lookback_days)):
        past = [j for j in session_jobs(s, spec) if j.at <= cut]
        if past:
            return past[-1]
    return None


# -- clocks ----------------------------------------------------------------------------------
class Clock(Protocol):
    """The bot's notion of now. APScheduler runs on wall time, so a clock maps its time to the wall."""

    def now(self) -> dt.datetime: ...

    def to_wall(self, t: dt.datetime) -> dt.datetime: ...


class WallClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)

    def to_wall(self, t: dt.datetime) -> dt.datetime:
        return t.astimezone(UTC)


def _as_datetime(x: object) -> dt.datetime:
    if isinstance(x, pd.Timestamp):
        x = x.to_pydatetime()
    if not isinstance(x, dt.datetime):
        x = getattr(x, "timestamp", None)  # an Alpaca Clock model: .timestamp is a datetime
        if isinstance(x, pd.Timestamp):
            x = x.to_pydatetime()
    if not isinstance(x, dt.datetime) or x.tzinfo is None:
        raise TypeError(
            f"expected a timezone-aware datetime (or an object with one in .timestamp), got {x!r}"
        )
    return x


class SimClock:
    """Simulated time: `start_sim + speed x (wall time elapsed)`; `set`/`sync` re-anchor it.

    Under the local sandbox (which runs its own accelerated clock) use `from_broker` with the same
    speed, and `sync` + `MarketScheduler.replan()` after the sandbox is advanced.

    `held=True` stands it still at `start_sim` until `release()`: `MarketScheduler.start` releases it
    as it plans, so however long the set-up before took, the plan starts where the clock stood (the
    sandbox's `--hold-clock`, on this side)."""

    def __init__(self, start_sim: dt.datetime, speed: float = 1.0, held: bool = False) -> None:
        if not speed > 0:
            raise ValueError("speed must be > 0")
        self.speed = float(speed)
        self.held = held
        self._lock = threading.Lock()
        self.set(start_sim)

    @classmethod
    def from_broker(cls, get_time: Callable[[], object], speed: float = 1.0, held: bool = False) -> SimClock:
        """Start at the broker's time (e.g. `trading_client.get_clock`, whose `.timestamp` is used)."""
        return cls(_as_datetime(get_time()), speed, held)

    def set(self, sim_time: dt.datetime) -> None:
        t = _as_datetime(sim_time).astimezone(UTC)
        with self._lock:
            self._sim0, self._wall0 = t, dt.datetime.now(UTC)

    def sync(self, get_time: Callable[[], object]) -> None:
        self.set(_as_datetime(get_time()))

    def hold(self, at: dt.datetime | None = None) -> None:
        """Stand still at `at` (default: now) until `release()`."""
        t = _as_datetime(at).astimezone(UTC) if at is not None else self.now()
        with self._lock:
            self._sim0, self._wall0, self.held = t, dt.datetime.now(UTC), True

    def release(self) -> dt.datetime:
        """Run on from where it stands (a no-op when running); the time it runs on from."""
        with self._lock:
            now = self._sim0 if self.held else self._sim0 + (dt.datetime.now(UTC) - self._wall0) * self.speed
            self._sim0, self._wall0, self.held = now, dt.datetime.now(UTC), False
            return now

    def now(self) -> dt.datetime:
        with self._lock:
            sim0, wall0, held = self._sim0, self._wall0, self.held
        return sim0 if held else sim0 + (dt.datetime.now(UTC) - wall0) * self.speed

    def to_wall(self, t: dt.datetime) -> dt.datetime:
        """When `t` comes in wall time (while held: as if released now)."""
        with self._lock:
            sim0, wall0, held = self._sim0, self._wall0, self.held
        return (dt.datetime.now(UTC) if held else wall0) + (t.astimezone(UTC) - sim0) / self.speed


# -- the scheduler ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class JobOutcome:
    kind: JobKind
    at: dt.datetime  # the scheduled time
    outcome: Outcome
    lateness: float  # clock seconds between `at` and when it started (or was dropped)
    error: str = ""


@dataclass(frozen=True)
class SchedulerInfo:
    """What `soxbot status` shows about the schedule."""

    timeframe: str
    next_runs: list[Job]
    ran: int = 0
    skipped: int = 0
    errors: int = 0
    last: dict[str, JobOutcome] = field(default_factory=dict)

    @classmethod
    def planned(cls, now: dt.datetime, spec: ScheduleSpec, n: int = 8) -> SchedulerInfo:
        """From the calendar alone, for a process that is not the running bot."""
        return cls(spec.timeframe, next_jobs(now, spec, n))


JobCallback = Callable[[dt.datetime], None]


class MarketScheduler:
    """Runs the callbacks at the planned times, one at a time, on one worker thread.

    Callbacks receive the job's scheduled time (clock time, New York). `on_outcome` hears about
    every job (ran / skipped / error), e.g. to update `HealthState` and `Metrics`.
    """

    def __init__(
        self,
        clock: Clock,
        timeframe: str | ScheduleSpec,
        on_decision: JobCallback,
        on_pre_open: JobCallback | None = None,
        on_end_of_day: JobCallback | None = None,
        on_flat_by_close: JobCallback | None = None,
        misfire_grace: dt.timedelta | float = 60.0,
        on_outcome: Callable[[JobOutcome], None] | None = None,
    ) -> None:
        spec = ScheduleSpec(timeframe) if isinstance(timeframe, str) else timeframe
        if (spec.flat_by_close is None) != (on_flat_by_close is None):
            raise ValueError("flat-by-close needs both spec.flat_by_close and on_flat_by_close (or neither)")
        self.clock = clock
        self.spec = spec
        self.grace = (
            misfire_grace if isinstance(misfire_grace, dt.timedelta) else dt.timedelta(seconds=misfire_grace)
        )
        self._callbacks: dict[str, JobCallback | None] = {
            "pre_open": on_pre_open,
            "decision": on_decision,
            "flat_by_close": on_flat_by_close,
            "end_of_day": on_end_of_day,
        }
        self.on_outcome = on_outcome
        self.log = get("soxbot.schedule")
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self.counts: dict[str, int] = {"ran": 0, "skipped": 0, "error": 0}
        self.last: dict[str, JobOutcome] = {}
        self._sched = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(1)},  # one at a time: the engine is not thread-safe
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        self._sched.add_listener(self._on_missed, EVENT_JOB_MISSED)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Plan the current (or next) session from now; jobs already past are not run. A held clock
        (`SimClock(held=True)`) is released here, and the plan starts where it stood."""
        self._sched.start()
        self._plan(self._now_releasing(), include_past=False)

    def shutdown(self, wait: bool = True) -> None:
        self._sched.shutdown(wait=wait)

    def pause(self) -> None:
        """Stop firing; jobs that fall due meanwhile meet the misfire policy on `resume`."""
        self._sched.pause()

    def resume(self) -> None:
        self._sched.resume()

    def replan(self) -> None:
        """Drop the plan and plan again from now: after the clock was re-synced or jumped (a held clock
        is released here: the plan starts where it stood)."""
        with self._lock:
            for jid in list(self._jobs):
                self._remove(jid)
            self._plan(self._now_releasing(), include_past=False)

    def _now_releasing(self) -> dt.datetime:
        """Now; a held clock (`SimClock(held=True)`) is released first, so the plan starts where it stood."""
        release = getattr(self.clock, "release", None)
        return release() if release is not None and getattr(self.clock, "held", False) else self.clock.now()

    # -- introspection ---------------------------------------------------------------------
    def planned(self) -> list[Job]:
        with self._lock:
            live = {j.id for j in self._sched.get_jobs()}
            return sorted((j for jid, j in self._jobs.items() if jid in live), key=lambda j: j.at)

    def info(self, n: int = 8) -> SchedulerInfo:
        nxt = self.planned()
        if len(nxt) < n:
            after = nxt[-1].at if nxt else self.clock.now()
            nxt += next_jobs(after, self.spec, n - len(nxt))
        return SchedulerInfo(
            self.spec.timeframe,
            nxt[:n],
            self.counts["ran"],
            self.counts["skipped"],
            self.counts["error"],
            dict(self.last),
        )

    # -- planning --------------------------------------------------------------------------
    def _grace_wall(self, at: dt.datetime) -> int:
        """APScheduler's own misfire limit, in whole wall seconds (>= 1): a coarse backstop; `_run`
        applies the exact grace in clock time."""
        wall = (self.clock.to_wall(at + self.grace) - self.clock.to_wall(at)).total_seconds()
        return max(1, math.ceil(wall))

    def _plan(self, now: dt.datetime, include_past: bool, after: dt.date | None = None) -> None:
        """Plan the first session (after `after`, if given) whose end-of-day job is still ahead.

        `include_past` (after an end-of-day): jobs of that session already due are planned too, so
        decisions missed while the machine slept are skipped and counted, and pre_open runs late."""
        day = now.astimezone(NY).date()
        chosen: list[Job] = []
        while not chosen:
            for s in _sessions_from(day):
                jobs = session_jobs(s, self.spec)
                if (after is None or s > after) and jobs[-1].at > now:
                    chosen = jobs
                    break
            day += dt.timedelta(days=15)
        if not include_past:
            chosen = [j for j in chosen if j.at >= now]
        with self._lock:
            for job in chosen:
                if self._callbacks[job.kind] is None and job.kind != "end_of_day":
                    continue
                self._add(f"{job.kind}@{job.at.isoformat()}", job)
        self.log.info(
            "session planned",
            session=str(chosen[0].session) if chosen else "-",
            jobs=len(chosen),
            first=f"{chosen[0]}" if chosen else "-",
            last=f"{chosen[-1]}" if chosen else "-",
        )

    def _add(self, jid: str, job: Job) -> None:
        """Plan `job` at its wall time (call with the lock held); a decision gets the misfire grace."""
        self._jobs[jid] = job
        self._sched.add_job(
            self._run,
            trigger=DateTrigger(run_date=self.clock.to_wall(job.at)),
            args=(jid, job),
            id=jid,
            name=jid,
            replace_existing=True,
            misfire_grace_time=self._grace_wall(job.at) if job.kind == "decision" else None,
        )

    def _remove(self, jid: str) -> None:
        self._jobs.pop(jid, None)
        with contextlib.suppress(JobLookupError):  # already run or removed
            self._sched.remove_job(jid)

    # -- running ---------------------------------------------------------------------------
    def _record(self, o: JobOutcome) -> None:
        with self._lock:
            self.counts[o.outcome] += 1
            self.last[o.kind] = o
        if self.on_outcome is not None:
            try:
                self.on_outcome(o)
            except Exception as exc:
                self.log.error("on_outcome failed", error=repr(exc))

    def _skip(self, job: Job, lateness: float) -> None:
        self.log.warning(
            f"{job.kind} skipped: ran too late",
            at=str(job.at),
            late_s=round(lateness, 3),
            grace_s=self.grace.total_seconds(),
            why="machine asleep or process paused; a stale decision is never acted on late",
        )
        self._record(JobOutcome(job.kind, job.at, "skipped", lateness))

    def _on_missed(self, event: JobExecutionEvent) -> None:
        with self._lock:
            job = self._jobs.pop(event.job_id, None)
        if job is not None:
            self._skip(job, (self.clock.now() - job.at).total_seconds())

    def _run(self, jid: str, job: Job) -> None:
        with self._lock:
            if self._jobs.pop(jid, None) is None:  # dropped by a replan while queued
                return
        lateness = (self.clock.now() - job.at).total_seconds()
        if lateness < -1.0:  # the clock was set back since planning: fire at the new wall time
            with self._lock:
                self._add(jid, job)
            return
        if job.kind == "decision" and lateness > self.grace.total_seconds():
            self._skip(job, lateness)
            return
        if lateness > self.grace.total_seconds():
            self.log.warning(f"{job.kind} running late", at=str(job.at), late_s=round(lateness, 3))
        cb = self._callbacks[job.kind]
        outcome: JobOutcome
        try:
            if cb is not None:
                cb(job.at)
            outcome = JobOutcome(job.kind, job.at, "ran", lateness)
        except Exception as exc:
            self.log.exception(f"{job.kind} failed", at=str(job.at))
            outcome = JobOutcome(job.kind, job.at, "error", lateness, f"{type(exc).__name__}: {exc}")
        finally:
            if job.kind == "end_of_day":
                try:
                    self._plan(self.clock.now(), include_past=True, after=job.session)
                except Exception:
                    self.log.exception("planning the next session failed")
        self._record(outcome)
