"""End to end, as a user would: `soxbot sandbox` and `soxbot run` as processes, alpaca-py in between.

The sandbox replays seeded synthetic daily bars at 40000x (a session every ~2 s), its clock held until
the bot is ready (`--hold-clock`), so each run covers the same market days however slow the machine;
the bot trades a fast moving-average cross with a broker-side stop and a trailing raise. After SIGTERM
the test checks the sandbox (`GET /admin/state`) and the journal: orders with stops reached the broker,
every fill came back (journal fills == sandbox fills), positions agree, SOXL and SOXS never held at
once, no client order id used twice, exit code 0. The fault run injects 429s, 500s (before and after
the order is accepted) and dropped streams while the bot runs.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.alpaca_support import (
    REPO,
    SOXBOT,
    Sandbox,
    bot_config,
    bot_env,
    bot_process,
    journal_rows,
    wait_until,
)

pytestmark = pytest.mark.e2e


def market_days(sb: Sandbox, since: pd.Timestamp) -> float:
    return (pd.Timestamp(sb.state()["now"]) - since).total_seconds() / 86400


def has_stop(sb: Sandbox) -> bool:
    """The bot has had an entry filled and its broker-side stop placed."""
    return any(o["type"] == "stop" and o["client_order_id"].startswith("sx-") for o in sb.state()["orders"])


def run_bot(
    tmp: Path, sb: Sandbox, days: float, during=None, timeout: float = 10, patience: float = 30
) -> tuple[int, str]:
    """`soxbot run` while the market runs `days` calendar days from the moment the bot released the clock,
    then on until the bot holds a position with its broker-side stop (the seeded market's first cross may
    come late), for at most `patience` more days; `during(days so far)` is called on the way."""
    log = (tmp / "bot.log").open("w+")
    cfg = bot_config(tmp, sb.url)
    since = pd.Timestamp(sb.state()["now"])  # held there until the bot is ready
    proc = subprocess.Popen([*SOXBOT, "run", "--config", str(cfg)], cwd=REPO, env=bot_env(timeout),
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 120 + (days + patience) * 86400 / sb.state()["speed"]  # never reached
    while proc.poll() is None and time.monotonic() < deadline:
        d = market_days(sb, since)
        if d >= days and (d >= days + patience or has_stop(sb)):
            break
        if during is not None:
            during(d)
        time.sleep(0.25)
    assert proc.poll() is None and market_days(sb, since) >= days, (tmp / "bot.log").read_text()[-3000:]
    # hold the market, so nothing fills after the bot stops (its broker-side stops stay live), and let
    # the last fills reach it
    sb.hold()
    broker_fills = sum(float(o["filled_qty"]) > 0 for o in sb.state()["orders"])
    journaled = "SELECT count(DISTINCT client_order_id) FROM fills"
    while journal_rows(tmp / "journal.db", journaled)[0][0] < broker_fills and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(30)
    log.close()
    return code, (tmp / "bot.log").read_text()


def journal_fills(tmp: Path) -> list[tuple[str, str, str, float, float]]:
    db = sqlite3.connect(tmp / "journal.db")
    try:
        rows = db.execute(
            "SELECT client_order_id, symbol, side, qty, price FROM fills ORDER BY rowid"
        ).fetchall()
        status = db.execute("SELECT status FROM runs").fetchall()
    finally:
        db.close()
    assert status == [("stopped",)]
    return rows


def check_consistent(tmp: Path, st: dict) -> dict:
    """What a user checks after a session; returns a few numbers for the report."""
    orders = st["orders"]
    # no client order id ever used twice at the broker
    assert max(st["orders_per_client_order_id"].values()) == 1
    ours = [o for o in orders if o["client_order_id"].startswith("sx-")]
    stops = [o for o in ours if o["type"] == "stop"]
    entries = [o for o in ours if o["client_order_id"].endswith("-open")]
    assert entries and stops, "the bot should have traded, with broker-side stops"
    filled_entries = [o for o in entries if float(o["filled_qty"]) > 0]
    stopped_symbols = {o["symbol"] for o in stops}
    assert {o["symbol"] for o in filled_entries} <= stopped_symbols  # every position got its stop
    # journal fills == sandbox fills (per order: qty and average price)
    jf = journal_fills(tmp)
    by_cid: dict[str, tuple[float, float]] = {}
    for cid, _sym, _side, qty, px in jf:
        q, v = by_cid.get(cid, (0.0, 0.0))
        by_cid[cid] = (q + qty, v + qty * px)
    broker = {o["client_order_id"]: o for o in ours if float(o["filled_qty"]) > 0}
    assert set(by_cid) == set(broker)
    for cid, (q, v) in by_cid.items():
        assert q == pytest.approx(float(broker[cid]["filled_qty"]))
        assert v / q == pytest.approx(float(broker[cid]["filled_avg_price"]), rel=1e-6)
    # positions at the broker == the journal's net fills
    net: dict[str, float] = {}
    for _cid, sym, side, qty, _px in jf:
        net[sym] = net.get(sym, 0.0) + (qty if side == "buy" else -qty)
    held = {s: q for s, q in net.items() if abs(q) > 1e-9}
    assert held == {s: p["qty"] for s, p in st["positions"].items()}
    # never SOXL and SOXS at once, replayed in the broker's fill order
    pos = {"SOXL": 0.0, "SOXS": 0.0}
    for o in sorted((o for o in ours if o["filled_at"]), key=lambda o: o["filled_at"]):
        pos[o["symbol"]] += float(o["filled_qty"]) * (1 if o["side"] == "buy" else -1)
        assert not (pos["SOXL"] > 0 and pos["SOXS"] > 0), o
    return {"orders": len(ours), "fills": len(jf), "stops": len(stops), "entries": len(filled_entries)}


def test_paper_session_against_the_sandbox(tmp_path):
    sb = Sandbox(tmp_path, 40000, "--hold-clock")
    try:
        code, out = run_bot(tmp_path, sb, days=9)
        st = sb.state()
    finally:
        sb.stop()
    assert code == 0, out[-3000:]
    n = check_consistent(tmp_path, st)
    assert "event='bar'" in out and "warm-up done" in out
    end = next(line for line in out.splitlines() if "alpaca end" in line)
    assert "fills_stream=0" not in end  # fills came back over the stream
    assert "PKE2E" not in out and "S3CRET" not in out  # keys never logged
    print("e2e numbers:", n, end)


def test_faults_never_double_an_order_and_the_bot_recovers(tmp_path):
    sb = Sandbox(tmp_path, 40000, "--hold-clock")
    phases = [  # (market days since the bot released the clock, faults from then on)
        (0.5, {"rate_429": 0.2, "rate_500": 0.2, "when": "before"}),
        # order routes only (the bars keep coming): errors after the order is accepted, and answers
        # slower than the bot's 1 s timeout
        (
            3.0,
            {
                "rate_429": 0.1,
                "rate_500": 0.2,
                "when": "after",
                "delay": 1.5,
                "delay_rate": 0.25,
                "routes": ["/v2/orders"],
            },
        ),
        (7.0, {"clear": True, "drop_ws": True}),
        (8.5, {"drop_ws": True}),
    ]

    def during(days: float) -> None:
        while phases and days >= phases[0][0]:
            sb.faults(**phases.pop(0)[1])

    try:
        code, out = run_bot(tmp_path, sb, days=11, during=during, timeout=1.0)
        st = sb.state()
        injected = sb.faults()["injected"]
    finally:
        sb.stop()
    assert code == 0, out[-3000:]
    assert sum(injected.values()) >= 3 and injected.get("500", 0) + injected.get("429", 0) > 0
    n = check_consistent(tmp_path, st)
    assert out.count("event='bar'") >= 5  # it kept deciding through the faults
    print("fault numbers:", n, injected, next(line for line in out.splitlines() if "alpaca end" in line))


def test_the_plain_bar_loop_releases_a_held_sandbox_clock_too(tmp_path):
    """`[service] scheduler = false`: the bot's own bar loop lets the held market run once it is ready."""
    sb = Sandbox(tmp_path, 40000, "--hold-clock")
    try:
        with bot_process(tmp_path, bot_config(tmp_path, sb.url, service="scheduler = false")) as proc:
            log = tmp_path / "bot.log"
            assert wait_until(proc, lambda: "event='bar'" in log.read_text(), 60), log.read_text()[-3000:]
        assert sb.state()["held"] is False
    finally:
        sb.stop()
