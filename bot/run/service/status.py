"""`soxbot status`: what the bot holds, what it will do next, and whether anything is locked or stale.

Read from the journal (opened read-only, so a running bot is not disturbed): the last run's mode,
positions rebuilt from its fills, open orders, today's P&L from its equity rows, the daily-loss lock
from its risk verdicts, the kill switch from the `state` table. When a broker is given its positions
and open orders are shown too, and a disagreement with the journal is called out (to reconcile).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bot.data import calendar as xnys
from bot.run.service.schedule import NY, UTC, SchedulerInfo, ScheduleSpec, next_jobs

Attribute = Callable[[list["JournalPosition"], str | None, dict[str, Any]], list[str]]
KILL_KEY = "kill_switch"  # bot.execution.engine.KILL_KEY; the engine sits above this module in the flow
TERMINAL = {"filled", "canceled", "cancelled", "rejected", "expired", "replaced", "done_for_day"}


@dataclass(frozen=True, slots=True)
class JournalPosition:
    symbol: str
    qty: float
    entry_price: float
    entry_time: str
    mark: float | None
    stop: float | None
    take_profit: float | None


@dataclass(frozen=True, slots=True)
class OpenOrder:
    client_order_id: str
    ts: str
    symbol: str
    side: str
    qty: float
    type: str
    intent: str
    stop_price: float | None
    limit_price: float | None
    status: str

    def line(self) -> str:
        px = f" @ {self.stop_price:.4f}" if self.stop_price else ""
        px = px or (f" @ {self.limit_price:.4f}" if self.limit_price else "")
        return (
            f"{self.side.upper()} {self.qty:g} {self.symbol} {self.type}{px} [{self.intent}] "
            f"{self.status} since {self.ts}  ({self.client_order_id})"
        )


# -- reading the journal -------------------------------------------------------------------------
def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise FileNotFoundError(f"No journal at {path}. Run `soxbot run` or `soxbot backtest` first.")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    return db


def _family(cid: str) -> tuple[str, int]:
    """'...-stop-r3' -> ('...-stop', 3): later revisions replace earlier ones (trailing stops)."""
    base, _, rev = cid.rpartition("-r")
    if base and rev.isdigit():
        return base, int(rev)
    return cid, 0


def open_orders(db: sqlite3.Connection, run_id: int) -> list[OpenOrder]:
    """Orders not in a final state, keeping only the latest revision of each replaced stop."""
    rows = db.execute("SELECT * FROM orders WHERE run_id=? ORDER BY rowid", (run_id,)).fetchall()
    latest: dict[str, tuple[int, sqlite3.Row]] = {}
    for r in rows:
        base, rev = _family(r["client_order_id"])
        if base not in latest or rev >= latest[base][0]:
            latest[base] = (rev, r)
    out = []
    for _, r in latest.values():
        if str(r["status"]).lower() in TERMINAL:
            continue
        out.append(
            OpenOrder(
                r["client_order_id"],
                r["ts"],
                r["symbol"],
                r["side"],
                float(r["qty"]),
                r["type"],
                r["intent"],
                r["stop_price"],
                r["limit_price"],
                r["status"],
            )
        )
    return out


def journal_positions(db: sqlite3.Connection, run_id: int, orders: list[OpenOrder]) -> list[JournalPosition]:
    """Long positions rebuilt from the run's fills (average cost since the last flat)."""
    book: dict[str, list[Any]] = {}  # symbol -> [qty, cost, entry_time]
    for f in db.execute("SELECT * FROM fills WHERE run_id=? ORDER BY rowid", (run_id,)):
        qty, cost, since = book.get(f["symbol"], [0.0, 0.0, ""])
        if f["side"] == "buy":
            since = since if qty > 1e-9 else f["ts"]
            qty, cost = qty + f["qty"], cost + f["qty"] * f["price"]
        else:
            left = max(qty - f["qty"], 0.0)
            cost = cost * left / qty if qty > 1e-9 else 0.0
            qty = left
        book[f["symbol"]] = [qty, cost, since]
    held = {s: v for s, v in book.items() if v[0] > 1e-9}
    mark_value = None
    row = db.execute(
        "SELECT position_value FROM equity WHERE run_id=? ORDER BY rowid DESC LIMIT 1", (run_id,)
    ).fetchone()
    if row is not None and len(held) == 1:
        mark_value = float(row["position_value"])
    out = []
    for sym, (qty, cost, since) in sorted(held.items()):
        stop = next((o.stop_price for o in orders if o.symbol == sym and o.intent == "stop"), None)
        tp = next((o.limit_price for o in orders if o.symbol == sym and o.intent == "tp"), None)
        mark = mark_value / qty if mark_value is not None and mark_value > 0 else None
        out.append(JournalPosition(sym, qty, cost / qty, since, mark, stop, tp))
    return out


def _bar_end(ts: str, timeframe: str) -> dt.datetime:
    """When the data of a bar labelled `ts` runs to: a daily label's session close, else start + tf."""
    t = pd.Timestamp(ts)
    if not xnys.is_intraday(timeframe):
        day = t.tz_convert(NY).date() if t.tzinfo else t.date()
        if xnys.is_session(day):
            return xnys.session_bounds(day)[1].to_pydatetime()
        return dt.datetime.combine(day, dt.time(16), NY)
    if t.tzinfo is None:
        t = t.tz_localize(NY)
    return (t + xnys.timeframe_delta(timeframe)).to_pydatetime()


def _session_of(ts: str) -> dt.date:
    t = pd.Timestamp(ts)
    return t.tz_convert(NY).date() if t.tzinfo else t.date()


def _age(seconds: float) -> str:
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d"


def _spec_from(config: Mapping[str, Any]) -> ScheduleSpec:
    data, svc = config.get("data", {}), config.get("service", {})
    flat = svc.get("flat_by_close", False)
    return ScheduleSpec(
        timeframe=data.get("timeframe", "1d"),
        daily_offset=dt.timedelta(minutes=svc.get("daily_decision_offset_minutes", 10)),
        flat_by_close=dt.timedelta(minutes=svc.get("flat_by_close_minutes", 5)) if flat else None,
    )


# -- the broker ------------------------------------------------------------------------------------
def _num(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def broker_positions(broker: Any) -> dict[str, dict[str, float | None]]:
    """Positions from a broker: `positions` as a mapping symbol -> qty (the paper broker) or a
    method/list of objects with symbol, qty and optionally avg_entry_price, current_price,
    unrealized_pl (Alpaca's Position)."""
    raw = getattr(broker, "positions", None)
    if callable(raw):
        raw = raw()
    out: dict[str, dict[str, float | None]] = {}
    if raw is None:
        return out
    items = raw.items() if isinstance(raw, Mapping) else ((getattr(p, "symbol", "?"), p) for p in raw)
    for sym, p in items:
        if isinstance(p, int | float | str):
            out[str(sym)] = {"qty": _num(p), "avg": None, "price": None, "upl": None}
        else:
            out[str(sym)] = {
                "qty": _num(getattr(p, "qty", None)),
                "avg": _num(getattr(p, "avg_entry_price", None)),
                "price": _num(getattr(p, "current_price", None)),
                "upl": _num(getattr(p, "unrealized_pl", None)),
            }
    return out


# -- the report ------------------------------------------------------------------------------------
def status_report(
    journal_path: str | Path,
    broker: Any = None,
    scheduler_info: SchedulerInfo | None = None,
    now: dt.datetime | None = None,
    n_next: int = 5,
    clock: str | None = None,
    attribution: Attribute | None = None,
    events: Callable[[dt.datetime], list[str]] | None = None,
) -> str:
    """The text `soxbot status` prints. `now` is the time the bot lives on: the broker's clock when
    it runs against one (the sandbox's simulated date in a rehearsal), named by `clock`.
    `attribution(positions, last mark time, the run's config)`: lines shown under the positions (the
    decay and carry of leveraged funds, bot/run/position_attribution.py); `events(now)`: the event
    calendar's lines (bot/run/service/events_status.py)."""
    now = now or dt.datetime.now(UTC)
    path = Path(journal_path)
    db = _connect(path)
    try:
        lines = _report(db, path, broker, scheduler_info, now, n_next, attribution)
    finally:
        db.close()
    if events is not None:  # the event calendar's countdown ([events] file)
        lines += events(now)
    if clock:
        lines.insert(1, f"clock: {clock}, now {now.astimezone(NY):%a %Y-%m-%d %H:%M %Z}")
    return "\n".join(lines)


def _report(
    db: sqlite3.Connection,
    path: Path,
    broker: Any,
    info: SchedulerInfo | None,
    now: dt.datetime,
    n_next: int,
    attribution: Attribute | None = None,
) -> list[str]:
    lines = [f"soxbot status ({path})"]
    run = db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    if run is None:
        return [*lines, "no runs in this journal yet"]
    run_id, mode = int(run["id"]), str(run["mode"])
    config = json.loads(run["config"] or "{}")
    replay = "replay" in mode or "backtest" in mode
    synth = " [SYNTHETIC DATA]" if run["synthetic"] else ""
    ended = f", ended {run['ended_at']}" if run["ended_at"] else ""
    lines.append(f"mode: {mode}{synth}  (run #{run_id}, {run['status']}, started {run['started_at']}{ended})")

    # schedule
    if info is None and not replay:
        info = SchedulerInfo.planned(now, _spec_from(config), n_next)
    if info is None:
        lines.append("schedule: none (a replay steps through bars, not the market clock)")
    else:
        lines.append(f"schedule ({info.timeframe}), next runs:")
        runs = info.next_runs[:n_next] or next_jobs(now, info.timeframe, n_next)
        lines += [f"  {j.at.astimezone(NY):%a %Y-%m-%d %H:%M %Z}  {j.kind}" for j in runs]
        if info.ran or info.skipped or info.errors:
            lines.append(
                f"  jobs so far: {info.ran} ran, {info.skipped} skipped as too late, {info.errors} failed"
            )

    # positions and orders
    orders = open_orders(db, run_id)
    pos = journal_positions(db, run_id, orders)
    lines.append(
        f"positions (journal, run #{run_id}):" if pos else f"positions (journal, run #{run_id}): flat"
    )
    for p in pos:
        stop = f"stop {p.stop:.4f}" if p.stop is not None else "NO STOP"
        tp = f"  take-profit {p.take_profit:.4f}" if p.take_profit is not None else ""
        if p.mark is not None:
            pnl = (p.mark - p.entry_price) * p.qty
            val = f"mark {p.mark:.4f}  P&L {pnl:+,.2f} ({p.mark / p.entry_price - 1:+.2%})"
        else:
            val = "mark n/a"
        lines.append(f"  {p.symbol} {p.qty:g} @ {p.entry_price:.4f} since {p.entry_time}  {stop}{tp}  {val}")
    if attribution is not None and pos:
        last = db.execute(
            "SELECT ts FROM equity WHERE run_id=? ORDER BY rowid DESC LIMIT 1", (run_id,)
        ).fetchone()
        lines += attribution(pos, last["ts"] if last else None, config)
    lines.append("open orders (journal):" if orders else "open orders (journal): none")
    lines += [f"  {o.line()}" for o in orders]
    if broker is not None:
        lines += _broker_lines(broker, pos)

    # today's P&L
    eq = db.execute("SELECT ts, equity FROM equity WHERE run_id=? ORDER BY rowid", (run_id,)).fetchall()
    last_ts = eq[-1]["ts"] if eq else None
    if eq:
        day = _session_of(last_ts)
        before = [r for r in eq if _session_of(r["ts"]) < day]
        start = (
            float(before[-1]["equity"])
            if before
            else float(config.get("broker", {}).get("starting_cash", eq[0]["equity"]))
        )
        end = float(eq[-1]["equity"])
        lines.append(f"P&L {day}: {end - start:+,.2f} ({end / start - 1:+.2%})  equity {end:,.2f}")
    else:
        lines.append("P&L: no equity recorded yet")

    # locks
    lines.append("locks: " + _locks(db, run_id, last_ts))
    hedge = db.execute("SELECT value FROM state WHERE key='hedge'").fetchone()
    if hedge is not None and hedge["value"]:
        lines.append(_hedge_line(json.loads(hedge["value"])))

    # data freshness
    if last_ts is None:
        lines.append("data: no bar yet")
    else:
        tf = config.get("data", {}).get("timeframe", "1d")
        end_t = _bar_end(last_ts, tf)
        note = "  (replayed history)" if replay else ""
        lines.append(
            f"data: last bar {last_ts} ({tf}), runs to {end_t.astimezone(NY):%Y-%m-%d %H:%M %Z}, "
            f"age {_age((now - end_t).total_seconds())}{note}"
        )
    return lines


def _hedge_line(h: dict[str, Any]) -> str:
    """Hedge mode's figures as the engine left them (`state` row `hedge`, bot/execution/hedge.py)."""

    def pct(x: Any) -> str:
        return "n/a" if x is None else f"{x:+.1%}"

    ratio = "n/a" if h.get("ratio") is None else f"{h['ratio']:.2f}"
    return (
        f"hedge: {h.get('qty', 0):g} {h.get('symbol', '')}, ratio {ratio} of the beta-weighted exposure, "
        f"drift {pct(h.get('drift'))} from target {h.get('target', 0):,.0f}, cost so far "
        f"{h.get('cost_so_far', 0):,.2f} ({h.get('rebalances', 0)} trades; as of {h.get('at', '?')})"
    )


def _locks(db: sqlite3.Connection, run_id: int, last_ts: str | None) -> str:
    row = db.execute("SELECT value FROM state WHERE key=?", (KILL_KEY,)).fetchone()
    kill = row["value"] if row and row["value"] else None
    lock = db.execute(
        "SELECT ts, action, reason FROM risk WHERE run_id=? AND action IN ('lock', 'unlock') "
        "ORDER BY rowid DESC LIMIT 1",
        (run_id,),
    ).fetchone()
    daily = "off"
    if (
        lock is not None
        and lock["action"] == "lock"
        and last_ts is not None
        and _session_of(lock["ts"]) == _session_of(last_ts)
    ):
        daily = f"ON since {lock['ts']}: {lock['reason']}"
    ks = f"ON ({kill}); run `soxbot rearm` after review" if kill else "off"
    unknown = db.execute(
        "SELECT reason FROM risk WHERE run_id=? AND action='alert' AND reason LIKE 'unknown state%' "
        "ORDER BY rowid DESC LIMIT 1",
        (run_id,),
    ).fetchone()
    entries = f"; new entries blocked ({unknown['reason']})" if unknown else ""
    return f"daily loss {daily}; kill switch {ks}{entries}"


def _broker_lines(broker: Any, journal_pos: list[JournalPosition]) -> list[str]:
    lines: list[str] = []
    try:
        held = broker_positions(broker)
        orders = list(broker.open_orders()) if hasattr(broker, "open_orders") else []
    except Exception as exc:  # the journal view still stands
        return [f"broker: unavailable ({type(exc).__name__}: {exc})"]
    lines.append("positions (broker):" if held else "positions (broker): flat")
    for sym, p in sorted(held.items()):
        extra = ""
        if p["avg"] is not None:
            extra += f" @ {p['avg']:.4f}"
        if p["price"] is not None:
            extra += f"  mark {p['price']:.4f}"
        if p["upl"] is not None:
            extra += f"  P&L {p['upl']:+,.2f}"
        lines.append(f"  {sym} {p['qty']:g}{extra}")
    lines.append("open orders (broker):" if orders else "open orders (broker): none")
    for o in orders:
        side = getattr(getattr(o, "side", ""), "value", getattr(o, "side", ""))
        typ = getattr(getattr(o, "type", ""), "value", getattr(o, "type", ""))
        px = getattr(o, "stop_price", None) or getattr(o, "limit_price", None)
        at = f" @ {float(px):.4f}" if px else ""
        lines.append(f"  {str(side).upper()} {_num(o.qty):g} {o.symbol} {typ}{at}  ({o.client_order_id})")
    jq = {p.symbol: p.qty for p in journal_pos}
    bq = {s: p["qty"] or 0.0 for s, p in held.items()}
    diff = [s for s in sorted(set(jq) | set(bq)) if abs(jq.get(s, 0.0) - bq.get(s, 0.0)) > 1e-9]
    for s in diff:
        lines.append(
            f"  MISMATCH {s}: journal {jq.get(s, 0.0):g}, broker {bq.get(s, 0.0):g}; the broker is the truth"
        )
    return lines
