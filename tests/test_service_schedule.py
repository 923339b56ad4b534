"""The service's clock: what runs when, on real XNYS sessions, and a real APScheduler on a sim clock.

Expected times are written as New York wall times (market facts: 09:30-16:00, 13:00 early closes),
or computed from exchange_calendars directly, never from the module under test.
"""

from __future__ import annotations

import datetime as dt
import time

import exchange_calendars as xc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from bot.run.service.schedule import (
    NY,
    UTC,
    JobOutcome,
    MarketScheduler,
    ScheduleSpec,
    SimClock,
    WallClock,
    decision_times,
    end_of_day_time,
    flat_by_close_time,
    last_due,
    next_jobs,
    pre_open_time,
    session_jobs,
)

XNYS = xc.get_calendar("XNYS", start="2000-01-01", end="2030-12-31")
M = dt.timedelta(minutes=1)


def ny(y: int, mo: int, d: int, h: int, mi: int, s: int = 0) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=NY)


# -- pure planning -----------------------------------------------------------------------------
def test_normal_day_daily_and_intraday():
    assert decision_times("2024-07-05", "1d") == [ny(2024, 7, 5, 15, 50)]
    five = decision_times("2024-07-05", "5m")
    assert five == [ny(2024, 7, 5, 9, 30) + 5 * M * (k + 1) for k in range(78)]
    assert five[-1] == ny(2024, 7, 5, 16, 0)
    # 1h bars start 09:30 ... 15:30; the last one is 30 minutes long and closes at 16:00
    hours = decision_times("2024-07-05", "1h")
    assert hours == [ny(2024, 7, 5, 10 + k, 30) for k in range(6)] + [ny(2024, 7, 5, 16, 0)]
    assert pre_open_time("2024-07-05") == ny(2024, 7, 5, 9, 0)
    assert end_of_day_time("2024-07-05") == ny(2024, 7, 5, 16, 5)
    assert flat_by_close_time("2024-07-05", 5) == ny(2024, 7, 5, 15, 55)
    assert decision_times("2024-07-05", "1d", daily_offset=30 * M) == [ny(2024, 7, 5, 15, 30)]


def test_holiday_and_weekend_have_no_jobs():
    for tf in ("1d", "1h", "5m", "1m"):
        assert decision_times("2024-07-04", tf) == []
        assert decision_times("2024-07-06", tf) == []
    assert session_jobs("2024-07-04", "1d") == []
    after_early_close = ny(2024, 7, 3, 13, 10)
    jobs = next_jobs(after_early_close, "1d", 3)
    assert [(j.kind, j.at) for j in jobs] == [
        ("pre_open", ny(2024, 7, 5, 9, 0)),
        ("decision", ny(2024, 7, 5, 15, 50)),
        ("end_of_day", ny(2024, 7, 5, 16, 5)),
    ]


def test_early_close():
    assert decision_times("2024-11-29", "1d") == [ny(2024, 11, 29, 12, 50)]
    five = decision_times("2024-11-29", "5m")
    assert len(five) == 42
    assert five[0] == ny(2024, 11, 29, 9, 35) and five[-1] == ny(2024, 11, 29, 13, 0)
    assert end_of_day_time("2024-11-29") == ny(2024, 11, 29, 13, 5)
    assert flat_by_close_time("2024-11-29", 5) == ny(2024, 11, 29, 12, 55)


@pytest.mark.parametrize(
    ("before", "after", "utc_before", "utc_after"),
    [
        ("2024-03-08", "2024-03-11", 20, 19),  # spring forward on Sunday 2024-03-10: EST -> EDT
        ("2024-11-01", "2024-11-04", 19, 20),  # fall back on Sunday 2024-11-03: EDT -> EST
    ],
)
def test_dst_keeps_new_york_wall_times(before, after, utc_before, utc_after):
    for day, utc_hour in ((before, utc_before), (after, utc_after)):
        (d,) = decision_times(day, "1d")
        assert (d.hour, d.minute) == (15, 50)
        assert d.astimezone(UTC).hour == utc_hour and d.astimezone(UTC).minute == 50
        first = decision_times(day, "5m")[0]
        assert (first.hour, first.minute) == (9, 35)
        assert first.astimezone(UTC).hour == utc_hour - 6
        assert pre_open_time(day).astimezone(UTC).hour == utc_hour - 6  # 09:00 ET, 09:35 ET: same UTC hour


@settings(max_examples=60, deadline=None)
@given(
    day=st.dates(dt.date(2001, 1, 1), dt.date(2030, 12, 31)),
    tf=st.sampled_from(["1m", "5m", "15m", "30m", "1h", "1d"]),
)
def test_jobs_stay_inside_sessions(day, tf):
    """Any date: no jobs off-session; decisions inside (open, close], a bar apart, in order."""
    jobs = session_jobs(day, ScheduleSpec(tf))
    if not XNYS.is_session(day.isoformat()):
        assert jobs == []
        return
    o, c = (t.to_pydatetime() for t in XNYS.session_open_close(day.isoformat()))
    decisions = [j.at for j in jobs if j.kind == "decision"]
    assert all(o < t <= c for t in decisions)
    assert decisions == sorted(set(decisions))
    if tf == "1d":
        assert decisions == [c - 10 * M]
    else:
        step = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60}[tf] * M
        gaps = [b - a for a, b in zip([o, *decisions], decisions, strict=False)]
        assert all(g == step for g in gaps[:-1]) and M <= gaps[-1] <= step
        assert decisions[-1] == c
    assert [j.kind for j in jobs] == ["pre_open"] + ["decision"] * len(decisions) + ["end_of_day"]
    assert jobs[0].at == o - 30 * M and jobs[-1].at == c + 5 * M
    assert all(j.at.astimezone(NY).date() == day for j in jobs)


def test_flat_by_close_drops_later_decisions():
    spec = ScheduleSpec("15m", flat_by_close=5 * M)
    jobs = session_jobs("2024-11-29", spec)
    kinds = [j.kind for j in jobs]
    assert kinds[-2:] == ["flat_by_close", "end_of_day"]
    flat = jobs[-2].at
    assert flat == ny(2024, 11, 29, 12, 55)
    decisions = [j.at for j in jobs if j.kind == "decision"]
    assert decisions[-1] == ny(2024, 11, 29, 12, 45)  # the 13:00 bar close is after the flat
    assert len(decisions) == len(decision_times("2024-11-29", "15m")) - 1


def test_next_jobs_and_last_due():
    now = ny(2024, 7, 3, 12, 0)
    jobs = next_jobs(now, "1h", 13)
    assert len(jobs) == 13 and all(j.at > now for j in jobs)
    assert [j.at for j in jobs] == sorted(j.at for j in jobs)
    # 3 July (13:00 close): 12:30 and 13:00 bar closes + end of day; 4 July skipped; 5 July: 9 jobs
    assert {j.session for j in jobs[:12]} == {dt.date(2024, 7, 3), dt.date(2024, 7, 5)}
    assert (jobs[0].kind, jobs[0].at) == ("decision", ny(2024, 7, 3, 12, 30))
    assert (jobs[12].kind, jobs[12].at) == ("pre_open", ny(2024, 7, 8, 9, 0))
    assert last_due(ny(2024, 7, 5, 10, 0), "5m").at == ny(2024, 7, 5, 10, 0)
    assert last_due(ny(2024, 7, 5, 10, 0), "5m", 3 * M).at == ny(2024, 7, 5, 9, 55)
    assert last_due(ny(2024, 7, 4, 12, 0), "1d").kind == "end_of_day"  # holiday: the eve's close
    assert last_due(ny(2024, 7, 4, 12, 0), "1d").at == ny(2024, 7, 3, 13, 5)


# -- clocks ------------------------------------------------------------------------------------
def test_sim_clock_runs_at_speed_and_maps_to_wall():
    """Bounded by wall readings taken around each call, so no machine is too slow for it."""
    start = ny(2024, 7, 5, 9, 0)
    a0 = dt.datetime.now(UTC)
    clock = SimClock(start, speed=1000)
    a1 = dt.datetime.now(UTC)  # the clock's wall anchor lies between a0 and a1
    b0 = dt.datetime.now(UTC)
    sim = clock.now() - start
    b1 = dt.datetime.now(UTC)
    assert (b0 - a1) * 1000 <= sim <= (b1 - a0) * 1000
    wall = clock.to_wall(start + dt.timedelta(minutes=30))  # 1.8 s of wall time after the anchor
    assert a0 + dt.timedelta(seconds=1.8) <= wall <= a1 + dt.timedelta(seconds=1.8)
    c0 = dt.datetime.now(UTC)
    clock.set(ny(2024, 11, 4, 15, 0))
    late = clock.now() - ny(2024, 11, 4, 15, 0)
    assert dt.timedelta(0) <= late <= (dt.datetime.now(UTC) - c0) * 1000


def test_a_held_sim_clock_stands_still_until_released_and_runs_on_from_where_it_stood():
    """`MarketScheduler.start`/`replan` release a held clock as they plan: a set-up of any length before
    them costs no sim time (the scheduler tests below start held)."""
    clock = SimClock(ny(2024, 7, 3, 12, 45), 40000, held=True)
    assert clock.now() == clock.now() == ny(2024, 7, 3, 12, 45)  # at 40000x a microsecond would show
    a0 = dt.datetime.now(UTC)
    assert clock.release() == ny(2024, 7, 3, 12, 45) and not clock.held
    late = clock.now() - ny(2024, 7, 3, 12, 45)
    assert dt.timedelta(0) <= late <= (dt.datetime.now(UTC) - a0) * 40000
    clock.hold(ny(2024, 7, 5, 8, 58))
    assert clock.held and clock.now() == clock.now() == ny(2024, 7, 5, 8, 58)


def test_sim_clock_from_broker_clock_object():
    class BrokerClock:  # the shape of alpaca-py's Clock model
        timestamp = dt.datetime(2024, 7, 5, 13, 0, tzinfo=UTC)
        is_open = True

    clock = SimClock.from_broker(BrokerClock, speed=1.0)
    assert abs((clock.now() - BrokerClock.timestamp).total_seconds()) < 1
    with pytest.raises(TypeError):
        SimClock.from_broker(lambda: dt.datetime(2024, 7, 5, 13, 0))  # naive: ambiguous
    w = WallClock()
    assert abs((w.now() - dt.datetime.now(UTC)).total_seconds()) < 1 and w.now().tzinfo is not None


# -- the real scheduler --------------------------------------------------------------------------
class Recorder:
    """Records (kind, scheduled time, clock time at the call) and every outcome."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.fired: list[tuple[str, dt.datetime, dt.datetime]] = []
        self.outcomes: list[JobOutcome] = []
        self.block: dict[dt.datetime, float] = {}
        self.fail: set[str] = set()

    def cb(self, kind: str):
        def run(at: dt.datetime) -> None:
            self.fired.append((kind, at, self.clock.now()))
            if at in self.block:
                time.sleep(self.block[at])
            if kind in self.fail:
                raise RuntimeError(f"{kind} broke")

        return run

    def wait(self, n: int, timeout: float = 30.0) -> None:
        """Until `n` jobs have reported (ran, skipped or failed): the clock passing a job's time does not
        mean the scheduler's thread has run it yet on a busy machine."""
        end = time.monotonic() + timeout
        while len(self.outcomes) < n and time.monotonic() < end:
            time.sleep(0.005)

    def scheduler(self, spec: ScheduleSpec, grace: float, flat: bool = False) -> MarketScheduler:
        return MarketScheduler(
            self.clock,
            spec,
            on_decision=self.cb("decision"),
            on_pre_open=self.cb("pre_open"),
            on_end_of_day=self.cb("end_of_day"),
            on_flat_by_close=self.cb("flat_by_close") if flat else None,
            misfire_grace=grace,
            on_outcome=self.outcomes.append,
        )


def run_until(clock: SimClock, t: dt.datetime) -> None:
    gap = (t - clock.now()).total_seconds() / clock.speed
    if gap > 0:
        time.sleep(gap)


def in_session_hours(t: dt.datetime) -> bool:
    """Between some session's pre-open (open - 30 min) and end of day (close + 5 min)."""
    day = t.astimezone(NY).date().isoformat()
    if not XNYS.is_session(day):
        return False
    o, c = (x.to_pydatetime() for x in XNYS.session_open_close(day))
    return o - 30 * M <= t <= c + 5 * M


def test_scheduler_fires_at_planned_times_across_early_close_holiday_and_dst():
    speed = 2000.0
    spec = ScheduleSpec("15m", flat_by_close=5 * M)
    clock = SimClock(ny(2024, 7, 3, 12, 20), speed, held=True)
    rec = Recorder(clock)
    sched = rec.scheduler(spec, grace=600, flat=True)
    sched.start()
    try:
        # the 13:00 early close: decisions 12:30, 12:45; flat 12:55; the 13:00 bar close is past the flat
        run_until(clock, ny(2024, 7, 3, 13, 6))
        rec.wait(4)
        after_eod = sched.planned()
        # 4 July is a holiday: the end-of-day job planned Friday 5 July
        assert after_eod == session_jobs("2024-07-05", spec)
        clock.hold(ny(2024, 7, 5, 8, 58))  # jump over the holiday night, as the sandbox's advance does
        sched.replan()  # ... and let it run on from there once the plan is made
        assert sched.planned() == after_eod
        run_until(clock, ny(2024, 7, 5, 9, 50))
        rec.wait(6)
        # DST: fall back on Sunday 3 November; Friday 1st is EDT, Monday 4th EST
        clock.hold(ny(2024, 11, 1, 15, 40))
        sched.replan()
        run_until(clock, ny(2024, 11, 1, 16, 6))
        rec.wait(9)
        assert [j.session for j in sched.planned()] == [dt.date(2024, 11, 4)] * len(
            session_jobs("2024-11-04", spec)
        )
        clock.hold(ny(2024, 11, 4, 15, 40))
        sched.replan()
        run_until(clock, ny(2024, 11, 4, 16, 6))
        rec.wait(12)
    finally:
        sched.shutdown()
    expected = [
        ("decision", ny(2024, 7, 3, 12, 30)),
        ("decision", ny(2024, 7, 3, 12, 45)),
        ("flat_by_close", ny(2024, 7, 3, 12, 55)),
        ("end_of_day", ny(2024, 7, 3, 13, 5)),
        ("pre_open", ny(2024, 7, 5, 9, 0)),
        ("decision", ny(2024, 7, 5, 9, 45)),
        ("decision", ny(2024, 11, 1, 15, 45)),
        ("flat_by_close", ny(2024, 11, 1, 15, 55)),
        ("end_of_day", ny(2024, 11, 1, 16, 5)),
        ("decision", ny(2024, 11, 4, 15, 45)),
        ("flat_by_close", ny(2024, 11, 4, 15, 55)),
        ("end_of_day", ny(2024, 11, 4, 16, 5)),
    ]
    assert [(k, at) for k, at, _ in rec.fired] == expected
    assert (
        ny(2024, 11, 1, 15, 45).astimezone(UTC).hour == 19
        and ny(2024, 11, 4, 15, 45).astimezone(UTC).hour == 20
    )
    assert [(k, at.astimezone(UTC)) for k, at, _ in rec.fired][6][1] == dt.datetime(
        2024, 11, 1, 19, 45, tzinfo=UTC
    )
    assert [(k, at.astimezone(UTC)) for k, at, _ in rec.fired][9][1] == dt.datetime(
        2024, 11, 4, 20, 45, tzinfo=UTC
    )
    late = [(fired_at - at).total_seconds() for _, at, fired_at in rec.fired]
    assert min(late) >= -0.5  # never early (0.5 sim s = 0.25 ms of wall time at 2000x)
    assert max(late) / speed < 0.25, late  # within a quarter of a wall second
    assert all(in_session_hours(at) for _, at, _ in rec.fired)
    assert [o.outcome for o in rec.outcomes] == ["ran"] * len(expected) and sched.counts["skipped"] == 0


def test_eod_replans_by_itself_over_a_holiday_and_errors_do_not_break_the_chain():
    """No jump: the clock runs through the holiday night; a failing decision and end-of-day are
    logged as errors and the next session is still planned and run."""
    speed = 40000.0  # 07-03 12:45 -> 07-05 09:01 is ~44 h of sim time: ~4 s of wall time
    clock = SimClock(ny(2024, 7, 3, 12, 45), speed, held=True)
    rec = Recorder(clock)
    rec.fail = {"decision", "end_of_day"}
    sched = rec.scheduler(ScheduleSpec("1d"), grace=3600)
    with capture_logs() as logs:
        sched.start()
        try:
            run_until(clock, ny(2024, 7, 5, 9, 30))
            rec.wait(3)
        finally:
            sched.shutdown()
    assert [(k, at) for k, at, _ in rec.fired] == [
        ("decision", ny(2024, 7, 3, 12, 50)),
        ("end_of_day", ny(2024, 7, 3, 13, 5)),
        ("pre_open", ny(2024, 7, 5, 9, 0)),
    ]
    assert [o.outcome for o in rec.outcomes] == ["error", "error", "ran"]
    assert "RuntimeError: decision broke" in rec.outcomes[0].error
    assert sum(1 for e in logs if e["event"] == "decision failed") == 1
    assert all(in_session_hours(at) for _, at, _ in rec.fired)


def test_misfire_blocked_callback_skips_stale_decisions():
    """The first decision's callback hangs 1.5 s of wall time (750 s of sim time at 500x): the
    10:10 and 10:15 decisions start 450 s and 150 s late (> 60 s grace) and are skipped, logged
    and counted; 10:20 is on time again."""
    speed = 500.0
    clock = SimClock(ny(2024, 7, 5, 10, 2), speed, held=True)
    rec = Recorder(clock)
    rec.block = {ny(2024, 7, 5, 10, 5): 1.5}
    sched = rec.scheduler(ScheduleSpec("5m"), grace=60)
    with capture_logs() as logs:
        sched.start()
        try:
            run_until(clock, ny(2024, 7, 5, 10, 26))
            rec.wait(5)
        finally:
            sched.shutdown()
    ran = [at for k, at, _ in rec.fired if k == "decision"]
    assert ran == [ny(2024, 7, 5, 10, 5), ny(2024, 7, 5, 10, 20), ny(2024, 7, 5, 10, 25)]
    skipped = [o for o in rec.outcomes if o.outcome == "skipped"]
    assert [o.at for o in skipped] == [ny(2024, 7, 5, 10, 10), ny(2024, 7, 5, 10, 15)]
    assert all(o.lateness > 60 for o in skipped)
    assert sched.counts["skipped"] == 2 and sched.info().skipped == 2
    warned = [e for e in logs if e["event"] == "decision skipped: ran too late"]
    assert len(warned) == 2 and warned[0]["log_level"] == "warning"


def test_misfire_paused_process_skips_what_fell_due():
    """The scheduler is paused for 1.6 s of wall time (800 s sim): decisions that fell due while
    paused are skipped on resume (the 10:10 one by APScheduler's own wall grace, the 10:15 one by
    the clock-time check), never run late."""
    speed = 500.0
    clock = SimClock(ny(2024, 7, 5, 10, 2), speed, held=True)
    rec = Recorder(clock)
    sched = rec.scheduler(ScheduleSpec("5m"), grace=60)
    sched.start()
    try:
        run_until(clock, ny(2024, 7, 5, 10, 6))
        rec.wait(1)
        sched.pause()
        time.sleep(1.6)
        sched.resume()
        run_until(clock, ny(2024, 7, 5, 10, 26))
        rec.wait(5)
    finally:
        sched.shutdown()
    ran = [at for k, at, _ in rec.fired if k == "decision"]
    assert ran == [ny(2024, 7, 5, 10, 5), ny(2024, 7, 5, 10, 20), ny(2024, 7, 5, 10, 25)]
    skipped = sorted(o.at for o in rec.outcomes if o.outcome == "skipped")
    assert skipped == [ny(2024, 7, 5, 10, 10), ny(2024, 7, 5, 10, 15)]
    assert sched.counts == {"ran": 3, "skipped": 2, "error": 0}


def test_clock_set_back_refires_at_the_new_wall_time():
    """The clock is set back 30 sim minutes without a replan: the planned 12:50 decision would fire
    at sim 12:20; it is re-planned and runs at 12:50 instead."""
    speed = 2000.0
    clock = SimClock(ny(2024, 7, 3, 12, 40), speed, held=True)
    rec = Recorder(clock)
    sched = rec.scheduler(ScheduleSpec("1d"), grace=600)
    sched.start()
    try:
        clock.set(ny(2024, 7, 3, 12, 10))
        run_until(clock, ny(2024, 7, 3, 12, 52))
        rec.wait(1)
    finally:
        sched.shutdown()
    ((kind, at, fired_at),) = rec.fired
    assert (kind, at) == ("decision", ny(2024, 7, 3, 12, 50))
    assert 0 <= (fired_at - at).total_seconds() < 0.25 * speed


def test_flat_by_close_needs_both_spec_and_callback():
    clock = SimClock(ny(2024, 7, 5, 9, 0), 1.0)
    with pytest.raises(ValueError, match="flat-by-close"):
        MarketScheduler(clock, ScheduleSpec("5m", flat_by_close=5 * M), lambda at: None)
    with pytest.raises(ValueError, match="flat-by-close"):
        MarketScheduler(clock, "5m", lambda at: None, on_flat_by_close=lambda at: None)


def test_spec_from_settings():
    from bot.core.config import load_config

    cfg = load_config()
    spec = ScheduleSpec.from_settings(cfg)
    assert spec == ScheduleSpec("1d", daily_offset=0 * M, flat_by_close=None)  # default: at the close
    cfg.data.timeframe = "15m"
    cfg.service.flat_by_close = True
    cfg.service.flat_by_close_minutes = 15
    cfg.service.daily_decision_offset_minutes = 20
    spec = ScheduleSpec.from_settings(cfg)
    assert spec == ScheduleSpec("15m", daily_offset=20 * M, flat_by_close=15 * M)
    assert [j.kind for j in session_jobs("2024-07-05", spec)][-3:] == [
        "decision",
        "flat_by_close",
        "end_of_day",
    ]
    assert session_jobs("2024-07-05", spec)[-3].at == ny(2024, 7, 5, 15, 30)  # 15:45 is at the flat time
