"""Serving the dashboard: beside a running service (a daemon thread) or for a journal at rest.

It binds where /healthz does (`[service] health_host`) on `dashboard_port`, under the same rule:
off a loopback address it refuses to start without `health_token`, and then asks every request for it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from bot.core.config import is_loopback
from bot.core.log import get
from bot.dashboard.app import build_app
from bot.dashboard.live import LiveView

log = get("soxbot.dashboard")


class DashboardServer:
    """uvicorn on a socket bound here (so port 0 is known before serving), run on a daemon thread."""

    def __init__(self, app: Any, host: str, port: int, token: str | None) -> None:
        if not is_loopback(host) and not token:
            raise ValueError(
                f"refusing to serve the dashboard on {host!r} without a token: set [service] health_token "
                "(env SOXBOT_SERVICE__HEALTH_TOKEN) or bind to 127.0.0.1"
            )
        h = host.strip("[]")
        self.sock = socket.socket(socket.AF_INET6 if ":" in h else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((h, port))
        self.sock.listen(128)  # from now on a request waits in the backlog until uvicorn serves it
        self.port = int(self.sock.getsockname()[1])
        self.host = host
        self.token = token
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)  # on a thread it leaves signals alone: the bot owns them
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def start(self) -> DashboardServer:
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="soxbot-dashboard", daemon=True
        )
        self._thread.start()
        return self

    def serve_until_signal(self) -> None:
        """Serve until Ctrl-C or SIGTERM, then stop cleanly."""
        import signal

        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        self.start()
        while not stop.wait(0.5):
            if self._thread is not None and not self._thread.is_alive():
                break
        self.stop()

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.sock.close()


def _token(service: Any) -> str | None:
    t = service.health_token
    return t.get_secret_value() if t is not None else None


def service_dashboard(loop: Any, reports: list[Path] | None = None) -> Callable[[], None]:
    """`ServiceLoop(on_serve=...)`: start the dashboard of the running service, print its URL; its stop."""
    cfg = loop.cfg
    s = cfg.service
    token = _token(s)
    app = build_app(cfg.journal.path, LiveView(loop), reports, token=token)
    try:
        server = DashboardServer(app, s.health_host, s.dashboard_port, token).start()
    except OSError as exc:  # the port is taken: the service trades on, without its page
        print(
            f"dashboard: not started on {s.health_host}:{s.dashboard_port} ({exc.strerror or exc}); "
            "set [service] dashboard_port = 0 for any free port",
            flush=True,
        )
        log.error("dashboard not started", port=s.dashboard_port, error=str(exc))
        return lambda: None
    hint = " (add ?token=...)" if token else ""
    print(f"dashboard: {server.url}{hint}", flush=True)
    log.info("dashboard listening", url=server.url, token=token is not None)
    return server.stop


def journal_dashboard(
    journal: Path, reports: list[Path], host: str, port: int, token: str | None
) -> DashboardServer:
    """The dashboard of a journal at rest (a backtest's journal.db, a stopped service's)."""
    return DashboardServer(build_app(journal, None, reports, token), host, port, token)
