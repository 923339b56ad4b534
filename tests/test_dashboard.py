"""`soxbot dashboard --journal` on a backtest's journal.db (the real CLI process, real HTTP): every page
renders, the JSON API answers from the journal, nothing changes state, and off loopback a token is
required."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOXBOT = [sys.executable, "-m", "bot.cli"]
PAGES = ["/", "/chart", "/orders", "/signals", "/equity", "/events", "/reports", "/partials/overview"]


@pytest.fixture(scope="module")
def backtest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports") / "bt1"
    r = subprocess.run([*SOXBOT, "backtest", "--out", str(out), "--no-progress"], cwd=REPO,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def get(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def serve(args: list[str], env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    proc = subprocess.Popen([*SOXBOT, "dashboard", "--port", "0", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})  # fmt: skip
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        m = re.match(r"dashboard: (http://\S+/)", line)
        assert m, line + (proc.stderr.read() if proc.stderr and proc.poll() is not None else "")
        yield m.group(1), proc
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0


@pytest.fixture(scope="module")
def at_rest(backtest: Path) -> Iterator[str]:
    args = ["--journal", str(backtest / "journal.db"), "--reports", str(backtest.parent)]
    yield from (u for u, _ in serve(args))


def test_every_page_of_a_backtest_journal_renders(at_rest: str, backtest: Path) -> None:
    for page in PAGES:
        code, body = get(at_rest + page.lstrip("/"))
        assert code == 200, (page, body[:300])
        assert b"soxbot" in body or page.startswith("/partials/")
    code, body = get(at_rest + "orders")
    cid = sqlite3.connect(backtest / "journal.db").execute("SELECT client_order_id FROM orders").fetchone()[0]
    assert cid.encode() in body  # orders with their client_order_id
    code, body = get(at_rest)
    assert b"SYNTHETIC DATA" in body and b"backtest" in body


def test_the_api_reads_the_journal(at_rest: str, backtest: Path) -> None:
    db = sqlite3.connect(backtest / "journal.db")
    n_fills = db.execute("SELECT count(*) FROM fills").fetchone()[0]
    fills = json.loads(get(at_rest + "api/fills")[1])
    assert len(fills) == n_fills > 0 and {"client_order_id", "price", "side"} <= set(fills[0])
    eq = json.loads(get(at_rest + "api/equity")[1])
    assert len(eq["ts"]) == db.execute("SELECT count(*) FROM equity").fetchone()[0]
    assert eq["buy_and_hold"][0] == pytest.approx(eq["equity"][0])  # both start from the starting cash
    assert min(eq["drawdown"]) < 0
    chart = json.loads(get(at_rest + "api/chart")[1])
    assert chart["signal"]["symbol"] == "SOXX" and len(chart["signal"]["close"]) > 100
    assert {"ma_cross.ma_fast", "ma_cross.ma_slow"} <= set(chart["indicators"])
    assert set(chart["traded"]) == {"SOXL", "SOXS"}
    day = json.loads(get(at_rest + "api/days")[1])[0]
    sigs = json.loads(get(at_rest + f"api/signals?day={day}")[1])
    assert sigs and all(s["ts"].startswith(day) for s in sigs)
    assert get(at_rest + "api/signals?day=yesterday")[0] == 400
    reports = json.loads(get(at_rest + "api/reports")[1])
    assert reports[0]["name"].endswith("bt1") and reports[0]["summary"]["n_trades"] > 0
    href = next(f["href"] for f in reports[0]["files"] if f["name"] == "summary.json")
    assert json.loads(get(at_rest + href.lstrip("/"))[1])["strategy"]
    assert get(at_rest + "files/0/..%2F..%2Fetc%2Fpasswd")[0] == 404


def test_no_endpoint_changes_state(at_rest: str, backtest: Path) -> None:
    before = (backtest / "journal.db").stat().st_mtime_ns
    for path in ("", "api/overview", "api/orders", "partials/overview"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert get(at_rest + path, method)[0] == 405, (method, path)
    assert (backtest / "journal.db").stat().st_mtime_ns == before


def test_off_loopback_the_token_is_required(backtest: Path) -> None:
    env = {"SOXBOT_SERVICE__HEALTH_HOST": "0.0.0.0", "SOXBOT_SERVICE__HEALTH_TOKEN": "t0ken"}
    for url, _ in serve(["--journal", str(backtest / "journal.db")], env):
        assert get(url)[0] == 401 and get(url + "api/overview")[0] == 401
        assert get(url + "api/overview", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert get(url + "api/overview", headers={"Authorization": "Bearer t0ken"})[0] == 200
        assert get(url + "?token=t0ken")[0] == 200


def test_no_token_off_loopback_is_a_user_error(backtest: Path) -> None:
    env = {**os.environ, "SOXBOT_SERVICE__HEALTH_HOST": "0.0.0.0"}
    cmd = [*SOXBOT, "dashboard", "--journal"]
    db = str(backtest / "journal.db")
    r = subprocess.run([*cmd, db], cwd=REPO, capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "health_token" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([*cmd, "nope.db"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "No journal at nope.db" in r.stderr and "Traceback" not in r.stderr


def test_an_open_leveraged_position_shows_its_decay_and_carry_since_entry(tmp_path: Path) -> None:
    """A replay stopped with SOXL held (the synthetic market, whose SOX index the run can reload): the
    overview gives the position's decay and carry since entry, terms that sum to ln(mark / entry)."""
    import math

    db = None
    for bars in (150, 400, 120, 180, 250):  # the first stop of the replay with a position open
        path = tmp_path / f"replay{bars}.db"
        r = subprocess.run([*SOXBOT, "replay", "--config", "config.example.toml", "--max-bars", str(bars),
                            "--speed", "100000"], cwd=REPO, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "SOXBOT_JOURNAL__PATH": str(path)})  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        if "position='" in r.stdout.splitlines()[-1]:
            db = path
            break
    assert db is not None, "no replay stop with a position open"
    for url, _proc in serve(["--journal", str(db)]):
        o = json.loads(get(url + "api/overview")[1])
        (p,) = o["positions"]
        d = p["decay"]
        assert isinstance(d, dict) and d["underlying"] == "SOX" and d["leverage"] in (3.0, -3.0), d
        terms = ("leveraged_index", "vol_drag", "expense", "financing", "rest")
        total = math.log(p["mark"] / p["entry_price"])
        assert math.fsum(d[k] for k in terms) == pytest.approx(total, abs=1e-9)
        assert d["vol_drag"] < 0 and abs(d["rest"]) < 0.02  # the synthetic fund is L x SOX plus its carry
        page = get(url)[1].decode()
        assert "decay and carry since entry" in page and f"{d['vol_drag'] * 100:+.2f}" in page


def test_the_overview_reads_the_equity_curve_s_end_not_all_of_it(tmp_path: Path) -> None:
    """An open page polls the overview every 2 s for as long as the service runs: it reads the curve's
    last rows (today and the close before), and today's P&L is what the whole curve gives."""
    import datetime as dt

    import pandas as pd

    from bot.core.events import EquityPoint
    from bot.dashboard import journal_view
    from bot.journal.journal import Journal

    j = Journal(tmp_path / "j.db", buffered=True)
    j.start_run("paper-alpaca", "s", {"broker": {"starting_cash": 1000.0}})
    n, per_day = 3 * journal_view.TAIL, 390  # a long run of 1-minute bars
    t0 = pd.Timestamp("2024-01-02 09:30", tz="America/New_York")
    for i in range(n):
        ts = t0 + pd.Timedelta(days=i // per_day, minutes=i % per_day)
        j.equity(EquityPoint(ts, 1000.0 + i, 0.0, 0.0))
    j.flush()
    j.close()
    view = journal_view.JournalView(tmp_path / "j.db")
    reads: list[str] = []
    with view.connect() as db:
        db.set_trace_callback(reads.append)
        tail = journal_view._equity_tail(db, 1)
    assert len(tail) == journal_view.TAIL < n and any("LIMIT" in q for q in reads)
    o = view.overview(dt.datetime.now(dt.UTC))
    last_close = 1000.0 + (n - 1) - ((n - 1) % per_day) - 1  # the last row of the session before
    assert o["equity"]["value"] == 1000.0 + n - 1
    assert o["pnl_today"]["value"] == pytest.approx(o["equity"]["value"] - last_close)


def test_polling_the_pages_leaves_no_journal_connection_open(tmp_path: Path) -> None:
    """Each request's read-only connection is closed when it is done, not when the garbage collector
    gets to it: a page open all day must not pile up file descriptors."""
    import datetime as dt
    import gc

    import pandas as pd

    from bot.core.events import EquityPoint
    from bot.dashboard.journal_view import JournalView
    from bot.journal.journal import Journal

    j = Journal(tmp_path / "j.db", buffered=True)
    j.start_run("paper-alpaca", "s", {})
    j.equity(EquityPoint(pd.Timestamp("2024-01-02 10:00", tz="America/New_York"), 1.0, 1.0, 0.0))
    j.flush()
    j.close()
    view = JournalView(tmp_path / "j.db")
    fds = lambda: len(os.listdir("/proc/self/fd"))  # noqa: E731
    gc.disable()
    try:
        before = fds()
        for _ in range(20):
            view.overview(dt.datetime.now(dt.UTC))
            view.rows("fills")
            view.equity()
        assert fds() == before
    finally:
        gc.enable()
