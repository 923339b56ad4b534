"""`soxbot run` on Alpaca as a long-lived service: the market-aware schedule drives the decisions,
and the owner can see what the bot is doing (/healthz, /metrics, alerts).

Threads: APScheduler fires jobs on its worker thread, but the engine is single-threaded, so a job only
*queues* its time; the main thread runs queued jobs and delivers broker events in between. A decision
whose time is too old by the time it would run was already skipped (and counted) by the scheduler's
misfire policy: it is never acted on late.

Daily bars: with `[service] daily_decision_offset_minutes` = 0 the decision runs at the session close
on the completed bar and its orders fill at the next open. With an offset (e.g. 10: 15:50 ET, 12:50 on
a half day) it runs that long before the close on the day's bar so far (built from 1-minute bars,
`AlpacaRun.decide_early`) and its orders fill while the market is still open; backtests of the same
config fill those decisions at the day's close.
"""

from __future__ import annotations

import datetime as dt
import queue
import time
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from bot.core.log import get
from bot.data.calendar import TZ
from bot.run.service.alerts import AlertSender, daily_text, engine_alert
from bot.run.service.health import HealthServer, HealthState, Metrics
from bot.run.service.schedule import MarketScheduler, ScheduleSpec, SimClock

if TYPE_CHECKING:
    import threading
    from collections.abc import Iterable

    from bot.core.config import Settings
    from bot.core.events import Trade
    from bot.execution.engine import Engine

log = get("soxbot.service")


class Stop(Protocol):
    event: threading.Event


class Trader(Protocol):
    """The seam between the service and a live driver: what the service calls, and nothing more. The
    Alpaca driver (`bot.run.alpaca.AlpacaRun`) is one; the service never imports it, the driver's
    start-up hands itself over."""

    engine: Engine
    broker: Any  # poll(), drain(), client.get_account(): the Alpaca adapter
    clock: Any  # sync(), wall_seconds(span), rate, held, release(): the broker's clock
    stop: Stop
    barlen: pd.Timedelta
    signal: str
    bars_done: int

    def decide(self, bar_close: pd.Timestamp) -> pd.Timestamp | None: ...

    def decide_early(self, at: pd.Timestamp) -> pd.Timestamp | None: ...

    def pump(self, seconds: float) -> None: ...

    def check_positions(self, when: str) -> str | None: ...


def closed_on(trades: Iterable[Trade], session: dt.date) -> int:
    """The trades whose exit fell in `session` (New York date): the engine's list holds every session of
    the run, and a fill made while the bot was down is booked at the restart under its own day."""
    return sum(1 for t in trades if _ny_date(t.exit_time) == session)


def _ny_date(ts: pd.Timestamp) -> dt.date:
    return (ts.tz_convert(TZ) if ts.tzinfo is not None else ts).date()


class ServiceLoop:
    def __init__(self, run: Trader, cfg: Settings, on_serve: Any = None) -> None:
        """`on_serve(loop)`: called once the health server listens, returns its own stop (the CLI's
        dashboard hangs on here: it sits above the service and is started by the layer that owns both)."""
        self.run = run
        self.cfg = cfg
        self.on_serve = on_serve
        spec = ScheduleSpec.from_settings(cfg)
        self.spec = spec
        self.early = spec.timeframe == "1d" and spec.daily_offset > dt.timedelta(0)
        rate = getattr(run.clock, "rate", 1.0)
        self._broker_time = lambda: run.clock.sync().to_pydatetime()  # the broker's clock is the truth
        held = getattr(run.clock, "held", False)  # soxbot's sandbox holds its clock for this start-up
        self.clock = SimClock.from_broker(self._broker_time, speed=rate, held=held)
        self.metrics = Metrics(clock=self.clock)
        # a due job may lag 3 minutes of market time, or 5 s of wall time on an accelerated clock
        slack = dt.timedelta(seconds=max(180.0, 5.0 * rate))
        self.health = HealthState(spec, clock=self.clock, slack=slack, mode="alpaca")
        self.server = HealthServer.from_settings(cfg.service, self.health, self.metrics)
        self.alerts = AlertSender.from_settings(cfg.alerts, on_outcome=self.metrics.alert)
        self.jobs: queue.Queue[tuple[str, dt.datetime]] = queue.Queue()
        self.sched = MarketScheduler(
            self.clock, spec,
            on_decision=lambda t: self.jobs.put(("decision", t)),
            on_pre_open=lambda t: self.jobs.put(("pre_open", t)),
            on_end_of_day=lambda t: self.jobs.put(("end_of_day", t)),
            on_flat_by_close=(lambda t: self.jobs.put(("flat_by_close", t))) if spec.flat_by_close else None,
            misfire_grace=cfg.service.misfire_grace_seconds * max(1.0, rate),
            on_outcome=self._outcome,
        )  # fmt: skip
        engine = run.engine
        prev = engine.on_event

        def on_event(kind: str, data: dict[str, Any]) -> None:
            if prev is not None:
                prev(kind, data)
            if kind == "fill":
                f = data["fill"]
                self.metrics.fill(f.symbol, f.side.value)
            elif kind in ("rejected", "canceled"):
                self.metrics.order(kind)
            elif kind == "order":
                self.metrics.order("submitted")
            a = engine_alert(kind, data)
            if a is not None:
                self.alerts.send(a.event, a.text)

        engine.on_event = on_event  # from now on, so a restart's findings (reconcile) are alerted too
        self.day_start_equity = engine.equity_now
        self.skipped_before_today = 0  # the scheduler counts skips over the run; a day's summary its own

    def _outcome(self, o: Any) -> None:
        self.health.job(o)
        self.metrics.job(o)
        if o.outcome == "skipped":
            log.warning("job skipped: too late to act on", kind=o.kind, at=str(o.at))

    # -- jobs --------------------------------------------------------------------------------------
    def _decision(self, at: dt.datetime) -> None:
        r = self.run
        t0 = time.perf_counter()
        decide = r.decide_early if self.early else r.decide
        last = decide(pd.Timestamp(at).tz_convert("UTC"))
        if last is None:  # the bar is not served yet: poll briefly (bounded by one bar length)
            deadline = time.monotonic() + min(5.0, r.clock.wall_seconds(r.barlen))
            while last is None and time.monotonic() < deadline and not r.stop.event.is_set():
                r.pump(0.05)
                last = decide(pd.Timestamp(at).tz_convert("UTC"))
        self.metrics.decision(time.perf_counter() - t0)
        log.info("decision", at=pd.Timestamp(at).isoformat(), bar=str(last) if last is not None else "none")
        if last is not None:
            self.metrics.bar(r.signal, pd.Timestamp(at).to_pydatetime())
        e = r.engine
        pos_value = e.equity_now - e.cash
        self.metrics.account(e.equity_now, pos_value)
        self.metrics.set_lock("kill_switch", e.killed)
        self.metrics.set_lock("daily_loss", e.locked_until is not None)
        self.health.set_lock("kill_switch", "kill switch on" if e.killed else None)
        self.health.set_lock("daily_loss", "daily loss limit" if e.locked_until is not None else None)

    def _pre_open(self, at: dt.datetime) -> None:
        """Before the open: reconcile with the broker and check the account can trade today."""
        r = self.run
        r.broker.poll()
        r.pump(0)
        r.check_positions("before the open")
        acct = r.broker.client.get_account()
        get = acct.get if isinstance(acct, dict) else lambda k, d=None: getattr(acct, k, d)
        status = str(get("status", "")).split(".")[-1].upper()
        problems = [k for k in ("trading_blocked", "account_blocked") if get(k, False) in (True, "true")]
        if status and status != "ACTIVE":
            problems.append(f"account status {status}")
        if problems:
            text = f"pre-open {pd.Timestamp(at).date()}: " + ", ".join(problems)
            log.error("pre-open check failed", problems=", ".join(problems))
            self.metrics.error("pre_open")
            self.alerts.send("error", text)
        else:
            log.info(
                "pre-open check ok", session=str(pd.Timestamp(at).date()), buying_power=get("buying_power")
            )

    def _end_of_day(self, at: dt.datetime) -> None:
        r = self.run
        r.broker.poll()  # reconcile with the broker, the source of truth
        r.pump(0)
        r.check_positions("at end of day")
        e = r.engine
        equity = e.revalue()  # a fill since the day's last bar (a stop, say) changed the books
        session = pd.Timestamp(at).tz_convert(TZ).date()
        pos = f"{e.pos.qty:g} {e.pos.symbol}" if e.pos else "flat"
        text = daily_text(
            str(session),
            equity,
            equity - self.day_start_equity,
            pos,
            closed_on(e.trades, session),
            e.locked or "",
            self.sched.counts["skipped"] - self.skipped_before_today,
        )
        log.info("end of day", summary=text)
        self.alerts.send("daily", text)
        self.day_start_equity = equity
        self.skipped_before_today = self.sched.counts["skipped"]
        self.clock.sync(self._broker_time)
        self.sched.replan()

    def _flat_by_close(self, at: dt.datetime) -> None:
        e = self.run.engine
        if e.pos is not None and not e.pos.closing:
            e.flat_by_close()
            self.run.broker.drain()

    # -- loop --------------------------------------------------------------------------------------
    def _start_schedule(self) -> None:
        """Plan the jobs. Under soxbot's sandbox holding its clock for this start-up, release it and plan
        from the time it stood at: however long reconciling and warming up took, no job is lost."""
        broker_clock = self.run.clock
        at = broker_clock.release().to_pydatetime() if getattr(broker_clock, "held", False) else None
        if at is not None:
            self.clock.hold(at)  # there until the plan is made: sched.start releases it
        self.sched.start()
        if at is not None:
            log.info("sandbox clock released", at=at.isoformat(), speed=f"{broker_clock.rate:g}x")

    def serve(self, max_bars: int = 0) -> None:
        r = self.run
        self.day_start_equity = r.engine.equity_now  # as reconciled with the broker
        port = self.server.start()
        stop_extra = self.on_serve(self) if self.on_serve is not None else None
        self._start_schedule()
        log.info(
            "service start",
            health=f"http://{self.cfg.service.health_host}:{port}/healthz",
            next_runs=" | ".join(str(j) for j in self.sched.info(3).next_runs),
        )
        try:
            while not r.stop.event.is_set():
                if max_bars and r.bars_done >= max_bars:
                    break
                try:
                    kind, at = self.jobs.get(timeout=0.1)
                except queue.Empty:
                    r.pump(0)
                    continue
                try:
                    getattr(self, f"_{kind}")(at)
                except Exception as exc:  # a failed job is logged, alerted and counted; the service lives on
                    log.error("job failed", kind=kind, at=str(at), error=repr(exc))
                    self.metrics.error(kind)
                    self.alerts.send("error", f"{kind} at {at} failed: {exc!r}")
        finally:
            self.sched.shutdown(wait=False)
            if stop_extra is not None:
                stop_extra()
            self.server.stop()
            self.alerts.close(2.0)
