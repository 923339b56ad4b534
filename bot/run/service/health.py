"""Is the bot alive and on schedule? `/healthz` (market-aware) and `/metrics` (Prometheus) over HTTP.

Health is judged against the calendar, not against a heartbeat: silence at 03:00 or on a Sunday is
healthy; at 10:00 ET on a session, the job that was due (a decision, or the pre-open) must have run.
The latest job due more than `slack` ago must have *run*: not run at all, skipped as a misfire, or
failed, gives 503 with the reason. Locks (daily loss, kill switch) are reported but do not make the
bot unhealthy: a lock is the bot working as designed.

The server is stdlib `ThreadingHTTPServer` on a daemon thread, bound to 127.0.0.1 by default. Bound
anywhere else it refuses to start without a token, given as `Authorization: Bearer <token>` or
`?token=<token>`.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import socket
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import SecretStr

from bot.core.config import is_loopback
from bot.core.log import get
from bot.run.service.schedule import NY, Clock, JobOutcome, ScheduleSpec, WallClock, last_due, next_jobs

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LOCK_KINDS = ("daily_loss", "kill_switch")


class _Freshness:
    """Collector: age of the newest bar per symbol, computed at scrape time on the bot's clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.last: dict[str, dt.datetime] = {}
        self.lock = threading.Lock()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        with self.lock:
            last = dict(self.last)
        now = self.clock.now()
        age = GaugeMetricFamily(
            "soxbot_data_age_seconds", "Seconds since the newest bar's time, per symbol.", labels=["symbol"]
        )
        stamp = GaugeMetricFamily(
            "soxbot_last_bar_timestamp_seconds", "Unix time of the newest bar, per symbol.", labels=["symbol"]
        )
        for sym, t in sorted(last.items()):
            age.add_metric([sym], (now - t).total_seconds())
            stamp.add_metric([sym], t.timestamp())
        yield age
        yield stamp


class Metrics:
    """What the driver counts. Every method is a few lock-protected adds: cheap and thread-safe."""

    def __init__(self, clock: Clock | None = None, registry: CollectorRegistry | None = None) -> None:
        self.clock = clock or WallClock()
        r = self.registry = registry or CollectorRegistry()
        self._bars = Counter("soxbot_bars", "Bars seen, per symbol.", ["symbol"], registry=r)
        self._decisions = Counter("soxbot_decisions", "Scheduled decisions acted on.", registry=r)
        self._skipped = Counter(
            "soxbot_skipped_misfires",
            "Scheduled jobs skipped because they ran too late.",
            ["kind"],
            registry=r,
        )
        self._job_errors = Counter("soxbot_job_errors", "Scheduled jobs that raised.", ["kind"], registry=r)
        self._errors = Counter("soxbot_errors", "Errors, by where they happened.", ["where"], registry=r)
        self._orders = Counter("soxbot_orders", "Order status updates, by status.", ["status"], registry=r)
        self._fills = Counter("soxbot_fills", "Fills, per symbol and side.", ["symbol", "side"], registry=r)
        self._latency = Histogram(
            "soxbot_decision_latency_seconds",
            "From a decision's scheduled time to its orders being sent.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._equity = Gauge("soxbot_equity", "Account equity.", registry=r)
        self._position_value = Gauge(
            "soxbot_position_value", "Market value of the open position.", registry=r
        )
        self._lock = Gauge("soxbot_lock", "1 while a lock is on, by kind.", ["kind"], registry=r)
        for k in LOCK_KINDS:
            self._lock.labels(k).set(0)
        self._alerts = Counter(
            "soxbot_alerts", "Alerts, by outcome (sent/dropped/failed).", ["outcome"], registry=r
        )
        self._fresh = _Freshness(self.clock)
        r.register(self._fresh)  # type: ignore[arg-type]

    def bar(self, symbol: str, ts: dt.datetime) -> None:
        """A bar arrived; `ts` is the time its data runs to (its close), for the data-age gauge."""
        self._bars.labels(symbol).inc()
        with self._fresh.lock:
            prev = self._fresh.last.get(symbol)
            if prev is None or ts > prev:
                self._fresh.last[symbol] = ts

    def decision(self, latency_s: float) -> None:
        self._decisions.inc()
        self._latency.observe(latency_s)

    def skipped_misfire(self, kind: str = "decision") -> None:
        self._skipped.labels(kind).inc()

    def job(self, o: JobOutcome) -> None:
        """Wire to `MarketScheduler(on_outcome=...)` (decisions are counted by `decision`)."""
        if o.outcome == "skipped":
            self.skipped_misfire(o.kind)
        elif o.outcome == "error":
            self._job_errors.labels(o.kind).inc()

    def order(self, status: str) -> None:
        self._orders.labels(status).inc()

    def fill(self, symbol: str, side: str) -> None:
        self._fills.labels(symbol, side).inc()

    def account(self, equity: float, position_value: float) -> None:
        self._equity.set(equity)
        self._position_value.set(position_value)

    def set_lock(self, kind: str, on: bool) -> None:
        self._lock.labels(kind).set(1 if on else 0)

    def error(self, where: str) -> None:
        self._errors.labels(where).inc()

    def alert(self, outcome: str) -> None:
        """Wire to `AlertSender(on_outcome=...)`."""
        self._alerts.labels(outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HealthState:
    """What `/healthz` answers from. The driver feeds it job outcomes and lock changes."""

    def __init__(
        self,
        spec: ScheduleSpec | str,
        clock: Clock | None = None,
        slack: dt.timedelta = dt.timedelta(minutes=3),
        mode: str = "",
    ) -> None:
        self.spec = ScheduleSpec(spec) if isinstance(spec, str) else spec
        self.clock = clock or WallClock()
        self.slack = slack
        self.mode = mode
        self.started_at = self.clock.now()
        self._lock = threading.Lock()
        self._last: dict[str, JobOutcome] = {}
        self._locks: dict[str, str | None] = dict.fromkeys(LOCK_KINDS)
        self._counts = {"ran": 0, "skipped": 0, "error": 0}

    def job(self, o: JobOutcome) -> None:
        """Wire to `MarketScheduler(on_outcome=...)`."""
        with self._lock:
            prev = self._last.get(o.kind)
            if prev is None or o.at >= prev.at:
                self._last[o.kind] = o
            self._counts[o.outcome] += 1

    def set_lock(self, kind: str, reason: str | None) -> None:
        """`reason` None = off. Kinds: daily_loss, kill_switch."""
        if kind not in LOCK_KINDS:
            raise ValueError(f"lock kind must be one of {LOCK_KINDS}, got {kind!r}")
        with self._lock:
            self._locks[kind] = reason or None

    def check(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, JSON body)."""
        now = self.clock.now()
        with self._lock:
            last = dict(self._last)
            locks = dict(self._locks)
            counts = dict(self._counts)
        due = last_due(now, self.spec, self.slack)
        ok, reason = True, "on schedule"
        if due is None or due.at < self.started_at:
            reason = "nothing due since start"
        else:
            seen = last.get(due.kind)
            when = f"{due.at.astimezone(NY):%Y-%m-%d %H:%M %Z}"
            if seen is None or seen.at < due.at:
                prev = f"{seen.at.astimezone(NY):%Y-%m-%d %H:%M %Z}" if seen else "never"
                ok, reason = False, f"{due.kind} due at {when} has not run (last {due.kind}: {prev})"
            elif seen.at == due.at and seen.outcome == "skipped":
                ok = False
                reason = (
                    f"{due.kind} at {when} was skipped: started {seen.lateness:.0f} s late (asleep/paused?)"
                )
            elif seen.at == due.at and seen.outcome == "error":
                ok, reason = False, f"{due.kind} at {when} failed: {seen.error}"
        body: dict[str, Any] = {
            "status": "ok" if ok else "unhealthy",
            "reason": reason,
            "now": now.astimezone(NY).isoformat(),
            "mode": self.mode,
            "timeframe": self.spec.timeframe,
            "started_at": self.started_at.astimezone(NY).isoformat(),
            "last": {
                k: {
                    "at": o.at.astimezone(NY).isoformat(),
                    "outcome": o.outcome,
                    "late_s": round(o.lateness, 3),
                }
                for k, o in sorted(last.items())
            },
            "jobs": counts,
            "next": [{"kind": j.kind, "at": j.at.isoformat()} for j in next_jobs(now, self.spec, 3)],
            "locks": {**locks, "locked": any(locks.values())},
        }
        return ok, body


class HealthServer:
    """`/healthz` and `/metrics` on a daemon thread. `start()` returns the bound port."""

    def __init__(
        self,
        health: HealthState,
        metrics: Metrics | None = None,
        host: str = "127.0.0.1",
        port: int = 9108,
        token: SecretStr | str | None = None,
    ) -> None:
        tok = token.get_secret_value() if isinstance(token, SecretStr) else token
        if not is_loopback(host) and not tok:
            raise ValueError(
                f"refusing to serve /healthz and /metrics on {host!r} without a token: set "
                "[service] health_token (env SOXBOT_SERVICE__HEALTH_TOKEN) or bind to 127.0.0.1"
            )
        self.health, self.metrics = health, metrics
        self.host, self.port = host, port
        self._token = tok or None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.log = get("soxbot.health")

    @classmethod
    def from_settings(cls, service: Any, health: HealthState, metrics: Metrics | None = None) -> HealthServer:
        """From a `[service]` section (`bot.core.config.ServiceConfig`)."""
        return cls(health, metrics, service.health_host, service.health_port, service.health_token)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _authorized(self, handler: BaseHTTPRequestHandler) -> bool:
        if self._token is None:
            return True
        want = self._token.encode()
        auth = handler.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), want):
            return True
        given = parse_qs(urlsplit(handler.path).query).get("token", [""])[0]
        return bool(given) and hmac.compare_digest(given.encode(), want)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "soxbot"
            sys_version = ""

            def log_message(self, format: str, *args: Any) -> None:  # no access log (and no token)
                pass

            def _send(self, code: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = urlsplit(self.path).path.rstrip("/") or "/"
                if path not in ("/healthz", "/metrics"):
                    self._send(404, b'{"error": "not found: try /healthz or /metrics"}\n', "application/json")
                    return
                if not server._authorized(self):
                    self._send(
                        401,
                        b'{"error": "token required"}\n',
                        "application/json",
                        {"WWW-Authenticate": 'Bearer realm="soxbot"'},
                    )
                    return
                try:
                    if path == "/healthz":
                        ok, body = server.health.check()
                        data = (json.dumps(body, indent=1) + "\n").encode()
                        self._send(200 if ok else 503, data, "application/json")
                    elif server.metrics is None:
                        self._send(404, b'{"error": "metrics are off"}\n', "application/json")
                    else:
                        self._send(200, server.metrics.render(), CONTENT_TYPE_LATEST)
                except Exception as exc:  # never kill the server thread
                    server.log.error("health endpoint failed", path=path, error=repr(exc))
                    self._send(500, b'{"error": "internal error"}\n', "application/json")

        return Handler

    def start(self) -> int:
        server_cls = ThreadingHTTPServer
        if ":" in self.host.strip("[]"):  # an IPv6 address such as ::1
            server_cls = type("_V6Server", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        self._httpd = server_cls((self.host.strip("[]"), self.port), self._handler())
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        httpd = self._httpd
        self._thread = threading.Thread(
            target=lambda: httpd.serve_forever(poll_interval=0.1), name="soxbot-health", daemon=True
        )
        self._thread.start()
        self.log.info("health server listening", url=self.url + "/healthz", token=self._token is not None)
        return self.port

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
