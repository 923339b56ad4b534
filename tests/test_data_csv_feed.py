"""Reading bar files: types, time zones, inclusive date ranges, helpful errors, and no silent cleaning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.data import DataError
from bot.data.csv_feed import load_csv

HEADER = "timestamp,open,high,low,close,volume\n"


def _write(path: Path, rows: list[str]) -> None:
    path.write_text(HEADER + "\n".join(rows) + "\n")


def test_daily_file_gives_naive_dates_and_float_columns(shared_data: Path) -> None:
    df = load_csv(shared_data, "SOX", "1d")
    assert df.index.name == "timestamp" and df.index.tz is None
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dt == np.float64 for dt in df.dtypes)
    assert (df.index == df.index.normalize()).all()
    raw = pd.read_csv(shared_data / "SOX_1d.csv")
    assert len(df) == len(raw)
    assert df.loc["2023-04-26", "open"] == raw.set_index("timestamp").loc["2023-04-26", "open"]


def test_intraday_file_is_new_york_time_bar_starts(shared_data: Path) -> None:
    df = load_csv(shared_data, "SOXL", "5m", start="2024-11-29", end="2024-11-29")
    assert str(df.index.tz) == "America/New_York"
    assert df.index[0] == pd.Timestamp("2024-11-29 09:30", tz="America/New_York")
    # the end date keeps every bar of that day, up to the 12:55 bar of this half day
    assert df.index[-1] == pd.Timestamp("2024-11-29 12:55", tz="America/New_York")
    assert len(df) == 42


def test_caret_symbol_reads_the_plain_file(shared_data: Path) -> None:
    a = load_csv(shared_data, "^SOX", "1d", start="2024-01-02", end="2024-01-31")
    b = load_csv(shared_data, "SOX", "1d", start="2024-01-02", end="2024-01-31")
    pd.testing.assert_frame_equal(a, b)
    assert a.index[0] == pd.Timestamp("2024-01-02") and a.index[-1] == pd.Timestamp("2024-01-31")


def test_missing_file_names_the_path_and_lists_what_exists(tmp_path: Path) -> None:
    _write(tmp_path / "SOXX_1d.csv", ["2024-01-02,1,2,0.5,1.5,10"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError) as err:
        load_csv(tmp_path, "SOXL", "1d")
    msg = str(err.value)
    assert str(tmp_path / "SOXL_1d.csv") in msg and "SOXX_1d.csv" in msg and "notes.txt" not in msg
    with pytest.raises(DataError, match="does not exist"):
        load_csv(tmp_path / "nowhere", "SOXL", "1d")


def test_reader_keeps_bad_rows_as_they_are(tmp_path: Path) -> None:
    rows = [
        "2024-01-03,10,11,9,10.5,100",
        "2024-01-02,10,11,9,10.5,100",  # out of order
        "2024-01-03,12,13,11,12.5,",  # duplicate with empty volume
        "2024-01-04,,11,9,10,100",  # NaN open
        "2024-01-05,10,9,11,10,-1",  # high < low, negative volume
    ]
    _write(tmp_path / "X_1d.csv", rows)
    df = load_csv(tmp_path, "X", "1d")
    assert len(df) == len(rows)
    assert list(df.index.strftime("%Y-%m-%d")) == [r.split(",")[0] for r in rows]
    assert np.isnan(df["open"].iloc[3]) and np.isnan(df["volume"].iloc[2])
    assert df["volume"].iloc[4] == -1


def test_bad_header_or_values_raise_data_error(tmp_path: Path) -> None:
    (tmp_path / "X_1d.csv").write_text("date,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n")
    with pytest.raises(DataError, match="lacks column"):
        load_csv(tmp_path, "X", "1d")
    _write(tmp_path / "Y_1d.csv", ["2024-01-02,1,2,abc,1.5,10"])
    with pytest.raises(DataError, match=r"Y_1d\.csv line 2, column low: 'abc' is not a number"):
        load_csv(tmp_path, "Y", "1d")
    _write(tmp_path / "Z_1d.csv", ["02/01/2024,1,2,0.5,1.5,10"])
    with pytest.raises(DataError, match=r"Z_1d\.csv line 2: '02/01/2024' is not a date YYYY-MM-DD"):
        load_csv(tmp_path, "Z", "1d")
