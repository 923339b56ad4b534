"""What the backtest report states, through the real `soxbot backtest`: the assumptions (fills,
slippage, commission, price basis, data source), returns by month and year, figures per exit
reason, the trade return distribution, a rolling Sharpe panel, the traded instrument's price with
the fills at their own prices, readable log-axis ticks and the settings as a table."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pandas as pd
import pytest

from bot.data.synthetic import generate
from bot.report.report import log_ticks
from tests.sandbox_support import write_bars
from tests.test_cli_messages import soxbot
from tests.test_report import _decode, figure_json, titles

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[str, dict, pd.DataFrame, pd.DataFrame]:
    tmp = tmp_path_factory.mktemp("report")
    data = write_bars(tmp / "data", generate(["SOXX", "SOXL", "SOXS"], "1d", "2016-01-04", 6.0, seed=3), "1d")
    cfg = tmp / "c.toml"
    cfg.write_text(
        '[universe]\nsignal = "SOXX"\nbull = "SOXL"\nbear = "SOXS"\n'
        '[[strategies]]\nname = "ma_cross"\nparams = { fast = 10, slow = 30 }\n'
        "[risk]\nstop_loss_pct = 0.06\nmax_hold_days = 15\n"
        "[broker]\nslippage_bps = 7.5\ncommission = 1.25\n"
    )
    out = tmp / "out"
    r = soxbot("backtest", "--config", str(cfg), "--data-dir", str(data), "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    doc = (out / "report.html").read_text()
    trades = pd.read_csv(out / "trades.csv")
    equity = pd.read_csv(out / "equity.csv", index_col=0, parse_dates=True)
    return doc, json.loads((out / "summary.json").read_text()), trades, equity


def text(doc: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", doc))


def test_the_assumptions_are_stated(run):
    t = text(run[0])
    assert "Assumptions" in t
    for needle in ("filled at the next bar's open", "7.5 bp on market and stop fills", "1.25 per order",
                   "CSV files in", "gaps through"):  # fmt: skip
        assert needle in t, needle


def test_returns_by_month_and_year_match_the_equity_curve(run):
    doc, _, _, equity = run
    table = doc[doc.index("Returns by month and year") :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table)[1:]
    years = sorted(set(equity.index.year))
    assert [re.search(r"<td[^>]*>(\d{4})</td>", r).group(1) for r in rows] == [str(y) for y in years]
    end = equity["equity"].groupby(equity.index.year).last()
    want = end / end.shift(1).fillna(100_000.0) - 1
    for row, year in zip(rows, years, strict=True):
        shown = re.findall(r"([+-]\d+\.\d)%", row)[-1]  # the last cell: the year's
        assert float(shown) == pytest.approx(100 * want[year], abs=0.051)


def test_figures_per_exit_reason_count_every_trade(run):
    doc, _, trades, _ = run
    part = doc[doc.index("Trades by exit reason") :]
    part = part[: part.index("</table>")]
    counts = trades["exit_reason"].value_counts()
    assert len(counts) >= 2, counts  # signal, stop_loss, max_hold, ...
    for reason, n in counts.items():
        assert re.search(rf">{re.escape(reason)}</td><td>{n}</td>", part), (reason, n)


def test_panels_fills_on_the_traded_price_and_readable_log_ticks(run):
    doc, _, trades, _ = run
    fig = figure_json(doc)
    assert "Rolling Sharpe (half a year of bars)" in titles(fig)
    assert any(t.startswith("Traded: SOXL / SOXS") for t in titles(fig))
    for sym in ("SOXL", "SOXS"):
        entries = next(t for t in fig["data"] if t.get("name") == f"{sym} entry")
        want = trades.loc[trades["symbol"] == sym, "entry_price"].to_numpy(float)
        np.testing.assert_allclose(_decode(entries["y"]), want)
    for axis in (v for k, v in fig["layout"].items() if k.startswith("yaxis") and v.get("type") == "log"):
        assert all(re.fullmatch(r"\d+(\.\d+)?[kMB]?", s) for s in axis["ticktext"]), axis["ticktext"]
    assert "Trade returns" in doc and '"type":"histogram"' in doc


def test_settings_are_a_table_not_a_python_dict(run):
    doc = run[0]
    t = text(doc)
    assert "[risk] stop_loss_pct" in t and "[risk] max_hold_days" in t and "[broker] slippage_bps" in t
    assert "strategy ma_cross" in t and "fast = 10" in t
    assert "{'" not in t  # no dict repr anywhere


@pytest.mark.parametrize(
    ("lo", "hi", "text_"),
    [
        (62_000, 930_000, ["100k", "200k", "500k"]),
        (80_000, 2_600_000, ["100k", "200k", "500k", "1M", "2M"]),
        (3.1, 4_500.0, ["5", "10", "20", "50", "100", "200", "500", "1k", "2k"]),
        (0.02, 900.0, ["0.1", "1", "10", "100"]),
    ],
)
def test_log_ticks_are_labelled_in_full(lo, hi, text_):
    vals, labels = log_ticks(lo, hi)
    assert labels == text_
    assert all(lo <= v <= hi for v in vals) and vals == sorted(vals)
