"""The trade_updates stream. It runs on a background thread that only queues: nothing reaches the engine
from another thread, the queued updates are taken by `AlpacaBroker.drain` on the driver's thread. A
reconnect sets `need_poll`, since updates may have been missed while the stream was down."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from alpaca.trading.stream import TradingStream

from bot.broker.alpaca_types import Stats
from bot.core.log import get

log = get("soxbot.alpaca")


class _Stream(TradingStream):
    """TradingStream that tells us each time it (re)connects, so missed updates are polled for."""

    def __init__(self, key: str, secret: str, url: str, on_connect: Callable[[], None]) -> None:
        super().__init__(key, secret, raw_data=True, url_override=url)
        self._on_connect = on_connect

    async def _start_ws(self) -> None:
        await super()._start_ws()
        self._on_connect()


class TradeUpdates:
    """The stream (None when not used), its thread, and the inbox of order updates it fills."""

    def __init__(self, key: str, secret: str, url: str, stats: Stats, use_stream: bool) -> None:
        self.stats = stats
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.need_poll = False
        self._connects = 0
        self.stream: _Stream | None = None
        self._thread: threading.Thread | None = None
        if use_stream:
            self.stream = _Stream(key, secret, url, self._connected)
            self.stream.subscribe_trade_updates(self._on_trade_update)

    def start(self) -> None:
        """Start the trade_updates thread (it only queues)."""
        if self.stream is not None and self._thread is None:
            self._thread = threading.Thread(target=self.stream.run, name="soxbot-trade-updates", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop listening (best effort: the thread is a daemon)."""
        s = self.stream
        if s is not None and s._loop is not None and s._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(s.stop_ws(), s._loop).result(2)
            except Exception as exc:  # stopping is best effort: the thread is a daemon
                log.debug("stream stop", error=str(exc))

    @property
    def connected(self) -> bool:
        s = self.stream
        return bool(s is not None and s._running and self._thread is not None and self._thread.is_alive())

    def take(self) -> Iterator[dict[str, Any]]:
        """The queued orders, oldest first, until the inbox is empty."""
        while True:
            try:
                data = self.inbox.get_nowait()
            except queue.Empty:
                return
            yield data["order"]

    def _connected(self) -> None:  # on the stream's thread
        self._connects += 1
        if self._connects > 1:
            self.stats.reconnects += 1
            self.need_poll = True  # updates may have been missed while it was down

    async def _on_trade_update(self, msg: dict[str, Any]) -> None:  # on the stream's thread: queue only
        data = msg.get("data") or {}
        if isinstance(data.get("order"), dict):
            self.inbox.put(data)
