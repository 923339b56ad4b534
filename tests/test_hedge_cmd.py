"""`soxbot hedge` through the real CLI (typer's runner) on the real daily files of NVDA, AMD, AVGO and
INTC, checked against an independent computation here: numpy least squares for the betas, pandas'
rolling covariance for the backtest's sizing, close ratios for its returns. And the bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bot.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
HOLD = {"NVDA": 100, "AMD": 500, "AVGO": 400, "INTC": 1500}
pytestmark = pytest.mark.skipif(
    not all((DATA / f"{s}_1d.csv").exists() for s in [*HOLD, "SOXX", "SOXS"]),
    reason=f"real daily data not found in {DATA}",
)
ARG = ",".join(f"{s}={q}" for s, q in HOLD.items())


def _closes() -> pd.DataFrame:
    read = {
        s: pd.read_csv(DATA / f"{s}_1d.csv", index_col=0, parse_dates=True)["close"] for s in [*HOLD, "SOXX"]
    }
    frame = pd.concat(read, axis=1, join="inner").dropna()
    soxs = pd.read_csv(DATA / "SOXS_1d.csv", index_col=0, parse_dates=True)["close"].rename("SOXS")
    return frame.join(soxs, how="inner").dropna()


@pytest.fixture(scope="module")
def report():
    res = runner.invoke(app, ["hedge", "--holdings", ARG, "--data-dir", str(DATA), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_betas_notional_and_shares_match_a_numpy_regression(report):
    c = _closes()
    r = c.pct_change().iloc[-60:]
    x = np.column_stack([np.ones(60), r["SOXX"].to_numpy()])
    assert report["as_of"] == str(c.index[-1].date()) == "2024-03-08"
    exposure = 0.0
    for h in report["holdings"]:
        beta = np.linalg.lstsq(x, r[h["symbol"]].to_numpy(), rcond=None)[0][1]
        value = HOLD[h["symbol"]] * c[h["symbol"]].iloc[-1]
        assert h["beta"] == pytest.approx(beta, rel=1e-9)
        assert h["value"] == pytest.approx(value, rel=1e-12)
        exposure += beta * value
    assert report["exposure"] == pytest.approx(exposure, rel=1e-9)
    notional = exposure / 3  # hedge ratio 1, SOXS is -3x
    assert report["hedge"]["notional"] == pytest.approx(notional, rel=1e-9)
    assert report["hedge"]["shares"] == math.floor(notional / c["SOXS"].iloc[-1])


def test_backtest_matches_an_independent_computation(report):
    c = _closes()
    values = {s: HOLD[s] * c[s].iloc[-1] for s in HOLD}
    w = pd.Series(values) / sum(values.values())
    r = c.pct_change()
    port = (r[list(HOLD)] * w).sum(axis=1, min_count=len(HOLD))
    beta = port.rolling(60).cov(r["SOXX"]) / r["SOXX"].rolling(60).var()  # window ending at each start
    n = len(c)
    starts = np.arange(60, n - 20)
    growth = (1 + port.fillna(0)).cumprod().to_numpy()
    without = growth[starts + 20] / growth[starts] - 1
    hedge = beta.to_numpy()[starts] / 3
    soxs, soxx = c["SOXS"].to_numpy(), c["SOXX"].to_numpy()
    fund = soxs[starts + 20] / soxs[starts] - 1
    with_ = without + hedge * fund
    cost = -hedge * (fund + 3 * (soxx[starts + 20] / soxx[starts] - 1))
    bt = report["backtest"]
    assert bt["windows"] == len(starts)
    for key, arr in (("without", without), ("with", with_)):
        assert bt[key]["volatility"] == pytest.approx(arr.std(ddof=1), rel=1e-6)
        assert bt[key]["worst"] == pytest.approx(arr.min(), rel=1e-6)
        assert bt[key]["mean"] == pytest.approx(arr.mean(), rel=1e-6)
    assert bt["mean_cost"] == pytest.approx(cost.mean(), rel=1e-6)
    assert bt["median_notional_per_dollar"] == pytest.approx(np.median(hedge), rel=1e-6)
    # what the issue measured by hand: the hedge roughly halves the 20-day volatility and the worst loss
    assert bt["with"]["volatility"] < 0.75 * bt["without"]["volatility"]
    assert bt["with"]["worst"] > bt["without"]["worst"] + 0.05


def test_drift_band_and_cost_follow_their_definitions(report):
    b = {h["symbol"]: h["beta"] for h in report["holdings"]}
    v = {h["symbol"]: h["value"] for h in report["holdings"]}
    e0 = sum(b[s] * v[s] for s in b)
    for m, key in ((0.01, "up"), (-0.01, "down")):
        e1 = sum(b[s] * v[s] * (1 + b[s] * m) for s in b)
        assert report["drift_per_1pct"][key] == pytest.approx((1 - 3 * m) / (e1 / e0) - 1, rel=1e-12)
    lo, hi = report["band"]["index_move_down"], report["band"]["index_move_up"]
    assert -0.05 < lo < 0 < hi < 0.05  # a 10% band is reached within a few percent of index move
    c = report["expected_cost"]
    assert c["month"]["dollars"] > c["week"]["dollars"] > 0
    assert c["week"]["log_points"] == pytest.approx(
        -(c["week"]["vol_drag"] + c["week"]["expense"] + c["week"]["financing"])
    )


def test_table_and_html_page(tmp_path):
    page = tmp_path / "hedge.html"
    res = runner.invoke(app, ["hedge", "--holdings", ARG, "--data-dir", str(DATA), "--html", str(page)])
    assert res.exit_code == 0, res.output
    assert "hedge ratio 1: SOXS notional" in res.output and "with hedge" in res.output
    text = page.read_text()
    assert "plotly" in text and "beta to SOXX" in text


def test_holdings_from_a_csv_file_give_the_same_figures(tmp_path, report):
    f = tmp_path / "h.csv"
    f.write_text("symbol,quantity\n" + "\n".join(f"{s},{q}" for s, q in HOLD.items()) + "\n")
    res = runner.invoke(app, ["hedge", "--holdings", str(f), "--data-dir", str(DATA), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["hedge"] == report["hedge"]


@pytest.mark.parametrize(
    "holdings,message",
    [
        ("NVDA=100,B@D=5", "unknown symbol 'B@D' (not a ticker)"),
        ("NVDA=100,AAPL=10", "no daily data for AAPL (holding)"),
        ("NVDA=ten", "quantity 'ten' of NVDA is not a number"),
        ("NVDA=100,NVDA=5", "NVDA is listed twice"),
        ("SOXS=100", "SOXS is the hedge's own index or fund"),
        ("missing.csv", "holdings file missing.csv does not exist"),
    ],
)
def test_bad_input_is_one_clear_message(holdings, message):
    res = runner.invoke(app, ["hedge", "--holdings", holdings, "--data-dir", str(DATA)])
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) <= 2
