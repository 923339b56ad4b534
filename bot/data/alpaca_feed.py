"""Bars from Alpaca's market-data API (`[data] source = "alpaca"`), cached on disk.

History comes through alpaca-py's StockHistoricalDataClient (it follows `next_page_token`), split-
and dividend-adjusted (`adjustment=all`; `soxbot data download` may pick another), from the
configured feed. Frames come out in the data files' format (daily: naive session dates; intraday:
New York bar starts), so the same bad-bar rules apply. Fetched bars are cached under
`cache_dir/<host>/<feed>/{SYMBOL}_{TF}.csv` with the covered range beside them, so a restart only
asks for what it does not have; the host is part of the path so bars from `soxbot sandbox` never mix
with Alpaca's. Only completed bars are returned or cached.

Alpaca has no index data: ^SOX comes from files; SOXX or SMH stand in live.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment, DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from bot.core.alpaca_http import env_keys, harden
from bot.core.config import DataConfig
from bot.core.log import get
from bot.data.calendar import TZ, is_intraday, session_bounds, timeframe_delta
from bot.data.csv_feed import COLUMNS, file_symbol
from bot.data.errors import DataError

INDEXES = {"SOX", "SPX", "NDX", "DJI", "VIX", "RUT", "COMP", "NYA", "OEX"}
_TF = {
    "1d": TimeFrame.Day,
    "30m": TimeFrame(30, TimeFrameUnit.Minute),
    "15m": TimeFrame(15, TimeFrameUnit.Minute),
    "5m": TimeFrame(5, TimeFrameUnit.Minute),
    "1m": TimeFrame(1, TimeFrameUnit.Minute),
}
RECENT_SIP = "recent SIP"
ADJUSTMENTS = ("raw", "split", "dividend", "all")

log = get("soxbot.data.alpaca")


def check_symbols(symbols: list[str]) -> None:
    """A clear error for an index: Alpaca serves stocks and ETFs only."""
    for s in symbols:
        if s.startswith("^") or s.upper() in INDEXES:
            raise DataError(
                f"{s} is an index and Alpaca has no index data. Use SOXX or SMH as [universe] signal with "
                "[data] source = 'alpaca', or keep ^SOX with source = 'csv' (files in data.dir)."
            )


def bar_end(ts: pd.Timestamp, timeframe: str) -> pd.Timestamp:
    """When the bar labelled `ts` is complete (UTC): the session close for daily bars; start + length
    (at most the close) intraday."""
    if not is_intraday(timeframe):
        return session_bounds(ts)[1].tz_convert("UTC")
    close = session_bounds(ts)[1]
    return min(ts + timeframe_delta(timeframe), close).tz_convert("UTC")


def _frame(rows: list[dict[str, Any]], timeframe: str) -> pd.DataFrame:
    if not rows:
        idx = pd.DatetimeIndex([], name="timestamp", tz=None if timeframe == "1d" else TZ)
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS}, index=idx)
    t = pd.to_datetime([r["t"] for r in rows], utc=True).tz_convert(TZ)
    if timeframe == "1d":
        t = t.tz_localize(None).normalize()
    df = pd.DataFrame(
        {
            "open": [float(r["o"]) for r in rows],
            "high": [float(r["h"]) for r in rows],
            "low": [float(r["l"]) for r in rows],
            "close": [float(r["c"]) for r in rows],
            "volume": [float(r.get("v") or 0.0) for r in rows],
        },
        index=pd.DatetimeIndex(t, name="timestamp").as_unit("ns"),
    )
    return df[~df.index.duplicated(keep="last")].sort_index()


def _hourly(df: pd.DataFrame) -> pd.DataFrame:
    """30-minute bars into hours anchored at the session open (09:30, 10:30, ... as the data files)."""
    if df.empty:
        return df
    days = df.index.tz_localize(None).normalize()
    opens = {d: session_bounds(d)[0] for d in days.unique()}
    anchor = pd.DatetimeIndex([opens[d] for d in days])
    hours = ((df.index - anchor) // pd.Timedelta(hours=1)).astype("int64")
    key = anchor + pd.to_timedelta(hours, unit="h")
    g = df.groupby(key)
    out = pd.DataFrame(
        {
            "open": g["open"].first(),
            "high": g["high"].max(),
            "low": g["low"].min(),
            "close": g["close"].last(),
            "volume": g["volume"].sum(),
        }
    )
    out.index = pd.DatetimeIndex(out.index, name="timestamp").as_unit("ns")
    return out


class AlpacaBars:
    """Historical bars of one timeframe from one Alpaca data endpoint, with the on-disk cache."""

    def __init__(
        self,
        cfg: DataConfig,
        key: str | None = None,
        secret: str | None = None,
        timeout: float = 20.0,
        backoff: tuple[float, ...] = (0.3, 1.0, 2.0, 4.0),
        adjustment: str = "all",
    ) -> None:
        if adjustment not in ADJUSTMENTS:
            raise DataError(f"adjustment must be one of {', '.join(ADJUSTMENTS)}, got {adjustment!r}")
        if not key or not secret:
            key, secret = env_keys()
        if not key or not secret:
            raise DataError(
                "data.source = 'alpaca' needs API keys: set APCA_API_KEY_ID and APCA_API_SECRET_KEY "
                "(or [broker] api_key / secret_key)."
            )
        self.cfg = cfg
        self.timeframe = cfg.timeframe
        self.client = harden(
            StockHistoricalDataClient(key, secret, raw_data=True, url_override=cfg.base_url), timeout
        )
        host = urlparse(cfg.base_url).netloc.replace(":", "_") or "alpaca"
        # bars on another price basis must never share the cache with the default (`all`) ones
        basis = cfg.feed if adjustment == "all" else f"{cfg.feed}-{adjustment}"
        self.cache = Path(cfg.cache_dir) / host / basis
        self.adjustment = Adjustment(adjustment)
        self.backoff = backoff
        self.requests = 0

    # -- fetching --------------------------------------------------------------------------------------
    def _get(self, symbols: list[str], tf: TimeFrame, start: pd.Timestamp, end: pd.Timestamp) -> dict:
        req = StockBarsRequest(
            symbol_or_symbols=symbols,
            timeframe=tf,
            start=start.floor("us").to_pydatetime(),
            end=end.floor("us").to_pydatetime(),
            adjustment=self.adjustment,
            feed=DataFeed(self.cfg.feed),
        )
        for i in range(len(self.backoff) + 1):
            try:
                self.requests += 1
                return self.client.get_stock_bars(req) or {}
            except APIError as exc:
                status = exc.status_code
                if status is not None and status < 500 and status != 429:
                    raise
                err: Exception = exc
            except OSError as exc:  # requests' timeouts and connection errors are OSErrors
                err = exc
            if i < len(self.backoff):
                log.warning("bars request failed; retrying", error=_why(err), wait=self.backoff[i])
                time.sleep(self.backoff[i])
        raise DataError(
            f"Alpaca market data did not answer at {self.cfg.base_url} ({_why(err)}): "
            "check [data] base_url and the network."
        )

    def fetch(
        self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp, timeframe: str | None = None
    ) -> dict[str, pd.DataFrame]:
        """Bars with labels in [start, end] (UTC bounds), straight from the API; `timeframe` defaults to
        the configured one (the day's bar so far is built from "1m")."""
        tf = timeframe or self.timeframe
        try:
            if tf == "1h":
                try:
                    raw = self._get(symbols, TimeFrame(30, TimeFrameUnit.Minute), start, end)
                    return {s: _hourly(_frame(raw.get(s, []), "30m")) for s in symbols}
                except APIError:  # a source without 30-minute bars: take its hours as they come
                    raw = self._get(symbols, TimeFrame.Hour, start, end)
            else:
                raw = self._get(symbols, _TF[tf], start, end)
        except APIError as exc:
            if RECENT_SIP in str(exc) and self.cfg.feed == "sip":
                later = end - pd.Timedelta(minutes=16)
                log.warning("free plan: recent SIP data is delayed 15 minutes; asking up to", end=str(later))
                return (
                    self.fetch(symbols, start, later, tf)
                    if later > start
                    else {s: _frame([], tf) for s in symbols}
                )
            raise DataError(_refusal(exc)) from exc
        return {s: _frame(raw.get(s, []), tf) for s in symbols}

    # -- cache -----------------------------------------------------------------------------------------
    def _paths(self, symbol: str) -> tuple[Path, Path]:
        base = self.cache / f"{file_symbol(symbol)}_{self.timeframe}"
        return base.with_suffix(".csv"), base.with_suffix(".range.json")

    def _load(self, symbol: str) -> tuple[pd.DataFrame, tuple[pd.Timestamp, pd.Timestamp] | None]:
        csv, meta = self._paths(symbol)
        if not csv.is_file() or not meta.is_file():
            return _frame([], self.timeframe), None
        from bot.data.csv_feed import load_csv

        try:
            df = load_csv(csv.parent, symbol, self.timeframe)
            rng = json.loads(meta.read_text())
            return df, (pd.Timestamp(rng["from"]), pd.Timestamp(rng["to"]))
        except (DataError, ValueError, KeyError, OSError) as exc:
            log.warning("bar cache unreadable; refetching", path=str(csv), error=str(exc))
            return _frame([], self.timeframe), None

    def _save(self, symbol: str, df: pd.DataFrame, covered: tuple[pd.Timestamp, pd.Timestamp]) -> None:
        csv, meta = self._paths(symbol)
        csv.parent.mkdir(parents=True, exist_ok=True)
        out = df.copy()
        out.index = (
            out.index.strftime("%Y-%m-%d") if self.timeframe == "1d" else [t.isoformat() for t in out.index]
        )
        out.index.name = "timestamp"
        tmp = csv.with_suffix(".tmp")
        out.to_csv(tmp)
        tmp.replace(csv)
        meta.write_text(json.dumps({"from": covered[0].isoformat(), "to": covered[1].isoformat()}))

    def history(
        self, symbols: list[str], start: pd.Timestamp, now: pd.Timestamp, end: pd.Timestamp | None = None
    ) -> dict[str, pd.DataFrame]:
        """Completed bars from `start` up to `end` (default `now`), as the data files hold them. Only the
        part not yet covered by the cache is fetched."""
        check_symbols(symbols)
        start = _utc(start)
        now = _utc(now)
        end = min(_utc(end), now) if end is not None else now
        out: dict[str, pd.DataFrame] = {}
        need: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] = {}
        cached: dict[str, pd.DataFrame] = {}
        covered: dict[str, tuple[pd.Timestamp, pd.Timestamp] | None] = {}
        for s in symbols:
            df, rng = self._load(s)
            cached[s], covered[s] = df, rng
            if rng is None:
                need[s] = [(start, end)]
            else:
                gaps = []
                if start < rng[0]:
                    gaps.append((start, rng[0]))
                if end > rng[1]:  # overlap one bar: the one in progress at rng[1] was not kept
                    gaps.append((rng[1] - timeframe_delta(self.timeframe), end))
                need[s] = gaps
        # one request per distinct span (the usual case: every symbol misses the same recent part)
        spans: dict[tuple[pd.Timestamp, pd.Timestamp], list[str]] = {}
        for s, gaps in need.items():
            for g in gaps:
                spans.setdefault(g, []).append(s)
        fetched: dict[str, list[pd.DataFrame]] = {s: [] for s in symbols}
        for (a, b), syms in spans.items():
            for s, df in self.fetch(syms, a, b).items():
                fetched[s].append(df)
        for s in symbols:
            parts = [cached[s], *fetched[s]]
            df = (
                pd.concat([p for p in parts if not p.empty]) if any(not p.empty for p in parts) else cached[s]
            )
            df = df[~df.index.duplicated(keep="last")].sort_index()
            if len(df):  # drop a bar still in progress (Alpaca serves today's daily bar as it forms)
                recent = [_label_utc(t) > now - pd.Timedelta(days=4) for t in df.index]
                keep = [
                    not r or bar_end(t, self.timeframe) <= now for t, r in zip(df.index, recent, strict=True)
                ]
                df = df[keep]
            if fetched[s]:
                rng = covered[s]
                lo = min(start, rng[0]) if rng else start
                hi = max(end, rng[1]) if rng else end
                self._save(s, df, (lo, hi))
            sel = [start <= _utc(_label_utc(t)) <= end for t in df.index] if len(df) else []
            out[s] = df[sel] if len(df) else df
        return out


def _why(err: Exception) -> str:
    """The useful words of a transport error (requests repeats the URL and the pool's internals)."""
    text = str(err)
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if m:
        return m.group(1).strip()
    if "timed out" in text.lower():
        return "timed out"
    return text[:200]


def _refusal(exc: APIError) -> str:
    """An API refusal in one line, with the fix when it is the keys."""
    try:
        what = str(exc.message)
    except (ValueError, KeyError, TypeError):  # not an Alpaca error body
        what = str(exc)[:200]
    if exc.status_code in (401, 403):
        return (
            f"Alpaca market data refused the keys ({exc.status_code} {what}): set APCA_API_KEY_ID and "
            "APCA_API_SECRET_KEY (or [broker] api_key / secret_key) to a valid key pair."
        )
    return f"Alpaca market data refused the request ({exc.status_code} {what})."


def _label_utc(t: pd.Timestamp) -> pd.Timestamp:
    """A daily label's instant is midnight New York (as Alpaca's daily `t`)."""
    return t.tz_localize(TZ) if t.tzinfo is None else t


def _utc(t: pd.Timestamp) -> pd.Timestamp:
    t = pd.Timestamp(t)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def load_history(cfg: DataConfig, symbols: list[str]) -> dict[str, pd.DataFrame]:
    """`load_bars`' "alpaca" branch: [start, end] dates from the config (default: the last 3 years)."""
    now = pd.Timestamp.now(tz="UTC")
    start = pd.Timestamp(cfg.start).tz_localize(TZ) if cfg.start else now - pd.Timedelta(days=3 * 365)
    end = (pd.Timestamp(cfg.end) + pd.Timedelta(days=1)).tz_localize(TZ) if cfg.end else None
    return AlpacaBars(cfg).history(symbols, start, now, end)
