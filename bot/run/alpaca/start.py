"""`soxbot run` with `[broker] kind = "alpaca"`: build the driver from the config, then hand it to the
market-aware service (`[service] scheduler = true`) or run its own bar loop; close cleanly either way.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from bot.broker.alpaca import AlpacaBroker, AlpacaSetupError
from bot.core.config import ConfigError, Settings
from bot.core.log import get
from bot.data.alpaca_feed import AlpacaBars
from bot.data.errors import DataError
from bot.journal.journal import Journal
from bot.run.alpaca.clock import BrokerClock
from bot.run.alpaca.driver import AlpacaRun
from bot.run.alpaca.preflight import StartError, check_broker, explain

log = get("soxbot.run")
SETUP_ERRORS = (ConfigError, DataError, AlpacaSetupError, StartError)


def run_alpaca(
    cfg: Settings, source: str, live_flag: bool, on_serve: Any = None, synthetic: bool = False
) -> int:
    """`soxbot run` with `[broker] kind = "alpaca"`: returns the exit code. `on_serve`: see ServiceLoop;
    `synthetic`: the broker's bars are synthetic (the embedded sandbox's), journaled as such."""
    from bot.run.assemble import build_strategies

    journal: Journal | None = None
    try:
        if cfg.data.source != "alpaca":
            raise ConfigError(
                "[broker] kind = 'alpaca' trades on Alpaca's bars: set [data] source = 'alpaca' "
                "(and [data] base_url for the sandbox)."
            )
        if cfg.service.scheduler:  # apprise missing or a chat URL it cannot read: say so before trading
            from bot.run.service.channels import chat_channels

            chat_channels(cfg.alerts.apprise_urls)
        strategies = build_strategies(cfg, source)
        journal = Journal(cfg.journal.path)
        broker = AlpacaBroker(
            cfg.broker,
            live_flag,
            timeout=float(os.environ.get("SOXBOT_ALPACA_TIMEOUT", "10")),  # seconds per request
            fractional=cfg.risk.fractional,
            on_status=lambda cid, st, bid, detail: journal.order_status(cid, st, bid, detail),
        )
        check_broker(broker.client, cfg)  # fail fast on a dead URL or refused keys, before any retry
        key, secret = _keys(cfg)
        feed = AlpacaBars(cfg.data, key, secret)
        clock = BrokerClock.of(broker.client)  # soxbot's sandbox tells its speed; Alpaca's is measured
        clock.calibrate()
        r = AlpacaRun(cfg, strategies, broker, feed, journal, clock)
    except Exception as exc:
        msg = str(exc) if isinstance(exc, SETUP_ERRORS) else explain(exc, cfg)
        if msg is None:
            raise
        if journal is not None:
            journal.close()
        return _tell(msg)
    r.stop.install()
    logging.getLogger("alpaca").setLevel(logging.WARNING)  # the SDK's own INFO lines repeat ours
    mode = "live-alpaca" if not broker.paper else "paper-alpaca"
    journal.start_run(mode, r.set_id, json.loads(cfg.model_dump_json()), synthetic)
    status = "ok"
    loop = None
    try:
        log.info(
            "alpaca start",
            mode=mode,
            trading=cfg.broker.base_url,
            data=f"{cfg.data.base_url} ({cfg.data.feed})",
            stream=broker.stream_url,
            signal=cfg.universe.signal,
            bull=cfg.universe.bull or "-",
            bear=cfg.universe.bear or "-",
            timeframe=cfg.data.timeframe,
            clock_rate=f"{clock.rate:.4g}x",
        )
        if cfg.service.scheduler:  # the market-aware service: NYSE schedule, /healthz, /metrics, alerts
            from bot.run.service.runner import ServiceLoop

            loop = ServiceLoop(
                r, cfg, on_serve
            )  # before reconciling: what the restart finds reaches the webhook too
        broker.start()
        try:
            r.reconcile()
            r.warm_up()
        except Exception as exc:  # e.g. market data on another URL, or with keys it refuses
            msg = explain(exc, cfg)
            if msg is None:
                raise
            status = "error"
            return _tell(msg)
        if loop is not None:
            loop.serve(cfg.run.max_bars)  # plans its jobs, then lets a held sandbox clock run
        else:
            clock.release()  # ready: a sandbox that held its clock for this start-up lets it run
            r.run(cfg.run.max_bars)
        if r.stop.event.is_set():
            status = "stopped"
    except DataError as exc:
        log.error(str(exc))
        status = "error"
    finally:
        broker.drain()
        broker.close()
        if loop is not None:
            loop.alerts.close(2.0)  # serve() closes them too; a failed start must not lose its alerts
        s = broker.stats
        e = r.engine
        log.info(
            "alpaca end",
            bars=r.bars_done,
            trades=len(e.trades),
            position=f"{e.pos.qty:g} {e.pos.symbol}" if e.pos else "flat",
            fills_stream=s.fills_stream,
            fills_poll=s.fills_poll + s.fills_submit,
            sends=s.sends,
            resends=s.resends,
            adopted=s.adopted,
            ambiguous=s.ambiguous,
            note="broker-side stops stay in place",
        )
        journal.end_run(status)
        journal.close()
    return 0 if status in ("ok", "stopped") else 1


def _tell(msg: str) -> int:
    """A set-up problem for the person at the terminal: stderr, like every CLI error; exit code 2."""
    print(msg, file=sys.stderr, flush=True)
    return 2


def _keys(cfg: Settings) -> tuple[str | None, str | None]:
    b = cfg.broker
    return (
        b.api_key.get_secret_value() if b.api_key else None,
        b.secret_key.get_secret_value() if b.secret_key else None,
    )
