"""`soxbot sandbox` and `soxbot run` as processes, for the end-to-end tests: the sandbox subprocess,
its admin API, a bot config that trades often, and what the broker and the journal say."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SOXBOT = [sys.executable, "-m", "bot.cli"]
KEY, SECRET = "PKE2E", "S3CRET"


def get_json(url: str, body: dict | None = None) -> dict:
    """GET `url`, or POST `body` as JSON; the decoded answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


class Sandbox:
    """`soxbot sandbox` on an ephemeral port (synthetic SOXX/SOXL/SOXS unless `args` say otherwise)."""

    def __init__(self, tmp: Path, speed: float, *args: str) -> None:
        self.log = (tmp / "sandbox.log").open("w+")
        self.proc = subprocess.Popen(
            [
                *SOXBOT,
                "sandbox",
                "--port",
                "0",
                "--speed",
                str(speed),
                "--key",
                KEY,
                "--secret",
                SECRET,
                *args,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        assert "listening on http://127.0.0.1:" in line, line
        self.port = int(line.split("127.0.0.1:")[1].split()[0])
        self.url = f"http://127.0.0.1:{self.port}"

    def state(self) -> dict:
        return get_json(self.url + "/admin/state")

    def faults(self, **patch: object) -> dict:
        return get_json(self.url + "/admin/faults", patch)

    def advance(self, **body: object) -> dict:
        return get_json(self.url + "/admin/advance", body)

    def hold(self) -> dict:
        """Stand the market still where it is now (`release` lets it run on from there)."""
        return get_json(self.url + "/admin/clock", {"held": True})

    def release(self) -> dict:
        return get_json(self.url + "/admin/clock", {"held": False})

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def bot_env(timeout: float = 10.0) -> dict[str, str]:
    """The environment `soxbot run` gets: the sandbox's keys and the per-request timeout."""
    return {
        **os.environ,
        "APCA_API_KEY_ID": KEY,
        "APCA_API_SECRET_KEY": SECRET,
        "SOXBOT_ALPACA_TIMEOUT": str(timeout),
    }


def bot_config(
    tmp: Path,
    url: str,
    ma: tuple[int, int] | None = (2, 5),
    stops: tuple[float, float] = (0.05, 0.03),
    service: str = "",
    extra: str = "",
    *,
    universe: tuple[str, str, str] = ("SOXX", "SOXL", "SOXS"),
    risk: str = "",
    cash: float | None = None,
    keys: tuple[str, str] | None = None,
) -> Path:
    """A fast moving-average cross on SOXX into SOXL/SOXS, with a broker-side stop and a trailing raise.
    `ma`: (fast, slow) lengths, None for the default strategies; `stops`: (stop_loss_pct,
    trailing_stop_pct); `universe`: (signal, bull, bear); `risk`: more `[risk]` lines; `cash`: `[broker]
    starting_cash`; `keys`: (api_key, secret_key) written into the file (an in-process broker, no
    environment); `service`: more `[service]` lines; `extra`: more sections."""
    p = tmp / "bot.toml"
    signal, bull, bear = universe
    strategies = (
        f"""[[strategies]]
name = "ma_cross"
params = {{ fast = {ma[0]}, slow = {ma[1]}, kind = "sma" }}"""
        if ma
        else ""
    )
    broker = [f'api_key = "{keys[0]}"', f'secret_key = "{keys[1]}"'] if keys else []
    broker += [f"starting_cash = {cash}"] if cash is not None else []
    p.write_text(
        f"""
[data]
source = "alpaca"
timeframe = "1d"
base_url = "{url}"
cache_dir = "{tmp / "cache"}"
[universe]
signal = "{signal}"
bull = "{bull}"
bear = "{bear}"
{strategies}
[risk]
fraction = 0.5
stop_loss_pct = {stops[0]}
trailing_stop_pct = {stops[1]}
{risk}
[broker]
kind = "alpaca"
base_url = "{url}"
{chr(10).join(broker)}
[service]
health_port = 0
dashboard_port = 0
{service}
[journal]
path = "{tmp / "journal.db"}"
[run]
log_format = "keyvalue"
{extra}"""
    )
    return p


def journal_rows(path: Path, sql: str) -> list[tuple]:
    """Rows from the bot's journal (read while the bot may be writing: WAL allows it); none before the
    bot has created it."""
    if not path.exists():
        return []
    db = sqlite3.connect(path, timeout=5)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError as exc:  # killed before its schema was written
        if "no such table" in str(exc):
            return []
        raise
    finally:
        db.close()


@contextmanager
def bot_process(tmp: Path, cfg: Path) -> Iterator[subprocess.Popen]:
    """`soxbot run --config cfg` as a process, its output in tmp/bot.log; at the end it gets SIGTERM
    and must exit 0 (a clean stop leaves the broker-side stops and flushes the journal)."""
    log = tmp / "bot.log"
    with log.open("w+") as out:
        proc = subprocess.Popen([*SOXBOT, "run", "--config", str(cfg)], cwd=REPO, env=bot_env(),
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
            code = proc.wait(30)
    assert code == 0, log.read_text()[-3000:]


def wait_until(proc: subprocess.Popen, done: Callable[[], bool], seconds: float) -> bool:
    """Poll `done` until it holds, the process ends or `seconds` pass; whether it held."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        if done():
            return True
        time.sleep(0.25)
    return done()


def in_process_run(
    cfg: Any, journal: Any, resync: float = 5.0, on_status: Any = None, **broker_args: Any
) -> Any:
    """The Alpaca driver in this process, as `soxbot run` builds it, on the keys written into `cfg` (REST
    only: no trade_updates stream). `resync`: how often its clock asks the broker (0 = every time, for
    tests that move the sandbox's clock by hand); `broker_args`: more AlpacaBroker arguments (backoff)."""
    from bot.broker.alpaca import AlpacaBroker
    from bot.data.alpaca_feed import AlpacaBars
    from bot.run.alpaca import AlpacaRun, BrokerClock
    from bot.run.assemble import build_strategies

    broker = AlpacaBroker(cfg.broker, use_stream=False, on_status=on_status, **broker_args)
    b = cfg.broker
    feed = AlpacaBars(cfg.data, b.api_key.get_secret_value(), b.secret_key.get_secret_value())
    clock = BrokerClock(broker.client.get_clock, resync=resync)
    return AlpacaRun(cfg, build_strategies(cfg), broker, feed, journal, clock)


def live_daily_run(tmp: Path, data_dir: Path, start: str, bars: int, **config: Any) -> tuple[Any, Path]:
    """The Alpaca driver in this process against a sandbox of the daily bars in `data_dir`, from `start`,
    for `bars` decisions (the AAA signal, BBB bought; `config`: more `bot_config` arguments). Returns the
    settings and the journal it wrote, for a test to hold against a backtest of the same bars."""
    from bot.core.config import load_config
    from bot.journal.journal import Journal
    from bot.sandbox.app import SandboxServer
    from tests.sandbox_support import admin

    with SandboxServer(data_dir=data_dir, timeframe="1d", speed=0, start=start) as s:
        tmp.mkdir(parents=True, exist_ok=True)
        cfg = load_config(
            bot_config(tmp, s.url, universe=("AAA", "BBB", ""), keys=("PKTEST", "SECRET"), **config)
        )
        j = Journal(cfg.journal.path)
        r = in_process_run(cfg, j, resync=0.5)
        r.clock.calibrate(0.2)
        r.reconcile()
        r.warm_up()
        admin(s, "advance", {"seconds": 1, "speed": 120000})
        r.run(max_bars=bars)
        j.flush()
        j.close()
    return cfg, Path(cfg.journal.path)
