"""/healthz and /metrics over real HTTP: market-aware health, token rules, Prometheus values."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from bot.core.config import ServiceConfig
from bot.run.service.health import HealthServer, HealthState, Metrics
from bot.run.service.schedule import NY, JobOutcome, MarketScheduler, ScheduleSpec, SimClock, session_jobs

M = dt.timedelta(minutes=1)


def ny(y: int, mo: int, d: int, h: int, mi: int) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, tzinfo=NY)


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


@pytest.fixture
def serve():
    servers: list[HealthServer] = []

    def start(health: HealthState, metrics: Metrics | None = None, **kw) -> HealthServer:
        s = HealthServer(health, metrics, port=0, **kw)
        s.start()
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


def ran(job_list, upto: dt.datetime) -> list[JobOutcome]:
    return [JobOutcome(j.kind, j.at, "ran", 0.5) for j in job_list if j.at <= upto]


def test_silent_outside_hours_is_healthy(serve):
    clock = SimClock(ny(2024, 7, 5, 8, 0), 1.0)  # Friday before the pre-open
    health = HealthState("5m", clock)
    for o in ran(session_jobs("2024-07-05", "5m"), ny(2024, 7, 5, 16, 5)):
        health.job(o)
    srv = serve(health)
    for t in (
        ny(2024, 7, 6, 3, 0),
        ny(2024, 7, 7, 12, 0),
        ny(2024, 7, 8, 8, 59),
    ):  # Sat night, Sun, Mon 08:59
        clock.set(t)
        code, ctype, body = get(srv.url + "/healthz")
        assert code == 200 and ctype == "application/json", body
        doc = json.loads(body)
        assert doc["status"] == "ok" and doc["last"]["end_of_day"]["at"].startswith("2024-07-05T16:05")
        assert doc["next"][0] == {"kind": "pre_open", "at": ny(2024, 7, 8, 9, 0).isoformat()}


def test_silent_at_ten_on_a_session_is_unhealthy(serve):
    clock = SimClock(ny(2024, 7, 5, 8, 50), 1.0)
    health = HealthState("5m", clock)
    for o in ran(session_jobs("2024-07-05", "5m"), ny(2024, 7, 5, 9, 40)):
        health.job(o)  # then the bot went quiet
    srv = serve(health)
    clock.set(ny(2024, 7, 5, 9, 42))
    assert get(srv.url + "/healthz")[0] == 200  # the 09:40 decision ran; 09:45 not due yet
    clock.set(ny(2024, 7, 5, 10, 0))
    code, _, body = get(srv.url + "/healthz")
    doc = json.loads(body)
    assert code == 503 and doc["status"] == "unhealthy"
    # 3 minutes of slack: at 10:00 the 09:55 decision is the latest one that must have run
    assert (
        doc["reason"]
        == "decision due at 2024-07-05 09:55 EDT has not run (last decision: 2024-07-05 09:40 EDT)"
    )


def test_a_started_late_bot_is_judged_from_its_start_only(serve):
    clock = SimClock(ny(2024, 7, 5, 11, 0), 1.0)
    health = HealthState("1d", clock)  # started mid-session: the 09:00 pre-open was not its job
    srv = serve(health)
    assert get(srv.url + "/healthz")[0] == 200
    clock.set(ny(2024, 7, 5, 15, 52))  # the 15:50 decision is due but not yet past the 3 min slack
    assert get(srv.url + "/healthz")[0] == 200
    clock.set(ny(2024, 7, 5, 15, 54))
    code, _, body = get(srv.url + "/healthz")
    assert code == 503 and "decision due at 2024-07-05 15:50 EDT has not run" in json.loads(body)["reason"]


def test_skipped_and_failed_jobs_are_unhealthy_with_the_reason(serve):
    clock = SimClock(ny(2024, 7, 5, 9, 0), 1.0)
    health = HealthState("5m", clock)
    srv = serve(health)
    health.job(JobOutcome("decision", ny(2024, 7, 5, 9, 35), "ran", 0.2))
    health.job(JobOutcome("decision", ny(2024, 7, 5, 9, 40), "skipped", 312.0))
    clock.set(ny(2024, 7, 5, 9, 44))
    code, _, body = get(srv.url + "/healthz")
    assert code == 503
    assert json.loads(body)["reason"] == (
        "decision at 2024-07-05 09:40 EDT was skipped: started 312 s late (asleep/paused?)"
    )
    health.job(JobOutcome("decision", ny(2024, 7, 5, 9, 45), "error", 0.1, "KeyError: 'SOXL'"))
    clock.set(ny(2024, 7, 5, 9, 49))
    code, _, body = get(srv.url + "/healthz")
    assert code == 503 and json.loads(body)["reason"].endswith("failed: KeyError: 'SOXL'")
    health.job(JobOutcome("decision", ny(2024, 7, 5, 9, 50), "ran", 0.1))
    clock.set(ny(2024, 7, 5, 9, 53))
    assert get(srv.url + "/healthz")[0] == 200  # recovers with the next decision
    assert json.loads(get(srv.url + "/healthz")[2])["jobs"] == {"ran": 2, "skipped": 1, "error": 1}


def test_locks_are_reported_not_unhealthy(serve):
    clock = SimClock(ny(2024, 7, 6, 12, 0), 1.0)
    health = HealthState("1d", clock)
    srv = serve(health)
    health.set_lock("kill_switch", "2024-07-05 15:50: drawdown 25.1% >= max_drawdown_pct 25.0%")
    code, _, body = get(srv.url + "/healthz")
    doc = json.loads(body)
    assert code == 200 and doc["locks"]["locked"] is True and doc["locks"]["daily_loss"] is None
    assert doc["locks"]["kill_switch"].endswith("max_drawdown_pct 25.0%")
    health.set_lock("kill_switch", None)
    assert json.loads(get(srv.url + "/healthz")[2])["locks"]["locked"] is False
    with pytest.raises(ValueError):
        health.set_lock("bogus", "x")
    assert get(srv.url + "/nope")[0] == 404


def test_token_rules(serve):
    clock = SimClock(ny(2024, 7, 6, 12, 0), 1.0)
    health = HealthState("1d", clock)
    with pytest.raises(ValueError, match="without a token"):
        HealthServer(health, host="0.0.0.0", port=0)
    with pytest.raises(ValidationError, match="health_token"):
        ServiceConfig(health_host="0.0.0.0")
    assert ServiceConfig(health_host="::1").health_token is None  # loopback needs none
    srv = serve(health, Metrics(clock), host="0.0.0.0", token="s3cret-token")
    local = f"http://127.0.0.1:{srv.port}"
    for path in ("/healthz", "/metrics"):
        code, _, body = get(local + path)
        assert code == 401 and "token" in body
        assert get(local + path, {"Authorization": "Bearer wrong"})[0] == 401
        assert get(local + path, {"Authorization": "Bearer s3cret-token"})[0] == 200
        assert get(local + path + "?token=s3cret-token")[0] == 200
        assert get(local + path + "?token=s3cret-tokeX")[0] == 401
    # on loopback without a token: open
    open_srv = serve(HealthState("1d", clock))
    assert get(open_srv.url + "/healthz")[0] == 200
    # from [service]: the configured token is enforced
    svc = ServiceConfig(health_host="127.0.0.1", health_port=0, health_token="from-config")
    cfg_srv = HealthServer.from_settings(svc, HealthState("1d", clock))
    cfg_srv.start()
    try:
        assert get(cfg_srv.url + "/healthz")[0] == 401
        assert get(cfg_srv.url + "/healthz", {"Authorization": "Bearer from-config"})[0] == 200
    finally:
        cfg_srv.stop()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    code, ctype, text = get(url)
    assert code == 200 and ctype.startswith("text/plain")
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_values(serve):
    clock = SimClock(ny(2024, 7, 5, 10, 7), 1.0)
    metrics = Metrics(clock)
    srv = serve(HealthState("5m", clock), metrics)
    for k in range(7):
        metrics.bar("SOXX", ny(2024, 7, 5, 9, 35) + 5 * k * M)
    metrics.bar("SOXL", ny(2024, 7, 5, 9, 50))
    latencies = [0.03, 0.2, 0.7, 4.0]
    for lat in latencies:
        metrics.decision(lat)
    metrics.job(JobOutcome("decision", ny(2024, 7, 5, 9, 45), "skipped", 90.0))
    metrics.job(JobOutcome("pre_open", ny(2024, 7, 5, 9, 0), "error", 0.0, "boom"))
    for status in ("submitted", "submitted", "filled", "rejected"):
        metrics.order(status)
    metrics.fill("SOXL", "buy")
    metrics.account(101_234.5, 50_100.25)
    metrics.set_lock("daily_loss", True)
    metrics.alert("dropped")
    v = scrape(srv.url + "/metrics")
    assert v[("soxbot_bars_total", (("symbol", "SOXX"),))] == 7
    assert v[("soxbot_bars_total", (("symbol", "SOXL"),))] == 1
    assert v[("soxbot_decisions_total", ())] == 4
    assert v[("soxbot_decision_latency_seconds_count", ())] == 4
    assert v[("soxbot_decision_latency_seconds_sum", ())] == pytest.approx(sum(latencies))
    assert v[("soxbot_decision_latency_seconds_bucket", (("le", "0.25"),))] == 2
    assert v[("soxbot_skipped_misfires_total", (("kind", "decision"),))] == 1
    assert v[("soxbot_job_errors_total", (("kind", "pre_open"),))] == 1
    assert v[("soxbot_orders_total", (("status", "submitted"),))] == 2
    assert v[("soxbot_orders_total", (("status", "rejected"),))] == 1
    assert v[("soxbot_fills_total", (("side", "buy"), ("symbol", "SOXL")))] == 1
    assert v[("soxbot_equity", ())] == 101_234.5 and v[("soxbot_position_value", ())] == 50_100.25
    assert (
        v[("soxbot_lock", (("kind", "daily_loss"),))] == 1
        and v[("soxbot_lock", (("kind", "kill_switch"),))] == 0
    )
    assert v[("soxbot_alerts_total", (("outcome", "dropped"),))] == 1
    # data age on the bot's clock: newest SOXX bar runs to 10:05, now is ~10:07
    want = (clock.now() - ny(2024, 7, 5, 10, 5)).total_seconds()
    assert v[("soxbot_data_age_seconds", (("symbol", "SOXX"),))] == pytest.approx(want, abs=1.0)
    assert (
        v[("soxbot_last_bar_timestamp_seconds", (("symbol", "SOXL"),))] == ny(2024, 7, 5, 9, 50).timestamp()
    )


def test_metrics_are_thread_safe_and_cheap():
    metrics = Metrics()
    n, threads = 20_000, 4

    def work() -> None:
        for _ in range(n):
            metrics.bar("SOXX", dt.datetime(2024, 7, 5, 14, 0, tzinfo=dt.UTC))
            metrics.order("filled")

    t0 = time.perf_counter()
    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    per_call = (time.perf_counter() - t0) / (2 * n * threads)
    text = metrics.render().decode()
    fams = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert fams["soxbot_bars_total"] == n * threads and fams["soxbot_orders_total"] == n * threads
    assert per_call < 100e-6, f"{per_call * 1e6:.1f} us per metric update"


def test_real_scheduler_feeds_health_and_metrics(serve):
    """A decision callback hangs: the next decision is skipped; /healthz says so, /metrics counts it."""
    speed = 500.0
    clock = SimClock(ny(2024, 7, 5, 10, 2), speed, held=True)
    spec = ScheduleSpec("5m")
    health = HealthState(spec, clock, slack=M)
    metrics = Metrics(clock)
    srv = serve(health, metrics)

    def on_decision(at: dt.datetime) -> None:
        if at == ny(2024, 7, 5, 10, 5):
            time.sleep(0.9)  # 450 s of sim time: the 10:10 decision starts 150 s late
        metrics.decision((clock.now() - at).total_seconds())

    skipped = threading.Event()

    def on_outcome(o: JobOutcome) -> None:
        health.job(o)
        metrics.job(o)
        if o.outcome == "skipped":  # recorded at ~10:12:30, when the hung callback returns: the market
            clock.hold(ny(2024, 7, 5, 10, 13) + M / 2)  # stands still there, so 10:15 never comes
            skipped.set()

    sched = MarketScheduler(clock, spec, on_decision, misfire_grace=60, on_outcome=on_outcome)
    sched.start()
    try:
        assert skipped.wait(30)
        code, _, body = get(srv.url + "/healthz")
        v = scrape(srv.url + "/metrics")
    finally:
        sched.shutdown()
    assert code == 503 and "decision at 2024-07-05 10:10 EDT was skipped" in json.loads(body)["reason"]
    assert v[("soxbot_skipped_misfires_total", (("kind", "decision"),))] == 1
    assert v[("soxbot_decisions_total", ())] == 1
