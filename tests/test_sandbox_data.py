"""Market Data v2 from the sandbox through the real StockHistoricalDataClient: pages, resampling,
latest values, and the no-peeking rule (nothing after simulated now)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import (
    StockBarsRequest,
    StockLatestBarRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from bot.sandbox.app import SandboxServer
from tests.sandbox_support import admin, at, call, minute_bars, write_bars

BARS = minute_bars()
NOW = "2024-06-13 12:00"  # simulated now for these tests: bars up to 11:59 are complete


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = write_bars(tmp_path_factory.mktemp("minute"), BARS, "1m")
    with SandboxServer(data_dir=d, timeframe="1m", speed=0, start=at(NOW)) as s:
        yield s


@pytest.fixture
def dc(srv) -> StockHistoricalDataClient:
    admin(srv, "reset", {"start": at(NOW)})
    return StockHistoricalDataClient("PKTEST", "SECRET", url_override=srv.url)


def visible(sym: str) -> pd.DataFrame:
    df = BARS[sym]
    ends = df.index + pd.Timedelta(minutes=1)
    return df[ends <= pd.Timestamp(NOW, tz="America/New_York")]


def test_history_over_many_pages_matches_the_files(dc):
    start = datetime(2024, 5, 1, tzinfo=UTC)
    got = dc.get_stock_bars(
        StockBarsRequest(symbol_or_symbols=["AAA", "BBB"], timeframe=TimeFrame.Minute, start=start)
    ).data
    for sym in ("AAA", "BBB"):
        exp = visible(sym)
        assert len(exp) > 10_000  # more than one page of the SDK's 10,000-bar requests
        ts = pd.DatetimeIndex([b.timestamp for b in got[sym]])
        assert (ts == exp.index).all()
        assert [b.open for b in got[sym]] == exp["open"].tolist()
        assert [b.close for b in got[sym]] == exp["close"].tolist()
        assert [b.volume for b in got[sym]] == exp["volume"].astype(float).tolist()


def test_raw_pages_total_the_limit_across_symbols_without_gaps(srv, dc):
    q = (
        "/v2/stocks/bars?symbols=BBB,AAA&timeframe=1Min&start=2024-06-12T13:30:00Z"
        "&end=2024-06-12T20:00:00Z&limit=500"
    )
    seen: list[tuple[str, str]] = []
    token = None
    pages = 0
    while True:
        status, body, _ = call(srv, "GET", q + (f"&page_token={token}" if token else ""))
        assert status == 200
        pages += 1
        n = sum(len(v) for v in body["bars"].values())
        assert n <= 500
        seen += [(s, b["t"]) for s, v in body["bars"].items() for b in v]
        token = body["next_page_token"]
        if not token:
            break
    assert pages == 2 * 390 // 500 + 1
    assert len(seen) == len(set(seen)) == 2 * 390
    assert [s for s, _ in seen] == ["AAA"] * 390 + ["BBB"] * 390  # by symbol, then time


def test_aggregated_timeframes_match_a_resample_of_the_files(dc):
    got = dc.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="AAA",
            timeframe=TimeFrame(5, TimeFrameUnit.Minute),
            start=datetime(2024, 6, 12, 13, 30, tzinfo=UTC),
            end=datetime(2024, 6, 12, 20, 0, tzinfo=UTC),
        )
    ).data["AAA"]
    day = BARS["AAA"].loc["2024-06-12"]
    exp = day.resample("5min").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    assert len(got) == len(exp) == 78
    assert [b.open for b in got] == exp["open"].tolist()
    assert [b.high for b in got] == exp["high"].tolist()
    assert [b.low for b in got] == exp["low"].tolist()
    assert [b.close for b in got] == exp["close"].tolist()
    daily = dc.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="AAA", timeframe=TimeFrame.Day, start=datetime(2024, 6, 10, tzinfo=UTC)
        )
    ).data["AAA"]
    assert [b.timestamp.astimezone(UTC).isoformat() for b in daily][:3] == [
        "2024-06-10T04:00:00+00:00",
        "2024-06-11T04:00:00+00:00",
        "2024-06-12T04:00:00+00:00",
    ]
    today = visible("AAA").loc["2024-06-13"]
    assert (
        daily[-1].open == today["open"].iloc[0] and daily[-1].close == today["close"].iloc[-1]
    )  # partial day


def test_latest_bar_quote_and_trade_are_as_of_simulated_now(dc, srv):
    last = visible("AAA").iloc[-1]
    bar = dc.get_stock_latest_bar(StockLatestBarRequest(symbol_or_symbols=["AAA", "BBB"]))["AAA"]
    assert bar.timestamp == visible("AAA").index[-1] and bar.close == last["close"]
    q = dc.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="AAA"))["AAA"]
    assert q.bid_price < last["close"] < q.ask_price
    t = dc.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="AAA"))["AAA"]
    assert t.price == last["close"]
    admin(srv, "advance", {"minutes": 30})
    later = dc.get_stock_latest_bar(StockLatestBarRequest(symbol_or_symbols="AAA"))["AAA"]
    assert later.timestamp == pd.Timestamp("2024-06-13 12:29", tz="America/New_York")


def test_no_bars_from_the_future(srv, dc):
    status, body, _ = call(
        srv,
        "GET",
        "/v2/stocks/bars?symbols=AAA&timeframe=1Min&start=2024-06-13T15:00:00Z"
        "&end=2024-06-14T20:00:00Z&limit=10000",
    )
    assert status == 200
    last = pd.Timestamp(body["bars"]["AAA"][-1]["t"])
    assert last == pd.Timestamp("2024-06-13 11:59", tz="America/New_York")


def test_bad_requests_answer_with_json_errors(srv, dc):
    for q in (
        "/v2/stocks/bars?symbols=AAA&timeframe=7Parsecs",
        "/v2/stocks/bars?timeframe=1Min",
        "/v2/stocks/bars?symbols=AAA&timeframe=1Min&page_token=%%%",
    ):
        status, body, _ = call(srv, "GET", q)
        assert status in (400, 422) and isinstance(body["code"], int)


def test_without_a_data_dir_it_replays_the_seeded_synthetic_model():
    from bot.data.synthetic import generate

    def latest(seed: int) -> dict:
        with SandboxServer(timeframe="1d", speed=0, seed=seed, start="2022-03-01") as s:
            status, body, _ = call(s, "GET", "/v2/stocks/bars/latest?symbols=SOXL")
            assert status == 200
            return body["bars"]["SOXL"]

    a, b, c = latest(7), latest(7), latest(8)
    assert a == b and a != c
    # documented: synthetic history starts min(400 days, years/2) before the simulated start
    frames = generate(["SOXX", "SOXL", "SOXS"], "1d", "2021-01-25", 3.0, 7)
    ref = frames["SOXL"].loc[pd.Timestamp("2022-02-28")]
    assert a["t"] == "2022-02-28T05:00:00Z"  # the last session before the start, labelled midnight New York
    got = (a["o"], a["h"], a["l"], a["c"])
    assert got == pytest.approx((ref["open"], ref["high"], ref["low"], ref["close"]))
