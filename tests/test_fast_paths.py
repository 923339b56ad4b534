"""The shortcuts that make a `soxbot` process start fast give the same numbers as the slow paths:
the indicator shim equals pandas-ta to the bit, the cached XNYS schedule equals exchange_calendars',
and a backtest process loads neither numba (pandas-ta) nor exchange_calendars once the cache exists."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pandas_ta
import pytest

from bot.data import calendar as cal
from bot.data.synthetic import generate
from bot.signals import ta
from tests.conftest import REPO


@pytest.fixture(scope="module")
def close() -> pd.Series:
    return generate(["SOXX"], "1d", "2015-01-02", 4.0, seed=5)["SOXX"]["close"]


@pytest.mark.parametrize("fn", ["sma", "ema", "rsi"])
@pytest.mark.parametrize("length", [1, 2, 14, 50, 200])
def test_indicator_shim_equals_pandas_ta_to_the_bit(close, fn, length):
    try:
        want = getattr(pandas_ta, fn)(close, length=length)
    except Exception as exc:  # pandas-ta fails on some 1-bar lengths: so does the shim
        with pytest.raises(type(exc)):
            getattr(ta, fn)(close, length=length)
        return
    got = getattr(ta, fn)(close, length=length)
    if want is None:
        assert got is None
        return
    assert got.index.equals(want.index)
    np.testing.assert_array_equal(got.to_numpy(float), want.to_numpy(float))


@pytest.mark.parametrize("fn", ["sma", "ema", "rsi"])
def test_indicator_shim_on_too_short_a_series_is_none_like_pandas_ta(close, fn):
    short = close.iloc[:10]
    assert getattr(pandas_ta, fn)(short, length=14) is None
    assert getattr(ta, fn)(short, length=14) is None


def test_cached_schedule_equals_exchange_calendars(tmp_path, monkeypatch):
    monkeypatch.setenv("SOXBOT_CACHE_DIR", str(tmp_path))
    cal._schedule.cache_clear()
    try:
        first = cal.calendar("2030-01-01")  # built, then written
        assert list(tmp_path.glob("XNYS-*.npz"))
        cal._schedule.cache_clear()
        again = cal.calendar("2030-01-01")  # read back from the file
    finally:
        cal._schedule.cache_clear()
    xc = cal._calendar(cal._HORIZONS[0])
    want = xc.schedule
    for s in (first, again):
        np.testing.assert_array_equal(s.days, pd.DatetimeIndex(want.index).as_unit("ns").asi8)
        np.testing.assert_array_equal(s.opens, pd.DatetimeIndex(want["open"]).as_unit("ns").asi8)
        np.testing.assert_array_equal(s.closes, pd.DatetimeIndex(want["close"]).as_unit("ns").asi8)
    days = pd.DatetimeIndex(xc.sessions_in_range("2019-12-20", "2020-01-10")).as_unit("ns")
    assert cal.sessions("2019-12-20", "2020-01-10").equals(days)
    o, c = cal.session_bounds("2019-12-24")  # an early close
    assert (o.isoformat(), c.isoformat()) == ("2019-12-24T09:30:00-05:00", "2019-12-24T13:00:00-05:00")


def test_a_backtest_process_loads_neither_numba_nor_exchange_calendars(tmp_path):
    script = (
        "import sys, json\n"
        "from typer.testing import CliRunner\n"
        "from bot.cli import app\n"
        f"r = CliRunner().invoke(app, ['backtest', '--out', {str(tmp_path / 'out')!r}, '--no-progress'])\n"
        "print(json.dumps([r.exit_code, 'numba' in sys.modules, 'pandas_ta' in sys.modules,"
        " 'exchange_calendars' in sys.modules]))\n"
    )
    env = {"SOXBOT_CACHE_DIR": str(tmp_path / "cache")}
    import os

    for _ in range(2):  # the first process builds the calendar cache, the second only reads it
        r = subprocess.run(
            [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
            env={**os.environ, **env},
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [0, False, False, False]
    assert (tmp_path / "out" / "report.html").is_file()
    assert Path(tmp_path / "cache").is_dir()
