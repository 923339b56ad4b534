"""Alpaca bars (real StockHistoricalDataClient against the sandbox), the disk cache, the bar grid and
the broker clock the driver follows."""

from __future__ import annotations

import pandas as pd
import pytest
from alpaca.trading.client import TradingClient

from bot.core.config import DataConfig
from bot.data.alpaca_feed import AlpacaBars, check_symbols
from bot.data.errors import DataError
from bot.run.alpaca import BrokerClock, missing_between, next_bar
from bot.sandbox.app import SandboxServer
from tests.sandbox_support import admin, at, daily_bars, write_bars

BARS = daily_bars()
NY = "America/New_York"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = write_bars(tmp_path_factory.mktemp("feed-daily"), BARS, "1d")
    with SandboxServer(data_dir=d, timeframe="1d", speed=0, start="2024-06-03") as s:
        yield s


def now_of(srv) -> pd.Timestamp:
    return pd.Timestamp(admin(srv, "state")["now"])


def test_history_matches_the_files_and_is_cached(srv, tmp_path):
    admin(srv, "reset", {"start": at("2024-06-03 09:00")})
    cfg = DataConfig(source="alpaca", base_url=srv.url, cache_dir=tmp_path / "cache")
    feed = AlpacaBars(cfg, "PKTEST", "SECRET")
    start = pd.Timestamp("2024-02-01", tz=NY)
    got = feed.history(["AAA", "BBB"], start, now_of(srv))
    for sym in ("AAA", "BBB"):
        want = BARS[sym].loc["2024-02-01":"2024-05-31"]  # only bars complete before 2024-06-03 09:00
        assert list(got[sym].index) == list(want.index)
        assert got[sym]["close"].tolist() == want["close"].tolist()
    n = feed.requests
    again = AlpacaBars(cfg, "PKTEST", "SECRET")  # a restart
    assert again.history(["AAA"], start, now_of(srv))["AAA"].equals(got["AAA"])
    assert again.requests == 0
    admin(srv, "advance", {"to": at("2024-06-04 16:30")})
    more = again.history(["AAA"], start, now_of(srv))["AAA"]
    assert again.requests == 1 and feed.requests == n
    assert list(more.index[-2:]) == [pd.Timestamp("2024-06-03"), pd.Timestamp("2024-06-04")]
    assert (tmp_path / "cache" / f"127.0.0.1_{srv.port}" / "iex" / "AAA_1d.csv").is_file()


@pytest.mark.parametrize("sym", ["^SOX", "SOX", "spx"])
def test_index_symbols_are_refused_with_a_way_out(sym):
    with pytest.raises(DataError, match="SOXX or SMH"):
        check_symbols(["SOXL", sym])


def test_next_bar_follows_the_nyse_grid():
    # 2024-07-03 closes at 13:00; 2024-07-04 is a holiday
    label, end = next_bar(pd.Timestamp("2024-07-03 12:00", tz=NY).tz_convert("UTC"), "1d")
    assert label == pd.Timestamp("2024-07-03") and end == pd.Timestamp("2024-07-03 13:00", tz=NY)
    label, end = next_bar(pd.Timestamp("2024-07-03 13:00", tz=NY).tz_convert("UTC"), "1d")
    assert label == pd.Timestamp("2024-07-05")
    label, end = next_bar(pd.Timestamp("2024-06-03 09:31", tz=NY).tz_convert("UTC"), "5m")
    assert (label, end) == (pd.Timestamp("2024-06-03 09:30", tz=NY), pd.Timestamp("2024-06-03 09:35", tz=NY))
    label, _ = next_bar(pd.Timestamp("2024-06-03 16:00", tz=NY).tz_convert("UTC"), "5m")
    assert label == pd.Timestamp("2024-06-04 09:30", tz=NY)


def test_missing_between_counts_grid_bars():
    assert missing_between(pd.Timestamp("2024-06-07"), pd.Timestamp("2024-06-10"), "1d") == 0  # a weekend
    assert missing_between(pd.Timestamp("2024-06-03"), pd.Timestamp("2024-06-06"), "1d") == 2
    a = pd.Timestamp("2024-06-03 15:50", tz=NY)
    assert missing_between(a, pd.Timestamp("2024-06-04 09:35", tz=NY), "5m") == 2  # 15:55 and 09:30


def test_broker_clock_runs_at_the_speed_the_sandbox_tells_and_never_ahead_of_it(tmp_path):
    d = write_bars(tmp_path / "bars", BARS, "1d")
    with SandboxServer(data_dir=d, timeframe="1d", speed=500, start="2024-06-03") as s:
        tc = TradingClient("PKTEST", "SECRET", raw_data=True, url_override=s.url)
        clock = BrokerClock.of(tc, resync=1e9)  # extrapolated from one answer on
        clock.calibrate()
        assert clock.rate == 500 and clock.told  # told by the sandbox's header: nothing measured
        for _ in range(5):  # extrapolated at 500x from an answer it got after the sandbox wrote it
            a = clock.now()
            b = pd.Timestamp(tc.get_clock()["timestamp"]).tz_convert("UTC")
            assert a <= b + pd.Timedelta(microseconds=1)  # (the answer is rounded to a microsecond)
