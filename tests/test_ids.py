"""Client order ids name the signal bar's UTC minute: formatted by hand (it is on every order of a
backtest), it must read exactly as pandas' own conversion and strftime do."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from bot.core.ids import client_order_id

ZONES = [None, "UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]


@given(
    ns=st.integers(pd.Timestamp.min.value + 86_400 * 10**9, pd.Timestamp.max.value - 86_400 * 10**9),
    zone=st.sampled_from(ZONES),
    unit=st.sampled_from(["ns", "us", "s"]),
    rev=st.integers(0, 3),
)
def test_id_carries_the_utc_minute_as_strftime_gives_it(ns, zone, unit, rev):
    ts = pd.Timestamp(ns)
    ts = ts if zone is None else ts.tz_localize("UTC").tz_convert(zone)
    ts = ts.as_unit(unit)
    utc = ts.tz_convert("UTC").tz_localize(None) if zone is not None else ts
    want = f"sx-abcd1234-SOXL-{utc.strftime('%Y%m%d%H%M')}-stop" + (f"-r{rev}" if rev else "")
    assert client_order_id("abcd1234", "SOXL", ts, "stop", rev) == want
    assert client_order_id("abcd1234", "SOXL", ts.to_pydatetime(warn=False), "stop", rev) == want
