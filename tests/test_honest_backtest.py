"""Backtests that refuse false numbers, through the real `soxbot` command: a plugin that reads later
bars is refused (and named "look-ahead" by test-strategy), a plugin's bad output is a message naming
the plugin, the bar and the fix, bars before --start warm the strategies up, and the figures cover the
period every instrument has data (real data in ../shared/data; those tests skip when it is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bot.data.synthetic import generate
from tests.sandbox_support import write_bars
from tests.test_cli_messages import assert_user_error, soxbot

pytestmark = pytest.mark.e2e

PLUGIN = '''
import numpy as np
import pandas as pd
from bot.strategy import Strategy, finalize, labels


class {cls}(Strategy):
    """A test plugin."""

    name = "{name}"

    @property
    def warmup(self) -> int:
        return 5

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        close = bars["close"].to_numpy()
        ma = bars["close"].rolling(5).mean().to_numpy()
{body}
'''

BODIES = {
    # the case: tomorrow's close decides today (shift(-1))
    "peek": """        nxt = bars["close"].shift(-1).to_numpy()
        with np.errstate(invalid="ignore"):
            d = np.sign(nxt - close)
        return finalize(bars.index, d, labels([d > 0], ["up next"], "not up"), self.warmup, ma=ma)""",
    # an indicator centred on the bar (a whole-window statistic): direction only from the past
    "centred": """        mid = bars["close"].rolling(5, center=True).mean().to_numpy()
        with np.errstate(invalid="ignore"):
            d = np.sign(close - ma)
        return finalize(bars.index, d, labels([d > 0], ["up"], "down"), self.warmup, mid=mid)""",
    "short": """        d = np.sign(np.nan_to_num(close - ma))
        out = finalize(bars.index, d, np.full(len(close), "x"), 5)
        return out.iloc[:-1]""",
    "two": """        d = np.where(close > ma, 2, 0)
        return pd.DataFrame({"direction": d, "reason": "x"}, index=bars.index)""",
    "nan": """        with np.errstate(invalid="ignore"):
            d = np.sign(close - ma)
        return pd.DataFrame({"direction": d, "reason": "x"}, index=bars.index)""",
    "boom": """        raise KeyError("adj_close")""",
    "fine": """        with np.errstate(invalid="ignore"):
            d = np.sign(close - ma)
        return finalize(bars.index, d, labels([d > 0], ["up"], "down"), self.warmup, ma=ma)""",
}


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    d = tmp_path / "plugins"
    d.mkdir()
    for name, body in BODIES.items():
        (d / f"{name}.py").write_text(PLUGIN.format(cls=name.title(), name=name, body=body))
    return d


@pytest.fixture
def market(tmp_path: Path) -> Path:
    return write_bars(
        tmp_path / "data", generate(["SOXX", "SOXL", "SOXS"], "1d", "2020-01-02", 2.0, seed=3), "1d"
    )


def config(tmp_path: Path, strategy: str, extra: str = "") -> Path:
    p = tmp_path / f"{strategy}.toml"
    universe = '[universe]\nsignal = "SOXX"\nbull = "SOXL"\nbear = "SOXS"\n'
    p.write_text(f'{universe}{extra}\n[[strategies]]\nname = "{strategy}"\n')
    return p


def backtest(tmp_path: Path, plugins: Path, market: Path, strategy: str, *args: str):
    return soxbot(
        "backtest", "--config", str(config(tmp_path, strategy)), "--path", str(plugins),
        "--data-dir", str(market), "--out", str(tmp_path / "out"), "--no-progress", *args,
    )  # fmt: skip


def test_a_lookahead_plugin_is_refused_naming_the_bar_and_the_column(tmp_path, plugins, market):
    r = backtest(tmp_path, plugins, market, "peek")
    msg = assert_user_error(r, "look-ahead", "'peek'", "direction at 2020-", "--no-lookahead-check")
    assert not (tmp_path / "out" / "summary.json").exists(), msg
    # the override runs it (and the result is the too-good-to-be-true one the check is there for)
    r = backtest(tmp_path, plugins, market, "peek", "--no-lookahead-check")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["strategy"]["total_return"] > summary["buy_and_hold"]["total_return"]


def test_an_indicator_computed_from_later_bars_is_look_ahead_too(tmp_path, plugins, market):
    assert_user_error(backtest(tmp_path, plugins, market, "centred"), "look-ahead", "mid at 2020-")


def test_test_strategy_says_look_ahead(tmp_path, plugins):
    r = soxbot("test-strategy", "peek", "--path", str(plugins))
    assert r.returncode == 1
    assert r.stderr.startswith("FAIL look-ahead in strategy 'peek': direction at "), r.stderr
    assert "live window" not in r.stderr  # the symptom is not reported as something else


@pytest.mark.parametrize(
    ("strategy", "needles"),
    [
        ("short", ["'short'", "returned 504 rows for 505 bars", "finalize(bars.index"]),
        ("two", ["'two'", "direction 2 at bar ", "-1, 0 or +1"]),
        ("nan", ["'nan'", "direction is NaN at bar 0 (2020-01-02", "says 0"]),
        ("boom", ["'boom'", "signals() raised KeyError", "soxbot test-strategy boom"]),
    ],
)
def test_a_plugins_bad_output_is_a_message_not_a_traceback(tmp_path, plugins, market, strategy, needles):
    assert_user_error(backtest(tmp_path, plugins, market, strategy), *needles)


def test_a_sound_plugin_passes_and_its_warmup_drift_is_recorded(tmp_path, plugins, market):
    r = backtest(tmp_path, plugins, market, "fine")
    assert r.returncode == 0, r.stderr[-2000:]
    checks = json.loads((tmp_path / "out" / "summary.json").read_text())["checks"]
    assert checks and all("'fine' from 6 bars" in c and "same direction at all" in c for c in checks), checks


# -- real data: pre-roll and the measured period ------------------------------------------------------
def real_backtest(shared_data: Path, tmp_path: Path, signal: str, bear: str, *args: str) -> dict:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[universe]\nsignal = "{signal}"\nbull = "SOXL"\nbear = "{bear}"\n'
        '[[strategies]]\nname = "ma_cross"\nparams = { fast = 50, slow = 200 }\n'
    )
    out = tmp_path / "out"
    r = soxbot(
        "backtest",
        "--config",
        str(cfg),
        "--data-dir",
        str(shared_data),
        "--out",
        str(out),
        "--no-progress",
        *args,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    summary["stderr"] = r.stderr
    summary["trades"] = pd.read_csv(out / "trades.csv")
    summary["equity"] = pd.read_csv(out / "equity.csv", index_col=0, parse_dates=True)
    return summary


def test_bars_before_start_warm_the_strategy_up_and_trading_starts_at_start(shared_data, tmp_path):
    s = real_backtest(shared_data, tmp_path, "SOXX", "", "--start", "2021-01-01", "--end", "2021-12-31")
    eq, trades = s["equity"], s["trades"]
    assert str(eq.index[0].date()) == "2021-01-04" and s["period"]["start"].startswith("2021-01-04")
    # SMA 200 is known on the first session of 2021 (SOXX above it: long), so the first trade is an
    # entry at the next open, not ~200 sessions later (2021-10-19 without the pre-roll)
    assert trades["entry_time"].iloc[0] == "2021-01-05", trades.head()
    assert s["period"]["preroll_bars"] >= 200
    assert (trades["entry_time"] >= "2021-01-04").all()
    # buy-and-hold over the same bars: SOXX bought at the close of 2021-01-04
    soxx = pd.read_csv(shared_data / "SOXX_1d.csv", index_col=0, parse_dates=True)["close"][
        "2021-01-04":"2021-12-31"
    ]
    assert s["buy_and_hold"]["total_return"] == pytest.approx(soxx.iloc[-1] / soxx.iloc[0] - 1, rel=1e-9)


def test_figures_and_benchmarks_cover_only_the_period_every_instrument_has_data(shared_data, tmp_path):
    s = real_backtest(shared_data, tmp_path, "^SOX", "SOXS")
    soxl = pd.read_csv(shared_data / "SOXL_1d.csv", index_col=0, parse_dates=True)["close"]
    first = str(soxl.index[0].date())
    assert s["period"]["run"]["start"].startswith("1994-")  # the run itself has every SOX bar
    assert s["period"]["start"].startswith(first)  # the figures start where SOXL (and SOXS) do
    assert s["strategy"]["cagr"] is not None and s["period"]["years"] < 17
    sox = pd.read_csv(shared_data / "SOX_1d.csv", index_col=0, parse_dates=True)["close"][first:]
    assert s["buy_and_hold"]["total_return"] == pytest.approx(sox.iloc[-1] / sox.iloc[0] - 1, rel=1e-9)
    bull = s["benchmarks"]["SOXL"]
    end = s["equity"].index[-1]
    assert bull["total_return"] == pytest.approx(soxl[:end].iloc[-1] / soxl.iloc[0] - 1, rel=1e-9)
    for sym in ("SOXL", "SOXS"):
        assert f"warning: {sym} has data only from {first}" in s["stderr"]
        assert any(w.startswith(f"{sym} has data only from") for w in s["warnings"])
