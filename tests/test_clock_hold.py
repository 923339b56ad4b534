"""`soxbot sandbox --hold-clock`: the market waits for the bot. The sandbox's clock stands still until a
bot that has reconciled, warmed up and planned its jobs releases it, so no start-up, however slow, costs
market time (the service test of the 12:50 half-day decision runs it with a slowed warm-up). The bot
learns the sandbox's speed from a header of `GET /v2/clock`; Alpaca never sends it, and against a
server without it the bot sends nothing but its usual requests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pandas as pd
import pytest
from alpaca.trading.client import TradingClient

from bot.core.sandbox_clock import HEADER, ClockNote
from bot.run.alpaca import BrokerClock
from bot.sandbox.app import SandboxServer, parse_args
from bot.sandbox.clock import SimClock
from tests.sandbox_support import admin, at, call, daily_bars, write_bars

SPEED = 1e6  # a microsecond of wall time moves the clock a second: any drift shows


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = write_bars(tmp_path_factory.mktemp("hold-daily"), daily_bars(), "1d")
    with SandboxServer(data_dir=d, timeframe="1d", speed=SPEED, start="2024-06-03", hold_clock=True) as s:
        yield s


@pytest.fixture
def held(srv):
    """The sandbox as it starts: reset to 2024-06-03 09:00, its clock held."""
    admin(srv, "reset", {"start": at("2024-06-03 09:00")})
    return srv


def clock_of(srv) -> tuple[pd.Timestamp, dict]:
    status, body, headers = call(srv, "GET", "/v2/clock")
    assert status == 200
    return pd.Timestamp(body["timestamp"]), headers


def test_a_held_clock_stands_still_as_wall_time_passes_and_runs_on_from_there_once_released():
    wall = [100.0]
    start = pd.Timestamp("2024-11-29 17:00", tz="UTC")
    clock = SimClock(start, speed=400, wall=lambda: wall[0], held=True)
    wall[0] += 30.0  # a slow start-up: 30 s of wall time, 200 minutes at 400x
    assert clock.now() == start and clock.seconds_until(start + pd.Timedelta(minutes=1)) == float("inf")
    clock.set(start + pd.Timedelta(minutes=5))  # stepped by hand: moves, still held
    wall[0] += 30.0
    assert clock.now() == start + pd.Timedelta(minutes=5) and clock.held
    assert clock.release() == start + pd.Timedelta(minutes=5)
    wall[0] += 1.5
    assert clock.now() == start + pd.Timedelta(minutes=15)  # 1.5 s at 400x from where it stood
    assert clock.hold() == start + pd.Timedelta(minutes=15)
    wall[0] += 10.0
    assert clock.now() == start + pd.Timedelta(minutes=15)


def test_the_sandbox_answers_a_held_clock_that_does_not_move_until_released(held):
    first, headers = clock_of(held)
    for _ in range(5):  # each request takes wall time; at 1e6x even a microsecond would show
        again, headers = clock_of(held)
        assert again == first
    assert first == pd.Timestamp(at("2024-06-03 09:00"))
    assert ClockNote.parse(headers[HEADER]) == ClockNote(SPEED, True)
    assert admin(held, "state")["held"] is True
    admin(held, "advance", {"to": at("2024-06-03 10:00")})  # a test may still step it
    assert clock_of(held)[0] == pd.Timestamp(at("2024-06-03 10:00")) and admin(held, "state")["held"]
    got = admin(held, "clock", {"held": False})
    ten = pd.Timestamp(at("2024-06-03 10:00"))
    assert (pd.Timestamp(got["now"]), got["speed"], got["held"]) == (ten, SPEED, False)
    later, headers = clock_of(held)
    assert later > ten and ClockNote.parse(headers[HEADER]) == ClockNote(SPEED, False)
    admin(held, "reset", {})  # back to the start-up state: held again
    assert admin(held, "state")["held"] is True


def test_a_bad_hold_request_is_refused_with_the_way_to_ask(held):
    status, body, _ = call(held, "POST", "/admin/clock", {"hold": "no"})
    assert status == 422 and '{"held": false}' in body["message"] and admin(held, "state")["held"]


def test_the_bot_takes_the_speed_from_the_sandbox_does_not_run_ahead_while_held_and_releases_it(held):
    tc = TradingClient("PKTEST", "SECRET", raw_data=True, url_override=held.url)
    clock = BrokerClock.of(tc, resync=1e9)  # no re-sync: what it answers between syncs is extrapolated
    clock.calibrate()
    assert clock.rate == SPEED and clock.held  # told, not measured
    t0 = pd.Timestamp(at("2024-06-03 09:00"))
    assert clock.now() == t0 and clock.now() == t0  # standing still, as the sandbox does
    assert clock.wall_seconds(pd.Timedelta(seconds=SPEED)) == 1.0
    assert clock.release() == t0  # the time the sandbox runs on from
    assert not clock.held and admin(held, "state")["held"] is False
    assert clock.now() > t0  # running at the sandbox's speed from the release on
    assert clock.release() > t0 and admin(held, "state")["held"] is False  # releasing again: nothing to do


class AlpacaLike(BaseHTTPRequestHandler):
    """`GET /v2/clock` as Alpaca answers it: no sandbox header. Every request is recorded."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path}")
        now = pd.Timestamp.now(tz="America/New_York")
        body = json.dumps({"timestamp": now.isoformat(), "is_open": True, "next_open": now.isoformat(),
                           "next_close": now.isoformat()}).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.seen.append(f"POST {self.path}")
        self.send_response(404)
        self.end_headers()

    def log_message(self, *a: object) -> None:
        pass


def test_against_a_broker_without_the_header_nothing_is_ever_sent_to_release_a_clock():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), AlpacaLike)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        tc = TradingClient("PK", "S", raw_data=True, url_override=f"http://127.0.0.1:{srv.server_port}")
        clock = BrokerClock.of(tc)
        clock.calibrate(0.1)  # measured as before: nothing told
        assert not clock.told and not clock.held
        clock.release()
    finally:
        srv.shutdown()
    assert set(AlpacaLike.seen) == {"GET /v2/clock"}  # never an /admin request, never a POST


def test_hold_clock_is_a_switch_on_the_command_line():
    kwargs, _ = parse_args(["--speed", "400", "--hold-clock", "--start", "2024-11-29"])
    assert kwargs == {"speed": 400.0, "hold_clock": True, "start": "2024-11-29"}
    with pytest.raises(ValueError, match="--hold-clock takes no value"):
        parse_args(["--hold-clock=yes"])
