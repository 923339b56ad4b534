"""`soxbot run` with the example config and no keys: the real service on soxbot's own sandbox.

The real CLI as a process: it starts the sandbox on a free loopback port with keys of its own, trades
through alpaca-py until a fill is journaled and shown by its dashboard's API, and on Ctrl-C (SIGINT)
exits 0 with no process of its own left behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.alpaca_support import REPO, SOXBOT, journal_rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (Linux /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def embedded_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "SOXBOT_"))}
    env.update(SOXBOT_SERVICE__HEALTH_PORT="0", SOXBOT_SERVICE__DASHBOARD_PORT="0")
    return env


def poll(proc: subprocess.Popen, done: Callable[[], Any], seconds: float, what: str, log: Path) -> Any:
    """Poll `done` until it gives something (returned), the process dies or the deadline passes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = done()
        if got:
            return got
        assert proc.poll() is None, f"exited {proc.returncode} before {what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)
    pytest.fail(f"no {what} within {seconds:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc to look for child processes")
def test_run_with_the_example_config_trades_on_the_embedded_sandbox_until_ctrl_c(tmp_path):
    log = tmp_path / "run.log"
    bt = tmp_path / "reports" / "bt1"  # a backtest's output folder for the dashboard's reports page
    bt.mkdir(parents=True)
    (bt / "summary.json").write_text(json.dumps({"strategy": {"total_return": 0.1, "n_trades": 3}}))
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*SOXBOT, "run", "--config", str(REPO / "config.example.toml"), "--speed", "86400",
             "--reports", str(bt.parent)],
            cwd=tmp_path, env=embedded_env(), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            text = poll(proc, lambda: (m := re.search(r"^dashboard: (\S+)", log.read_text(), re.M)) and m, 90,
                        "dashboard URL", log)  # fmt: skip
            url = text.group(1)
            head = log.read_text()
            assert re.search(r"^sandbox: http://127\.0\.0\.1:\d+ \(paper, SYNTHETIC DATA", head, re.M), head
            db = tmp_path / "soxbot-sandbox.db"  # [journal] path soxbot.db, the sandbox's own beside it
            fills = poll(proc, lambda: journal_rows(db, "SELECT symbol, side FROM fills"), 300, "fill", log)
            assert fills[0][1] == "buy" and fills[0][0] in ("SOXL", "SOXS")
            with urllib.request.urlopen(url + "api/overview", timeout=10) as r:
                ov = json.loads(r.read())
            assert ov["fills"] >= 1 and ov["live"]["mode"] == "paper"
            assert ov["live"]["clock"]["kind"].startswith("sandbox clock")
            with urllib.request.urlopen(url + "api/reports", timeout=10) as r:
                assert [x["summary"]["n_trades"] for x in json.loads(r.read())] == [3]
            assert journal_rows(db, "SELECT mode FROM runs") == [("paper-alpaca",)]
            assert children(proc.pid) == []  # the sandbox is a thread of this process, not a child
            proc.send_signal(signal.SIGINT)
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 0, log.read_text()[-3000:]
    assert journal_rows(db, "SELECT status FROM runs") == [("stopped",)]
    assert "alpaca end" in log.read_text()


def test_a_taken_dashboard_port_is_said_in_one_line_and_the_service_trades_on(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        env = {**embedded_env(), "SOXBOT_SERVICE__DASHBOARD_PORT": str(taken.getsockname()[1])}
        log = tmp_path / "run.log"
        with log.open("w") as out:
            proc = subprocess.Popen([*SOXBOT, "run", "--config", str(REPO / "config.example.toml")],
                                    cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
            try:
                poll(proc, lambda: "service start" in log.read_text(), 90, "service start", log)
                text = log.read_text()
                assert re.search(
                    r"^dashboard: not started on 127\.0\.0\.1:\d+ .*dashboard_port = 0", text, re.M
                )
                assert "Traceback" not in text
                proc.send_signal(signal.SIGINT)
                code = proc.wait(60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    assert code == 0, log.read_text()[-3000:]
