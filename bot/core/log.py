"""Logging set-up: readable console lines by default, JSON or key=value for machines.

Everything goes through structlog to stdout, one line per event. Secrets never reach a log line:
config values are SecretStr and are rendered masked.
"""

from __future__ import annotations

import logging
import sys

import structlog


class _Stdout:
    """Whatever `sys.stdout` is at the moment of writing, not the one seen at `configure` time: a
    caller that swaps stdout for a while (a test runner capturing a command's output) and closes its
    stand-in afterwards must not leave the bot logging into a closed file."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def configure(fmt: str = "console", level: str = "INFO") -> None:
    lvl = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=lvl, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("numba", "urllib3", "asyncio", "websockets", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(lvl, logging.WARNING))
    if fmt == "json":
        renderer: structlog.typing.Processor = structlog.processors.JSONRenderer()
    elif fmt == "keyvalue":
        renderer = structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"])
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty(), pad_event_to=10, sort_keys=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=_Stdout()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def get(name: str = "soxbot") -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)
