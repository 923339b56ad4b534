"""What the engine follows of the signal symbol (the index) to set stops and sizes in its terms.

A 3x daily-reset fund moves about L times its index each day, so a stop or a size meant for the
fund is best stated in the index's volatility: a 5% stop on SOXL is a 1.7% move of SOX, under one
daily sigma. Everything here is updated in O(1) per bar, fed the same bars in the same order by the
backtest and the live drivers, so both decide on the same numbers:

- `DailyVol`: sigma of the index's daily log returns (mean taken as zero, as RiskMetrics does),
  over a rolling window of sessions or as an EWMA seeded with that window. Intraday bars count one
  return per session: the session's latest close against the previous session's last close.
- `Gaps`: a bounded buffer of overnight open gaps (a session's first open against the previous
  session's last close); a quantile of the adverse ones is taken at decision time only.
- `IndexRisk`: the pieces a configuration needs, and the terms an entry is stopped and sized on.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.core.config import RiskConfig, Settings
from bot.risk.sides import risk_for
from bot.risk.stops import Atr

GAP_MIN = 20  # gaps seen before a quantile of them is trusted; entries wait until then
_Q = 2.0**80  # squared returns are summed as integers in units of 2^-80: the window's sum is exact,
# so it depends on the window alone, not on the history that went through it (a live run warmed up
# on the last bars has the very same sigma as a backtest from the data's first bar)

Bar = Sequence[float]  # (open, high, low, close)


class DailyVol:
    """Daily sigma of log returns, O(1) per bar; `value` is None until `n` returns are in. The rolling
    window's sum is exact (integers), so it does not depend on the bars that left the window."""

    __slots__ = ("_before", "_cur", "_i", "_prev", "_session", "_sq", "_sum", "lam", "n", "var")

    def __init__(self, n: int, lam: float = 0.0) -> None:
        self.n = int(n)
        self.lam = float(lam)
        self._sq = [0] * self.n
        self._i = 0  # returns pushed so far
        self._sum = 0
        self._before: float | None = None  # EWMA: the variance before the latest return
        self.var: float | None = None
        self._session: int | None = None
        self._prev: float | None = None  # last close of the previous session
        self._cur: float | None = None  # latest close of this session

    @property
    def value(self) -> float | None:
        return math.sqrt(self.var) if self.var is not None else None

    @property
    def count(self) -> int:
        return self._i

    def update(self, session: int, close: float) -> None:
        """A bar's close. A new session adds a return; a later bar of the same session (or the final
        values of a bar decided on early) replaces it."""
        if session != self._session:
            if self._cur is not None:
                self._prev = self._cur
            self._session = session
            self._cur = close
            if self._prev is not None:
                self._push(math.log(close / self._prev) ** 2)
        else:
            self._cur = close
            if self._prev is not None:
                self._replace(math.log(close / self._prev) ** 2)

    def _push(self, r2: float) -> None:
        i, n = self._i, self.n
        self._i = i + 1
        if self.lam and i >= n:
            self._before = self.var
            self.var = self.lam * self.var + (1.0 - self.lam) * r2  # type: ignore[operator]
            return
        k = i % n
        q = round(r2 * _Q)
        if i >= n:
            self._sum -= self._sq[k]
        self._sq[k] = q
        self._sum += q
        if i >= n - 1:
            self.var = self._sum / _Q / n

    def _replace(self, r2: float) -> None:
        i, n = self._i - 1, self.n
        if self.lam and i >= n:
            self.var = self.lam * self._before + (1.0 - self.lam) * r2  # type: ignore[operator]
            return
        k = i % n
        q = round(r2 * _Q)
        self._sum += q - self._sq[k]
        self._sq[k] = q
        if i >= n - 1:
            self.var = self._sum / _Q / n


class Gaps:
    """The last `n` overnight gaps (open / previous session's last close - 1), signed."""

    __slots__ = ("_last", "_session", "gaps")

    def __init__(self, n: int) -> None:
        self.gaps: deque[float] = deque(maxlen=int(n))
        self._session: int | None = None
        self._last: float | None = None

    def update(self, session: int, open_: float, close: float) -> None:
        if session != self._session:
            if self._last is not None:
                self.gaps.append(open_ / self._last - 1.0)
            self._session = session
        self._last = close

    def adverse(self, q: float, sign: float = 1.0) -> float | None:
        """The q-quantile of the adverse gap (as a positive fraction; 0 for a gap in the holder's
        favour) for a holder of `sign` x this symbol; None until GAP_MIN gaps are in."""
        if len(self.gaps) < GAP_MIN:
            return None
        xs = sorted(max(0.0, -sign * g) for g in self.gaps)
        pos = q * (len(xs) - 1)  # linear interpolation, numpy's default quantile
        lo = int(pos)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class Terms:
    """What an entry into one symbol is stopped and sized on (None: not known yet)."""

    lev: float  # |L|
    sigma: float | None = None  # the index's daily sigma
    atr_frac: float | None = None  # the index's ATR as a share of its close
    gap: float | None = None  # the gap allowance, a share of the entry price


class IndexRisk:
    """The index-based state a configuration needs; None from `for_settings` when it needs none."""

    def __init__(self, cfg: Settings) -> None:
        r = cfg.risk
        self.risk = r
        self.universe = cfg.universe
        self.leveraged = cfg.leveraged
        rules = all_rules(cfg)  # [risk] and each side's own ([risk.bull] / [risk.bear])
        self.vol = DailyVol(r.vol_lookback, r.vol_ewma_lambda) if any(map(uses_vol, rules)) else None
        self.atr = Atr(r.atr_period) if any(map(uses_index_atr, rules)) else None
        self._close: float | None = None  # the index's last close (the ATR's scale)
        gaps = any(map(uses_gaps, rules))
        self.index_gaps = Gaps(r.gap_lookback) if gaps and r.gap_source == "underlying" else None
        self.gaps = (
            {s: Gaps(r.gap_lookback) for s in cfg.universe.traded}
            if gaps and r.gap_source == "instrument"
            else {}
        )

    def leverage(self, symbol: str) -> float:
        """L of a traded symbol from its `[leveraged]` declaration (SOXL +3, SOXS -3); 1 if none."""
        fund = self.leveraged.fund(symbol)
        return fund.leverage if fund is not None else 1.0

    @classmethod
    def for_settings(cls, cfg: Settings) -> IndexRisk | None:
        ix = cls(cfg)
        return ix if (ix.vol or ix.atr or ix.index_gaps or ix.gaps) else None

    @property
    def history_bars(self) -> int:
        """Bars of history that bring it to the state a run from the data's start would have (an EWMA
        to within 1e-6 of its weight)."""
        r = self.risk
        need = 0
        if self.vol is not None:
            need = r.vol_lookback + 1
            if r.vol_ewma_lambda:
                need += math.ceil(math.log(1e-6) / math.log(r.vol_ewma_lambda))
        if self.atr is not None:
            need = max(need, 4 * r.atr_period + 1)
        if self.index_gaps is not None or self.gaps:
            need = max(need, r.gap_lookback + 1)
        return need

    def on_bar(self, session: int, index_bar: Bar | None, bars: Mapping[str, Bar]) -> None:
        """One bar: the index's (None: no valid index bar now) and the traded symbols' bars."""
        if index_bar is not None:
            o, h, lo, c = index_bar[0], index_bar[1], index_bar[2], index_bar[3]
            self._close = c
            if self.vol is not None:
                self.vol.update(session, c)
            if self.atr is not None:
                self.atr.update(h, lo, c)
            if self.index_gaps is not None:
                self.index_gaps.update(session, o, c)
        for sym, g in self.gaps.items():
            bar = bars.get(sym)
            if bar is not None:
                g.update(session, bar[0], bar[3])

    def revise(self, session: int, index_bar: Bar | None, bars: Mapping[str, Bar]) -> None:
        """The final values of the bar last seen (a daily bar decided on before the close)."""
        if index_bar is not None:
            h, lo, c = index_bar[1], index_bar[2], index_bar[3]
            self._close = c
            if self.vol is not None:
                self.vol.update(session, c)  # same session: replaces the day's return
            if self.atr is not None:
                self.atr.revise(h, lo, c)
            if self.index_gaps is not None:
                self.index_gaps.update(session, index_bar[0], c)
        for sym, g in self.gaps.items():
            bar = bars.get(sym)
            if bar is not None:
                g.update(session, bar[0], bar[3])

    def advance(
        self,
        sessions: Sequence[int],
        index_rows: Sequence[Bar] | None,
        rows: Mapping[str, Sequence[Bar]],
    ) -> None:
        """Bars in bulk (the backtest's quiet stretches), leaving each measure as `on_bar` on each bar in
        turn would (the measures are independent: each is fed its own bars in order). NaN rows mean no
        bar."""
        if index_rows is not None:
            valid = [(s, r) for s, r in zip(sessions, index_rows, strict=True) if r[3] == r[3]]
            if valid:
                self._close = valid[-1][1][3]
            if self.vol is not None:
                vol = self.vol.update
                for s, r in valid:
                    vol(s, r[3])
            if self.atr is not None:
                atr = self.atr.update
                for _, r in valid:
                    atr(r[1], r[2], r[3])
            if self.index_gaps is not None:
                gap = self.index_gaps.update
                for s, r in valid:
                    gap(s, r[0], r[3])
        for sym, g in self.gaps.items():
            gap = g.update
            for s, r in zip(sessions, rows[sym], strict=True):
                if r[3] == r[3]:
                    gap(s, r[0], r[3])

    def terms(self, symbol: str) -> Terms:
        r = self.risk
        signed = self.leverage(symbol)
        lev = abs(signed)
        sigma = self.vol.value if self.vol is not None else None
        atr_frac = None
        if self.atr is not None and self.atr.value is not None and self._close:
            atr_frac = self.atr.value / self._close
        gap = None
        if self.index_gaps is not None:
            sign = 1.0 if signed > 0 else -1.0
            g = self.index_gaps.adverse(r.gap_quantile, sign)
            gap = None if g is None else min(lev * g, 1.0)
        elif symbol in self.gaps:
            gap = self.gaps[symbol].adverse(r.gap_quantile)
        return Terms(lev, sigma, atr_frac, gap)

    def missing(self, symbol: str, t: Terms, rules: RiskConfig | None = None) -> str | None:
        """Why an entry under `rules` (the symbol's side's; default [risk]) cannot be stopped or sized
        yet (a measure it uses still warming up), or None."""
        r = self.risk
        rules = rules or r
        if uses_vol(rules) and self.vol is not None and t.sigma is None:
            return (
                f"the signal's daily volatility is not known yet ({self.vol.count} of "
                f"{r.vol_lookback} daily returns)"
            )
        if uses_index_atr(rules) and self.atr is not None and t.atr_frac is None:
            return "the signal's ATR is not known yet"
        if uses_gaps(rules) and (self.index_gaps is not None or self.gaps) and t.gap is None:
            g = self.index_gaps if self.index_gaps is not None else self.gaps.get(symbol)
            n = len(g.gaps) if g is not None else 0
            return f"the overnight gap allowance is not known yet ({n} of {GAP_MIN} gaps)"
        return None


def all_rules(cfg: Settings) -> list[RiskConfig]:
    """[risk] and the rules of each traded symbol (its side's overrides applied)."""
    return [cfg.risk, *(risk_for(cfg, s) for s in cfg.universe.traded)]


def uses_vol(r: RiskConfig) -> bool:
    return r.stop_sigma_mult > 0 or r.sizing == "vol_target"


def uses_index_atr(r: RiskConfig) -> bool:
    return r.atr_stop_mult > 0 and r.atr_source == "underlying"


def uses_gaps(r: RiskConfig) -> bool:
    return r.sizing == "risk_per_trade" and r.gap_quantile > 0


def needs_vol(cfg: Settings) -> bool:
    return any(map(uses_vol, all_rules(cfg)))
