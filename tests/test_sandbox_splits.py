"""The sandbox simulates a split the way Alpaca applies one, seen through the real alpaca-py clients:
the position's quantity times the ratio and its average price divided by it, open orders in the
symbol canceled, the split announced at the corporate actions endpoint, and bars from the split on
as traded (raw) or adjusted. Expected figures come from the bar files the test writes."""

from __future__ import annotations

import datetime as dt
import warnings

import pandas as pd
import pytest
from alpaca.data.enums import Adjustment
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import CorporateActionSubType, CorporateActionType, OrderSide, TimeInForce
from alpaca.trading.requests import (
    GetCorporateAnnouncementsRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopOrderRequest,
)

from tests.sandbox_support import admin, at, call, daily_bars, serving

BARS = daily_bars()
BBB = BARS["BBB"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("splits"), BARS, "1d", "2024-06-03") as s:
        yield s


@pytest.fixture
def tc(srv) -> TradingClient:
    admin(srv, "reset", {"start": at("2024-06-03 09:00")})
    return TradingClient("PKTEST", "SECRET", url_override=srv.url)


def _holding_with_orders(tc: TradingClient, srv) -> tuple[str, str]:
    """40 BBB bought at the 2024-06-03 open, a GTC stop under it and a GTC buy limit far below."""
    tc.submit_order(
        MarketOrderRequest(symbol="BBB", qty=40, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    admin(srv, "advance", {"to": at("2024-06-03 09:31")})
    stop = tc.submit_order(
        StopOrderRequest(
            symbol="BBB", qty=40, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, stop_price=40
        )
    )
    buy = tc.submit_order(
        LimitOrderRequest(
            symbol="BBB", qty=5, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=20
        )
    )
    return str(stop.id), str(buy.id)


def test_a_reverse_split_before_the_open(tc, srv):
    stop_id, buy_id = _holding_with_orders(tc, srv)
    entry = BBB.loc["2024-06-03", "open"]
    aaa_stop = tc.submit_order(
        StopOrderRequest(
            symbol="AAA", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, stop_price=500
        )
    )
    admin(srv, "advance", {"to": at("2024-06-04 08:00")})
    out = admin(srv, "split", {"symbol": "BBB", "new_rate": 1, "old_rate": 4})
    assert (out["qty_before"], out["qty_after"], out["ex_date"]) == (40, 10, "2024-06-04")

    pos = tc.get_open_position("BBB")
    assert float(pos.qty) == 10 and float(pos.avg_entry_price) == pytest.approx(entry * 4, abs=1e-6)
    close = BBB.loc["2024-06-03", "close"]
    assert float(pos.current_price) == pytest.approx(close * 4, abs=1e-4)  # the last close, new basis
    assert float(pos.market_value) == pytest.approx(40 * close, abs=0.01)  # same money
    assert tc.get_order_by_id(stop_id).status.value == "canceled"
    assert tc.get_order_by_id(buy_id).status.value == "canceled"
    assert tc.get_order_by_id(aaa_stop.id).status.value == "new"  # another symbol: untouched

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # alpaca-py marks the endpoint deprecated
        got = tc.get_corporate_announcements(
            GetCorporateAnnouncementsRequest(
                ca_types=[CorporateActionType.SPLIT], since=dt.date(2024, 5, 30), until=dt.date(2024, 6, 6)
            )
        )
    assert len(got) == 1
    a = got[0]
    assert (a.ca_type, a.ca_sub_type, a.target_symbol) == (
        CorporateActionType.SPLIT, CorporateActionSubType.REVERSE_SPLIT, "BBB",
    )  # fmt: skip
    assert (a.ex_date, a.old_rate, a.new_rate) == (dt.date(2024, 6, 4), 4.0, 1.0)

    # the day's bar trades on the new basis; history as traded (raw) or split-adjusted
    admin(srv, "advance", {"to": at("2024-06-05 09:00")})
    data = StockHistoricalDataClient("PKTEST", "SECRET", url_override=srv.url, raw_data=True)

    def closes(adj: Adjustment) -> list[float]:
        req = StockBarsRequest(symbol_or_symbols="BBB", timeframe=TimeFrame.Day, adjustment=adj,
                               start=dt.datetime(2024, 6, 3), end=dt.datetime(2024, 6, 5))  # fmt: skip
        return [b["c"] for b in data.get_stock_bars(req).get("BBB", [])]

    c3, c4 = BBB.loc["2024-06-03", "close"], BBB.loc["2024-06-04", "close"]
    assert closes(Adjustment.RAW) == pytest.approx([c3, 4 * c4])
    assert closes(Adjustment.SPLIT) == pytest.approx([4 * c3, 4 * c4])
    assert float(tc.get_open_position("BBB").current_price) == pytest.approx(4 * c4)

    admin(srv, "reset", {"start": at("2024-06-03 09:00")})  # a reset undoes it
    assert closes(Adjustment.RAW) == []  # nothing completed yet at 09:00 on the 3rd
    admin(srv, "advance", {"to": at("2024-06-05 09:00")})
    assert closes(Adjustment.RAW) == pytest.approx([c3, c4])
    assert (
        call(
            srv, "GET", "/v2/corporate_actions/announcements?ca_types=split&since=2024-06-01&until=2024-06-06"
        )[1]
        == []
    )


def test_an_unannounced_split_and_bad_requests(tc, srv):
    _holding_with_orders(tc, srv)
    admin(srv, "advance", {"to": at("2024-06-04 08:00")})
    out = admin(srv, "split", {"symbol": "BBB", "new_rate": 3, "old_rate": 1, "announce": False})
    assert out["qty_after"] == 120 and not out["announced"]
    assert float(tc.get_open_position("BBB").qty) == 120
    q = "/v2/corporate_actions/announcements?ca_types=split&since=2024-06-01&until=2024-06-06&symbol=BBB"
    assert call(srv, "GET", q)[1] == []  # Alpaca's corporate actions may come late: not there yet
    status, body, _ = call(srv, "POST", "/admin/split", {"symbol": "BBB", "new_rate": 0, "old_rate": 1})
    assert status == 422 and "positive" in body["message"]
    status, body, _ = call(srv, "POST", "/admin/split", {"symbol": "ZZZ", "new_rate": 1, "old_rate": 2})
    assert status == 422 and "ZZZ" in body["message"]
    status, body, _ = call(
        srv, "GET", "/v2/corporate_actions/announcements?ca_types=split&since=2024-01-01&until=2024-06-06"
    )
    assert status == 422 and "90 days" in body["message"]


def test_bars_before_any_split_are_the_files(tc, srv):
    admin(srv, "advance", {"to": at("2024-06-05 09:00")})
    status, body, _ = call(
        srv, "GET", "/v2/stocks/bars?symbols=BBB&timeframe=1Day&start=2024-06-03T00:00:00Z&adjustment=all"
    )
    assert status == 200
    assert [b["c"] for b in body["bars"]["BBB"]] == pytest.approx(
        list(BBB.loc["2024-06-03":"2024-06-04", "close"])
    )
    assert pd.Timestamp(body["bars"]["BBB"][0]["t"]).tz_convert("America/New_York").date() == dt.date(
        2024, 6, 3
    )
