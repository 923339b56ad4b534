"""What the real `soxbot` shows a person: the end-of-run line of a replay, `journal --kind runs`, and
`soxbot status` against the sandbox, whose clock is not the wall clock."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.core.config import load_config
from bot.data.load import load_bars
from bot.journal.journal import Journal
from bot.sandbox.app import SandboxServer
from tests.conftest import REPO
from tests.sandbox_support import daily_bars, write_bars

pytestmark = pytest.mark.e2e
BARS = 250


def soxbot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One `soxbot run` of the offline default (JSON logs): its journal and its end-of-run event."""
    db = tmp_path_factory.mktemp("replay") / "run.db"
    env = {"SOXBOT_JOURNAL__PATH": str(db), "SOXBOT_RUN__LOG_FORMAT": "json"}
    r = soxbot(
        "replay", "--config", "config.example.toml", "--max-bars", str(BARS), "--speed", "100000", env=env
    )
    assert r.returncode == 0, r.stderr[-3000:]
    events = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    return db, next(e for e in events if e["event"] == "replay end")


def _pct(text: str) -> float:
    return float(text.rstrip("%")) / 100


def test_end_of_run_line_has_return_drawdown_and_buy_and_hold(replay: tuple[Path, dict]) -> None:
    db, end = replay
    cfg = load_config(REPO / "config.example.toml")
    with sqlite3.connect(db) as j:
        equity = np.array([r[0] for r in j.execute("SELECT equity FROM equity ORDER BY rowid")])
    assert len(equity) == BARS and end["bars"] == BARS
    curve = np.concatenate([[cfg.broker.starting_cash], equity])  # drawdown counts from the base
    max_dd = float(np.max(1 - curve / np.maximum.accumulate(curve)))
    assert _pct(end["total_return"]) == pytest.approx(equity[-1] / cfg.broker.starting_cash - 1, abs=6e-5)
    assert _pct(end["max_drawdown"]) == pytest.approx(max_dd, abs=6e-5) and max_dd > 0
    # buy-and-hold of the signal symbol over the same bars: the bars the run replayed
    sig = load_bars(cfg.data, cfg.universe.symbols)[cfg.universe.signal][0].iloc[:BARS]
    assert end["benchmark"] == cfg.universe.signal
    assert _pct(end["buy_and_hold"]) == pytest.approx(
        sig["close"].iat[-1] / sig["close"].iat[0] - 1, abs=6e-5
    )


def test_journal_runs_is_a_readable_summary_and_full_keeps_the_config(replay: tuple[Path, dict]) -> None:
    db, _ = replay
    r = soxbot("journal", "--path", str(db), "--kind", "runs")
    assert r.returncode == 0, r.stderr
    header, row = r.stdout.splitlines()[:2]
    for col in ("mode", "set_id", "started_at", "ended_at", "status", "strategies", "config"):
        assert col in header.split(), header
    assert "paper-replay" in row and " ok " in row and "ma_cross" in row and "SOXX -> SOXL/SOXS" in row
    assert "{" not in r.stdout and '"data"' not in r.stdout  # no JSON squeezed into a column
    with sqlite3.connect(db) as j:
        stored = json.loads(j.execute("SELECT config FROM runs").fetchone()[0])
    r = soxbot("journal", "--path", str(db), "--kind", "runs", "--full")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout[r.stdout.index("{") :]) == stored


def test_status_shows_next_runs_on_the_sandbox_clock(tmp_path: Path) -> None:
    start = "2024-06-03T10:00"  # a Monday; the wall clock is years away from it
    with SandboxServer(data_dir=write_bars(tmp_path / "d", daily_bars(), "1d"), speed=0, start=start) as srv:
        cfg_path = tmp_path / "paper.toml"
        cfg_path.write_text(
            f'[data]\nsource = "alpaca"\nbase_url = "{srv.url}"\n'
            f'[universe]\nsignal = "AAA"\nbull = "BBB"\nbear = ""\n'
            f'[broker]\nkind = "alpaca"\nbase_url = "{srv.url}"\n'
            f'[journal]\npath = "{tmp_path / "j.db"}"\n'
        )
        cfg = load_config(cfg_path)
        j = Journal(cfg.journal.path)
        j.start_run("paper-alpaca", "set", json.loads(cfg.model_dump_json()), False)
        j.close()
        r = soxbot(
            "status", "--config", str(cfg_path), env={"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s"}
        )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(re.match(r"clock: the broker's .*2024-06-03 10:00 EDT", ln) for ln in lines), r.stdout
    first = lines.index("schedule (1d), next runs:") + 1
    jobs = [ln.split() for ln in lines[first : first + 4]]
    # the jobs of the sandbox's Monday and Tuesday, not of the wall clock's dates
    assert [(j[1], j[2], j[4]) for j in jobs] == [
        ("2024-06-03", "16:00", "decision"),
        ("2024-06-03", "16:05", "end_of_day"),
        ("2024-06-04", "09:00", "pre_open"),
        ("2024-06-04", "16:00", "decision"),
    ], r.stdout
