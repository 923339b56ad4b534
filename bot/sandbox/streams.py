"""The two WebSockets alpaca-py opens: `trade_updates` at /stream (JSON) and market data at /v2/{feed}
(msgpack when the client says Content-Type: application/msgpack, as StockDataStream does; JSON
otherwise). Handshakes follow the research notes; `t` goes out as a msgpack Timestamp because the
SDK calls `.to_datetime()` on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import pandas as pd
from aiohttp import WSMsgType, web

from bot.sandbox.clock import rfc3339

CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds", "corrections",
            "cancelErrors")

AuthCheck = Callable[[str | None, str | None], bool]


@dataclass(eq=False)
class _Client:
    ws: web.WebSocketResponse
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    authed: bool = False
    listening: bool = False
    msgpack: bool = True
    subs: dict[str, set[str]] = field(default_factory=lambda: {c: set() for c in CHANNELS})

    def put(self, payload: bytes | str) -> None:
        self.queue.put_nowait(payload)


class Hub:
    """Fans exchange events out to the connected sockets."""

    def __init__(self, auth: AuthCheck, daily: bool = False) -> None:
        self.auth = auth
        self.daily = daily
        self.trade_clients: set[_Client] = set()
        self.data_clients: set[_Client] = set()
        self._trade_seq = 0

    # ---------------------------------------------------------- publishing (called by the exchange)

    def on_trade_update(self, msg: dict) -> None:
        payload = json.dumps(msg).encode()
        for c in list(self.trade_clients):
            if c.listening:
                c.put(payload)

    def on_market(self, kind: str, symbol: str, p: dict) -> None:
        if not self.data_clients:
            return
        ts = p["t"]
        msgs: list[tuple[str, dict]] = []
        if kind == "b":
            bar = {"S": symbol, "o": p["o"], "h": p["h"], "l": p["l"], "c": p["c"], "v": int(p["v"]),
                   "n": p["n"], "vw": round(p["vw"], 6)}
            msgs.append(("bars", {"T": "b", **bar}))
            if self.daily:
                msgs.append(("dailyBars", {"T": "d", **bar}))
        elif kind == "t":
            price = p["p"]
            self._trade_seq += 1
            msgs.append(("trades", {"T": "t", "S": symbol, "i": self._trade_seq,
                                    "x": "V", "p": price, "s": 100, "c": ["@"], "z": "C"}))
            msgs.append(("quotes", {"T": "q", "S": symbol, "bx": "V", "bp": round(price - 0.01, 4),
                                    "bs": 1, "ax": "V", "ap": round(price + 0.01, 4), "as": 1,
                                    "c": ["R"], "z": "C"}))
        for c in list(self.data_clients):
            if not c.authed:
                continue
            out = [m for chan, m in msgs if symbol in c.subs[chan] or "*" in c.subs[chan]]
            if out:
                c.put(_encode([{**m, "t": _t(ts, c.msgpack)} for m in out], c.msgpack))

    async def drop_all(self) -> int:
        clients = list(self.trade_clients | self.data_clients)
        for c in clients:
            with contextlib.suppress(Exception):
                await c.ws.close(code=1011, message=b"sandbox fault: dropped")
        return len(clients)

    def counts(self) -> dict[str, int]:
        return {
            "trade_clients": len(self.trade_clients),
            "trade_listeners": sum(1 for c in self.trade_clients if c.listening),
            "data_clients": len(self.data_clients),
            "data_subscribed": sum(1 for c in self.data_clients if any(c.subs.values())),
        }

    # ---------------------------------------------------------- handlers

    async def trade_updates(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        c = _Client(ws, msgpack=False)
        self.trade_clients.add(c)
        writer = asyncio.create_task(_writer(c))
        try:
            async for m in ws:
                if m.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                try:
                    msg = json.loads(m.data)
                except ValueError:
                    c.put(_j({"stream": "listening", "data": {"error": "invalid syntax"}}))
                    continue
                action = msg.get("action") if isinstance(msg, dict) else None
                data = (msg.get("data") or {}) if isinstance(msg, dict) else {}
                if action in ("authenticate", "auth"):
                    ok = self.auth(data.get("key_id"), data.get("secret_key"))
                    c.authed = ok
                    c.put(_j({"stream": "authorization", "data": {
                        "status": "authorized" if ok else "unauthorized", "action": "authenticate"}}))
                    if not ok:
                        await c.queue.join()
                        break
                elif action == "listen":
                    if not c.authed:
                        c.put(_j({"stream": "authorization", "data": {
                            "status": "unauthorized", "action": "listen"}}))
                        continue
                    streams = [s for s in data.get("streams", []) if s == "trade_updates"]
                    c.listening = bool(streams)
                    c.put(_j({"stream": "listening", "data": {"streams": streams}}))
                else:
                    c.put(_j({"stream": "listening", "data": {"error": f"invalid action: {action}"}}))
        finally:
            self.trade_clients.discard(c)
            writer.cancel()
        return ws

    async def market_data(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        c = _Client(ws, msgpack="msgpack" in request.headers.get("Content-Type", ""))
        self.data_clients.add(c)
        writer = asyncio.create_task(_writer(c))
        c.put(_encode([{"T": "success", "msg": "connected"}], c.msgpack))
        try:
            async for m in ws:
                if m.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                try:
                    msg = msgpack.unpackb(m.data) if m.type == WSMsgType.BINARY else json.loads(m.data)
                except Exception:
                    c.put(_encode([{"T": "error", "code": 400, "msg": "invalid syntax"}], c.msgpack))
                    continue
                if not isinstance(msg, dict):
                    c.put(_encode([{"T": "error", "code": 400, "msg": "invalid syntax"}], c.msgpack))
                    continue
                action = msg.get("action")
                if action == "auth":
                    if c.authed:
                        c.put(_encode([_error(403, "already authenticated")], c.msgpack))
                        continue
                    if self.auth(msg.get("key"), msg.get("secret")):
                        c.authed = True
                        c.put(_encode([{"T": "success", "msg": "authenticated"}], c.msgpack))
                    else:
                        c.put(_encode([{"T": "error", "code": 402, "msg": "auth failed"}], c.msgpack))
                        await c.queue.join()
                        break
                elif action in ("subscribe", "unsubscribe"):
                    if not c.authed:
                        c.put(_encode([{"T": "error", "code": 401, "msg": "not authenticated"}], c.msgpack))
                        continue
                    for chan in CHANNELS:
                        syms = msg.get(chan) or []
                        if action == "subscribe":
                            c.subs[chan].update(syms)
                        else:
                            c.subs[chan].difference_update(syms)
                    sub = {"T": "subscription", **{ch: sorted(v) for ch, v in c.subs.items()}}
                    c.put(_encode([sub], c.msgpack))
                else:
                    c.put(_encode([_error(410, "invalid subscribe action")], c.msgpack))
        finally:
            self.data_clients.discard(c)
            writer.cancel()
        return ws


async def _writer(c: _Client) -> None:
    while True:
        payload = await c.queue.get()
        try:
            if isinstance(payload, bytes):
                await c.ws.send_bytes(payload)
            else:
                await c.ws.send_str(payload)
        except Exception:
            pass
        finally:
            c.queue.task_done()


def _error(code: int, msg: str) -> dict:
    return {"T": "error", "code": code, "msg": msg}


def _j(msg: dict) -> bytes:
    """trade_updates frames are binary JSON, as Alpaca paper sends them."""
    return json.dumps(msg).encode()


def _encode(msgs: list[dict], as_msgpack: bool) -> bytes | str:
    return msgpack.packb(msgs, use_bin_type=True) if as_msgpack else json.dumps(msgs, default=_json_default)


def _t(ts: pd.Timestamp, as_msgpack: bool) -> Any:
    return msgpack.Timestamp.from_unix_nano(int(ts.value)) if as_msgpack else rfc3339(ts)


def _json_default(o: Any) -> Any:
    if isinstance(o, pd.Timestamp):
        return rfc3339(o)
    raise TypeError(type(o))
