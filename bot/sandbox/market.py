"""Bars the sandbox replays: loading (CSV files or the synthetic model), the "no peeking" rule (only
bars completed by simulated now are visible), Alpaca-style history pages and latest bar/quote/trade.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bot.sandbox.clock import NY, Calendar

TF_MINUTES: dict[str, int | None] = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "1d": None}
MAX_PAGE = 10_000


class DataError(ValueError):
    """A request the data can not answer (bad timeframe, bad token...): surfaced as 400/422."""


# ---------------------------------------------------------------- loading


def read_bar_file(directory: Path, symbol: str, timeframe: str) -> pd.DataFrame:
    """One `{SYMBOL}_{TF}.csv` as a frame indexed by timestamp (the one place to switch to csv_feed)."""
    try:
        from bot.data.csv_feed import load_csv  # type: ignore[import-not-found]
    except ImportError:
        load_csv = None
    if load_csv is not None:
        return _normalise(load_csv(directory, symbol, timeframe, None, None), timeframe)
    df = pd.read_csv(Path(directory) / f"{symbol}_{timeframe}.csv")
    return _normalise(df, timeframe)


def synthetic_frames(symbols: list[str], timeframe: str, start: pd.Timestamp, years: float, seed: int
                     ) -> dict[str, pd.DataFrame]:
    """Seeded bars from bot.data.synthetic when present; a plain seeded random walk until then."""
    try:
        from bot.data.synthetic import generate  # type: ignore[import-not-found]
    except ImportError:
        generate = None
    if generate is not None:
        out = generate(symbols, timeframe, start.strftime("%Y-%m-%d"), years, seed)
        return {s: _normalise(df, timeframe) for s, df in out.items()}
    return _random_walk(symbols, timeframe, start, years, seed)


def _random_walk(symbols: list[str], timeframe: str, start: pd.Timestamp, years: float, seed: int
                 ) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    cal = Calendar(start, start + pd.Timedelta(days=int(366 * years) + 7))
    sessions = [s for s in cal.sessions_between(start, start + pd.Timedelta(days=int(365.25 * years)))]
    minutes = TF_MINUTES[timeframe]
    if minutes is None:
        index = pd.DatetimeIndex([s.date for s in sessions])
    else:
        parts = [pd.date_range(s.open, s.close, freq=f"{minutes}min", inclusive="left") for s in sessions]
        index = pd.DatetimeIndex(np.concatenate([p.asi8 for p in parts])).tz_localize("UTC")
    per_year = len(index) / max(years, 1e-9)
    out = {}
    for sym in symbols:
        vol = 0.45 / np.sqrt(per_year)
        rets = rng.normal(0.0, vol, len(index))
        close = 50.0 * np.exp(np.cumsum(rets))
        open_ = np.concatenate([[50.0], close[:-1]]) * np.exp(rng.normal(0, vol / 4, len(index)))
        wick = np.abs(rng.normal(0, vol / 2, len(index)))
        high = np.maximum(open_, close) * (1 + wick)
        low = np.minimum(open_, close) * (1 - wick)
        vol_sh = rng.integers(10_000, 1_000_000, len(index)).astype(float)
        out[sym] = pd.DataFrame(
            {"open": open_, "high": high, "low": low, "close": close, "volume": vol_sh}, index=index
        ).round(4)
    return out


def _normalise(df: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Index = bar start (daily: naive session dates; intraday: UTC); lower-case OHLCV columns."""
    df = df.copy()
    df.columns = [str(c).lower() for c in df.columns]
    if "timestamp" in df.columns:
        df = df.set_index("timestamp")
    idx = df.index
    if TF_MINUTES[timeframe] is None:
        idx = pd.DatetimeIndex(pd.to_datetime(idx, utc=False))
        if idx.tz is not None:
            idx = idx.tz_convert(NY).tz_localize(None)
        idx = idx.normalize()
    else:
        idx = pd.DatetimeIndex(pd.to_datetime(idx, utc=True))
    df.index = idx
    df = df[["open", "high", "low", "close", "volume"]].astype(float)
    return df[~df.index.duplicated(keep="last")].sort_index()


# ---------------------------------------------------------------- in-memory bars


@dataclass(frozen=True)
class SymbolBars:
    """Bars of one symbol as arrays. start/end are UTC ns; `label` is what REST reports as `t`."""

    symbol: str
    start: np.ndarray
    end: np.ndarray
    label: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    def completed(self, now_ns: int) -> int:
        """How many bars have ended by `now` (bars [0, n) are visible)."""
        return int(np.searchsorted(self.end, now_ns, side="right"))


def to_symbol_bars(symbol: str, df: pd.DataFrame, timeframe: str, cal: Calendar) -> SymbolBars:
    minutes = TF_MINUTES[timeframe]
    if minutes is None:
        pos = np.searchsorted(cal.dates.asi8, df.index.asi8)
        pos_ok = (pos < len(cal)) & (cal.dates.asi8[np.minimum(pos, len(cal) - 1)] == df.index.asi8)
        df = df[pos_ok]
        pos = pos[pos_ok]
        start = cal.opens.asi8[pos]
        end = cal.closes.asi8[pos]
        label = df.index.tz_localize(NY).tz_convert("UTC").asi8
    else:
        start = df.index.asi8
        i = np.searchsorted(cal.closes.asi8, start, side="right")
        inside = (i < len(cal)) & (cal.opens.asi8[np.minimum(i, len(cal) - 1)] <= start)
        df = df[inside]
        start = start[inside]
        i = i[inside]
        end = np.minimum(start + minutes * 60 * 1_000_000_000, cal.closes.asi8[i])
        label = start
    return SymbolBars(
        symbol, np.asarray(start, dtype=np.int64), np.asarray(end, dtype=np.int64),
        np.asarray(label, dtype=np.int64), df["open"].to_numpy(), df["high"].to_numpy(),
        df["low"].to_numpy(), df["close"].to_numpy(), df["volume"].to_numpy(),
    )


# ---------------------------------------------------------------- request timeframes

_TF_RE = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_UNIT = {"T": "Min", "H": "Hour", "D": "Day", "W": "Week", "M": "Month"}


def parse_timeframe(text: str) -> tuple[int, str]:
    m = _TF_RE.match(text or "")
    if not m:
        raise DataError(f"invalid timeframe: {text!r}")
    amount, unit = int(m.group(1)), _UNIT.get(m.group(2), m.group(2))
    if amount < 1 or (unit == "Min" and amount > 59) or (unit == "Hour" and amount > 23) or (
        unit in ("Day", "Week") and amount != 1
    ) or (unit == "Month" and amount not in (1, 2, 3, 4, 6, 12)):
        raise DataError(f"invalid timeframe: {text!r}")
    return amount, unit


def _bars_frame(sb: SymbolBars, lo: int, hi: int) -> pd.DataFrame:
    return pd.DataFrame({
        "start": sb.start[lo:hi], "label": sb.label[lo:hi], "o": sb.open[lo:hi], "h": sb.high[lo:hi],
        "l": sb.low[lo:hi], "c": sb.close[lo:hi], "v": sb.volume[lo:hi],
    })


def aggregate(sb: SymbolBars, lo: int, hi: int, amount: int, unit: str, native: str) -> pd.DataFrame:
    """Bars [lo, hi) of a symbol in the requested timeframe: columns t(ns) o h l c v n vw."""
    df = _bars_frame(sb, lo, hi)
    native_min = TF_MINUTES[native]
    req_min = amount if unit == "Min" else amount * 60 if unit == "Hour" else None
    if req_min is not None:
        if native_min is None or req_min % native_min:
            raise DataError(f"timeframe {amount}{unit} is not available from the sandbox's {native} bars")
        if req_min == native_min:
            df["t"] = df["label"]
            return _finish(df.assign(n=1))
        step = req_min * 60 * 1_000_000_000
        local = pd.DatetimeIndex(df["start"].to_numpy()).tz_localize("UTC").tz_convert(NY)
        offs = local.tz_localize(None).asi8 - local.asi8  # local wall-clock shift
        key = ((df["start"].to_numpy() + offs) // step) * step - offs
    else:
        if native_min is None and unit == "Day":
            df["t"] = df["label"]
            return _finish(df.assign(n=1))
        day = pd.DatetimeIndex(df["start"].to_numpy()).tz_localize("UTC").tz_convert(NY).tz_localize(None)
        day = day.normalize()
        if unit == "Week":
            day = day - pd.to_timedelta(day.weekday, unit="D")
        elif unit == "Month":
            months = (day.year - 1970) * 12 + day.month - 1
            months = (months // amount) * amount
            day = pd.DatetimeIndex(
                pd.to_datetime({"year": 1970 + months // 12, "month": months % 12 + 1, "day": 1})
            )
        key = pd.DatetimeIndex(day).tz_localize(NY).tz_convert("UTC").asi8
    df["t"] = key
    g = df.groupby("t", sort=True)
    out = pd.DataFrame({
        "o": g["o"].first(), "h": g["h"].max(), "l": g["l"].min(), "c": g["c"].last(), "v": g["v"].sum(),
        "n": g["o"].size(),
    })
    out["pv"] = (df.assign(pv=(df["h"] + df["l"] + df["c"]) / 3 * df["v"]).groupby("t")["pv"].sum())
    out = out.reset_index()
    return _finish(out)


def _finish(df: pd.DataFrame) -> pd.DataFrame:
    if "pv" in df:
        typical = (df["h"] + df["l"] + df["c"]) / 3
        df["vw"] = np.where(df["v"] > 0, df["pv"] / df["v"].where(df["v"] > 0, 1), typical)
    else:
        df["vw"] = (df["h"] + df["l"] + df["c"]) / 3
    return df[["t", "o", "h", "l", "c", "v", "n", "vw"]].reset_index(drop=True)


def encode_token(symbol: str, t_ns: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([symbol, int(t_ns)]).encode()).decode()


def decode_token(token: str) -> tuple[str, int]:
    try:
        sym, t = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(sym), int(t)
    except Exception as exc:
        raise DataError("invalid page_token") from exc


class MarketData:
    """All replayed bars plus the calendar, answering only with what is visible at `now`."""

    def __init__(self, frames: dict[str, pd.DataFrame], timeframe: str, cal: Calendar) -> None:
        if timeframe not in TF_MINUTES:
            raise ValueError(f"timeframe must be one of {sorted(TF_MINUTES)}, got {timeframe!r}")
        self.timeframe = timeframe
        self.calendar = cal
        self.bars = {s: to_symbol_bars(s, df, timeframe, cal) for s, df in sorted(frames.items())}
        # simulated splits (bot/sandbox/splits.py): a price seen before t_ns, read at or after it, times f
        self.factors: dict[str, list[tuple[int, float]]] = {}

    @property
    def symbols(self) -> list[str]:
        return list(self.bars)

    def first_start(self) -> pd.Timestamp:
        return pd.Timestamp(min(b.start[0] for b in self.bars.values() if len(b)), tz="UTC")

    def last_end(self) -> pd.Timestamp:
        return pd.Timestamp(max(b.end[-1] for b in self.bars.values() if len(b)), tz="UTC")

    def default_start(self, warmup: int = 300) -> pd.Timestamp:
        """Half an hour before the open of the session where every symbol has `warmup` bars behind it."""
        t = max(int(b.start[min(warmup, len(b) // 2)]) for b in self.bars.values() if len(b))
        sess = self.calendar.current_or_next(pd.Timestamp(t, tz="UTC"))
        base = sess.open if sess is not None else pd.Timestamp(t, tz="UTC")
        return base - pd.Timedelta(minutes=30)

    # -------- latest values

    def last_price(self, symbol: str, now: pd.Timestamp) -> tuple[float, pd.Timestamp] | None:
        """The latest trade price at `now`: the open of a bar in progress, else the last close."""
        sb = self.bars.get(symbol)
        if sb is None or not len(sb):
            return None
        n = now.value
        started = int(np.searchsorted(sb.start, n, side="right"))
        if started == 0:
            return None
        i = started - 1
        if sb.end[i] > n:
            p, t = float(sb.open[i]), int(sb.start[i])
        else:
            p, t = float(sb.close[i]), int(sb.end[i])
        for t_ns, f in self.factors.get(symbol, ()):
            if t < t_ns <= n:
                p *= f
        return p, pd.Timestamp(t, tz="UTC")

    def latest_bar(self, symbol: str, now: pd.Timestamp) -> dict | None:
        sb = self.bars.get(symbol)
        if sb is None:
            return None
        k = sb.completed(now.value)
        if k == 0:
            return None
        df = aggregate(sb, k - 1, k, *_native_request(self.timeframe), self.timeframe)
        return bar_json(df.iloc[0])

    def history(self, symbols: list[str], timeframe: str, start: pd.Timestamp, end: pd.Timestamp,
                now: pd.Timestamp, limit: int, page_token: str | None, sort: str = "asc"
                ) -> tuple[dict[str, list[dict]], str | None]:
        """One page of bars: ordered by symbol then time, `limit` in total, opaque continuation token."""
        amount, unit = parse_timeframe(timeframe)
        if not 1 <= limit <= MAX_PAGE:
            raise DataError(f"invalid limit: must be between 1 and {MAX_PAGE}")
        desc = sort == "desc"
        syms = sorted(set(symbols))
        tok_sym, tok_t = decode_token(page_token) if page_token else (None, None)
        out: dict[str, list[dict]] = {}
        remaining = limit
        for sym in syms:
            if tok_sym is not None and sym < tok_sym:
                continue
            sb = self.bars.get(sym)
            if sb is None or not len(sb):
                continue
            visible = sb.completed(now.value)
            # generous source window; exact filtering on the aggregated labels below
            lo = int(np.searchsorted(sb.start, (start - pd.Timedelta(days=32)).value, side="left"))
            hi = min(visible, int(np.searchsorted(sb.start, (end + pd.Timedelta(days=1)).value, "right")))
            if hi <= lo:
                continue
            df = aggregate(sb, lo, hi, amount, unit, self.timeframe)
            df = df[(df["t"] >= start.value) & (df["t"] <= end.value)]
            if desc:
                df = df.iloc[::-1]
            if sym == tok_sym:
                df = df[df["t"] <= tok_t] if desc else df[df["t"] >= tok_t]
            if df.empty:
                continue
            take = df.iloc[:remaining]
            out[sym] = [bar_json(r) for r in take.itertuples(index=False)]
            remaining -= len(take)
            if remaining == 0:
                if len(df) > len(take):
                    return out, encode_token(sym, int(df.iloc[len(take)]["t"]))
                later = [s for s in syms if s > sym and s in self.bars and _has_any(
                    self.bars[s], start, end, now)]
                if later:
                    first = self.history([later[0]], timeframe, start, end, now, 1, None, sort)[0]
                    if first.get(later[0]):
                        t0 = pd.Timestamp(first[later[0]][0]["t"]).value
                        return out, encode_token(later[0], t0)
                return out, None
        return out, None


def _has_any(sb: SymbolBars, start: pd.Timestamp, end: pd.Timestamp, now: pd.Timestamp) -> bool:
    visible = sb.completed(now.value)
    return visible > 0 and sb.start[0] <= end.value and sb.end[visible - 1] > start.value


def _native_request(timeframe: str) -> tuple[int, str]:
    m = TF_MINUTES[timeframe]
    return (1, "Day") if m is None else (m, "Min") if m < 60 else (m // 60, "Hour")


def bar_json(r) -> dict:
    t = int(r.t if hasattr(r, "t") else r["t"])
    get = (lambda k: getattr(r, k)) if hasattr(r, "o") else (lambda k: r[k])
    return {
        "t": _iso_ns(t), "o": float(get("o")), "h": float(get("h")), "l": float(get("l")),
        "c": float(get("c")), "v": round(float(get("v"))), "n": int(get("n")),
        "vw": round(float(get("vw")), 6),
    }


def _iso_ns(t_ns: int) -> str:
    ts = pd.Timestamp(t_ns, tz="UTC")
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")
