"""Fault switches: injected 429/500/504 (before or after the order is accepted), slow responses,
rate limits, partial fills and rejections, set by the admin endpoint and by command-line flags."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from bot.sandbox.app import SandboxServer, parse_args
from tests.helpers import wait_until
from tests.sandbox_support import HEADERS, admin, at, call, daily_bars, write_bars

BARS = daily_bars()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = write_bars(tmp_path_factory.mktemp("faults"), BARS, "1d")
    with SandboxServer(data_dir=d, timeframe="1d", speed=0, start="2024-06-03") as s:
        yield s


@pytest.fixture
def tc(srv) -> TradingClient:
    admin(srv, "reset", {"start": at("2024-06-03 10:00")})
    c = TradingClient("PKTEST", "SECRET", url_override=srv.url)
    c._retry_wait = 0  # the SDK sleeps 3 s before retrying 429/504; these tests exercise that retry
    return c


def order(cid: str, qty: float = 1, tif: TimeInForce = TimeInForce.DAY) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol="AAA", qty=qty, side=OrderSide.BUY, time_in_force=tif, client_order_id=cid
    )


def counts(srv, cid: str) -> tuple[int, int]:
    st = admin(srv, "state")
    return st["orders_per_client_order_id"].get(cid, 0), st["submissions_per_client_order_id"].get(cid, 0)


def test_429_carries_rate_limit_headers_and_the_sdk_retries_it(srv, tc):
    admin(srv, "faults", {"rate_429": 1.0, "times": 1})
    status, body, headers = call(srv, "GET", "/v2/account")
    assert status == 429 and body["code"] == 42910000
    assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(headers)
    assert int(headers["X-RateLimit-Reset"]) >= int(time.time())
    assert call(srv, "GET", "/v2/account")[0] == 200  # `times` ran out
    admin(srv, "faults", {"rate_429": 1.0, "times": 2})
    assert float(tc.get_account().cash) == 100_000  # two 429s, then the third try goes through
    assert admin(srv, "state")["injected"]["429"] == 3


def test_500_before_acceptance_creates_nothing(srv, tc):
    admin(srv, "faults", {"rate_500": 1.0, "routes": ["POST /v2/orders"], "when": "before", "times": 1})
    with pytest.raises(APIError) as e:
        tc.submit_order(order("b-500"))
    assert e.value.status_code == 500 and e.value.code == 50010000
    assert counts(srv, "b-500") == (0, 0)
    assert tc.get_account().cash == "100000"  # other routes are not touched


def test_500_after_acceptance_leaves_the_order_in_place(srv, tc):
    admin(srv, "faults", {"rate_500": 1.0, "routes": ["POST /v2/orders"], "when": "after", "times": 1})
    with pytest.raises(APIError) as e:
        tc.submit_order(order("a-500"))
    assert e.value.status_code == 500
    assert tc.get_order_by_client_id("a-500").status == OrderStatus.NEW


def test_504_after_acceptance_makes_the_sdk_retry_into_a_duplicate(srv, tc):
    admin(srv, "faults", {"rate_504": 1.0, "routes": ["POST /v2/orders"], "when": "after", "times": 1})
    with pytest.raises(APIError) as e:
        tc.submit_order(order("a-504"))
    assert e.value.status_code == 422 and e.value.code == 40010001  # the SDK's retry hit the first order
    assert counts(srv, "a-504") == (1, 2)


def test_504_before_acceptance_is_retried_by_the_sdk(srv, tc):
    admin(srv, "faults", {"rate_504": 1.0, "routes": ["POST /v2/orders"], "when": "before", "times": 1})
    o = tc.submit_order(order("b-504"))
    assert o.client_order_id == "b-504" and counts(srv, "b-504") == (1, 1)


@pytest.mark.parametrize(("when", "created"), [("after", 1), ("before", 0)])
def test_slow_response_past_the_client_timeout(srv, tc, when, created):
    admin(srv, "faults", {"delay": 0.6, "routes": ["POST /v2/orders"], "when": when, "times": 1})
    body = {
        "symbol": "AAA",
        "qty": 1,
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "client_order_id": f"slow-{when}",
    }
    with pytest.raises(requests.Timeout):
        requests.post(srv.url + "/v2/orders", json=body, headers=HEADERS, timeout=0.2)
    assert wait_until(lambda: admin(srv, "faults")["delays_done"] == 1)  # server side over
    assert counts(srv, f"slow-{when}")[0] == created
    f = admin(srv, "faults")
    assert f["faults"]["delay"] == 0 and f["injected"]["delay"] == 1  # the fault is spent (times = 1)
    assert call(srv, "GET", "/v2/orders")[0] == 200


def test_error_rate_is_seeded_and_route_scoped(srv, tc):
    admin(srv, "faults", {"rate_500": 0.5, "routes": ["GET /v2/clock"], "seed": 11})
    first = [call(srv, "GET", "/v2/clock")[0] for _ in range(40)]
    assert {200, 500} == set(first) and 10 < first.count(500) < 30
    assert all(call(srv, "GET", "/v2/account")[0] == 200 for _ in range(5))
    admin(srv, "faults", {"seed": 11})
    assert [call(srv, "GET", "/v2/clock")[0] for _ in range(40)] == first


def test_real_rate_limit(srv, tc):
    admin(srv, "faults", {"rate_limit": 3})
    statuses = [call(srv, "GET", "/v2/clock")[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_partial_fills_then_the_rest(srv, tc):
    admin(srv, "faults", {"partial_fill_prob": 1.0})
    o = tc.submit_order(order("pf", qty=100, tif=TimeInForce.GTC))  # a day order would expire at the close
    admin(srv, "advance", {"to": at("2024-06-04 10:00")})
    o = tc.get_order_by_id(o.id)
    assert o.status == OrderStatus.PARTIALLY_FILLED and 0 < float(o.filled_qty) < 100
    admin(srv, "faults", {"partial_fill_prob": 0.0})
    admin(srv, "advance", {"to": at("2024-06-05 10:00")})
    o = tc.get_order_by_id(o.id)
    assert o.status == OrderStatus.FILLED and float(o.filled_qty) == 100
    first, second = BARS["AAA"].loc["2024-06-04", "open"], BARS["AAA"].loc["2024-06-05", "open"]
    assert min(first, second) <= float(o.filled_avg_price) <= max(first, second)


def test_the_market_moves_on_while_a_request_is_in_flight(srv, tc):
    """`advance`: the sim clock steps forward before the matched request is answered, so a client's
    second read sees what filled since its first (here: the open comes between two reads)."""
    admin(srv, "reset", {"start": at("2024-06-03 09:29")})
    o = tc.submit_order(order("mv"))
    admin(srv, "faults", {"advance": 120, "routes": ["GET /v2/orders"], "times": 1})
    assert tc.get_all_positions() == []  # not matched: the clock stays
    assert tc.get_order_by_id(o.id).status == OrderStatus.FILLED  # the open passed during this request
    st = admin(srv, "state")
    assert st["now"] == "2024-06-03T13:31:00Z" and st["injected"] == {"advance": 1}
    assert float(tc.get_all_positions()[0].qty) == 1
    assert tc.get_order_by_id(o.id).status == OrderStatus.FILLED and admin(srv, "state")["now"] == st["now"]


def test_reject_next_orders(srv, tc):
    admin(srv, "faults", {"reject_next": 1})
    o = tc.submit_order(order("rj-1"))
    assert o.status == OrderStatus.REJECTED and o.failed_at is not None
    assert tc.submit_order(order("rj-2")).status == OrderStatus.NEW
    admin(srv, "faults", {"reject_next": 1, "reject_mode": "http"})
    with pytest.raises(APIError) as e:
        tc.submit_order(order("rj-3"))
    assert e.value.status_code == 403 and counts(srv, "rj-3")[0] == 0


def test_unknown_fault_keys_are_refused(srv, tc):
    status, body, _ = call(srv, "POST", "/admin/faults", {"rate_5000": 1})
    assert status == 422 and "unknown fault keys" in body["message"]


def test_command_line_flags(tmp_path):
    kwargs, faults = parse_args(
        [
            "--port",
            "0",
            "--speed=0",
            "--symbols",
            "aaa,bbb",
            "--fault-504",
            "0.25",
            "--fault-routes",
            "POST /v2/orders",
            "--fault-when",
            "after",
        ]
    )
    assert kwargs == {"port": 0, "speed": 0.0, "symbols": ["AAA", "BBB"]}
    assert faults == {"rate_504": 0.25, "routes": "POST /v2/orders", "when": "after"}
    with pytest.raises(ValueError):
        parse_args(["--bogus", "1"])
    d = write_bars(tmp_path, BARS, "1d")
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.sandbox",
            "--port",
            "0",
            "--data-dir",
            str(d),
            "--speed",
            "0",
            "--start",
            "2024-06-03",
            "--fault-500",
            "1",
            "--fault-routes",
            "GET /v2/clock",
        ],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("sandbox listening on http://127.0.0.1:"), (line, proc.stderr.read())
        url = line.split()[3]
        assert requests.get(url + "/v2/clock", headers=HEADERS, timeout=5).status_code == 500
        assert requests.get(url + "/v2/account", headers=HEADERS, timeout=5).json()["cash"] == "100000"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
