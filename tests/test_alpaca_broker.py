"""AlpacaBroker through the real alpaca-py clients against the real sandbox (in-process, frozen clock).

Expected prices come from the bar files the test writes, never from the sandbox's or the adapter's
code. Faults are the sandbox's own switches; "never doubled" is counted at the sandbox.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from bot.broker.alpaca import AlpacaBroker, AlpacaSetupError, check_endpoint, parse_cid, stream_url
from bot.core.config import BrokerConfig
from bot.core.events import Intent, OrderCanceled, OrderFilled, OrderIntent, OrderRejected, OrderType, Side
from bot.core.ids import client_order_id
from bot.sandbox.app import SandboxServer
from tests.sandbox_support import admin, at, daily_bars, write_bars

BARS = daily_bars()
AAA = BARS["AAA"]
SIGNAL = pd.Timestamp("2024-05-31")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = write_bars(tmp_path_factory.mktemp("alpaca-daily"), BARS, "1d")
    with SandboxServer(data_dir=d, timeframe="1d", speed=0, start="2024-06-03") as s:
        yield s


class Recorder:
    """The engine's side of the Broker protocol, reduced to a list (plus an optional reaction)."""

    def __init__(self, broker: AlpacaBroker, on_fill=None) -> None:
        self.events: list = []
        self.react = on_fill
        broker.set_listeners(self._fill, self.events.append)

    def _fill(self, f: OrderFilled) -> None:
        self.events.append(f)
        if self.react is not None:
            self.react(f)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def make(srv):
    admin(srv, "reset", {"start": at("2024-06-03 09:00")})
    admin(srv, "faults", {"clear": True})
    made: list[AlpacaBroker] = []

    def _make(**kw) -> AlpacaBroker:
        cfg = BrokerConfig(kind="alpaca", base_url=srv.url, api_key="PKTEST", secret_key="SECRET")
        b = AlpacaBroker(cfg, backoff=(0.05, 0.1, 0.2), **kw)
        made.append(b)
        b.start()
        if b._stream is not None:
            wait_for(lambda: b.stream_connected)
        return b

    yield _make
    for b in made:
        b.close()


def wait_for(cond, timeout: float = 10.0, step=None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if step is not None:
            step()
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def intent(kind: Intent, side: Side, qty: float, otype: OrderType, rev: int = 0, **px) -> OrderIntent:
    cid = client_order_id("t3st0001", "AAA", SIGNAL, kind.value, rev)
    return OrderIntent(cid, SIGNAL, "AAA", side, qty, otype, kind, "test", **px)


OPEN = intent(Intent.OPEN, Side.BUY, 10, OrderType.MARKET)


def state(srv) -> dict:
    return admin(srv, "state")


def per_cid(srv) -> dict[str, int]:
    return state(srv)["orders_per_client_order_id"]


def open_and_fill(srv, b: AlpacaBroker, rec: Recorder) -> OrderFilled:
    b.submit(OPEN)
    admin(srv, "advance", {"to": at("2024-06-03 09:31")})
    wait_for(lambda: rec.of(OrderFilled), step=b.drain)
    return rec.of(OrderFilled)[0]


# ---------------------------------------------------------------------------------------- basics


def test_endpoint_rules_and_stream_url():
    live = BrokerConfig(kind="alpaca", base_url="https://api.alpaca.markets")
    with pytest.raises(AlpacaSetupError, match="real money"):
        check_endpoint(live, live_flag=True)  # the flag alone is not enough
    with pytest.raises(AlpacaSetupError):
        check_endpoint(live.model_copy(update={"live": True}), live_flag=False)
    assert check_endpoint(live.model_copy(update={"live": True}), live_flag=True) is False
    assert check_endpoint(BrokerConfig(kind="alpaca"), live_flag=False) is True
    assert stream_url("https://paper-api.alpaca.markets") == "wss://paper-api.alpaca.markets/stream"
    assert stream_url("http://127.0.0.1:8765") == "ws://127.0.0.1:8765/stream"
    assert stream_url("http://x", "ws://y/z") == "ws://y/z"


def test_missing_keys_are_a_clear_error(monkeypatch):
    for var in (
        "APCA_API_KEY_ID",
        "APCA_API_SECRET_KEY",
        "SOXBOT_BROKER__API_KEY",
        "SOXBOT_BROKER__SECRET_KEY",
    ):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(AlpacaSetupError, match="APCA_API_KEY_ID"):
        AlpacaBroker(BrokerConfig(kind="alpaca", base_url="http://127.0.0.1:9"), use_stream=False)


def test_client_order_ids_parse_back():
    ts = pd.Timestamp("2024-06-03 10:30", tz="America/New_York")
    p = parse_cid(client_order_id("abcd1234", "SOXL", ts, "stop", 3))
    assert p is not None and (p.set_id, p.symbol, p.intent, p.revision) == (
        "abcd1234",
        "SOXL",
        Intent.STOP,
        3,
    )
    assert p.signal_ts.tz_localize("UTC") == ts
    assert parse_cid("someone-elses-order") is None


def test_market_fill_arrives_over_the_stream_once(srv, make):
    b = make()
    rec = Recorder(b)
    f = open_and_fill(srv, b, rec)
    assert (f.client_order_id, f.side, f.qty) == (OPEN.client_order_id, Side.BUY, 10)
    assert f.price == pytest.approx(AAA.loc["2024-06-03", "open"])
    assert not f.partial
    assert b.stats.fills_stream == 1
    time.sleep(0.2)
    b.drain(poll=True)  # a REST reconciliation afterwards must not deliver it again
    assert len(rec.of(OrderFilled)) == 1
    assert per_cid(srv)[OPEN.client_order_id] == 1


def test_buy_beyond_buying_power_is_rejected_before_sending(srv, make):
    b = make(use_stream=False)
    rec = Recorder(b)
    b.on_bar(SIGNAL, {"AAA": tuple(AAA.loc["2024-05-31", ["open", "high", "low", "close"]])})
    big = intent(Intent.OPEN, Side.BUY, 1_000_000, OrderType.MARKET)
    b.submit(big)
    b.drain()
    [r] = rec.of(OrderRejected)
    assert "buying power" in r.reason and r.client_order_id == big.client_order_id
    assert big.client_order_id not in per_cid(srv)


# ---------------------------------------------------------------------------------------- idempotency


def test_duplicate_client_order_id_adopts_the_existing_order(srv, make):
    tc = TradingClient("PKTEST", "SECRET", url_override=srv.url)
    tc.submit_order(
        MarketOrderRequest(
            symbol="AAA", qty=10, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
            client_order_id=OPEN.client_order_id,
        )
    )  # fmt: skip  # e.g. sent by a run that crashed before it could record the answer
    b = make()
    rec = Recorder(b)
    f = open_and_fill(srv, b, rec)
    assert b.stats.adopted == 1 and f.qty == 10
    assert per_cid(srv)[OPEN.client_order_id] == 1
    assert not rec.of(OrderRejected)


def test_timeout_after_acceptance_is_resolved_by_lookup_not_resent(srv, make):
    b = make(timeout=0.5)
    rec = Recorder(b)
    admin(srv, "faults", {"delay": 1.5, "routes": ["POST /v2/orders"], "when": "after", "times": 1})
    b.submit(OPEN)
    assert b.stats.ambiguous == 1 and b.stats.resends == 0
    st = state(srv)
    assert st["orders_per_client_order_id"][OPEN.client_order_id] == 1
    assert st["submissions_per_client_order_id"][OPEN.client_order_id] == 1
    admin(srv, "advance", {"to": at("2024-06-03 09:31")})
    wait_for(lambda: rec.of(OrderFilled), step=b.drain)
    assert len(rec.of(OrderFilled)) == 1


@pytest.mark.parametrize("status", [500, 504])
def test_error_before_acceptance_resends_with_the_same_id(srv, make, status):
    b = make()
    admin(srv, "faults", {f"rate_{status}": 1.0, "routes": ["POST /v2/orders"], "when": "before", "times": 2})
    b.submit(OPEN)
    assert b.stats.resends == 2  # 404 on look-up each time: not created, safe to send again
    assert per_cid(srv)[OPEN.client_order_id] == 1


def test_error_after_acceptance_is_not_resent(srv, make):
    b = make()
    admin(srv, "faults", {"rate_500": 1.0, "routes": ["POST /v2/orders"], "when": "after", "times": 1})
    b.submit(OPEN)
    st = state(srv)
    assert b.stats.resends == 0 and b.stats.ambiguous == 1
    assert st["submissions_per_client_order_id"][OPEN.client_order_id] == 1
    assert st["orders_per_client_order_id"][OPEN.client_order_id] == 1


def test_429_is_not_retried_by_the_sdk(srv, make):
    b = make()
    admin(srv, "faults", {"rate_429": 1.0, "routes": ["POST /v2/orders"], "when": "before", "times": 1})
    b.submit(OPEN)
    # alpaca-py would sleep 3 s and POST again by itself (then our send would have succeeded: no re-send);
    # we look up, then re-send once
    assert b.stats.resends == 1 and admin(srv, "faults")["injected"]["429"] == 1
    assert per_cid(srv)[OPEN.client_order_id] == 1


# ---------------------------------------------------------------------------------------- protection


def _gap_stop() -> float:
    """A stop below every low of 2024-06-03..07 and above the 2024-06-10 gap-down open."""
    low = AAA.loc["2024-06-03":"2024-06-07", "low"].min()
    gap_open = AAA.loc["2024-06-10", "open"]
    stop = round((low + gap_open) / 2, 2)
    assert gap_open < stop < low
    return stop


def test_stop_and_take_profit_become_one_oco_exit(srv, make):
    stop_px = _gap_stop()
    stop = intent(Intent.STOP, Side.SELL, 10, OrderType.STOP, stop_price=stop_px)
    tp = intent(Intent.TAKE_PROFIT, Side.SELL, 10, OrderType.LIMIT, limit_price=500.0)
    b = make()

    def on_entry(f: OrderFilled) -> None:  # as the engine does: both right after the entry fill
        if f.side is Side.BUY:
            b.submit(stop)
            b.submit(tp)

    rec = Recorder(b, on_entry)
    open_and_fill(srv, b, rec)
    b.drain()
    mine = [o for o in state(srv)["orders"] if o["side"] == "sell"]
    assert [(o["client_order_id"], o["order_class"], o["type"]) for o in mine] == [
        (tp.client_order_id, "oco", "limit"),
        (mine[1]["client_order_id"], "oco", "stop"),
    ]
    assert float(mine[1]["stop_price"]) == stop_px
    admin(srv, "advance", {"to": at("2024-06-10 16:01")})
    wait_for(lambda: len(rec.of(OrderFilled)) == 2 and rec.of(OrderCanceled), step=b.drain)
    exit_fill = rec.of(OrderFilled)[1]
    assert exit_fill.client_order_id == stop.client_order_id  # the leg reports under the engine's stop id
    assert exit_fill.price == pytest.approx(AAA.loc["2024-06-10", "open"])  # gapped through: the open
    assert [c.client_order_id for c in rec.of(OrderCanceled)] == [tp.client_order_id]
    assert not rec.of(OrderRejected)


def test_trailing_raise_replaces_the_stop_with_a_new_id(srv, make):
    b = make()
    rec = Recorder(b)
    open_and_fill(srv, b, rec)
    first = intent(Intent.STOP, Side.SELL, 10, OrderType.STOP, stop_price=80.0)
    b.submit(first)
    raised = intent(Intent.STOP, Side.SELL, 10, OrderType.STOP, rev=1, stop_price=_gap_stop())
    b.replace_stop(first.client_order_id, raised)
    b.drain()
    orders = {o["client_order_id"]: o for o in state(srv)["orders"]}
    assert orders[first.client_order_id]["status"] == "replaced"
    assert orders[raised.client_order_id]["status"] == "new"
    assert float(orders[raised.client_order_id]["stop_price"]) == raised.stop_price
    assert [c.client_order_id for c in rec.of(OrderCanceled)] == [first.client_order_id]
    admin(srv, "advance", {"to": at("2024-06-10 16:01")})
    wait_for(lambda: len(rec.of(OrderFilled)) == 2, step=b.drain)
    assert rec.of(OrderFilled)[1].client_order_id == raised.client_order_id


def _oco_after_a_lost_answer(srv, b: AlpacaBroker) -> tuple[Recorder, OrderIntent, OrderIntent]:
    """Holding 10 AAA; its stop + take-profit sent (as the engine does, from the entry's fill) as one OCO
    whose answer is a 504: the broker took it."""
    stop = intent(Intent.STOP, Side.SELL, 10, OrderType.STOP, stop_price=80.0)
    tp = intent(Intent.TAKE_PROFIT, Side.SELL, 10, OrderType.LIMIT, limit_price=500.0)

    def on_entry(f: OrderFilled) -> None:
        if f.side is Side.BUY:
            b.submit(stop)
            b.submit(tp)

    rec = Recorder(b, on_entry)
    b.submit(OPEN)
    admin(srv, "advance", {"to": at("2024-06-03 09:31")})
    admin(srv, "faults", {"rate_504": 1.0, "routes": ["POST /v2/orders"], "when": "after", "times": 1})
    wait_for(lambda: rec.of(OrderFilled), step=b.drain)
    assert state(srv)["injected"] == {"504": 1} and b.stats.ambiguous == 1
    assert [o["order_class"] for o in state(srv)["orders"] if o["side"] == "sell"] == ["oco", "oco"]
    return rec, stop, tp


def test_the_stop_leg_of_an_oco_whose_answer_was_lost_is_learned(srv, make):
    b = make(use_stream=False)
    rec, stop, tp = _oco_after_a_lost_answer(srv, b)
    leg = next(o for o in state(srv)["orders"] if o["type"] == "stop")
    assert b.working(stop.client_order_id) and b.book.get(stop.client_order_id).broker_id == leg["id"]
    b.cancel(stop.client_order_id)  # one leg canceled: the whole OCO ends, and both are reported
    b.drain(poll=True)
    assert sorted(c.client_order_id for c in rec.of(OrderCanceled)) == sorted(
        [stop.client_order_id, tp.client_order_id]
    )


def test_a_stop_refused_because_our_oco_holds_the_shares_moves_that_oco_stop_instead(srv, make):
    b = make(use_stream=False)
    rec, stop, tp = _oco_after_a_lost_answer(srv, b)
    again = intent(Intent.STOP, Side.SELL, 10, OrderType.STOP, rev=1, stop_price=85.0)
    b.submit(again)  # e.g. a restart that saw no working stop: the broker says "insufficient qty"
    b.drain(poll=True)
    assert not rec.of(OrderRejected)  # nothing for the engine to flatten on
    working = [o for o in state(srv)["orders"] if o["status"] == "new"]
    assert sorted((o["client_order_id"], o["type"], o["order_class"]) for o in working) == sorted(
        [(tp.client_order_id, "limit", "oco"), (again.client_order_id, "stop", "oco")]
    )  # the OCO's leg now carries the new stop
    assert float(next(o for o in working if o["type"] == "stop")["stop_price"]) == 85.0
    assert [c.client_order_id for c in rec.of(OrderCanceled)] == [stop.client_order_id]  # replaced
    assert b.working(again.client_order_id)


def test_a_buy_floored_to_whole_shares_is_sent_floored(srv, make):
    b = make(use_stream=False)  # whole shares only (fractional = False)
    b.submit(intent(Intent.OPEN, Side.BUY, 10.5, OrderType.MARKET))
    [o] = state(srv)["orders"]
    assert float(o["qty"]) == 10


def test_a_sell_capped_at_the_shares_held_is_sent_capped(srv, make):
    b = make(use_stream=False)
    rec = Recorder(b)
    open_and_fill(srv, b, rec)
    close = intent(Intent.CLOSE, Side.SELL, 15, OrderType.MARKET)  # more than the 10 held
    b.submit(close)
    b.drain()
    assert not rec.of(OrderRejected)
    sent = next(o for o in state(srv)["orders"] if o["client_order_id"] == close.client_order_id)
    assert float(sent["qty"]) == 10


def test_stop_that_cannot_be_placed_is_reported_rejected(srv, make):
    b = make(use_stream=False)
    rec = Recorder(b)
    b.submit(intent(Intent.STOP, Side.SELL, 10, OrderType.STOP, stop_price=90.0))  # no shares held
    b.drain()
    [r] = rec.of(OrderRejected)
    assert "insufficient qty" in r.reason


# ---------------------------------------------------------------------------------------- stream down


def test_polling_fallback_delivers_fills_missed_while_the_stream_was_down(srv, make):
    b = make()
    rec = Recorder(b)
    b.submit(OPEN)
    admin(srv, "faults", {"drop_ws": True})
    admin(srv, "advance", {"to": at("2024-06-03 09:31")})  # the fill happens while nobody listens
    wait_for(lambda: rec.of(OrderFilled), step=b.drain)
    assert b.stats.fills_poll == 1 and b.stats.fills_stream == 0
    wait_for(lambda: b.stream_connected, timeout=15)  # alpaca-py reconnects by itself
    b.drain(poll=True)
    assert len(rec.of(OrderFilled)) == 1


def test_without_a_stream_polling_alone_keeps_state(srv, make):
    b = make(use_stream=False)
    rec = Recorder(b)
    f = open_and_fill(srv, b, rec)
    assert f.qty == 10 and b.stats.fills_poll == 1


def test_reconcile_finds_our_orders_and_positions(srv, make):
    b = make()
    rec = Recorder(b)
    open_and_fill(srv, b, rec)
    stop = intent(Intent.STOP, Side.SELL, 10, OrderType.STOP, stop_price=_gap_stop())
    b.submit(stop)
    tc = TradingClient("PKTEST", "SECRET", url_override=srv.url)
    tc.submit_order(
        MarketOrderRequest(symbol="BBB", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    fresh = make(use_stream=False)  # a restarted bot
    r = fresh.reconcile("t3st0001")
    assert r.positions["AAA"][0] == 10
    assert [i.client_order_id for i in r.ours] == [stop.client_order_id]
    assert r.ours[0].stop_price == stop.stop_price
    assert len(r.foreign_orders) == 1 and "BBB" in r.foreign_orders[0]
    # the restarted bot now hears about its stop again
    admin(srv, "advance", {"to": at("2024-06-10 16:01")})
    rec2 = Recorder(fresh)
    wait_for(lambda: rec2.of(OrderFilled), step=lambda: fresh.drain(poll=True))
    assert rec2.of(OrderFilled)[0].client_order_id == stop.client_order_id
