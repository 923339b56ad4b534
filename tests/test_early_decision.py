"""Daily bars decided before the close (`[service] daily_decision_offset_minutes = 10`, 15:50 ET) on the
day's bar so far, against the real sandbox serving 1-minute bars and the real alpaca-py clients.

Checked against an independent computation from the same minute bars: each decision reads the day's
bar up to 15:50 (no later minute), its direction is the SMA cross of the final closes of earlier days
and today's 15:50 price, the orders fill before that day's close, and the bar decided early is
replaced by the completed day before the next decision (so signals never keep a partial bar)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bot.core.config import load_config
from bot.journal.journal import Journal
from tests.alpaca_support import bot_config, in_process_run
from tests.sandbox_support import NY, admin, at, minute_bars, serving

MINUTES = minute_bars("2024-05-01", "2024-06-14")
DAYS = pd.DatetimeIndex(sorted({t.tz_localize(None).normalize() for t in MINUTES["AAA"].index}))
FAST, SLOW = 2, 5


def so_far(sym: str, day: pd.Timestamp, until: str | None) -> tuple[float, float, float, float, float]:
    """The day's bar from the minute bars that ended by `until` (HH:MM New York), or the whole day."""
    df = MINUTES[sym]
    df = df[df.index.tz_localize(None).normalize() == day]
    if until is not None:
        end = pd.Timestamp(f"{day.date()} {until}").tz_localize(NY)
        df = df[df.index + pd.Timedelta(minutes=1) <= end]
    return (df.open.iat[0], df.high.max(), df.low.min(), df.close.iat[-1], float(df.volume.sum()))


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("early-1m"), MINUTES, "1m", "2024-05-31") as s:
        yield s


@pytest.fixture
def run(srv, tmp_path):
    admin(srv, "reset", {"start": at("2024-05-31 09:00")})
    cfg_file = bot_config(tmp_path, srv.url, (FAST, SLOW), (0.05, 0.02), "daily_decision_offset_minutes = 10",
                          universe=("AAA", "BBB", ""), keys=("PKTEST", "SECRET"))  # fmt: skip
    cfg = load_config(cfg_file)
    j = Journal(cfg.journal.path)
    yield in_process_run(cfg, j, resync=0)  # resync 0: the test moves the sandbox's clock
    j.close()


def test_each_day_is_decided_at_1550_on_the_day_so_far_and_filled_before_the_close(srv, run):
    r = run
    r.reconcile()
    first = DAYS.get_loc(pd.Timestamp("2024-05-31"))
    admin(srv, "advance", {"to": at("2024-05-31 15:50")})
    r.warm_up()
    assert r.live.count == first  # the completed days only: today's partial bar is not history
    closes = [so_far("AAA", d, None)[3] for d in DAYS[:first]]
    decided = []
    for day in DAYS[first:]:
        admin(srv, "advance", {"to": at(f"{day.date()} 15:50")})
        assert r.decide_early(pd.Timestamp(f"{day.date()} 15:50", tz=NY)) == day
        # the completed previous day replaced its 15:50 version in the window
        win = r.live.frame()
        if len(decided):
            prev = win.iloc[-2]
            assert tuple(prev[["open", "high", "low", "close", "volume"]]) == pytest.approx(
                so_far("AAA", decided[-1], None)
            )
        assert tuple(win.iloc[-1][["open", "high", "low", "close", "volume"]]) == pytest.approx(
            so_far("AAA", day, "15:50")
        )
        px = [*closes, so_far("AAA", day, "15:50")[3]]
        want = 1 if np.mean(px[-FAST:]) > np.mean(px[-SLOW:]) else -1
        got = r.journal.db.execute(
            "SELECT direction FROM signals WHERE strategy='combined' ORDER BY rowid DESC LIMIT 1"
        ).fetchone()[0]
        assert got == want, day
        admin(srv, "advance", {"to": at(f"{day.date()} 15:55")})
        r.broker.poll()
        r.pump(0)
        closes.append(so_far("AAA", day, None)[3])
        decided.append(day)
    orders = [o for o in admin(srv, "state")["orders"] if o["type"] == "market"]
    assert orders, "no decision traded: pick data with a cross"
    for o in orders:  # sent at 15:50 and filled by the next minute's open, before that day's close
        sent = pd.Timestamp(o["submitted_at"]).tz_convert(NY)
        filled = pd.Timestamp(o["filled_at"]).tz_convert(NY)
        assert (sent.hour, sent.minute) == (15, 50) and o["status"] == "filled"
        assert filled.date() == sent.date() and (filled.hour, filled.minute) == (15, 51)
        day = pd.Timestamp(sent.date())
        bar = MINUTES[o["symbol"]].loc[pd.Timestamp(f"{day.date()} 15:51").tz_localize(NY)]
        assert float(o["filled_avg_price"]) == pytest.approx(bar.open)
