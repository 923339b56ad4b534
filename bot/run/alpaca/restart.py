"""What the live driver does on a restart and at the day's checkpoints: the broker is the source of
truth, the journal says which of its orders and positions are ours.

`Restart.reconcile` reads both (open orders, positions, fills made while the bot was down), books
what the journal lacks, protects a held position of ours at once, and reports what it cannot explain
as an unknown state (no new entries until a person has looked). `check_positions` compares the
broker's positions with the engine's before the open and at the end of the day.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from bot.broker.alpaca import AlpacaBroker, Reconciliation, parse_cid
from bot.core.config import Settings
from bot.core.events import ExitReason, Intent, OrderIntent, Side
from bot.core.log import get
from bot.data.calendar import TZ, is_intraday
from bot.execution.engine import Engine, Position
from bot.journal.journal import Journal
from bot.journal.recovery import FINAL, HeldPosition, JournalBooks, read_books
from bot.run.alpaca.clock import Clock
from bot.run.alpaca.splits import settle_splits, use_splits_table

log = get("soxbot.run")


class Restart:
    def __init__(
        self,
        cfg: Settings,
        engine: Engine,
        broker: AlpacaBroker,
        journal: Journal,
        clock: Clock,
        events: list[str],
        pump: Callable[[float], None],
    ) -> None:
        """`events`: the engine's actions as the driver collects them (logged here after a delivery);
        `pump`: the driver's wait that delivers broker events."""
        self.cfg = cfg
        self.engine = engine
        self.broker = broker
        self.journal = journal
        self.clock = clock
        self.events = events
        self.pump = pump
        self.set_id = engine.set_id
        self.tf = cfg.data.timeframe
        self.foreign: set[str] = set()  # traded symbols held by someone else: no new entries meanwhile
        self.unknown: list[str] = []  # what reconcile could not explain: no new entries this run
        use_splits_table(cfg, broker)

    def reconcile(self) -> Reconciliation:
        """The broker is the source of truth; the journal says which of its orders and positions are ours.

        Orders journaled but never seen answered are looked up by client_order_id: not at the broker ->
        marked 'not_sent' and never sent late. Fills the journal lacks (a stop that filled while the bot
        was down, an entry that filled meanwhile) are journaled and booked now, in fill order. A held
        position of ours without a working stop gets one at once (flattened if that fails). Positions
        the bot did not open are reported and left alone; what cannot be explained stops new entries."""
        books = read_books(self.journal, self.set_id)
        rec = self.broker.reconcile(self.set_id, books.fills, books.pending, books.since())
        e = self.engine
        e.set_time(self.clock.now().tz_convert(TZ))  # the time of anything done before the first bar
        for line in rec.foreign_orders:
            log.warning("open order not made by this bot (left alone)", order=line)
        for i in [*rec.ours, *rec.missed]:
            e.orders[i.client_order_id] = books.intents.get(i.client_order_id) or self._as_engine(i)
        held = [p for p in books.positions.values() if p.symbol in self.cfg.universe.traded]
        if len(held) > 1:
            self.unknown_state("the journal holds " + " and ".join(f"{p.qty:g} {p.symbol}" for p in held))
        elif held:
            e.pos = self._journal_position(held[0], books, rec)
        self._deliver()
        if self._mismatch(rec.positions):  # a fill the orders did not show yet: ask again, then the fills
            self.broker.poll()
            self._deliver()
            rec.positions = self.broker.positions()
            if e.pos is not None and self._mismatch(rec.positions):  # the journal's position: its fills
                self._from_fills(books, rec)
            rec.cash = self.broker.cash()
        e.cash = min(float(self.cfg.broker.starting_cash), rec.cash) if rec.cash > 0 else e.cash
        self._settle_journal(rec)  # after their fills are journaled: a kill before this looks them up again
        self._compare(rec)
        self._value_books()
        if e.pos is not None:
            self._protect_held()
        for cid in rec.unknown:
            self.unknown_state(f"order {cid}: the broker could not say whether it exists")
        working_entry = next((o for o in e.orders.values() if o.intent is Intent.OPEN), None)
        held_sym = working_entry.symbol if working_entry else None
        if e.pos is not None:  # while a close works the position counts as gone, as when flat
            held_sym = None if e.pos.closing else e.pos.symbol
        if held_sym is not None:
            e.last_dir = 1 if held_sym == self.cfg.universe.bull else -1
        return rec

    def _deliver(self) -> None:
        """Queued broker events (fills the journal lacks) into the engine: journaled and booked now."""
        self.events.clear()
        if self.broker.drain(poll=False):
            log.warning("fill found at the broker, made while the bot was down: journaled now",
                        actions=" | ".join(self.events))  # fmt: skip
            self.events.clear()

    def _from_fills(self, books: JournalBooks, rec: Reconciliation) -> None:
        """The journal's position still differs from the broker's after a poll: the account's fills
        since the journal's last one are asked (a position the journal never had is not settled this
        way: it is adopted or left alone in `_compare`)."""
        if self.broker.fills_after(books.since(), self.set_id, books.fills):
            self._deliver()
            rec.positions = self.broker.positions()

    def _mismatch(self, positions: dict[str, tuple[float, float]]) -> bool:
        """The broker's positions differ from the engine's in a symbol the engine holds or trades (a
        traded symbol held at the broker counts too: a stop that filled during the read must not leave
        its shares behind as a position nobody owns)."""
        e = self.engine
        mine = {e.pos.symbol: e.pos.qty} if e.pos is not None else {}
        traded = set(self.cfg.universe.traded)
        watched = set(mine) | {o.symbol for o in e.orders.values()} | (set(positions) & traded)
        return any(abs(positions.get(s, (0.0, 0.0))[0] - mine.get(s, 0.0)) > 1e-9 for s in watched)

    def _value_books(self) -> None:
        """The day's starting equity (and the peak) from what the bot holds now: its cash (the broker's
        counts every fill) and its position at the current price. Cash alone would show a held position
        as the day's profit in the first daily summary."""
        e = self.engine
        if e.pos is not None:
            px = self._price_now(e.pos.symbol)
            if px is not None:
                e.last_close[e.pos.symbol] = px
        e.day_start_equity = e.peak_equity = e.revalue()

    def _settle_journal(self, rec: Reconciliation) -> None:
        """What the broker said about orders an earlier run left unanswered: final statuses, 'not_sent',
        and 'submitted' for those working at the broker (no row stays 'intent' once its order is seen)."""
        statuses = {cid: st for cid, st in rec.found.items() if st in FINAL}
        statuses.update({cid: "submitted" for cid, st in rec.found.items() if st not in FINAL})
        for cid in rec.not_sent:
            statuses[cid] = "not_sent"
            log.warning("journaled order never reached the broker: not sent, and never will be", cid=cid)
        self.journal.mark_unanswered(statuses)

    def unknown_state(self, what: str, when: str = "at start") -> None:
        """A state the bot cannot explain: say so loudly and make no new entries (exits still work) until
        a person has looked and restarted the bot (a restart reconciles again)."""
        self.unknown.append(what)
        log.error(f"unknown state {when}: no new entries this run", what=what)
        self.engine.verdict("alert", f"unknown state {when}: {what}; no new entries until a restart")

    def check_positions(self, when: str) -> str | None:
        """The broker's positions in the traded symbols against the engine's (pre-open, end of day). A
        fill on its way is asked for first (a poll of our orders, then the account's fills), so a stop
        that filled a moment ago settles by itself. A difference the bot did not make (a position closed
        or opened by hand, a fill it never heard of) is an unknown state: alerted, and no new entries.
        Returns what differs, or None."""
        e, b = self.engine, self.broker
        traded = set(self.cfg.universe.traded) - self.foreign
        held: dict[str, float] = {}
        mine: dict[str, float] = {}
        for attempt in range(3):
            if attempt == 1:  # a fill may be on its way: ask for it
                b.poll()
                self.pump(0)
            elif attempt == 2:  # still different: what the account's fills say
                books = read_books(self.journal, self.set_id)
                if not b.fills_after(books.since(), self.set_id, books.fills):
                    break
                self.pump(0)
            try:
                held = {s: q for s, (q, _) in b.positions().items() if s in traded}
            except Exception as exc:
                log.warning("positions check failed", error=str(exc))
                return None
            mine = {e.pos.symbol: e.pos.qty} if e.pos is not None else {}
            if all(abs(held.get(s, 0.0) - mine.get(s, 0.0)) <= 1e-9 for s in held.keys() | mine.keys()):
                return None
            if settle_splits(e, b, held, self.clock.now().tz_convert(TZ)):  # a split explains it: booked
                return None
        what = f"the engine holds {_holding(mine)}, the broker {_holding(held)}"
        if what not in self.unknown:
            self.unknown_state(what, when)
        return what

    def _as_engine(self, i: OrderIntent) -> OrderIntent:
        """A broker order the journal does not know, as the engine would have made it."""
        p = parse_cid(i.client_order_id)
        ts = i.ts if p is None else self._signal_ts(p.signal_ts)
        why = {Intent.STOP: ExitReason.STOP_LOSS, Intent.TAKE_PROFIT: ExitReason.TAKE_PROFIT}.get(i.intent)
        return replace(i, ts=ts, exit_reason=why or (ExitReason.SIGNAL if i.side is Side.SELL else None))

    def _signal_ts(self, parsed: pd.Timestamp) -> pd.Timestamp:
        return parsed.tz_localize("UTC").tz_convert(TZ) if is_intraday(self.tf) else parsed

    def _journal_position(self, held: HeldPosition, books: JournalBooks, rec: Reconciliation) -> Position:
        entry = books.intents.get(held.entry_cid)
        parsed = parse_cid(held.entry_cid)
        signal_ts = held.entry_time if parsed is None else self._signal_ts(parsed.signal_ts)
        signal_ts = entry.ts if entry is not None else signal_ts  # as the engine made it: stop ids follow it
        pos = Position(held.symbol, held.qty, held.entry_price, held.entry_time, signal_ts, held.commission)
        self._orders_onto(pos, [*books.intents.values(), *rec.ours])
        return pos

    def _orders_onto(self, pos: Position, known: Sequence[OrderIntent]) -> None:
        """The position's protective orders: the working ones, else the last journaled stop (its level
        and revision), so a new stop continues the id sequence instead of reusing a spent id."""
        b, mine = self.broker, [i for i in known if i.symbol == pos.symbol]
        work = [i for i in mine if b.working(i.client_order_id)]
        stop = max((i for i in work if i.intent is Intent.STOP), key=_rev, default=None)
        if stop is not None:
            p = parse_cid(stop.client_order_id)
            pos.signal_ts = self._signal_ts(p.signal_ts) if p is not None else pos.signal_ts
        base = self.engine.cid(pos.symbol, pos.signal_ts, Intent.STOP)
        ours = [i for i in mine if i.client_order_id == base or i.client_order_id.startswith(base + "-r")]
        last = stop or max(ours, key=_rev, default=None)
        if last is not None:
            pos.stop, pos.stop_cid = last.stop_price, last.client_order_id
        pos.stop_rev = max((_rev(i) for i in [*ours, *([stop] if stop else [])]), default=0)
        tp = next((i for i in work if i.intent is Intent.TAKE_PROFIT), None)
        if tp is not None:
            pos.take_profit, pos.tp_cid = tp.limit_price, tp.client_order_id
        pos.closing = any(i.intent is Intent.CLOSE for i in work)

    def _compare(self, rec: Reconciliation) -> None:
        e = self.engine
        pos = e.pos
        traded = self.cfg.universe.traded
        if pos is not None:
            qty = rec.positions.get(pos.symbol, (0.0, 0.0))[0]
            if settle_splits(e, self.broker, {pos.symbol: qty}, e.now):  # split while the bot was down
                pos = e.pos
            elif abs(qty - pos.qty) > 1e-9:
                self.unknown_state(f"the journal holds {pos.qty:g} {pos.symbol}, the broker {qty:g}")
                pos.qty = qty  # the broker is the source of truth
                if qty <= 1e-9:
                    e.pos = None
        for sym, (qty, avg) in rec.positions.items():
            ours = [i for i in rec.ours if i.symbol == sym and i.side is Side.SELL]
            if sym not in traded:
                log.warning("position not managed by soxbot (left alone)", symbol=sym, qty=qty)
            elif e.pos is not None and e.pos.symbol == sym:
                log.info("position held per journal and broker", symbol=sym, qty=qty, stop=e.pos.stop)
            elif not ours and e.pos is None and self.cfg.broker.foreign_positions == "adopt":
                self._adopt(sym, qty, avg, [])
                px = self._price_now(sym) or avg  # its stop guards from here, not from an old entry price
                self.engine.pos.stop = self.engine.stop_for(sym, px)  # type: ignore[union-attr]
                why = "([broker] foreign_positions = 'adopt'); it gets a protective stop"
                e.verdict(
                    "alert", f"{qty:g} {sym} held at the broker without this bot's orders: adopted {why}"
                )
            elif not ours or e.pos is not None:
                self.foreign.add(sym)
                e.verdict("alert", f"{qty:g} {sym} held at the broker without this bot's orders: left "
                           "alone; no new entries while it is held", symbol=sym)  # fmt: skip
                log.warning(
                    "position in a traded symbol without this bot's orders: left alone; no new entries while "
                    "it is held (never hold bull and bear at once)",
                    symbol=sym,
                    qty=qty,
                )
            else:
                self._adopt(sym, qty, avg, ours)

    def _adopt(self, sym: str, qty: float, avg: float, ours: list[Any]) -> None:
        """A position the journal does not know but our working orders guard (e.g. a new journal file)."""
        e = self.engine
        parsed = [p for p in (parse_cid(i.client_order_id) for i in ours) if p is not None]
        signal_ts = self._signal_ts(parsed[0].signal_ts) if parsed else self.clock.now().tz_convert(TZ)
        e.pos = Position(sym, qty, avg, self.clock.now().tz_convert(TZ), signal_ts, 0.0)
        self._orders_onto(e.pos, ours)
        e.cash = max(0.0, e.cash)
        log.info("position adopted from the broker", symbol=sym, qty=qty, avg=avg, stop=e.pos.stop)

    def _price_now(self, sym: str) -> float | None:
        try:
            p = self.broker.client.get_open_position(sym)
            px = float((p.get if isinstance(p, dict) else lambda k: getattr(p, k, None))("current_price"))
        except Exception as exc:  # no price: the stop falls back to the average entry
            log.warning("current price not available", symbol=sym, error=str(exc))
            return None
        return px if px > 0 else None

    def _protect_held(self) -> None:
        """A held position of ours has a working stop at the broker (or a close order working), or gets
        one now through the engine's own path (deterministic id); if that fails, it is flattened."""
        e, b = self.engine, self.broker
        pos = e.pos
        if pos is None or pos.closing or (pos.stop_cid is not None and b.working(pos.stop_cid)):
            return
        if pos.stop is None:
            pos.stop = e.stop_for(pos.symbol, pos.entry_price)
        if pos.stop is None:
            return  # no stop rule configured: the engine never places one
        log.warning("no protective stop at the broker: stop placed on restart", symbol=pos.symbol,
                    qty=pos.qty, stop=round(pos.stop, 4))  # fmt: skip
        e.verdict("alert", f"{pos.qty:g} {pos.symbol} had no protective stop at the broker: stop placed "
                   f"at {pos.stop:.4f} on restart", symbol=pos.symbol)  # fmt: skip
        e.protect(pos, e.now, only=Intent.STOP, why="protective stop placed on restart")
        b.drain(poll=False)  # a refusal reaches the engine, which flattens
        pos = e.pos
        if pos is not None and not pos.closing and not (pos.stop_cid is not None and b.working(pos.stop_cid)):
            e.verdict("alert", "protective stop could not be placed on restart: flatten", symbol=pos.symbol)
            e.close(pos, ExitReason.RISK, "no protective stop on restart")
            b.drain(poll=False)


def _holding(qty: dict[str, float]) -> str:
    return ", ".join(f"{q:g} {s}" for s, q in sorted(qty.items())) or "flat"


def _rev(i: OrderIntent) -> int:
    p = parse_cid(i.client_order_id)
    return p.revision if p is not None else 0
