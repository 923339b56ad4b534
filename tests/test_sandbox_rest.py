"""The sandbox's Trading API through the real alpaca-py TradingClient: fills on hand-made daily bars.

Expected prices come straight from the bar files the test writes (open of the next bar, the limit,
the open when a bar gaps through a stop), never from the sandbox's own code.
"""

from __future__ import annotations

import urllib.parse

import pandas as pd
import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetCalendarRequest,
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)

from bot.sandbox.app import SandboxServer
from tests.sandbox_support import admin, at, call, daily_bars, write_bars

BARS = daily_bars()
AAA = BARS["AAA"]


def bar(day: str) -> pd.Series:
    return AAA.loc[pd.Timestamp(day)]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = write_bars(tmp_path_factory.mktemp("daily"), BARS, "1d")
    with SandboxServer(data_dir=d, timeframe="1d", speed=0, start="2024-06-03") as s:
        yield s


@pytest.fixture
def tc(srv) -> TradingClient:
    admin(srv, "reset", {"start": at("2024-06-03 09:00")})
    return TradingClient("PKTEST", "SECRET", paper=True, url_override=srv.url)


def advance(srv, when: str) -> None:
    admin(srv, "advance", {"to": at(when)})


def buy(tc, qty=10, cid=None, symbol="AAA"):
    return tc.submit_order(
        MarketOrderRequest(
            symbol=symbol, qty=qty, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, client_order_id=cid
        )
    )


# ------------------------------------------------------------------ account, clock, calendar, assets


def test_account_is_a_fresh_100k_paper_account(tc):
    acct = tc.get_account()
    assert acct.status.value == "ACTIVE"
    assert float(acct.cash) == 100_000 and float(acct.equity) == 100_000
    assert float(acct.buying_power) == 200_000  # Reg-T 2x, as Alpaca paper reports


def test_clock_opens_and_closes_with_the_session(tc, srv):
    c = tc.get_clock()
    assert not c.is_open
    assert c.next_open == pd.Timestamp("2024-06-03 09:30", tz="America/New_York")
    assert c.next_close == pd.Timestamp("2024-06-03 16:00", tz="America/New_York")
    advance(srv, "2024-06-03 10:00")
    assert tc.get_clock().is_open
    # early close before Independence Day, then the holiday itself is skipped
    admin(srv, "reset", {"start": at("2024-07-03 12:00")})
    c = tc.get_clock()
    assert c.is_open and c.next_close == pd.Timestamp("2024-07-03 13:00", tz="America/New_York")
    advance(srv, "2024-07-03 13:30")
    c = tc.get_clock()
    assert not c.is_open and c.next_open == pd.Timestamp("2024-07-05 09:30", tz="America/New_York")


def test_calendar_has_holidays_and_early_closes(tc):
    days = tc.get_calendar(GetCalendarRequest(start="2024-11-26", end="2024-12-03"))
    dates = [d.date.isoformat() for d in days]
    assert dates == ["2024-11-26", "2024-11-27", "2024-11-29", "2024-12-02", "2024-12-03"]  # no Thanksgiving
    by_date = {d.date.isoformat(): d for d in days}
    assert by_date["2024-11-29"].close.strftime("%H:%M") == "13:00"
    assert by_date["2024-11-27"].close.strftime("%H:%M") == "16:00"
    assert by_date["2024-11-27"].open.strftime("%H:%M") == "09:30"


def test_assets_list_and_lookup(tc):
    syms = {a.symbol for a in tc.get_all_assets()}
    assert syms == {"AAA", "BBB"}
    a = tc.get_asset("AAA")
    assert a.tradable and a.symbol == "AAA"
    assert tc.get_asset(str(a.id)).symbol == "AAA"
    with pytest.raises(APIError) as e:
        tc.get_asset("NOPE")
    assert e.value.status_code == 404 and e.value.code == 40410000


# ------------------------------------------------------------------ simple orders


def test_market_order_before_open_is_accepted_then_fills_at_the_open(tc, srv):
    o = buy(tc, 10, "m1")
    assert o.status == OrderStatus.ACCEPTED
    advance(srv, "2024-06-03 09:31")
    o = tc.get_order_by_id(o.id)
    assert o.status == OrderStatus.FILLED
    assert float(o.filled_avg_price) == pytest.approx(bar("2024-06-03").open)
    assert float(o.filled_qty) == 10
    pos = tc.get_open_position("AAA")
    assert float(pos.qty) == 10
    assert float(tc.get_account().cash) == pytest.approx(100_000 - 10 * bar("2024-06-03").open)


def test_market_order_in_session_fills_at_the_next_bar_open(tc, srv):
    advance(srv, "2024-06-03 11:00")
    o = buy(tc, 5)
    assert o.status == OrderStatus.NEW
    advance(srv, "2024-06-03 16:30")
    assert tc.get_order_by_id(o.id).status == OrderStatus.NEW  # the day's bar started before the order
    advance(srv, "2024-06-04 09:30")
    o = tc.get_order_by_id(o.id)
    assert o.status == OrderStatus.FILLED and float(o.filled_avg_price) == pytest.approx(
        bar("2024-06-04").open
    )


def test_notional_market_order_buys_fractional_shares(tc, srv):
    o = tc.submit_order(
        MarketOrderRequest(symbol="AAA", notional=1000, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    advance(srv, "2024-06-03 10:00")
    o = tc.get_order_by_id(o.id)
    assert float(o.filled_qty) == pytest.approx(1000 / bar("2024-06-03").open, rel=1e-8)


def test_limit_orders_fill_at_limit_or_a_better_open_and_expire_at_the_close(tc, srv):
    d = bar("2024-06-04")
    inside = round(d.low + 0.3, 2)  # below the open, touched during the day
    above_open = round(d.open + 1.0, 2)  # buy limit above the open fills at the open
    never = round(d.low - 1.0, 2)
    assert d.low < inside < d.open
    advance(srv, "2024-06-03 17:00")

    def buy_limit(price: float, tif: TimeInForce = TimeInForce.DAY):
        req = LimitOrderRequest(symbol="AAA", qty=1, side=OrderSide.BUY, limit_price=price, time_in_force=tif)
        return tc.submit_order(req)

    o1, o2, o3, o4 = (
        buy_limit(inside),
        buy_limit(above_open),
        buy_limit(never),
        buy_limit(never, TimeInForce.GTC),
    )
    advance(srv, "2024-06-04 16:00")
    assert float(tc.get_order_by_id(o1.id).filled_avg_price) == pytest.approx(inside)
    assert float(tc.get_order_by_id(o2.id).filled_avg_price) == pytest.approx(d.open)
    o3 = tc.get_order_by_id(o3.id)
    assert o3.status == OrderStatus.EXPIRED and o3.expired_at is not None
    assert tc.get_order_by_id(o4.id).status == OrderStatus.NEW  # gtc lives on


def _hold(tc, srv, qty=10, day_before="2024-06-06"):
    """Own `qty` AAA bought at the open of the session after `day_before`."""
    admin(srv, "reset", {"start": at(f"{day_before} 17:00")})
    o = buy(tc, qty)
    nxt = AAA.index[AAA.index.get_loc(pd.Timestamp(day_before)) + 1]
    advance(srv, f"{nxt.date()} 16:30")
    assert tc.get_order_by_id(o.id).status == OrderStatus.FILLED
    return o


def test_stop_fills_at_the_open_when_the_bar_gaps_through_it(tc, srv):
    _hold(tc, srv, 10, "2024-06-06")  # filled on 06-07
    gap = bar("2024-06-10")
    stop = round(gap.open + 2, 2)
    assert gap.open < stop < bar("2024-06-07").low
    o = tc.submit_order(
        StopOrderRequest(
            symbol="AAA", qty=10, side=OrderSide.SELL, stop_price=stop, time_in_force=TimeInForce.GTC
        )
    )
    advance(srv, "2024-06-10 16:00")
    o = tc.get_order_by_id(o.id)
    assert o.status == OrderStatus.FILLED
    assert float(o.filled_avg_price) == pytest.approx(gap.open)  # not the stop: the market opened below it
    assert tc.get_all_positions() == []


def test_stop_touched_inside_the_bar_fills_at_the_stop(tc, srv):
    _hold(tc, srv, 10, "2024-06-06")
    d = bar("2024-06-10")
    stop = round(d.open - 0.5, 2)
    assert d.low < stop < d.open
    o = tc.submit_order(
        StopOrderRequest(
            symbol="AAA", qty=10, side=OrderSide.SELL, stop_price=stop, time_in_force=TimeInForce.GTC
        )
    )
    advance(srv, "2024-06-10 16:00")
    assert float(tc.get_order_by_id(o.id).filled_avg_price) == pytest.approx(stop)


def test_stop_limit_after_a_gap_waits_for_its_limit(tc, srv):
    _hold(tc, srv, 10, "2024-06-06")
    d = bar("2024-06-10")
    stop, limit = round(d.open + 3, 2), round(d.open + 1, 2)
    assert d.open < limit <= d.high
    o = tc.submit_order(
        StopLimitOrderRequest(
            symbol="AAA",
            qty=10,
            side=OrderSide.SELL,
            stop_price=stop,
            limit_price=limit,
            time_in_force=TimeInForce.GTC,
        )
    )
    advance(srv, "2024-06-10 16:00")
    o = tc.get_order_by_id(o.id)
    assert o.status == OrderStatus.FILLED and float(o.filled_avg_price) == pytest.approx(limit)


def test_trailing_stop_tracks_the_high_water_mark(tc, srv):
    _hold(tc, srv, 10, "2024-05-21")
    trail = 3.0
    start = pd.Timestamp("2024-05-22")
    hwm = AAA.loc[start].close  # the last trade when the order goes in (after the close)
    expected = None
    for day, b in AAA.loc[start + pd.Timedelta(days=1) :].iterrows():
        stop = hwm - trail
        if b.open <= stop:
            expected = (day, b.open)
            break
        if b.low <= stop:
            expected = (day, stop)
            break
        hwm = max(hwm, b.high)
    assert expected is not None
    o = tc.submit_order(
        TrailingStopOrderRequest(
            symbol="AAA", qty=10, side=OrderSide.SELL, trail_price=trail, time_in_force=TimeInForce.GTC
        )
    )
    assert float(o.hwm) == pytest.approx(hwm if False else AAA.loc[start].close)
    day_before = AAA.index[AAA.index.get_loc(expected[0]) - 1]
    advance(srv, f"{day_before.date()} 16:30")
    assert tc.get_order_by_id(o.id).status == OrderStatus.NEW
    advance(srv, f"{expected[0].date()} 16:30")
    o = tc.get_order_by_id(o.id)
    assert o.status == OrderStatus.FILLED
    assert float(o.filled_avg_price) == pytest.approx(expected[1])


# ------------------------------------------------------------------ order classes


def test_bracket_legs_wait_for_the_entry_then_cancel_each_other(tc, srv):
    admin(srv, "reset", {"start": at("2024-06-05 17:00")})
    entry = bar("2024-06-06").open
    gap = bar("2024-06-10")
    sl = round(gap.open + 2, 2)
    assert sl < min(bar("2024-06-06").low, bar("2024-06-07").low)
    o = tc.submit_order(
        MarketOrderRequest(
            symbol="AAA",
            qty=5,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=round(entry + 50, 2)),
            stop_loss=StopLossRequest(stop_price=sl),
        )
    )
    assert o.order_class == OrderClass.BRACKET and len(o.legs) == 2
    assert {leg.status for leg in o.legs} == {OrderStatus.HELD}
    advance(srv, "2024-06-06 16:30")
    o = tc.get_order_by_id(o.id, GetOrderByIdRequest(nested=True))
    assert o.status == OrderStatus.FILLED and float(o.filled_avg_price) == pytest.approx(entry)
    assert {leg.status for leg in o.legs} == {OrderStatus.NEW}
    advance(srv, "2024-06-10 16:30")
    o = tc.get_order_by_id(o.id, GetOrderByIdRequest(nested=True))
    legs = {leg.order_type.value: leg for leg in o.legs}
    assert legs["stop"].status == OrderStatus.FILLED
    assert float(legs["stop"].filled_avg_price) == pytest.approx(gap.open)
    assert legs["limit"].status == OrderStatus.CANCELED
    assert tc.get_all_positions() == []


def sell_oco(tc, tp: float, sl: float, qty: float = 10):
    """One OCO exit of `qty` AAA: take-profit at `tp` (the parent), stop-loss at `sl` (its leg)."""
    return tc.submit_order(
        LimitOrderRequest(
            symbol="AAA",
            qty=qty,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.OCO,
            take_profit=TakeProfitRequest(limit_price=tp),
            stop_loss=StopLossRequest(stop_price=sl),
        )
    )


def test_oco_take_profit_fill_cancels_the_stop(tc, srv):
    _hold(tc, srv, 10, "2024-06-06")
    up = bar("2024-06-12")
    tp = round(bar("2024-06-11").close + 4, 2)
    assert up.open > tp
    o = sell_oco(tc, tp, round(tp - 30, 2))
    advance(srv, "2024-06-12 16:30")
    o = tc.get_order_by_id(o.id, GetOrderByIdRequest(nested=True))
    assert o.status == OrderStatus.FILLED and float(o.filled_avg_price) == pytest.approx(up.open)
    assert o.legs[0].status == OrderStatus.CANCELED
    # the group holds the position once: selling again is refused before and allowed after
    assert tc.get_all_positions() == []


def test_a_closed_oco_listed_nested_carries_its_filled_stop_leg(tc, srv):
    """What a restart reads for an exit made while the bot was down: listed nested (as on Alpaca), the
    stop leg comes under its canceled take-profit parent, not as a row of its own."""
    _hold(tc, srv, 10, "2024-06-06")  # filled on 06-07, at 16:30
    gap = bar("2024-06-10")
    sl = round(gap.open + 2, 2)
    o = sell_oco(tc, round(sl + 50, 2), sl)
    advance(srv, "2024-06-10 16:30")
    after = pd.Timestamp(at("2024-06-07 16:00")).to_pydatetime()
    nested = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED, nested=True, after=after))
    assert [(x.id, x.status) for x in nested] == [(o.id, OrderStatus.CANCELED)]
    legs = nested[0].legs or []
    assert [(leg.id, leg.status, float(leg.filled_qty)) for leg in legs] == [
        (o.legs[0].id, OrderStatus.FILLED, 10)
    ]
    assert float(legs[0].filled_avg_price) == pytest.approx(gap.open)
    flat = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED, after=after))
    assert {x.id for x in flat} == {o.id, o.legs[0].id} and all(x.legs is None for x in flat)


def test_a_replaced_oco_stop_leg_stays_listed_under_its_oco(tc, srv):
    """A trailing raise replaces the OCO's stop leg: nested views keep listing the replaced leg under
    its parent beside the new one (neither is a row of its own); a look-up by client_order_id carries
    no legs, as Alpaca's route has no `nested`."""
    _hold(tc, srv, 10, "2024-06-06")
    advance(srv, "2024-06-10 10:00")  # in session: an `accepted` order can not be replaced
    o = sell_oco(tc, 500.0, 80.0)
    leg = o.legs[0]
    new = tc.replace_order_by_id(leg.id, ReplaceOrderRequest(stop_price=81.0, client_order_id="sl-r1"))
    [listed] = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=True))
    assert listed.id == o.id
    assert [(x.id, x.status, x.replaced_by) for x in listed.legs] == [
        (leg.id, OrderStatus.REPLACED, new.id),
        (new.id, OrderStatus.NEW, None),
    ]
    one = tc.get_order_by_id(o.id, GetOrderByIdRequest(nested=True))
    assert [x.id for x in one.legs] == [leg.id, new.id]
    assert tc.get_order_by_client_id(o.client_order_id).legs is None
    flat = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))
    assert {x.id for x in flat} >= {o.id, leg.id, new.id}


def test_account_activities_list_every_fill(tc, srv):
    """GET /v2/account/activities (as Alpaca serves it, no alpaca-py method): one FILL per execution,
    newest first by default, with the order's running totals; filters and paging by id."""
    admin(srv, "faults", {"partial_fill_prob": 1.0})
    gtc = MarketOrderRequest(symbol="AAA", qty=100, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
    o = tc.submit_order(gtc)
    advance(srv, "2024-06-03 16:30")  # a part fills at the 06-03 open
    admin(srv, "faults", {"partial_fill_prob": 0.0})
    advance(srv, "2024-06-04 16:30")  # the rest at the 06-04 open
    assert tc.get_order_by_id(o.id).status == OrderStatus.FILLED
    st, acts, _ = call(srv, "GET", "/v2/account/activities?activity_types=FILL&direction=asc")
    assert st == 200 and [(a["activity_type"], a["order_id"], a["type"]) for a in acts] == [
        ("FILL", str(o.id), "partial_fill"),
        ("FILL", str(o.id), "fill"),
    ]
    part = float(acts[0]["qty"])
    assert 0 < part < 100 and float(acts[1]["qty"]) == 100 - part
    assert (acts[0]["cum_qty"], acts[0]["leaves_qty"], acts[0]["order_status"]) == (
        acts[0]["qty"],
        str(int(100 - part)),
        "partially_filled",
    )
    assert (acts[1]["cum_qty"], acts[1]["leaves_qty"], acts[1]["order_status"]) == ("100", "0", "filled")
    assert float(acts[1]["price"]) == pytest.approx(bar("2024-06-04").open)
    first = acts[0]
    assert float(first["price"]) == pytest.approx(bar("2024-06-03").open) and first["side"] == "buy"
    assert first["symbol"] == "AAA" and first["transaction_time"] == "2024-06-03T13:30:00Z"
    assert first["id"].startswith("20240603133000000::")
    _, desc, _ = call(srv, "GET", "/v2/account/activities/FILL")
    assert [a["id"] for a in desc] == [a["id"] for a in reversed(acts)]
    _, page1, _ = call(srv, "GET", "/v2/account/activities/FILL?direction=asc&page_size=1")
    token = urllib.parse.quote(page1[0]["id"])
    _, page2, _ = call(
        srv, "GET", f"/v2/account/activities/FILL?direction=asc&page_size=1&page_token={token}"
    )
    assert [page1[0]["id"], page2[0]["id"]] == [a["id"] for a in acts[:2]]
    _, after, _ = call(srv, "GET", "/v2/account/activities/FILL?after=2024-06-04T00:00:00Z")
    assert {a["transaction_time"][:10] for a in after} == {"2024-06-04"}
    assert call(srv, "GET", f"/v2/account/activities?order_id={o.id}")[1] == desc
    assert call(srv, "GET", "/v2/account/activities/DIV")[:2] == (200, [])  # no dividends here
    assert call(srv, "GET", "/v2/account/activities?category=non_trade_activity")[:2] == (200, [])
    assert call(srv, "GET", "/v2/account/activities?page_size=101")[0] == 422
    assert call(srv, "GET", "/v2/account/activities/NOPE")[0] == 422


def test_oto_stop_leg_activates_after_the_entry_fills(tc, srv):
    admin(srv, "reset", {"start": at("2024-06-05 17:00")})
    d = bar("2024-06-06")
    limit = round(d.open + 0.5, 2)
    o = tc.submit_order(
        LimitOrderRequest(
            symbol="AAA",
            qty=3,
            side=OrderSide.BUY,
            limit_price=limit,
            time_in_force=TimeInForce.DAY,
            order_class=OrderClass.OTO,
            stop_loss=StopLossRequest(stop_price=round(d.low - 5, 2)),
        )
    )
    leg_id = o.legs[0].id
    assert tc.get_order_by_id(leg_id).status == OrderStatus.HELD
    advance(srv, "2024-06-06 12:00")
    assert tc.get_order_by_id(o.id).status == OrderStatus.NEW  # limits meet the bar when it completes
    advance(srv, "2024-06-06 16:00")
    assert tc.get_order_by_id(o.id).status == OrderStatus.FILLED
    leg = tc.get_order_by_id(leg_id)
    assert leg.status == OrderStatus.NEW and float(leg.qty) == 3 and leg.side == OrderSide.SELL


# ------------------------------------------------------------------ ids, replace, cancel, lists


def test_client_order_id_lookup_and_uniqueness_across_closed_orders(tc, srv):
    o = buy(tc, 1, "dup-1")
    assert tc.get_order_by_client_id("dup-1").id == o.id
    tc.cancel_order_by_id(o.id)
    with pytest.raises(APIError) as e:
        buy(tc, 1, "dup-1")
    assert e.value.status_code == 422 and e.value.code == 40010001
    assert e.value.message == "client_order_id must be unique"
    with pytest.raises(APIError) as e:
        tc.get_order_by_client_id("never-sent")
    assert e.value.status_code == 404 and e.value.code == 40410000


def test_replace_creates_a_new_order_linked_to_the_old(tc, srv):
    d = bar("2024-06-03")
    old = tc.submit_order(
        LimitOrderRequest(
            symbol="AAA",
            qty=2,
            side=OrderSide.BUY,
            limit_price=round(d.low - 5, 2),
            time_in_force=TimeInForce.DAY,
        )
    )
    advance(srv, "2024-06-03 09:45")
    new_limit = round(bar("2024-06-04").low + 0.2, 2)
    new = tc.replace_order_by_id(
        old.id,
        ReplaceOrderRequest(
            qty=3, limit_price=new_limit, time_in_force=TimeInForce.GTC, client_order_id="rep-2"
        ),
    )
    assert new.id != old.id and str(new.replaces) == str(old.id)
    assert float(new.qty) == 3 and new.client_order_id == "rep-2"
    old = tc.get_order_by_id(old.id)
    assert old.status == OrderStatus.REPLACED and str(old.replaced_by) == str(new.id)
    advance(srv, "2024-06-04 16:30")
    new = tc.get_order_by_id(new.id)
    assert new.status == OrderStatus.FILLED and float(new.filled_avg_price) == pytest.approx(new_limit)


def test_cancel_and_cancel_all(tc, srv):
    lim = round(bar("2024-06-03").low - 5, 2)
    orders = [
        tc.submit_order(
            LimitOrderRequest(
                symbol="AAA", qty=1, side=OrderSide.BUY, limit_price=lim, time_in_force=TimeInForce.GTC
            )
        )
        for _ in range(3)
    ]
    assert tc.cancel_order_by_id(orders[0].id) is None  # 204, empty body
    assert tc.get_order_by_id(orders[0].id).status == OrderStatus.CANCELED
    with pytest.raises(APIError) as e:
        tc.cancel_order_by_id(orders[0].id)
    assert e.value.status_code == 422 and e.value.code == 42210000
    status, body, _ = call(srv, "DELETE", "/v2/orders/00000000-0000-4000-8000-000000000000")
    assert status == 404 and body["code"] == 40410000
    res = tc.cancel_orders()
    assert {str(r.id) for r in res} == {str(o.id) for o in orders[1:]} and {r.status for r in res} == {200}
    assert tc.get_orders() == []


def test_list_orders_filters(tc, srv):
    a = buy(tc, 1, "l-a")
    b = buy(tc, 1, "l-b", symbol="BBB")
    lim = round(bar("2024-06-03").low - 5, 2)
    c = tc.submit_order(
        LimitOrderRequest(
            symbol="AAA",
            qty=1,
            side=OrderSide.BUY,
            limit_price=lim,
            time_in_force=TimeInForce.GTC,
            client_order_id="l-c",
        )
    )
    advance(srv, "2024-06-03 10:00")
    open_ = tc.get_orders()
    assert [o.client_order_id for o in open_] == ["l-c"]
    closed = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED, direction="asc"))
    assert [o.client_order_id for o in closed] == ["l-a", "l-b"]
    only_bbb = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, symbols=["BBB"]))
    assert [o.id for o in only_bbb] == [b.id]
    newest = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=1))
    assert [o.id for o in newest] == [c.id]
    assert a.id in {o.id for o in tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))}


# ------------------------------------------------------------------ positions, money


def test_close_position_by_qty_percentage_and_all(tc, srv):
    admin(srv, "reset", {"start": at("2024-06-03 10:00")})
    buy(tc, 10)
    buy(tc, 4, symbol="BBB")
    advance(srv, "2024-06-04 10:00")
    o = tc.close_position("AAA", ClosePositionRequest(qty="4"))
    assert o.side == OrderSide.SELL and float(o.qty) == 4
    advance(srv, "2024-06-05 10:00")
    assert float(tc.get_open_position("AAA").qty) == 6
    o = tc.close_position("AAA", ClosePositionRequest(percentage="50"))
    assert float(o.qty) == 3
    advance(srv, "2024-06-06 10:00")
    assert float(tc.get_open_position("AAA").qty) == 3
    res = tc.close_all_positions(cancel_orders=True)
    assert {r.symbol for r in res} == {"AAA", "BBB"} and {r.status for r in res} == {200}
    advance(srv, "2024-06-07 10:00")
    assert tc.get_all_positions() == []
    with pytest.raises(APIError) as e:
        tc.get_open_position("AAA")
    assert e.value.status_code == 404 and e.value.code == 40410000
    sells = [
        (float(o.filled_qty), float(o.filled_avg_price))
        for o in tc.get_orders(
            GetOrdersRequest(status=QueryOrderStatus.CLOSED, side=OrderSide.SELL, symbols=["AAA"])
        )
    ]
    cash_expected = (
        100_000
        - 10 * bar("2024-06-04").open
        + sum(q * p for q, p in sells)
        - 4 * BARS["BBB"].loc[pd.Timestamp("2024-06-04")].open
        + 4 * BARS["BBB"].loc[pd.Timestamp("2024-06-07")].open
    )
    assert float(tc.get_account().cash) == pytest.approx(cash_expected)


def test_insufficient_buying_power_and_qty(tc, srv):
    with pytest.raises(APIError) as e:
        buy(tc, 5000)  # ~ $500k at ~$100 with $200k buying power
    assert e.value.status_code == 403 and e.value.code == 40310000
    assert "buying power" in e.value.message
    with pytest.raises(APIError) as e:
        tc.submit_order(
            MarketOrderRequest(symbol="AAA", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY)
        )
    assert e.value.status_code == 403 and "insufficient qty" in e.value.message
    _hold(tc, srv, 10, "2024-06-06")
    tc.submit_order(
        StopOrderRequest(
            symbol="AAA", qty=8, side=OrderSide.SELL, stop_price=1.0, time_in_force=TimeInForce.GTC
        )
    )
    status, body, _ = call(
        srv,
        "POST",
        "/v2/orders",
        {"symbol": "AAA", "qty": 3, "side": "sell", "type": "market", "time_in_force": "day"},
    )
    assert status == 403 and body["available"] == "2" and body["held_for_orders"] == "8"


def test_server_side_validation_returns_alpaca_error_bodies(tc, srv):
    base = {"symbol": "AAA", "side": "buy", "type": "limit", "time_in_force": "day", "limit_price": 90}
    cases = [
        ({**base, "qty": 1, "notional": 100}, 422),
        ({**base, "qty": 1, "limit_price": 90.123}, 422),  # sub-penny
        ({**base, "qty": -1}, 422),
        ({**base, "qty": 1, "symbol": "ZZZ"}, 422),
        ({**base, "qty": 1, "type": "stop"}, 422),  # stop without stop_price
        ({**base, "qty": 1, "time_in_force": "opg"}, 422),
    ]
    for body, code in cases:
        status, out, _ = call(srv, "POST", "/v2/orders", body)
        assert status == code, (body, out)
        assert isinstance(out["code"], int) and isinstance(out["message"], str)
    status, out, _ = call(srv, "POST", "/v2/orders", b"{not json")
    assert status == 400 and out["code"] == 40010000
    status, out, _ = call(srv, "GET", "/v2/nothing-here")
    assert status == 404 and out["code"] == 40410000
    status, out, _ = call(
        srv, "GET", "/v2/account", headers={"APCA-API-KEY-ID": "", "APCA-API-SECRET-KEY": ""}
    )
    assert status == 401 and out["code"] == 40110000


def test_keys_and_slippage_when_configured(tmp_path):
    d = write_bars(tmp_path, BARS, "1d")
    with SandboxServer(data_dir=d, speed=0, start="2024-06-03", key="K1", secret="S1", slippage_bps=25) as s:
        status, body, _ = call(s, "GET", "/v2/account")  # the helper sends other keys
        assert status == 401 and body == {"code": 40110000, "message": "request is not authorized"}
        tc = TradingClient("K1", "S1", url_override=s.url)
        o = tc.submit_order(
            MarketOrderRequest(symbol="AAA", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
        )
        admin(s, "advance", {"to": at("2024-06-03 10:00")})
        px = float(tc.get_order_by_id(o.id).filled_avg_price)
        assert px == pytest.approx(bar("2024-06-03").open * (1 + 25e-4))
