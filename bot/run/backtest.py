"""The backtest driver: signals computed once, vectorised, over the whole history; then the bars go
through the same `Engine` the live driver uses, with the in-process broker.

By default the event-skipping driver (`bot/run/eventskip.py`) calls `Engine.step` only on bars where
something can happen (a decision, a fill, a stop or take-profit touched, a trailing raise, a risk
limit) and `Engine.advance` over the quiet bars between, whose equity points are filled in at the end
with a few array operations. `every_bar=True` runs the plain loop, `Engine.step` on every bar; both
give the same trades, equity curve and journal (tests/test_eventskip.py). Per stepped bar only what
is per-bar is done: plain floats are passed, and strategy reasons are joined only on bars where the
combined direction changes (the bars on which the engine can act), which is also where signals are
journaled in a backtest.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bot.broker.sim import SimBroker
from bot.core.config import Settings
from bot.core.events import Trade
from bot.core.ids import strategy_set_id
from bot.data.basis import Basis, price_basis
from bot.data.calendar import timeframe_delta
from bot.data.splits import Split, SplitTable, table_for
from bot.data.tape import Tape
from bot.execution.engine import Engine
from bot.journal.journal import Journal
from bot.risk.closing import cutoffs, flat_bars
from bot.risk.sides import risk_for
from bot.risk.sizable import Unsizable, sides, unsizable
from bot.run.eventskip import EventDriver
from bot.signals.combine import combine
from bot.signals.regime import regime_series
from bot.signals.strategy import DIRECTION, REASON, Strategy
from bot.signals.validate import SignalError, WarmupDrift, lookahead, run_signals, warmup_drift

TRADE_COLUMNS = [
    "symbol",
    "side",
    "qty",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "pnl",
    "exit_reason",
]


def set_id_for(cfg: Settings) -> str:
    return strategy_set_id(
        [s.model_dump() for s in cfg.strategies], cfg.universe.model_dump(), cfg.combine.model_dump()
    )


_NS_PER_DAY = 86_400_000_000_000


def session_labels(index: pd.DatetimeIndex) -> np.ndarray:
    """The trading date of each bar as a day number (days since 1970-01-01): the date itself for
    daily bars, the New York date intraday. Plain ints keep the per-bar comparison cheap."""
    if index.tz is not None:
        index = index.tz_convert("America/New_York").tz_localize(None)
    return index.as_unit("ns").asi8 // _NS_PER_DAY


@dataclass
class SignalFrame:
    """Every strategy's output plus the combined direction, on the signal symbol's index."""

    outputs: dict[str, pd.DataFrame]
    combined: np.ndarray
    warmup: int
    checks: list[str] = field(default_factory=list)  # the warm-up drift found (`bot/signals/validate.py`)
    _columns: dict[tuple[str, str], pd.Series] = field(default_factory=dict, repr=False)
    _reasons: list[tuple[str, Any]] | None = field(default=None, repr=False)

    def column(self, name: str, col: str) -> pd.Series:
        """`outputs[name][col]`, looked up once (a DataFrame column lookup costs ~8 us a call)."""
        s = self._columns.get((name, col))
        if s is None:
            s = self._columns[(name, col)] = self.outputs[name][col]
        return s

    def reason_at(self, i: int) -> str:
        if self._reasons is None:  # each strategy's reasons as an array: ~0.2 us a lookup, not ~1.2
            self._reasons = [(name, self.column(name, REASON).array) for name in self.outputs]
        return "; ".join([f"{name}: {arr[i]}" for name, arr in self._reasons])

    def values_at(self, name: str, i: int) -> dict[str, float]:
        out = self.outputs[name]
        return {c: float(self.column(name, c).iat[i]) for c in out.columns if c not in (DIRECTION, REASON)}

    def indicators(self) -> pd.DataFrame:
        cols = {}
        for out in self.outputs.values():
            for c in out.columns:
                if c not in (DIRECTION, REASON):
                    cols[c] = out[c]
        return pd.DataFrame(cols)


def compute_signals(
    cfg: Settings, strategies: Sequence[Strategy], bars: pd.DataFrame, lookahead_check: bool = False
) -> SignalFrame:
    """Every strategy's signals, each output checked (`bot/signals/validate.py`: a SignalError names
    the plugin, the bar and the fix); with `lookahead_check`, recomputed on truncated histories first
    and refused (SignalError) where a row changes."""
    outputs: dict[str, pd.DataFrame] = {}
    checks: list[str] = []
    for s in strategies:
        key = s.name if s.name not in outputs else f"{s.name}#{len(outputs)}"
        outputs[key] = out = run_signals(key, s, bars)
        if lookahead_check:
            found = lookahead(key, s, bars, out)
            if found is not None:
                raise SignalError(found.message())
            checks += [d.message() for d in drifts(key, s, bars, out)]
    d = np.column_stack([o[DIRECTION].to_numpy() for o in outputs.values()])
    weights = [sc.weight for sc in cfg.strategies]
    combined = combine(d, cfg.combine.mode, weights, cfg.combine.threshold)
    return SignalFrame(outputs, combined, max(s.warmup for s in strategies), checks)


def drifts(name: str, s: Strategy, bars: pd.DataFrame, out: pd.DataFrame) -> list[WarmupDrift]:
    """The warm-up check from `warmup + 1` bars and from `memory` bars of history."""
    found = (warmup_drift(name, s, bars, out, h) for h in sorted({s.warmup + 1, s.memory}))
    return [d for d in found if d is not None]


@dataclass
class BacktestResult:
    trades: pd.DataFrame
    equity: pd.DataFrame
    signals: SignalFrame
    bars: dict[str, pd.DataFrame]
    engine: Engine
    seconds: float
    stepped: int = 0  # bars that went through `Engine.step` (the others were quiet: `Engine.advance`)
    basis: dict[str, Basis] = field(default_factory=dict)  # each traded symbol's price basis
    unsizable: list[Unsizable] = field(default_factory=list)  # sides that cannot be bought (told at start)
    preroll: int = 0  # bars before `[data] start` that only warmed up
    checks: list[str] = field(default_factory=list)  # the plugins' warm-up drift, when checked


def size_by_basis(
    cfg: Settings, bars: dict[str, pd.DataFrame], splits: SplitTable | None, engine: Engine
) -> dict[str, Basis]:
    """Each traded symbol's price basis (`bot/data/basis.py`); the back-adjusted ones are sized by
    notional in the engine and the in-process broker. Every driver over bar files calls this."""
    d, r, traded = cfg.data, cfg.risk, cfg.universe.traded
    basis = price_basis(d.price_basis, cfg.broker.starting_cash, bars, traded, splits, r.fractional)
    engine.notional = {s for s, b in basis.items() if b.notional}
    if isinstance(engine.broker, SimBroker):
        engine.broker.notional = engine.notional
    return basis


def split_events(
    splits: SplitTable | None, traded: Sequence[str], bars: dict[str, pd.DataFrame], idx: pd.DatetimeIndex
) -> dict[int, list[Split]]:
    """The bar of `idx` on which each split of a traded symbol takes effect (its first bar on or after
    the split's date), before that bar is stepped."""
    if not splits:
        return {}
    days = session_labels(idx)
    out: dict[int, list[Split]] = {}
    for sym in traded:
        for sp in splits.within(sym, bars[sym].index):
            i = int(np.searchsorted(days, sp.date.value // _NS_PER_DAY, "left"))
            if i < len(idx):
                out.setdefault(i, []).append(sp)
    return out  # fmt: skip


def _times(values: list[Any]) -> Any:
    """Timestamps of one time zone in nanoseconds as a datetime column, built from their integer
    values (pandas converts a list of Timestamp objects at ~3 us each); anything else as is."""
    tz = getattr(values[0], "tz", None)
    if not all(isinstance(v, pd.Timestamp) and v.tz is tz and v.unit == "ns" for v in values):
        return values
    ns = np.fromiter([v.value for v in values], np.int64, len(values)).view("datetime64[ns]")
    return ns if tz is None else pd.DatetimeIndex(ns).tz_localize("UTC").tz_convert(tz)


_FLOAT_COLUMNS = ("qty", "entry_price", "exit_price", "pnl")


def trades_frame(trades: list[Trade]) -> pd.DataFrame:
    if not trades:
        return pd.DataFrame([], columns=TRADE_COLUMNS)
    # built in TRADE_COLUMNS order (no `columns=`: selecting them again costs ~25 us); float columns
    # as arrays when they are all floats (pandas infers a list's dtype ~4x slower), as is otherwise
    cols: dict[str, Any] = {c: [getattr(t, c) for t in trades] for c in TRADE_COLUMNS}
    cols["exit_reason"] = [str(r) for r in cols["exit_reason"]]
    for c in ("entry_time", "exit_time"):
        cols[c] = _times(cols[c])
    for c in _FLOAT_COLUMNS:
        if all(type(v) is float for v in cols[c]):
            cols[c] = np.array(cols[c], float)
    return pd.DataFrame(cols)


_OHLC = ("open", "high", "low", "close")


_WHOLE_FRAME_ROWS = 5_000


def _ohlc_rows(df: pd.DataFrame) -> np.ndarray:
    """The (open, high, low, close) rows as floats. A short frame as one float array where it
    converts (~10 us; four column lookups and a stack cost ~50 us); a long one column by column into
    one array (the whole-frame conversion interleaves every column, the bool `tradable` too: ~0.2 s
    a symbol at 1M bars, against ~10 ms)."""
    names = df.columns.tolist()
    if len(df) > _WHOLE_FRAME_ROWS:
        out = np.empty((len(df), 4))
        for j, c in enumerate(_OHLC):
            out[:, j] = df[c].to_numpy(float)
        return out
    if all(c in names for c in _OHLC) and len(set(names)) == len(names):
        try:
            whole = df.to_numpy(float)
        except (TypeError, ValueError):
            pass
        else:
            return np.ascontiguousarray(whole[:, [names.index(c) for c in _OHLC]])
    return np.column_stack([df[c].to_numpy(float) for c in _OHLC])


def run_backtest(
    cfg: Settings,
    strategies: Sequence[Strategy],
    bars: dict[str, pd.DataFrame],
    journal: Journal | None = None,
    progress: bool = False,
    every_bar: bool = False,
    splits: SplitTable | None = None,
    lookahead_check: bool = False,
) -> BacktestResult:
    """`every_bar=True`: the plain loop, `Engine.step` on every bar; by default the event-skipping
    driver (`bot/run/eventskip.py`) steps only the bars where something can happen, with the same
    trades, equity curve and journal.

    `splits` (default: `[data] splits_file`): the bars of its symbols are as traded; the strategies
    read the signal symbol split-adjusted, and each split of a traded symbol is applied to the engine
    and the in-process broker before its first bar (`bot/execution/splits.py`). A traded symbol on
    back-adjusted prices is sized by notional (`bot/data/basis.py`).

    Bars before `[data] start` (the pre-roll `bot/run/assemble.py` loads) warm the strategies and the
    risk measures; nothing is traded before it and the equity curve starts there.
    `lookahead_check`: see `compute_signals`."""
    import time

    t0 = time.perf_counter()
    uni = cfg.universe
    if splits is None:
        splits = table_for(cfg.data, uni.symbols)
    sig = bars[uni.signal]
    idx = sig.index
    n = len(idx)
    signals = compute_signals(
        cfg, strategies, splits.adjusted(uni.signal, sig) if splits else sig, lookahead_check
    )
    combined = signals.combined
    first = trade_start(idx, cfg.data.start)
    warm = max(signals.warmup, first)
    tradable = sig["tradable"].to_numpy(bool, copy=True) if "tradable" in sig else np.ones(n, bool)
    # the regime gates' figures ([risk.bull]/[risk.bear] regime_*), the live stepper's to the bit;
    # the engine reads them only where it decides, so skipped bars need none
    regime = regime_series(cfg, sig["close"].to_numpy(float))

    # Traded bars aligned to the signal bars, as (open, high, low, close) rows; NaN rows where a
    # symbol has no bar, which means "no fill for that symbol now".
    ohlc: dict[str, np.ndarray] = {}
    present: list[tuple[str, np.ndarray, np.ndarray]] = []
    for sym in uni.traded:
        df = bars[sym] if bars[sym].index.equals(idx) else bars[sym].reindex(idx)
        rows = _ohlc_rows(df)
        mask = ~np.isnan(rows[:, 3])
        ohlc[sym] = rows
        present.append((sym, rows, mask))
        if "tradable" in df:
            col = df["tradable"]  # a bool column has no gaps to fill (no reindex): as it is
            tradable &= (col if col.dtype == bool else col.fillna(False)).to_numpy(bool) | ~mask

    broker = SimBroker.from_settings(cfg)
    set_id = set_id_for(cfg)
    engine = Engine(cfg, set_id, broker, journal, journal_equity=False, tz=idx.tz)
    if engine.hedge is not None:  # hedge mode: the holdings, index and fund bars reach the engine each bar
        every_bar = True
        for sym in engine.hedge.symbols_needed:
            if sym not in uni.traded:
                df = bars[sym] if bars[sym].index.equals(idx) else bars[sym].reindex(idx)
                rows = _ohlc_rows(df)
                present.append((sym, rows, ~np.isnan(rows[:, 3])))
    basis = size_by_basis(cfg, bars, splits, engine)
    traded_rows = {s: r[first:] for s, r in ohlc.items()} if first else ohlc  # not the pre-roll's prices
    cannot = never_sized(cfg, traded_rows, idx[first:], engine.notional)
    events = split_events(splits, uni.traded, bars, idx)
    broker.stamp = engine.stamp  # fills carry the bar's Timestamp, made once per bar
    sessions = session_labels(idx)
    keys = idx.as_unit("ns").asi8  # ns since the epoch (UTC when the index has a time zone)
    changed = np.ones(n, bool)
    changed[1:] = combined[1:] != combined[:-1]
    changed[:warm] = False
    if warm < n:
        changed[warm] = True
    late = late_bars(cfg, idx)  # [service] flat_by_close: the flat bar and the session's bars after it
    if late is not None:
        flat, late = late
        events_flat = np.flatnonzero(flat).tolist()
    else:
        flat, events_flat = None, []
    if engine.events is not None:  # the first bar of each `flat` event blackout is always stepped
        events_flat += engine.events.flat_starts(decision_times(cfg, idx))
    n_min = cfg.service.flat_by_close_minutes
    late_msg = f"flat by close: no entry from the session's flat bar on ({n_min} min before the close)"
    step = engine.step
    stepped = 0
    index_rows = _ohlc_rows(sig) if engine.ix is not None else None  # the engine follows the index

    def step_bar(i: int) -> None:
        """Bar i through `Engine.step`, with the signals journaled where the direction changes."""
        nonlocal stepped
        stepped += 1
        if events and i in events:
            for sp in events[i]:
                engine.apply_split(int(keys[i]), sp.symbol, sp.ratio, source=splits.name)  # type: ignore[union-attr]
        bars_i = {sym: tuple(rows[i].tolist()) for sym, rows, mask in present if mask[i]}
        ib = tuple(index_rows[i].tolist()) if index_rows is not None else None
        if flat is not None:
            engine.entry_block = late_msg if late[i] else None
        if i < warm:
            step(int(keys[i]), int(sessions[i]), bars_i, None, index_bar=ib)  # type: ignore[arg-type]
            if flat is not None and flat[i]:
                engine.flat_by_close()
            return
        direction = int(combined[i])
        if changed[i]:
            reason = signals.reason_at(i)
            if journal is not None:
                for name in signals.outputs:
                    journal.signal(
                        idx[i],
                        uni.signal,
                        name,
                        int(signals.column(name, DIRECTION).iat[i]),
                        str(signals.column(name, REASON).iat[i]),
                        signals.values_at(name, i),
                    )
                journal.signal(idx[i], uni.signal, "combined", direction, reason)
        else:
            reason = ""
        fig = regime.at(i) if regime is not None else None
        step(int(keys[i]), int(sessions[i]), bars_i, direction, bool(tradable[i]), reason, fig, ib)  # type: ignore[arg-type]
        if flat is not None and flat[i]:
            engine.flat_by_close()

    bar = None
    if progress and n > 20_000:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="bar", desc="backtest", mininterval=0.5)
    if every_bar:
        for i in range(n):
            step_bar(i)
            if bar is not None:
                bar.update(1)
    else:
        changes = np.flatnonzero(changed).tolist()
        if events or events_flat:  # a split's bar and a flat-by-close bar are always stepped
            changes = sorted(set(changes) | set(events) | set(events_flat))
        on_done = bar.update if bar is not None else None
        tape = Tape(keys, sessions, ohlc, index_rows)
        EventDriver(engine, broker, tape, combined, warm, changes, step_bar, on_done).run()
    if bar is not None:
        bar.close()
    if n:
        engine.finish(int(keys[-1]))
    equity = engine.equity_log.frame(idx.tz)
    if first:
        equity = equity.iloc[first:]  # the pre-roll: flat at the starting cash, not part of the run
    if journal is not None:
        journal.equity_bulk(equity)
        journal.flush()
    return BacktestResult(
        trades_frame(engine.trades),
        equity,
        signals,
        bars,
        engine,
        time.perf_counter() - t0,
        stepped,
        basis,
        cannot,
        first,
        signals.checks,
    )


def trade_start(idx: pd.DatetimeIndex, start: object) -> int:
    """The first bar on or after `start` (a date; the session date for intraday bars): the bars
    before it are pre-roll. 0 without a start."""
    if start is None or not len(idx):
        return 0
    day = pd.Timestamp(start).normalize().value // _NS_PER_DAY
    return int(np.searchsorted(session_labels(idx), day, "left"))


def decision_times(cfg: Settings, idx: pd.DatetimeIndex) -> np.ndarray:
    """When each bar's decision is made (UTC ns): an intraday bar's end; a daily bar's close less
    `[service] daily_decision_offset_minutes`, as `EventGuard.decision_ns` computes it per bar."""
    if cfg.data.timeframe != "1d":
        return idx.as_unit("ns").asi8 + int(timeframe_delta(cfg.data.timeframe).value)
    days = session_labels(idx)
    labels = pd.DatetimeIndex(days * _NS_PER_DAY)
    return cutoffs(labels, cfg.service.daily_decision_offset_minutes)


def late_bars(cfg: Settings, idx: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray] | None:
    """`[service] flat_by_close` on intraday bars (`bot/risk/closing.py`): (flat, late), flat[i] on the
    bar whose close order fills before the cut-off, late[i] on it and the session's bars after it (no
    entries). None when off; daily bars have no time of day to close at (said once)."""
    svc = cfg.service
    if not svc.flat_by_close:
        return None
    if cfg.data.timeframe == "1d" or idx.tz is None:
        from bot.core.log import get

        get("soxbot.backtest").warning(
            'flat_by_close needs intraday bars in a backtest ([data] timeframe = "5m", say): ignored'
        )
        return None
    flat = flat_bars(idx, cfg.data.timeframe, svc.flat_by_close_minutes)
    days = session_labels(idx)
    sess = np.cumsum(np.r_[True, days[1:] != days[:-1]]) - 1  # one flat bar per session, in order
    late = np.arange(len(idx)) >= np.flatnonzero(flat)[sess]
    return flat, late


def never_sized(
    cfg: Settings, ohlc: dict[str, np.ndarray], idx: pd.DatetimeIndex, notional: Collection[str] = ()
) -> list[Unsizable]:
    """Each side whose price (its close) is above what the starting cash can buy of it on some bars:
    said once, on screen, at the start (and kept for the summary), not only bar by bar in the journal.
    A side sized by notional (back-adjusted prices, `bot/data/basis.py`) can always be sized."""
    from bot.core.log import get

    out = []
    for side, sym in sides(cfg):
        if sym in notional:
            continue
        rules = cfg.model_copy(update={"risk": risk_for(cfg, sym)})  # the side's own size and stop
        u = unsizable(rules, side, sym, ohlc[sym][:, 3], idx, cfg.broker.starting_cash)
        if u is not None:
            get("soxbot.backtest").warning(u.message(cfg.risk.fractional))
            out.append(u)
    return out
