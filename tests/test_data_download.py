"""`soxbot data download` and `soxbot data check`, run as a user would (a subprocess), against the real
sandbox through alpaca-py's StockHistoricalDataClient. The sandbox clock is stepped, never raced."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pandas as pd
import pytest
from aiohttp import web
from typer.testing import CliRunner

from bot.cli import app
from bot.core.config import DataConfig
from bot.data.csv_feed import load_csv
from bot.data.load import load_bars
from bot.sandbox.app import SandboxServer
from tests.conftest import REPO
from tests.sandbox_support import admin, at, daily_bars, minute_bars, write_bars

pytestmark = pytest.mark.e2e

BARS = daily_bars()
KEYS = {"APCA_API_KEY_ID": "PKTEST", "APCA_API_SECRET_KEY": "SECRET"}
RUNNER = CliRunner()  # in-process for the many one-line refusals; the flows run in a subprocess


def env_for(url: str, **more: str) -> dict[str, str]:
    return {**KEYS, "SOXBOT_DATA__BASE_URL": url, **more}


def soxbot(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real command in its own process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "data", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env_for(url, **(env or {}))},
    )


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = write_bars(tmp_path_factory.mktemp("src-daily"), BARS, "1d")
    with SandboxServer(data_dir=d, timeframe="1d", speed=0, start="2024-06-03") as s:
        yield s


@pytest.fixture
def url(srv) -> str:
    admin(srv, "reset", {"start": at("2024-06-03 09:00")})  # bars up to 2024-05-31 are complete
    return srv.url


def same(df: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(df.index) == list(want.index)
    for c in ("open", "high", "low", "close", "volume"):
        assert df[c].tolist() == want[c].astype(float).tolist(), c


def test_download_writes_files_soxbot_loads_then_appends_only_the_new_bars(srv, url, tmp_path):
    out = tmp_path / "bars"
    r = soxbot(url, "download", "--symbols", "AAA,BBB", "--start", "2024-01-01", "--dir", str(out))
    assert r.returncode == 0, r.stderr
    assert f"AAA_1d.csv: created, +{len(BARS['AAA'].loc[:'2024-05-31'])} rows" in r.stdout
    for sym in ("AAA", "BBB"):
        same(load_csv(out, sym, "1d"), BARS[sym].loc[:"2024-05-31"])
    before = (out / "AAA_1d.csv").read_text()
    assert before.startswith("timestamp,open,high,low,close,volume\n2024-01-02,")

    # the same day again: nothing new
    r = soxbot(url, "download", "--symbols", "AAA,BBB", "--dir", str(out))
    assert r.returncode == 0 and "AAA_1d.csv: up to date, +0 rows" in r.stdout
    assert (out / "AAA_1d.csv").read_text() == before

    admin(srv, "advance", {"to": at("2024-06-10 16:30")})  # six more sessions: 06-03 .. 06-10
    r = soxbot(url, "download", "--symbols", "AAA,BBB", "--dir", str(out))
    assert r.returncode == 0, r.stderr
    new, total = len(BARS["AAA"].loc["2024-06-01":"2024-06-10"]), len(BARS["AAA"].loc[:"2024-06-10"])
    assert f"AAA_1d.csv: appended, +{new} rows, {total} rows 2024-01-02 .. 2024-06-10" in r.stdout
    after = (out / "AAA_1d.csv").read_text()
    assert after.startswith(before)  # the old rows untouched, byte for byte
    bars = load_bars(DataConfig(source="csv", dir=out, timeframe="1d"), ["AAA", "BBB"])
    for sym in ("AAA", "BBB"):
        clean, report = bars[sym]
        same(clean, BARS[sym].loc[:"2024-06-10"])  # no duplicate, no hole
        assert report.rejected == report.repaired == report.counts["missing_bars"] == 0


def test_a_later_end_appends_up_to_that_day_and_an_earlier_start_extends_back(url, tmp_path):
    out = tmp_path / "bars"
    args = ("download", "--symbols", "BBB", "--dir", str(out))
    assert soxbot(url, *args, "--start", "2024-02-01", "--end", "2024-03-28").returncode == 0
    same(load_csv(out, "BBB", "1d"), BARS["BBB"].loc["2024-02-01":"2024-03-28"])
    r = soxbot(url, *args, "--end", "2024-04-30")
    assert r.returncode == 0, r.stderr
    assert f"appended, +{len(BARS['BBB'].loc['2024-04-01':'2024-04-30'])} rows" in r.stdout
    same(load_csv(out, "BBB", "1d"), BARS["BBB"].loc["2024-02-01":"2024-04-30"])
    r = soxbot(url, *args, "--start", "2024-01-01", "--end", "2024-04-30")
    assert r.returncode == 0, r.stderr
    assert "rewritten" in r.stdout and "extended back to 2024-01-01" in r.stdout
    same(load_csv(out, "BBB", "1d"), BARS["BBB"].loc[:"2024-04-30"])


def test_a_split_since_the_last_download_rewrites_the_file_on_the_new_basis(url, tmp_path):
    out = tmp_path / "bars"
    assert (
        soxbot(url, "download", "--symbols", "AAA", "--start", "2024-01-01", "--dir", str(out)).returncode
        == 0
    )
    # a 2:1 split on 2024-06-05: the source now serves every earlier bar at half the price
    split = BARS["AAA"].copy()
    early = split.index < pd.Timestamp("2024-06-05")
    split.loc[early, ["open", "high", "low", "close"]] /= 2
    split.loc[early, "volume"] *= 2
    d = write_bars(tmp_path / "src-split", {"AAA": split}, "1d")
    with SandboxServer(data_dir=d, timeframe="1d", speed=0, start=at("2024-06-10 16:30")) as later:
        r = soxbot(later.url, "download", "--symbols", "AAA", "--dir", str(out))
    assert r.returncode == 0, r.stderr
    assert "AAA_1d.csv: rewritten" in r.stdout and "split or dividend" in r.stdout
    same(load_csv(out, "AAA", "1d"), split.loc[:"2024-06-10"])  # one basis, not two


def test_the_adjustment_is_asked_for_recorded_and_another_one_refused(tmp_path):
    seen: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler):
        if request.path == "/v2/stocks/bars":
            seen.append(request.query.get("adjustment", ""))
        return await handler(request)

    d = write_bars(tmp_path / "src", BARS, "1d")
    s = SandboxServer(data_dir=d, timeframe="1d", speed=0, start=at("2024-06-03 09:00"))
    s.app.middlewares.append(record)  # observes the wire; the server itself is unchanged
    out = tmp_path / "bars"
    with s:
        r = soxbot(s.url, "download", "--symbols", "AAA", "--start", "2024-05-01", "--dir", str(out),
                   "--adjustment", "split")  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert seen and set(seen) == {"split"}
        assert json.loads((out / "AAA_1d.meta.json").read_text())["adjustment"] == "split"
        before = (out / "AAA_1d.csv").read_text()
        n = len(seen)
        r = soxbot(s.url, "download", "--symbols", "AAA", "--dir", str(out), "--adjustment", "all")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "adjustment 'split'" in r.stderr and "--adjustment split" in r.stderr
    assert len(seen) == n  # refused before asking
    assert (out / "AAA_1d.csv").read_text() == before


def test_a_csv_not_written_by_download_is_not_appended_to(url, tmp_path):
    out = write_bars(tmp_path / "bars", {"AAA": BARS["AAA"].loc[:"2024-03-28"]}, "1d")
    before = (out / "AAA_1d.csv").read_text()
    r = soxbot(url, "download", "--symbols", "AAA", "--dir", str(out))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "AAA_1d.meta.json" in r.stderr and "adjustment is unknown" in r.stderr
    assert (out / "AAA_1d.csv").read_text() == before


def test_intraday_bars_carry_the_new_york_offset_and_append_after_the_last_one(tmp_path):
    mins = minute_bars("2024-06-03", "2024-06-07")
    want = {
        s: df.resample("5min", label="left", closed="left")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna()
        for s, df in mins.items()
    }
    d = write_bars(tmp_path / "src", mins, "1m")
    out = tmp_path / "bars"
    args = ("download", "--symbols", "AAA", "--timeframe", "5m", "--dir", str(out))
    with SandboxServer(data_dir=d, timeframe="1m", speed=0, start=at("2024-06-04 12:00")) as s:
        assert soxbot(s.url, *args, "--start", "2024-06-03").returncode == 0
        lines = (out / "AAA_5m.csv").read_text().splitlines()
        assert lines[1].startswith("2024-06-03T09:30:00-04:00,")
        assert lines[-1].startswith("2024-06-04T11:55:00-04:00,")
        admin(s, "advance", {"to": at("2024-06-05 10:00")})
        r = soxbot(s.url, *args)
    assert r.returncode == 0, r.stderr
    ny = "America/New_York"
    new = want["AAA"].loc[pd.Timestamp("2024-06-04 12:00", tz=ny) : pd.Timestamp("2024-06-05 09:55", tz=ny)]
    assert f"appended, +{len(new)} rows" in r.stdout
    got = load_csv(out, "AAA", "5m")
    assert got.index.is_unique
    same(got, want["AAA"].loc[: pd.Timestamp("2024-06-05 09:55", tz="America/New_York")])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--symbols", "ZZZZ", "--start", "2024-01-01"), "no 1d bars for ZZZZ"),
        (("--symbols", "^SOX", "--start", "2024-01-01"), "index"),
        (("--symbols", "SO X", "--start", "2024-01-01"), "not a ticker"),
        (("--symbols", "AAA", "--start", "2024-13-01"), "--start must be a date written YYYY-MM-DD"),
        (("--symbols", "AAA", "--start", "2024-05-01", "--end", "2024-04-01"), "after --end"),
        (("--symbols", "AAA"), "give --start"),
        (
            ("--symbols", "AAA", "--start", "2024-01-01", "--adjustment", "splits"),
            "--adjustment must be one of",
        ),
        (("--symbols", "AAA", "--start", "2024-01-01", "--timeframe", "2h"), "--timeframe must be one of"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(url, tmp_path, args, words):
    out = tmp_path / "bars"
    r = RUNNER.invoke(app, ["data", "download", *args, "--dir", str(out)], env=env_for(url))
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit)  # a message, not a traceback
    assert r.stderr.count("\n") == 1 and words in r.stderr, r.stderr
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_an_unwritable_directory_is_named_before_any_request(url, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    bad = blocker / "bars"
    args = ["data", "download", "--symbols", "AAA", "--start", "2024-01-01", "--dir", str(bad)]
    r = RUNNER.invoke(app, args, env=env_for(url))
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit)
    assert (
        r.stderr == f"cannot write into --dir {bad}: Not a directory. Choose a directory you can write to.\n"
    )


def test_an_unreachable_data_url_and_wrong_keys_are_one_line(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    r = soxbot(closed, "download", "--symbols", "AAA", "--start", "2024-01-01", "--dir", str(tmp_path / "b"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert f"did not answer at {closed} (Connection refused)" in r.stderr

    d = write_bars(tmp_path / "src", BARS, "1d")
    with SandboxServer(data_dir=d, timeframe="1d", speed=0, start="2024-06-03", key="K1", secret="S1") as s:
        r = soxbot(
            s.url, "download", "--symbols", "AAA", "--start", "2024-01-01", "--dir", str(tmp_path / "b")
        )
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "refused the keys (401" in r.stderr and "APCA_API_KEY_ID" in r.stderr
    r = soxbot(s.url, "download", "--symbols", "AAA", "--start", "2024-01-01", "--dir", str(tmp_path / "b"),
               env={"APCA_API_KEY_ID": "", "APCA_API_SECRET_KEY": ""})  # fmt: skip
    assert r.returncode == 2 and "Alpaca keys missing" in r.stderr


def test_check_reports_a_planted_bad_row_by_rule_and_exits_1(url, tmp_path):
    out = tmp_path / "bars"
    assert (
        soxbot(url, "download", "--symbols", "AAA,BBB", "--start", "2024-04-01", "--dir", str(out)).returncode
        == 0
    )
    n = len(BARS["AAA"].loc["2024-04-01":"2024-05-31"])
    r = soxbot(url, "check", str(out))
    assert r.returncode == 0, r.stdout
    assert f"AAA_1d.csv: {n} rows, 2024-04-01 .. 2024-05-31\n  no problems, no gaps" in r.stdout

    with (out / "AAA_1d.csv").open("a") as f:
        f.write("2024-06-03,101,95,99,100,1000\n")  # high below low
    r = soxbot(url, "check", str(out))
    assert r.returncode == 1
    table = r.stdout.split("AAA_1d.csv: ")[1].split("\n\n")[0]
    assert table.startswith(f"{n + 1} rows, 2024-04-01 .. 2024-06-03")
    assert any(
        ln.split()[:4] == ["high_below_low", "1", "rejected", "2024-06-03"] for ln in table.splitlines()
    )
    assert "1 problem (1 rejected, 0 repaired)" in table
    assert f"BBB_1d.csv: {n} rows" in r.stdout and r.stdout.rstrip().endswith(
        "2 files, 1 with problems: AAA_1d.csv"
    )


def test_check_of_a_folder_without_bar_files_is_exit_2(url, tmp_path):
    r = soxbot(url, "check", str(tmp_path))
    assert r.returncode == 2 and "no bar files in" in r.stderr and r.stderr.count("\n") == 1
    r = soxbot(url, "check", str(tmp_path / "nope"))
    assert r.returncode == 2 and "is not a directory" in r.stderr


def test_check_on_the_real_data_finds_its_known_bad_bars(shared_data):
    r = soxbot("http://unused", "check", str(shared_data))
    assert r.returncode == 1
    sox = r.stdout.split("SOX_1d.csv: ")[1].split("\n\n")[0]
    assert any(
        ln.split()[:3] == ["open_close_outside_range", "1", "high/low"] and ln.endswith("2023-04-26")
        for ln in sox.splitlines()
    ), sox  # SOURCES.md: open 2906.3 below low 2908.4
    soxx = r.stdout.split("SOXX_1d.csv: ")[1].split("\n\n")[0]
    assert soxx.endswith("no problems, no gaps")
