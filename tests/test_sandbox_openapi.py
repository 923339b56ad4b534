"""OpenAPI conformance: a real response from every route the sandbox serves, validated with
openapi-core against Alpaca's published specs in ../shared/alpaca-openapi (skipped when absent).

Allowed deviations (spec imperfections):
- Error statuses the spec does not list for an operation (e.g. 404 on GET /v2/orders/{order_id})
  give openapi-core's ResponseNotFound; such responses are checked for Alpaca's error shape
  `{"code": int, "message": str}` instead.
- GET /v2/account/activities/{activity_type} answers a `oneOf` (TradingActivities, NonTradeActivities)
  that no activity can satisfy (both schemas accept any object): that route's answer is compared with
  the generic route's, which is validated (an `anyOf` of the same two).
- Order's `required` lists `notional`: no deviation needed, the sandbox always sends the key (null
  for qty orders), which the spec's ["string", "null"] type accepts.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest

from bot.sandbox.app import SandboxServer
from tests.sandbox_support import HEADERS, admin, at, call, daily_bars, write_bars

SPECS = Path(__file__).resolve().parents[1].parent / "shared" / "alpaca-openapi"
TRADING = "https://paper-api.alpaca.markets"
DATA = "https://data.alpaca.markets"


@pytest.fixture(scope="module")
def apis():
    if not (SPECS / "trading-api.json").is_file() or not (SPECS / "market-data-api.json").is_file():
        pytest.skip(f"Alpaca OpenAPI specs not found in {SPECS}")
    from openapi_core import OpenAPI

    return {
        TRADING: OpenAPI.from_dict(json.loads((SPECS / "trading-api.json").read_text())),
        DATA: OpenAPI.from_dict(json.loads((SPECS / "market-data-api.json").read_text())),
    }


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = write_bars(tmp_path_factory.mktemp("oas"), daily_bars(), "1d")
    with SandboxServer(data_dir=d, timeframe="1d", speed=0, start="2024-06-05") as s:
        yield s


def check(
    apis,
    srv,
    method: str,
    path: str,
    query: dict | None = None,
    body: dict | None = None,
    status: int | None = None,
) -> object:
    """Make the request for real, then validate the response against the spec's operation."""
    from openapi_core.testing import MockRequest, MockResponse

    qs = "?" + urllib.parse.urlencode(query) if query else ""
    code, data, _ = call(srv, method, path + qs, body)
    if status is not None:
        assert code == status, (method, path, code, data)
    host = DATA if path.startswith("/v2/stocks") else TRADING
    req = MockRequest(
        host,
        method.lower(),
        path,
        args=query or {},
        headers=HEADERS,
        data=json.dumps(body).encode() if body is not None else None,
    )
    raw = json.dumps(data).encode() if data is not None else b""
    resp = MockResponse(
        raw,
        status_code=code,
        headers={"Content-Type": "application/json"} if raw else {},
        content_type="application/json" if raw else None,
    )
    from openapi_core.templating.responses.exceptions import ResponseNotFound

    errors = list(apis[host].iter_response_errors(req, resp))
    if code >= 400 and errors and all(isinstance(e, ResponseNotFound) for e in errors):
        assert isinstance(data["code"], int) and isinstance(data["message"], str), data
        errors = []
    assert not errors, (
        f"{method} {path} -> {code}: {[str(e) + repr(getattr(e, '__cause__', '')) for e in errors]}"
    )
    return data


def test_every_served_route_conforms(apis, srv):
    admin(srv, "reset", {"start": at("2024-06-05 17:00")})
    c = lambda *a, **k: check(apis, srv, *a, **k)  # noqa: E731
    c("GET", "/v2/account", status=200)
    c("GET", "/v2/clock", status=200)
    c("GET", "/v2/calendar", {"start": "2024-11-25", "end": "2024-12-06"}, status=200)
    assets = c("GET", "/v2/assets", {"status": "active", "asset_class": "us_equity"}, status=200)
    c("GET", f"/v2/assets/{assets[0]['symbol']}", status=200)
    c("GET", "/v2/assets/NOPE", status=404)
    m = {
        "symbol": "AAA",
        "qty": 10,
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "client_order_id": "oas-1",
    }
    c("POST", "/v2/orders", body=m, status=200)
    c("POST", "/v2/orders", body=m, status=422)  # duplicate client_order_id
    c("POST", "/v2/orders", body={**m, "qty": 10_000, "client_order_id": "oas-big"}, status=403)
    bracket = c(
        "POST",
        "/v2/orders",
        body={
            "symbol": "BBB",
            "qty": 5,
            "side": "buy",
            "type": "limit",
            "limit_price": 60,
            "time_in_force": "gtc",
            "order_class": "bracket",
            "take_profit": {"limit_price": 70},
            "stop_loss": {"stop_price": 40, "limit_price": 39.5},
        },
    )
    trail = {
        "symbol": "AAA",
        "qty": 1,
        "side": "buy",
        "type": "trailing_stop",
        "trail_percent": 2,
        "time_in_force": "gtc",
    }
    c("POST", "/v2/orders", body=trail, status=200)
    admin(srv, "advance", {"to": at("2024-06-06 16:30")})
    c("GET", "/v2/orders", status=200)
    c("GET", "/v2/orders", {"status": "all", "nested": "True", "direction": "asc", "limit": 100}, status=200)
    c("GET", f"/v2/orders/{bracket['id']}", {"nested": "True"}, status=200)
    c("GET", "/v2/orders/00000000-0000-4000-8000-000000000000", status=404)
    c("GET", "/v2/orders:by_client_order_id", {"client_order_id": "oas-1"}, status=200)
    admin(
        srv, "advance", {"to": at("2024-06-07 10:00")}
    )  # in session: an `accepted` order can not be replaced
    lim = c(
        "POST",
        "/v2/orders",
        body={
            "symbol": "AAA",
            "qty": 1,
            "side": "buy",
            "type": "limit",
            "limit_price": 50,
            "time_in_force": "day",
        },
        status=200,
    )
    new = c("PATCH", f"/v2/orders/{lim['id']}", body={"qty": 2, "limit_price": 51}, status=200)
    c("DELETE", f"/v2/orders/{new['id']}", status=204)
    c("DELETE", f"/v2/orders/{new['id']}", status=422)
    c("GET", "/v2/positions", status=200)
    c("GET", "/v2/positions/AAA", status=200)
    c("GET", "/v2/positions/SOXL", status=404)
    fills = c("GET", "/v2/account/activities", {"activity_types": "FILL", "direction": "asc"}, status=200)
    assert fills and all(a["activity_type"] == "FILL" for a in fills)
    # the typed route's schema is a oneOf of two schemas any activity satisfies both of (no required
    # fields, no additionalProperties): unsatisfiable, so its answer is held to the generic route's
    assert call(srv, "GET", "/v2/account/activities/FILL?direction=asc")[:2] == (200, fills)
    c("DELETE", "/v2/positions/AAA", {"qty": "1"}, status=200)
    c("DELETE", "/v2/orders", status=207)
    c("DELETE", "/v2/positions", {"cancel_orders": "True"}, status=207)
    q = {"symbols": "AAA,BBB", "timeframe": "1Day", "start": "2024-01-01T00:00:00Z", "limit": 100}
    page = c("GET", "/v2/stocks/bars", q, status=200)
    c("GET", "/v2/stocks/bars", {**q, "page_token": page["next_page_token"]}, status=200)
    c("GET", "/v2/stocks/bars/latest", {"symbols": "AAA,BBB", "feed": "iex"}, status=200)
    c("GET", "/v2/stocks/quotes/latest", {"symbols": "AAA"}, status=200)
    c("GET", "/v2/stocks/trades/latest", {"symbols": "AAA"}, status=200)


def test_the_validator_catches_a_broken_body(apis):
    """Guard: the conformance check above can fail (a clock without is_open is rejected)."""
    from openapi_core.testing import MockRequest, MockResponse

    req = MockRequest(TRADING, "get", "/v2/clock", headers=HEADERS)
    bad = MockResponse(json.dumps({"timestamp": "2024-06-03T10:00:00-04:00", "is_open": "yes"}).encode())
    assert list(apis[TRADING].iter_response_errors(req, bad))
