"""The sandbox's WebSockets through the real alpaca-py TradingStream and StockDataStream."""

from __future__ import annotations

import asyncio
import threading
import time

import pandas as pd
import pytest
from alpaca.data.enums import DataFeed
from alpaca.data.live import StockDataStream
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, ReplaceOrderRequest
from alpaca.trading.stream import TradingStream

from bot.sandbox.app import SandboxServer
from tests.sandbox_support import admin, at, minute_bars, write_bars

BARS = minute_bars("2024-06-10", "2024-06-14")
START = "2024-06-12 10:00"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = write_bars(tmp_path_factory.mktemp("ws"), BARS, "1m")
    with SandboxServer(data_dir=d, timeframe="1m", speed=0, start=at(START)) as s:
        yield s


def wait_for(cond, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def sockets(srv) -> dict:
    return admin(srv, "state")["sockets"]


class Running:
    """Runs an alpaca-py stream in a thread and stops it at exit."""

    def __init__(self, stream, srv) -> None:
        self.stream, self.srv = stream, srv
        self.thread = threading.Thread(target=stream.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stream.stop()
        admin(self.srv, "faults", {"drop_ws": True})  # wakes the SDK's 5-second receive wait
        self.thread.join(10)


def test_trading_stream_receives_new_and_fill_with_strings(srv):
    admin(srv, "reset", {"start": at(START)})
    events: list = []

    async def on_update(u) -> None:
        events.append(u)

    ts = TradingStream("PKTEST", "SECRET", url_override=srv.stream_url)
    ts.subscribe_trade_updates(on_update)
    with Running(ts, srv):
        wait_for(lambda: sockets(srv)["trade_listeners"] == 1)
        tc = TradingClient("PKTEST", "SECRET", url_override=srv.url)
        o = tc.submit_order(
            MarketOrderRequest(
                symbol="AAA", qty=7, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, client_order_id="ws-1"
            )
        )
        admin(srv, "advance", {"minutes": 2})
        wait_for(lambda: any(e.event == "fill" for e in events))
        lim = tc.submit_order(LimitOrderRequest(symbol="AAA", qty=1, side=OrderSide.BUY, limit_price=1.0,
                                                time_in_force=TimeInForce.DAY))
        new = tc.replace_order_by_id(lim.id, ReplaceOrderRequest(limit_price=2.0))
        tc.cancel_order_by_id(new.id)
        wait_for(lambda: len(events) >= 6)
    kinds = [e.event for e in events]
    assert kinds == ["new", "fill", "new", "replaced", "new", "canceled"]
    assert events[3].order.id == lim.id and str(events[3].order.replaced_by) == str(new.id)
    assert events[5].order.id == new.id and events[5].order.status == "canceled"
    fill = events[1]
    expected = BARS["AAA"].loc[pd.Timestamp(START, tz="America/New_York") + pd.Timedelta(minutes=1), "open"]
    assert fill.price == pytest.approx(expected) and fill.qty == 7 and fill.position_qty == 7
    assert fill.order.id == o.id and fill.order.client_order_id == "ws-1" and fill.order.status == "filled"


def test_trading_stream_reconnects_after_the_server_drops_it(srv):
    admin(srv, "reset", {"start": at(START)})
    events: list = []

    async def on_update(u) -> None:
        events.append(u.event)

    ts = TradingStream("PKTEST", "SECRET", url_override=srv.stream_url)
    ts.subscribe_trade_updates(on_update)
    with Running(ts, srv):
        wait_for(lambda: sockets(srv)["trade_listeners"] == 1)
        out = admin(srv, "faults", {"drop_ws": True})
        assert out["dropped"] >= 1
        wait_for(lambda: sockets(srv)["trade_listeners"] == 1, 15)
        tc = TradingClient("PKTEST", "SECRET", url_override=srv.url)
        tc.submit_order(
            MarketOrderRequest(symbol="BBB", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
        )
        admin(srv, "advance", {"minutes": 2})
        wait_for(lambda: "fill" in events)


def test_data_stream_pushes_each_completed_bar_with_a_msgpack_timestamp(srv):
    admin(srv, "reset", {"start": at(START)})
    got: list = []

    async def on_bar(b) -> None:
        got.append(b)

    ds = StockDataStream("PKTEST", "SECRET", feed=DataFeed.IEX, url_override=srv.data_stream_url("iex"))
    ds.subscribe_bars(on_bar, "AAA")
    with Running(ds, srv):
        wait_for(lambda: sockets(srv)["data_subscribed"] == 1)
        admin(srv, "advance", {"minutes": 3})
        wait_for(lambda: len(got) >= 3)
    t0 = pd.Timestamp(START, tz="America/New_York")
    exp = BARS["AAA"].loc[t0 : t0 + pd.Timedelta(minutes=2)]
    assert [b.symbol for b in got] == ["AAA"] * 3
    assert [pd.Timestamp(b.timestamp) for b in got] == list(exp.index)  # parsed from msgpack Timestamps
    assert [b.open for b in got] == exp["open"].tolist()
    assert [b.close for b in got] == exp["close"].tolist()


def test_websocket_auth_is_refused_with_wrong_keys(tmp_path):
    import json

    import msgpack
    import websockets

    d = write_bars(tmp_path, BARS, "1m")

    async def probe(url: str) -> tuple[dict, list]:
        async with websockets.connect(url + "/stream") as ws:
            await ws.send(json.dumps({"action": "authenticate", "data": {"key_id": "x", "secret_key": "y"}}))
            trade = json.loads(await ws.recv())
        async with websockets.connect(
            url + "/v2/iex", additional_headers={"Content-Type": "application/msgpack"}
        ) as ws:
            assert msgpack.unpackb(await ws.recv()) == [{"T": "success", "msg": "connected"}]
            await ws.send(msgpack.packb({"action": "auth", "key": "x", "secret": "y"}))
            data = msgpack.unpackb(await ws.recv())
        return trade, data

    with SandboxServer(data_dir=d, timeframe="1m", speed=0, key="K", secret="S") as s:
        trade, data = asyncio.run(probe(f"ws://127.0.0.1:{s.port}"))
    assert trade["data"]["status"] == "unauthorized"
    assert data == [{"T": "error", "code": 402, "msg": "auth failed"}]


def test_clock_runs_at_speed_and_fills_without_any_request(tmp_path):
    d = write_bars(tmp_path, BARS, "1m")
    with SandboxServer(
        data_dir=d, timeframe="1m", speed=600, start=at(START)
    ) as s:  # 10 sim minutes a second
        tc = TradingClient("PKTEST", "SECRET", url_override=s.url)
        t0 = tc.get_clock().timestamp
        o = tc.submit_order(
            MarketOrderRequest(symbol="AAA", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
        )
        # Nothing but the clock moves the market here: the order fills at the first bar open after it
        # was sent. Asserted on the order's own times, not on how much wall time the wait took (a fill
        # can come less than a minute after `t0`, when `t0` fell late in a minute).
        wait_for(lambda: tc.get_order_by_id(o.id).status == "filled", 30)
        done = tc.get_order_by_id(o.id)
        assert (tc.get_clock().timestamp - t0).total_seconds() > 0
        assert done.filled_at.second == 0 and done.filled_at.microsecond == 0  # a bar open
        assert pd.Timedelta(0) < done.filled_at - done.submitted_at <= pd.Timedelta(minutes=1)
