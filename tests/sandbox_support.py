"""Hand-made bar files and small HTTP helpers for the sandbox tests (the server itself is real)."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from bot.sandbox.app import SandboxServer

NY = "America/New_York"
HEADERS = {"APCA-API-KEY-ID": "PKTEST", "APCA-API-SECRET-KEY": "SECRET"}


def daily_bars(start: str = "2024-01-02", end: str = "2024-12-31") -> dict[str, pd.DataFrame]:
    """Two symbols on real XNYS sessions; AAA gaps down 8 on 2024-06-10 and up 8 on 2024-06-12."""
    days = xcals.get_calendar("XNYS", start="2023-06-01", end="2025-06-30").sessions_in_range(start, end)
    out = {}
    for sym, base, amp in (("AAA", 100.0, 5.0), ("BBB", 50.0, 2.0)):
        rows = []
        prev = base
        for i, d in enumerate(days):
            o = prev
            c = round(base + amp * math.sin(i / 7) + 0.02 * i, 2)
            if sym == "AAA" and d == pd.Timestamp("2024-06-10"):
                o, c = round(prev - 8, 2), round(prev - 7, 2)
            if sym == "AAA" and d == pd.Timestamp("2024-06-12"):
                o, c = round(prev + 8, 2), round(prev + 7.5, 2)
            h, lo = round(max(o, c) + 1.0, 2), round(min(o, c) - 1.0, 2)
            rows.append((d, o, h, lo, c, 1000 + 10 * i))
            prev = c
        df = pd.DataFrame(rows, columns=["timestamp", "open", "high", "low", "close", "volume"])
        out[sym] = df.set_index("timestamp")
    return out


def minute_bars(start: str = "2024-05-01", end: str = "2024-06-14") -> dict[str, pd.DataFrame]:
    """1-minute bars of two symbols over every regular minute of the XNYS sessions in the range."""
    cal = xcals.get_calendar("XNYS", start="2024-01-02", end="2024-12-31")
    sched = cal.schedule.loc[start:end]
    starts = np.concatenate(
        [
            pd.date_range(o, c, freq="1min", inclusive="left").asi8
            for o, c in zip(sched["open"], sched["close"], strict=True)
        ]
    )
    idx = pd.DatetimeIndex(starts).tz_localize("UTC").tz_convert(NY)
    rng = np.random.default_rng(3)
    out = {}
    for sym, base in (("AAA", 100.0), ("BBB", 40.0)):
        close = np.round(base + np.cumsum(rng.normal(0, 0.05, len(idx))), 2)
        open_ = np.round(np.concatenate([[base], close[:-1]]), 2)
        high = np.round(np.maximum(open_, close) + 0.03, 2)
        low = np.round(np.minimum(open_, close) - 0.03, 2)
        vol = rng.integers(100, 5000, len(idx))
        out[sym] = pd.DataFrame(
            {"open": open_, "high": high, "low": low, "close": close, "volume": vol},
            index=pd.DatetimeIndex(idx, name="timestamp"),
        )
    return out


@contextmanager
def serving(
    directory: Path, frames: dict[str, pd.DataFrame], timeframe: str, start: str
) -> Iterator[SandboxServer]:
    """A sandbox replaying `frames` (written to `directory`) on a frozen clock from `start`."""
    d = write_bars(directory, frames, timeframe)
    with SandboxServer(data_dir=d, timeframe=timeframe, speed=0, start=start) as s:
        yield s


def write_bars(directory: Path, frames: dict[str, pd.DataFrame], timeframe: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for sym, df in frames.items():
        out = df.copy()
        if timeframe == "1d":
            out.index = out.index.strftime("%Y-%m-%d")
        else:
            out.index = [t.isoformat() for t in out.index]
        out.index.name = "timestamp"
        out.to_csv(directory / f"{sym}_{timeframe}.csv")
    return directory


def call(
    srv: SandboxServer,
    method: str,
    path: str,
    body: Any = None,
    headers: dict | None = None,
    timeout: float = 10.0,
) -> tuple[int, Any, dict]:
    """One raw HTTP request: (status, decoded JSON or None, headers)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    hdrs = {**HEADERS, "Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(srv.url + path, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None, dict(r.headers)
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, json.loads(text) if text else None, dict(e.headers)


def admin(srv: SandboxServer, path: str, body: Any = None) -> Any:
    status, data, _ = call(srv, "POST" if body is not None else "GET", "/admin/" + path, body)
    assert status == 200, (status, data)
    return data


def at(text: str) -> str:
    """A New York wall-clock time as an ISO string with its offset."""
    return pd.Timestamp(text).tz_localize(NY).isoformat()
