"""The real service on the sandbox over several simulated sessions that include a DST change
(2024-11-03), the Thanksgiving holiday (2024-11-28) and the 13:00 early close after it: the bot
decides exactly at the scheduled bar closes (16:00 ET, 13:00 on the half day), once per session, on
that session's bar, and never outside a session."""

from __future__ import annotations

import re
import subprocess
import time

import pandas as pd
import pytest

from bot.data.calendar import session_bounds, sessions
from tests.test_alpaca_e2e import REPO, SOXBOT, Sandbox, _get, config

pytestmark = pytest.mark.e2e


def test_decisions_at_scheduled_closes_across_dst_holiday_and_early_close(tmp_path, monkeypatch):
    import os

    sb = Sandbox.__new__(Sandbox)
    sb.log = (tmp_path / "sandbox.log").open("w+")
    sb.proc = subprocess.Popen(
        [*SOXBOT, "sandbox", "--port", "0", "--speed", "60000", "--key", "PKE2E", "--secret", "S3CRET",
         "--start", "2024-10-30"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=sb.log, text=True,
    )  # fmt: skip
    line = sb.proc.stdout.readline()
    sb.port = int(line.split("127.0.0.1:")[1].split()[0])
    sb.url = f"http://127.0.0.1:{sb.port}"
    env = {**os.environ, "APCA_API_KEY_ID": "PKE2E", "APCA_API_SECRET_KEY": "S3CRET"}
    log = (tmp_path / "bot.log").open("w+")
    try:
        cmd = [*SOXBOT, "run", "--config", str(config(tmp_path, sb.url))]
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            now = pd.Timestamp(_get(sb.url + "/admin/state")["now"])
            if now > pd.Timestamp("2024-12-03 17:00", tz="America/New_York"):
                break
            time.sleep(0.5)
        assert proc.poll() is None, (tmp_path / "bot.log").read_text()[-3000:]
        proc.terminate()
        assert proc.wait(30) == 0
    finally:
        sb.stop()
        log.close()
    out = (tmp_path / "bot.log").read_text()
    decided = [
        (pd.Timestamp(m.group(1)), m.group(2))
        for m in re.finditer(r"event='decision'.*?at='([^']+)'.*?bar='([^']+)'", out)
    ]
    assert decided, out[-3000:]
    first = decided[0][0].normalize().tz_localize(None)
    days = sessions(first, pd.Timestamp("2024-12-03"))
    planned = [session_bounds(d)[1] for d in days]  # the daily decision: at the session close
    got = [t for t, _ in decided]
    assert got[: len(planned)] == planned[: len(got)]
    assert len(got) >= len(planned) - 1  # the last close may fall after the test stopped the bot
    assert pd.Timestamp("2024-11-28") not in {t.normalize().tz_localize(None) for t in got}
    half = [t for t in got if t.date() == pd.Timestamp("2024-11-29").date()]
    assert half and half[0].hour == 13 and half[0].minute == 0
    dst = {t.date(): t.utcoffset() for t in got}
    assert dst[pd.Timestamp("2024-11-01").date()] != dst[pd.Timestamp("2024-11-04").date()]
    for t, bar in decided:  # each decision acted on its own session's bar, never a stale one
        if bar != "none":
            assert pd.Timestamp(bar[:10]).date() == t.date()
