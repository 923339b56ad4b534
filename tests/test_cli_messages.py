"""Bad input through the real `soxbot` command: one or two lines naming the problem and the fix, exit
code 2, never a traceback. Each case is a mistake a new user made in a rehearsal; the files are real
files in tmp_path and the broker is the real sandbox (or a port nobody listens on)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.data.synthetic import generate
from tests.conftest import REPO
from tests.sandbox_support import daily_bars, write_bars

pytestmark = pytest.mark.e2e
SYMBOLS = ["SOXX", "SOXL", "SOXS"]


def soxbot(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def assert_user_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, no traceback, and a short message holding every needle; returns the message."""
    out = r.stdout + r.stderr
    assert r.returncode == 2, out[-3000:]
    assert "Traceback" not in out and 'File "' not in out, out[-3000:]
    assert "errors.pydantic.dev" not in out and "You might want to try" not in out, out
    msg = r.stderr.strip()
    assert 1 <= len(msg.splitlines()) <= 2, msg
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    return msg


@pytest.fixture
def market(tmp_path: Path) -> Path:
    """One year of synthetic SOXX/SOXL/SOXS bars written as real CSV files (2020-01-02 ..)."""
    return write_bars(tmp_path / "data", generate(SYMBOLS, "1d", "2020-01-02", 1.0, seed=3), "1d")


def backtest(data: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return soxbot("backtest", "--data-dir", str(data), "--out", str(tmp_path / "out"), *args)


# -- dates --------------------------------------------------------------------------------------------
def test_start_after_end(market: Path, tmp_path: Path) -> None:
    r = backtest(market, tmp_path, "--start", "2020-06-01", "--end", "2020-03-01")
    assert_user_error(r, "2020-06-01", "2020-03-01", "after")


def test_start_beyond_the_data(market: Path, tmp_path: Path) -> None:
    r = backtest(market, tmp_path, "--start", "2030-01-01")
    msg = assert_user_error(r, "2030-01-01", "SOXX_1d.csv", "2020-01-02")
    assert "--start" in msg  # the fix names the option


def test_not_a_date(market: Path, tmp_path: Path) -> None:
    r = backtest(market, tmp_path, "--start", "2021-13-01")
    assert_user_error(r, "--start", "'2021-13-01'", "YYYY-MM-DD")


# -- files --------------------------------------------------------------------------------------------
def test_header_only_csv(market: Path, tmp_path: Path) -> None:
    (market / "SOXX_1d.csv").write_text("timestamp,open,high,low,close,volume\n")
    assert_user_error(backtest(market, tmp_path), "SOXX_1d.csv", "no bars")


def _spoil(path: Path, row: int, column: str, value: str) -> int:
    """Put `value` into `column` of data row `row` (0-based); returns its 1-based line number."""
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(column)] = value
    lines[row + 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return row + 2


def test_non_numeric_value_names_file_line_and_column(market: Path, tmp_path: Path) -> None:
    line = _spoil(market / "SOXL_1d.csv", 150, "close", "12o.5")
    msg = assert_user_error(backtest(market, tmp_path), "SOXL_1d.csv", f"line {line}", "close", "'12o.5'")
    assert "position" not in msg  # pandas' row position is not a line of the file


def test_bad_date_names_file_and_line(market: Path, tmp_path: Path) -> None:
    line = _spoil(market / "SOXS_1d.csv", 40, "timestamp", "2020/13/01")
    assert_user_error(backtest(market, tmp_path), "SOXS_1d.csv", f"line {line}", "'2020/13/01'", "YYYY-MM-DD")


# -- the broker ---------------------------------------------------------------------------------------
def _alpaca_config(tmp_path: Path, url: str) -> Path:
    cfg = tmp_path / "paper.toml"
    cfg.write_text(
        f'[data]\nsource = "alpaca"\nbase_url = "{url}"\ncache_dir = "{tmp_path / "cache"}"\n'
        f'[universe]\nsignal = "AAA"\nbull = "BBB"\nbear = ""\n'
        f'[broker]\nkind = "alpaca"\nbase_url = "{url}"\n'
        f'[journal]\npath = "{tmp_path / "j.db"}"\n'
        "[service]\nhealth_port = 0\ndashboard_port = 0\n"
    )
    return cfg


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # released on close: nothing listens there now


def test_run_against_a_closed_port(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    r = soxbot(
        "run",
        "--config",
        str(_alpaca_config(tmp_path, url)),
        env={"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s"},
    )
    assert_user_error(r, url, "[broker] base_url", "soxbot sandbox")


def test_run_with_keys_the_broker_rejects(tmp_path: Path) -> None:
    from bot.sandbox.app import SandboxServer

    with SandboxServer(
        data_dir=write_bars(tmp_path / "d", daily_bars(), "1d"),
        speed=0,
        start="2024-06-03",
        key="K",
        secret="S",
    ) as srv:
        env = {"APCA_API_KEY_ID": "wrong", "APCA_API_SECRET_KEY": "wrong"}
        r = soxbot("run", "--config", str(_alpaca_config(tmp_path, srv.url)), env=env)
    assert_user_error(r, srv.url, "APCA_API_KEY_ID", "rejected")
