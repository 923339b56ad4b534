"""soxbot's local Alpaca-compatible paper broker: Trading API v2, Market Data v2, trade_updates and
market-data WebSockets on one aiohttp port, driven by replayed bars on a simulated XNYS clock.

Entry points: `build_app(...)` (in-process tests), `serve_in_thread(...)` (a live server on an
ephemeral port for alpaca-py clients), `run(...)` and `main(argv)` (the `soxbot sandbox` command).

Admin (no auth, for tests and tools):
  GET  /admin/state    sim time, cash, equity, positions, every order, orders and submissions per
                       client_order_id, faults, injected counts, socket counts
  POST /admin/advance  {"to": ISO | "next_open" | "next_close"} or {"seconds"|"minutes"|"days": n},
                       optional "speed"; processes every event on the way (fills, expiries, pushes)
  POST /admin/reset    {"start": ISO?}: fresh $100k account, no orders, clock back to start (held
                       again under --hold-clock), faults back to the start-up ones, simulated splits undone
  GET|POST /admin/clock  {"held": bool}: stand the clock still or let it run on from where it stands
                       (a bot releases a --hold-clock sandbox once it is ready); answers now, speed, held
  GET|POST /admin/faults  patch of `faults.Faults` fields (errors, delays, `advance`: the clock moves
                       on while a matched request is in flight), plus {"drop_ws": true} (close every
                       WebSocket now) and {"clear": true}
  POST /admin/split    {"symbol", "new_rate", "old_rate", "announce"?}: a split now, as Alpaca applies
                       one (bot/sandbox/splits.py)

Behaviour worth knowing (where the sandbox differs from Alpaca paper, which fills on live quotes):
- Prices are bars: market orders fill at the open of the first bar that starts after submission;
  stop, stop_limit, limit and trailing_stop orders meet each later bar's OHLC when it completes
  (bot.core.fills, the in-process broker's rules). Bracket/OTO legs trade from the bar after the entry
  fill; within an exit group a bar touching both legs is read as hitting the stop first.
- A day order lives through the session of the first bar it can trade on, so with daily bars an
  order sent mid-session fills at the next open instead of expiring unfilled.
- Nested views list an OCO's replaced stop legs under it beside the working one; account activities
  are FILL only (no dividends, fees or transfers happen here).
- `GET /v2/clock` answers with an extra header, `X-Soxbot-Sandbox-Clock: speed=400; held=true`
  (bot.core.sandbox_clock): the bot learns the speed exactly and whether to release the clock.
- Not simulated: short selling (sells are capped at the position), buy-stop to stop-limit
  conversion, opg/cls (422), PDT, the 90-day GTC expiry, asynchronous cancels (they are immediate),
  replacing an `accepted` order (422, as the research notes Alpaca does). Quotes are the last price
  +- 1 cent; `n` (trade count) is the number of source bars.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from aiohttp import web

from bot.core.sandbox_clock import CLOCK_PATH, ClockNote
from bot.core.sandbox_clock import HEADER as CLOCK_HEADER
from bot.sandbox.accounts import asset_id, asset_json
from bot.sandbox.clock import NY, Calendar, SimClock, rfc3339, to_utc
from bot.sandbox.exchange import Exchange, ExchangeConfig
from bot.sandbox.faults import ERROR_BODIES, WS_PATHS, FaultInjector, Faults
from bot.sandbox.market import TF_MINUTES, DataError, MarketData, read_bar_file, synthetic_frames
from bot.sandbox.orders import ApiError
from bot.sandbox.splits import Splits
from bot.sandbox.streams import Hub

DEFAULT_SYNTHETIC = ["SOXX", "SOXL", "SOXS"]


@dataclass
class SandboxConfig:
    data_dir: Path | None = None
    timeframe: str = "1d"
    speed: float = 1.0
    seed: int = 7
    key: str | None = None
    secret: str | None = None
    start: str | pd.Timestamp | None = None
    symbols: list[str] | None = None
    faults: Faults = field(default_factory=Faults)
    slippage_bps: float = 0.0
    starting_cash: float = 100_000.0
    multiplier: float = 2.0
    synthetic_years: float = 3.0
    hold_clock: bool = False  # the clock stands still until a bot (or a test) releases it


def parse_start(value: str | pd.Timestamp) -> pd.Timestamp:
    """A date means 09:00 New York that day (before the open); naive datetimes are New York time."""
    if isinstance(value, str) and len(value.strip()) == 10:
        return pd.Timestamp(value).tz_localize(NY).replace(hour=9).tz_convert("UTC")
    t = pd.Timestamp(value)
    return (t.tz_localize(NY) if t.tzinfo is None else t).tz_convert("UTC")


class Sandbox:
    """Everything one server holds: bars, clock, exchange, sockets and faults."""

    def __init__(self, cfg: SandboxConfig) -> None:
        if cfg.timeframe not in TF_MINUTES:
            raise ValueError(f"timeframe must be one of {list(TF_MINUTES)}, got {cfg.timeframe!r}")
        self.cfg = cfg
        start = parse_start(cfg.start) if cfg.start is not None else None
        frames = self._load(cfg, start)
        first = min(df.index.min() for df in frames.values())
        last = max(df.index.max() for df in frames.values())
        lo = pd.Timestamp(first).tz_localize(None) - pd.Timedelta(days=10)
        hi = max(pd.Timestamp(last).tz_localize(None), start.tz_localize(None) if start is not None else lo)
        calendar = Calendar(lo, hi + pd.Timedelta(days=730))
        self.market = MarketData(frames, cfg.timeframe, calendar)
        self.start = start if start is not None else self.market.default_start()
        self.clock = SimClock(self.start, cfg.speed, held=cfg.hold_clock)
        self.injector = FaultInjector(cfg.faults)
        self.exchange = Exchange(self.market, self.clock, ExchangeConfig(
            starting_cash=cfg.starting_cash, slippage_bps=cfg.slippage_bps, multiplier=cfg.multiplier,
            seed=cfg.seed, partial_fill_prob=cfg.faults.partial_fill_prob, reject_next=cfg.faults.reject_next,
            reject_mode=cfg.faults.reject_mode))
        self.hub = Hub(self.auth_ok, daily=TF_MINUTES[cfg.timeframe] is None)
        self.exchange.trade_listeners.append(self.hub.on_trade_update)
        self.exchange.bar_listeners.append(self.hub.on_market)
        self.splits = Splits()  # splits simulated by POST /admin/split

    @staticmethod
    def _load(cfg: SandboxConfig, start: pd.Timestamp | None) -> dict[str, pd.DataFrame]:
        if cfg.data_dir is not None:
            d = Path(cfg.data_dir)
            symbols = cfg.symbols or sorted(p.name[: -len(f"_{cfg.timeframe}.csv")]
                                            for p in d.glob(f"*_{cfg.timeframe}.csv"))
            if not symbols:
                raise ValueError(f"no *_{cfg.timeframe}.csv files in {d}")
            missing = [s for s in symbols if not (d / f"{s}_{cfg.timeframe}.csv").exists()]
            if missing:
                raise ValueError(f"no bar file for {missing} in {d} (expected SYMBOL_{cfg.timeframe}.csv)")
            return {s: read_bar_file(d, s, cfg.timeframe) for s in symbols}
        history = pd.Timedelta(days=min(400.0, cfg.synthetic_years * 365.25 / 2))
        data_start = (start - history) if start is not None else pd.Timestamp("2021-01-04")
        data_start = data_start.tz_localize(None) if data_start.tzinfo else data_start
        return synthetic_frames(cfg.symbols or DEFAULT_SYNTHETIC, cfg.timeframe, data_start.normalize(),
                                cfg.synthetic_years, cfg.seed)

    def auth_ok(self, key: str | None, secret: str | None) -> bool:
        if self.cfg.key is None and self.cfg.secret is None:
            return bool(key) and bool(secret)
        return key == self.cfg.key and secret == self.cfg.secret

    def apply_faults(self, patch: dict[str, Any]) -> Faults:
        f = self.injector.update(patch)
        ex = self.exchange
        if "partial_fill_prob" in patch:
            ex.partial_fill_prob = f.partial_fill_prob
        if "reject_next" in patch:
            ex.reject_next = f.reject_next
        if "reject_mode" in patch:
            ex.reject_mode = f.reject_mode
        return f

    def reset(self, start: pd.Timestamp | None = None) -> None:
        self.injector.reset()
        self.splits.undo(self.market)
        self.exchange.reset(start if start is not None else self.start)
        if self.cfg.hold_clock:  # as at start-up: held again, or running
            self.clock.hold()
        else:
            self.clock.release()

    def clock_json(self, now: pd.Timestamp | None = None) -> dict[str, Any]:
        now = now if now is not None else self.exchange.now()
        return {"now": rfc3339(now), "speed": self.clock.speed, "held": self.clock.held}

    def clock_header(self) -> dict[str, str]:
        return {CLOCK_HEADER: ClockNote(self.clock.speed, self.clock.held).header()}


SANDBOX = web.AppKey("sandbox", Sandbox)


# ---------------------------------------------------------------- helpers


def _json(data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json",
                        headers=headers)


def _err(status: int, code: int, message: str, **extra: Any) -> web.Response:
    return _json({"code": code, "message": message, **extra}, status)


def _bool(v: str | None) -> bool:
    return str(v).lower() in ("true", "1", "yes")


def _time(v: str | None, name: str) -> pd.Timestamp | None:
    if v is None or v == "":
        return None
    try:
        return to_utc(v)
    except (ValueError, TypeError):
        raise ApiError(422, 42210000, f"invalid {name}: {v!r}") from None


def _int(v: str | None, name: str, default: int) -> int:
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise ApiError(422, 42210000, f"invalid {name}: {v!r}") from None


def _symbols(v: str | None) -> list[str]:
    return [s.strip().upper() for s in (v or "").split(",") if s.strip()]


async def _body(request: web.Request) -> Any:
    if not request.can_read_body:
        return {}
    try:
        return await request.json()
    except ValueError:
        raise ApiError(400, 40010000, "request body format is invalid") from None


def _sb(request: web.Request) -> Sandbox:
    return request.app[SANDBOX]


# ---------------------------------------------------------------- middlewares


@web.middleware
async def errors_mw(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as e:
        return _json(e.body(), e.status)
    except DataError as e:
        return _err(400, 40010000, str(e))
    except web.HTTPNotFound:
        return _err(404, 40410000, "endpoint not found")
    except web.HTTPMethodNotAllowed:
        return _err(405, 40510000, "method not allowed")
    except web.HTTPException:
        raise
    except Exception as e:  # a sandbox bug must still answer in Alpaca's error shape
        return _err(500, 50010000, f"internal error: {type(e).__name__}: {e}")


@web.middleware
async def faults_mw(request: web.Request, handler):
    sb = _sb(request)
    inj = sb.injector
    if not inj.applies(request.method, request.path):
        return await handler(request)
    over, remaining, reset = inj.rate_limited(time.time())
    headers = {"X-RateLimit-Limit": str(inj.faults.rate_limit or 200),
               "X-RateLimit-Remaining": str(remaining),
               "X-RateLimit-Reset": str(reset)}
    if over:
        return _json(ERROR_BODIES[429], 429, headers)
    d = inj.decide(request.method, request.path)
    if d.advance:  # the market moves on while this request travels: what comes due fills first
        sb.exchange.advance(sb.exchange.sync() + pd.Timedelta(seconds=d.advance))
    try:
        if inj.faults.when == "before" or (d.status is None and not d.delay):
            if d.delay:
                await asyncio.sleep(d.delay)
                if request.transport is None or request.transport.is_closing():
                    return _err(504, 50410000, "client went away (sandbox fault: delay)")
            if d.status is not None:
                return _json(ERROR_BODIES[d.status], d.status, headers)
            resp = await handler(request)
        else:
            resp = await handler(request)
            if d.delay:
                await asyncio.sleep(d.delay)
            if d.status is not None:
                return _json(ERROR_BODIES[d.status], d.status, headers)
    finally:
        if d.delay:  # the server's side of a slow answer is over: tests wait for this, not for time
            inj.delays_done += 1
    for k, v in headers.items():
        resp.headers.setdefault(k, v)
    return resp


@web.middleware
async def auth_mw(request: web.Request, handler):
    if request.path.startswith("/v2") and request.path not in WS_PATHS:
        key, secret = request.headers.get("APCA-API-KEY-ID"), request.headers.get("APCA-API-SECRET-KEY")
        authz = request.headers.get("Authorization", "")
        if authz.startswith("Basic "):
            import base64

            with contextlib.suppress(Exception):
                key, secret = base64.b64decode(authz[6:]).decode().split(":", 1)
        elif authz.startswith("Bearer ") and _sb(request).cfg.key is None:
            key = secret = authz[7:]
        if not _sb(request).auth_ok(key, secret):
            return _err(401, 40110000, "request is not authorized")
    return await handler(request)


# ---------------------------------------------------------------- trading routes


async def account(request: web.Request) -> web.Response:
    ex = _sb(request).exchange
    ex.sync()
    return _json(ex.account_json())


async def clock(request: web.Request) -> web.Response:
    ex = _sb(request).exchange
    now = ex.sync()
    cal = ex.market.calendar
    is_open = cal.is_open(now)
    return _json({"timestamp": rfc3339(now, NY), "is_open": is_open,
                  "next_open": rfc3339(cal.next_open(now), NY),
                  "next_close": rfc3339(cal.next_close(now), NY)}, headers=_sb(request).clock_header())


async def calendar(request: web.Request) -> web.Response:
    ex = _sb(request).exchange
    now = ex.sync().tz_convert(NY).tz_localize(None).normalize()
    q = request.query
    try:
        start = pd.Timestamp(q["start"][:10]) if q.get("start") else now
        end = pd.Timestamp(q["end"][:10]) if q.get("end") else start + pd.Timedelta(days=365)
    except ValueError:
        raise ApiError(422, 42210000, "start and end must be dates written YYYY-MM-DD") from None
    sessions = ex.market.calendar.sessions_between(start, end)
    out = []
    for i, s in enumerate(sessions):
        nxt = sessions[i + 1].date if i + 1 < len(sessions) else ex.market.calendar.current_or_next(
            s.close + pd.Timedelta(hours=12))
        nxt_date = nxt if isinstance(nxt, pd.Timestamp) else (nxt.date if nxt is not None else s.date)
        out.append({
            "date": s.date.strftime("%Y-%m-%d"), "open": s.open.tz_convert(NY).strftime("%H:%M"),
            "close": s.close.tz_convert(NY).strftime("%H:%M"),
            "session_open": "0400", "session_close": "2000",
            "settlement_date": nxt_date.strftime("%Y-%m-%d"),
        })
    return _json(out)


async def assets(request: web.Request) -> web.Response:
    sb = _sb(request)
    q = request.query
    rows = [asset_json(s) for s in sb.market.symbols]
    if q.get("status") and q["status"] != "active":
        rows = []
    if q.get("asset_class") and q["asset_class"] != "us_equity":
        rows = []
    if q.get("exchange"):
        rows = [r for r in rows if r["exchange"] == q["exchange"]]
    return _json(rows)


async def asset(request: web.Request) -> web.Response:
    key = request.match_info["symbol_or_asset_id"]
    for s in _sb(request).market.symbols:
        if key.upper() == s or key == asset_id(s):
            return _json(asset_json(s))
    raise ApiError(404, 40410000, "asset not found")


async def post_order(request: web.Request) -> web.Response:
    ex = _sb(request).exchange
    o = ex.submit(await _body(request))
    return _json(ex.order_json(o, nested=True))


async def list_orders(request: web.Request) -> web.Response:
    q = request.query
    ex = _sb(request).exchange
    return _json(ex.list_orders(
        status=q.get("status", "open"), limit=_int(q.get("limit"), "limit", 50),
        after=_time(q.get("after"), "after"), until=_time(q.get("until"), "until"),
        direction=q.get("direction", "desc"), nested=_bool(q.get("nested")), side=q.get("side"),
        symbols=_symbols(q.get("symbols")) or None))


async def get_order(request: web.Request) -> web.Response:
    ex = _sb(request).exchange
    o = ex.get(request.match_info["order_id"])
    return _json(ex.order_json(o, nested=_bool(request.query.get("nested"))))


async def order_by_client_id(request: web.Request) -> web.Response:
    ex = _sb(request).exchange
    cid = request.query.get("client_order_id")
    if not cid:
        raise ApiError(422, 42210000, "client_order_id is required")
    return _json(ex.order_json(ex.get_by_client_id(cid)))


async def patch_order(request: web.Request) -> web.Response:
    ex = _sb(request).exchange
    o = ex.replace(request.match_info["order_id"], await _body(request))
    return _json(ex.order_json(o, nested=True))


async def delete_order(request: web.Request) -> web.Response:
    _sb(request).exchange.cancel(request.match_info["order_id"])
    return web.Response(status=204)


async def delete_orders(request: web.Request) -> web.Response:
    return _json(_sb(request).exchange.cancel_all(), 207)


async def activities(request: web.Request) -> web.Response:
    ex = _sb(request).exchange
    return _json(ex.activities_json(dict(request.query), request.match_info.get("activity_type")))


async def positions(request: web.Request) -> web.Response:
    return _json(_sb(request).exchange.positions_json())


def _position_symbol(request: web.Request) -> str:
    key = request.match_info["symbol_or_asset_id"]
    for s in _sb(request).market.symbols:
        if key == asset_id(s):
            return s
    return key.upper()


async def position(request: web.Request) -> web.Response:
    return _json(_sb(request).exchange.position_json(_position_symbol(request)))


async def close_position(request: web.Request) -> web.Response:
    ex = _sb(request).exchange
    q = request.query
    o = ex.close_position(_position_symbol(request), q.get("qty"), q.get("percentage"))
    return _json(ex.order_json(o))


async def close_positions(request: web.Request) -> web.Response:
    return _json(_sb(request).exchange.close_all(_bool(request.query.get("cancel_orders"))), 207)


# ---------------------------------------------------------------- market data routes


def _require_symbols(request: web.Request) -> list[str]:
    syms = _symbols(request.query.get("symbols"))
    if not syms:
        raise ApiError(400, 40010000, "missing symbols")
    return syms


async def bars(request: web.Request) -> web.Response:
    sb = _sb(request)
    q = request.query
    syms = _require_symbols(request)
    if not q.get("timeframe"):
        raise ApiError(400, 40010000, "missing timeframe")
    now = sb.exchange.sync()
    start = _time(q.get("start"), "start")
    if start is None:
        start = now.tz_convert(NY).normalize().tz_convert("UTC")
    end = _time(q.get("end"), "end") or now
    sort = q.get("sort", "asc")
    if sort not in ("asc", "desc"):
        raise ApiError(400, 40010000, f"invalid sort: {sort}")
    page, token = sb.market.history(syms, q["timeframe"], start, min(end, now), now,
                                    _int(q.get("limit"), "limit", 1000), q.get("page_token") or None, sort)
    page = sb.splits.adjust_page(page, q.get("adjustment", "raw"))
    return _json({"bars": page, "next_page_token": token, "currency": "USD"})


async def latest_bars(request: web.Request) -> web.Response:
    sb = _sb(request)
    now = sb.exchange.sync()
    out = {}
    for s in _require_symbols(request):
        b = sb.market.latest_bar(s, now)
        if b is not None:
            out[s] = b
    return _json({"bars": out, "currency": "USD"})


def _last_prices(request: web.Request) -> dict[str, tuple[float, pd.Timestamp]]:
    """Each requested symbol's last price and its time, as of the sandbox's now (none yet: left out)."""
    sb = _sb(request)
    now = sb.exchange.sync()
    prices = {s: sb.market.last_price(s, now) for s in _require_symbols(request)}
    return {s: lp for s, lp in prices.items() if lp is not None}


async def latest_quotes(request: web.Request) -> web.Response:
    out = {
        s: {"t": rfc3339(t), "ax": "V", "ap": round(p + 0.01, 4), "as": 1, "bx": "V",
            "bp": round(p - 0.01, 4), "bs": 1, "c": ["R"], "z": "C"}
        for s, (p, t) in _last_prices(request).items()
    }  # fmt: skip
    return _json({"quotes": out, "currency": "USD"})


async def latest_trades(request: web.Request) -> web.Response:
    out = {
        s: {"t": rfc3339(t), "x": "V", "p": p, "s": 100, "c": ["@"], "i": int(t.value // 1000), "z": "C"}
        for s, (p, t) in _last_prices(request).items()
    }
    return _json({"trades": out, "currency": "USD"})


# ---------------------------------------------------------------- admin routes


async def admin_state(request: web.Request) -> web.Response:
    sb = _sb(request)
    st = sb.exchange.state()
    st.update(speed=sb.clock.speed, timeframe=sb.market.timeframe, symbols=sb.market.symbols,
              faults=asdict(sb.injector.faults), injected=dict(sb.injector.injected), sockets=sb.hub.counts())
    st["held"] = sb.clock.held
    return _json(st)


async def admin_advance(request: web.Request) -> web.Response:
    sb = _sb(request)
    body = await _body(request)
    ex = sb.exchange
    now = ex.sync()
    cal = sb.market.calendar
    to = body.get("to")
    if to == "next_open":
        target = cal.next_open(now)
    elif to == "next_close":
        target = cal.next_close(now)
    elif to:
        target = _time(to, "to")
    else:
        secs = float(body.get("seconds", 0)) + 60 * float(body.get("minutes", 0)) + 86400 * float(
            body.get("days", 0))
        target = now + pd.Timedelta(seconds=secs)
    ex.advance(target)
    if "speed" in body:
        speed = float(body["speed"])
        if speed < 0:
            raise ApiError(422, 42210000, "speed must be >= 0")
        sb.clock.speed = speed
        sb.clock.set(target)
    await asyncio.sleep(0)
    return _json({"now": rfc3339(target), "is_open": cal.is_open(target)})


async def admin_split(request: web.Request) -> web.Response:
    sb = _sb(request)
    out = sb.splits.apply(sb.exchange, await _body(request))
    await asyncio.sleep(0)
    return _json(out)


async def announcements(request: web.Request) -> web.Response:
    sb = _sb(request)
    sb.exchange.sync()
    return _json(sb.splits.announcements(request.query))


async def admin_reset(request: web.Request) -> web.Response:
    sb = _sb(request)
    body = await _body(request)
    start = parse_start(body["start"]) if body.get("start") else None
    sb.reset(start)
    return _json({"now": rfc3339(sb.exchange.now())})


async def admin_clock(request: web.Request) -> web.Response:
    sb = _sb(request)
    at = None
    if request.method == "POST":
        body = await _body(request)
        held = body.get("held") if isinstance(body, dict) else None
        if not isinstance(held, bool):
            msg = 'send {"held": true} to hold the clock, {"held": false} to release it'
            raise ApiError(422, 42210000, msg)
        sb.exchange.sync()  # what fell due before a hold is processed at its own time
        at = sb.clock.hold() if held else sb.clock.release()  # the time it stands at or runs on from
    return _json(sb.clock_json(at), headers=sb.clock_header())


async def admin_faults(request: web.Request) -> web.Response:
    sb = _sb(request)
    dropped = 0
    if request.method == "POST":
        body = dict(await _body(request))
        drop = _bool(body.pop("drop_ws", False))
        if _bool(body.pop("clear", False)):
            sb.injector.faults = Faults(seed=sb.injector.faults.seed)
            sb.apply_faults({"partial_fill_prob": 0.0, "reject_next": 0, "reject_mode": "event"})
        try:
            sb.apply_faults(body)
        except (ValueError, TypeError) as e:
            raise ApiError(422, 42210000, str(e)) from None
        if drop:
            dropped = await sb.hub.drop_all()
    return _json({"faults": asdict(sb.injector.faults), "injected": dict(sb.injector.injected),
                  "delays_done": sb.injector.delays_done, "dropped": dropped})


# ---------------------------------------------------------------- app


async def _ticker(app: web.Application):
    """Moves the exchange along with the clock so fills and bars are pushed without any request."""
    sb = app[SANDBOX]

    async def loop() -> None:
        while True:
            try:
                sb.exchange.sync()
                nxt = sb.exchange.next_event_time()
                wait = sb.clock.seconds_until(nxt) if nxt is not None else 0.25
            except Exception as e:  # keep ticking; the error is visible on stderr
                print(f"sandbox ticker error: {type(e).__name__}: {e}", file=sys.stderr)
                wait = 0.25
            await asyncio.sleep(min(max(wait, 0.002), 0.25))

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await sb.hub.drop_all()


def build_app(data_dir: str | Path | None = None, timeframe: str = "1d", speed: float = 1.0, seed: int = 7,
              key: str | None = None, secret: str | None = None, start: str | pd.Timestamp | None = None,
              symbols: list[str] | None = None, faults: Faults | dict | None = None, *,
              slippage_bps: float = 0.0, starting_cash: float = 100_000.0, multiplier: float = 2.0,
              synthetic_years: float = 3.0, hold_clock: bool = False) -> web.Application:
    f = faults if isinstance(faults, Faults) else Faults().merged(faults or {})
    cfg = SandboxConfig(Path(data_dir) if data_dir else None, timeframe, speed, seed, key, secret, start,
                        [s.upper() for s in symbols] if symbols else None, f, slippage_bps, starting_cash,
                        multiplier, synthetic_years, hold_clock)
    sb = Sandbox(cfg)
    app = web.Application(middlewares=[errors_mw, faults_mw, auth_mw])
    app[SANDBOX] = sb
    r = app.router
    r.add_get("/v2/account", account)
    r.add_get("/v2/clock", clock)
    r.add_get("/v2/calendar", calendar)
    r.add_get("/v2/assets", assets)
    r.add_get("/v2/assets/{symbol_or_asset_id}", asset)
    r.add_post("/v2/orders", post_order)
    r.add_get("/v2/orders", list_orders)
    r.add_delete("/v2/orders", delete_orders)
    r.add_get("/v2/orders:by_client_order_id", order_by_client_id)
    r.add_get("/v2/orders/{order_id}", get_order)
    r.add_patch("/v2/orders/{order_id}", patch_order)
    r.add_delete("/v2/orders/{order_id}", delete_order)
    r.add_get("/v2/account/activities", activities)
    r.add_get("/v2/account/activities/{activity_type}", activities)
    r.add_get("/v2/positions", positions)
    r.add_delete("/v2/positions", close_positions)
    r.add_get("/v2/positions/{symbol_or_asset_id}", position)
    r.add_delete("/v2/positions/{symbol_or_asset_id}", close_position)
    r.add_get("/v2/corporate_actions/announcements", announcements)
    r.add_get("/v2/stocks/bars", bars)
    r.add_get("/v2/stocks/bars/latest", latest_bars)
    r.add_get("/v2/stocks/quotes/latest", latest_quotes)
    r.add_get("/v2/stocks/trades/latest", latest_trades)
    r.add_get("/stream", sb.hub.trade_updates)
    for feed in ("iex", "sip", "test", "delayed_sip"):
        r.add_get(f"/v2/{feed}", sb.hub.market_data)
    r.add_get("/admin/state", admin_state)
    r.add_post("/admin/advance", admin_advance)
    r.add_post("/admin/reset", admin_reset)
    r.add_get(CLOCK_PATH, admin_clock)
    r.add_post(CLOCK_PATH, admin_clock)
    r.add_post("/admin/split", admin_split)
    r.add_get("/admin/faults", admin_faults)
    r.add_post("/admin/faults", admin_faults)
    app.cleanup_ctx.append(_ticker)
    return app


def banner(host: str, port: int) -> str:
    return f"sandbox listening on http://{host}:{port} (trading + data), ws://{host}:{port}/stream"


async def _serve(app: web.Application, host: str, port: int, stop: asyncio.Event,
                 on_ready=None) -> None:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    actual = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    if on_ready is not None:
        on_ready(actual)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(host: str = "127.0.0.1", port: int = 8765, data_dir: str | Path | None = None, timeframe: str = "1d",
        speed: float = 1.0, seed: int = 7, key: str | None = None, secret: str | None = None,
        start: str | None = None, symbols: list[str] | None = None, faults: Faults | dict | None = None,
        **options: Any) -> None:
    """Serve until interrupted; prints the banner line once the port is bound (port 0 = any free port)."""
    app = build_app(data_dir, timeframe, speed, seed, key, secret, start, symbols, faults, **options)

    def ready(p: int) -> None:
        print(banner(host, p), flush=True)
        sb = app[SANDBOX]
        if sb.clock.held:
            print(f"clock held at {rfc3339(sb.clock.now())} ({sb.clock.speed:g}x once released): a bot"
                  f' releases it when ready, or POST {CLOCK_PATH} {{"held": false}}', flush=True)

    async def main_async() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await _serve(app, host, port, stop, ready)

    asyncio.run(main_async())


class SandboxServer:
    """A sandbox running on its own event loop in a daemon thread (for tests and local tools)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> None:
        self.host = host
        self.app = build_app(**kwargs)
        self.sandbox: Sandbox = self.app[SANDBOX]
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.port = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, args=(port,), daemon=True, name="soxbot-sandbox")

    def _main(self, port: int) -> None:
        async def go() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()

            def ready(p: int) -> None:
                self.port = p
                self._ready.set()

            await _serve(self.app, self.host, port, self._stop, ready)

        try:
            asyncio.run(go())
        except BaseException as e:
            self._error = e
            self._ready.set()

    def start(self) -> SandboxServer:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"sandbox did not start: {self._error!r}")
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def stream_url(self) -> str:
        return f"ws://{self.host}:{self.port}/stream"

    def data_stream_url(self, feed: str = "iex") -> str:
        return f"ws://{self.host}:{self.port}/v2/{feed}"

    def call(self, fn, *args: Any) -> Any:
        """Run `fn(*args)` on the server's loop (the exchange is not thread-safe) and return its result."""
        async def wrapper() -> Any:
            return fn(*args)

        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(30)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(**kwargs: Any) -> SandboxServer:
    """Start a sandbox on a free port in a background thread; `.url`, `.stream_url`, `.stop()`."""
    return SandboxServer(**kwargs).start()


# ---------------------------------------------------------------- command line

_FLAGS: dict[str, tuple[str, type]] = {
    "--host": ("host", str), "--port": ("port", int), "--data-dir": ("data_dir", str),
    "--timeframe": ("timeframe", str), "--speed": ("speed", float), "--seed": ("seed", int),
    "--key": ("key", str), "--secret": ("secret", str), "--start": ("start", str),
    "--symbols": ("symbols", str), "--slippage-bps": ("slippage_bps", float),
    "--cash": ("starting_cash", float), "--multiplier": ("multiplier", float),
    "--synthetic-years": ("synthetic_years", float),
    "--fault-429": ("f:rate_429", float), "--fault-500": ("f:rate_500", float),
    "--fault-504": ("f:rate_504", float), "--fault-delay": ("f:delay", float),
    "--fault-delay-rate": ("f:delay_rate", float), "--fault-routes": ("f:routes", str),
    "--fault-when": ("f:when", str), "--fault-times": ("f:times", int),
    "--partial-fills": ("f:partial_fill_prob", float), "--reject-next": ("f:reject_next", int),
    "--reject-mode": ("f:reject_mode", str), "--rate-limit": ("f:rate_limit", int),
}

_SWITCHES: dict[str, str] = {"--hold-clock": "hold_clock"}  # flags without a value


def parse_args(argv: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """`--flag value` / `--flag=value` pairs into run() keyword arguments and a fault patch."""
    kwargs: dict[str, Any] = {}
    faults: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, _, value = arg.partition("=")
        if name in _SWITCHES:
            if _:
                raise ValueError(f"{name} takes no value")
            kwargs[_SWITCHES[name]] = True
            i += 1
            continue
        if name not in _FLAGS:
            raise ValueError(f"unknown option {arg!r}")
        if not _:
            if i + 1 >= len(argv):
                raise ValueError(f"{name} needs a value")
            i += 1
            value = argv[i]
        key, typ = _FLAGS[name]
        try:
            parsed = typ(value)
        except ValueError:
            raise ValueError(f"{name}: expected {typ.__name__}, got {value!r}") from None
        if key.startswith("f:"):
            faults[key[2:]] = parsed
        elif key == "symbols":
            kwargs[key] = [s.strip().upper() for s in str(parsed).split(",") if s.strip()]
        else:
            kwargs[key] = parsed
        i += 1
    return kwargs, faults


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help", "--help-all") for a in argv):
        from bot.sandbox.usage import help_text

        print(help_text([*_FLAGS, *_SWITCHES]))
        return 0
    try:
        kwargs, fault_patch = parse_args(argv)
        faults = Faults().merged(fault_patch)
        if (kwargs.get("key") is None) != (kwargs.get("secret") is None):
            raise ValueError("--key and --secret go together")
        run(faults=faults, **kwargs)
    except (ValueError, OSError) as e:
        print(f"sandbox: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
