"""`load_bars`: from the [data] config section to clean bars, for each source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.core.config import DataConfig
from bot.data import DataError
from bot.data.load import load_bars
from bot.data.quality import KINDS


def test_csv_source_applies_dates_caret_mapping_and_cleaning(shared_data: Path) -> None:
    cfg = DataConfig(source="csv", dir=shared_data, start="2023-04-03", end="2023-04-28")
    got = load_bars(cfg, ["^SOX", "SOXL"])
    assert list(got) == ["^SOX", "SOXL"]
    sox, rep = got["^SOX"]
    assert rep.symbol == "SOX" and rep.counts["open_close_outside_range"] == 1
    assert sox.index[0] == pd.Timestamp("2023-04-03") and sox.index[-1] == pd.Timestamp("2023-04-28")
    assert sox.loc["2023-04-26", "low"] == sox.loc["2023-04-26", "open"]
    assert list(sox.columns) == ["open", "high", "low", "close", "volume", "tradable"]
    soxl, rep_l = got["SOXL"]
    pd.testing.assert_index_equal(soxl.index, sox.index)
    assert rep_l.n_in == rep_l.n_out == len(soxl)


def test_csv_source_passes_max_gap_bars(tmp_path: Path) -> None:
    days = ["2024-01-02", "2024-01-03", "2024-01-05", "2024-01-08"]  # 01-04 missing
    rows = [f"{d},10,11,9,10.5,100" for d in days]
    (tmp_path / "X_1d.csv").write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    strict = load_bars(DataConfig(source="csv", dir=tmp_path, max_gap_bars=0), ["X"])["X"][0]
    lenient = load_bars(DataConfig(source="csv", dir=tmp_path, max_gap_bars=1), ["X"])["X"][0]
    assert list(strict["tradable"]) == [True, True, False, True]
    assert lenient["tradable"].all()


def test_csv_source_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"SOXX_5m\.csv"):
        load_bars(DataConfig(source="csv", dir=tmp_path, timeframe="5m"), ["SOXX"])


def test_synthetic_source_respects_seed_years_dates_and_stays_labelled() -> None:
    cfg = DataConfig(source="synthetic", seed=3, synthetic_years=1.0)
    got = load_bars(cfg, ["^SOX", "SOXL"])
    sox, rep = got["^SOX"]
    assert sox.attrs["synthetic"] is True and got["SOXL"][0].attrs["synthetic"] is True
    assert sox["tradable"].all() and all(rep.counts[k] == 0 for k in KINDS)
    assert sox.index[0] == pd.Timestamp("2020-01-02") and sox.index[-1] < pd.Timestamp("2021-01-02")
    other = load_bars(DataConfig(source="synthetic", seed=4, synthetic_years=1.0), ["^SOX"])["^SOX"][0]
    assert not np.allclose(sox["close"], other["close"])
    ranged = load_bars(
        DataConfig(source="synthetic", timeframe="5m", start="2021-03-01", end="2021-03-05"), ["SOXS"]
    )["SOXS"][0]
    days = ranged.index.tz_localize(None).normalize().unique()
    assert list(days.strftime("%d")) == ["01", "02", "03", "04", "05"]
    assert len(ranged) == 5 * 78


def test_alpaca_source_without_keys_says_what_to_set(monkeypatch) -> None:
    keys = ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "SOXBOT_BROKER__API_KEY", "SOXBOT_BROKER__SECRET_KEY")
    for var in keys:
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DataError, match="APCA_API_KEY_ID"):
        load_bars(DataConfig(source="alpaca"), ["SOXX"])
