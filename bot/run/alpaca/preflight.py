"""Why a live start cannot go on, in words: nothing listens at the configured URL, or the broker
rejects the keys. Both are set-up mistakes (a sandbox not started, a typo, live keys on the paper
URL), so `soxbot run` says which URL and what to change, and exits 2 instead of a traceback.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import requests
from alpaca.common.exceptions import APIError

from bot.core.config import Settings, is_loopback

KEYS_FIX = (
    "Fix: set APCA_API_KEY_ID and APCA_API_SECRET_KEY (or [broker] api_key / secret_key) to this "
    "account's keys (paper keys for a paper URL; the key and secret the sandbox was given)."
)


class StartError(Exception):
    """The broker or data endpoint cannot be used as configured; the message is the user's."""


def _origin(url: str | None) -> str:
    u = urlparse(url or "")
    return f"{u.scheme}://{u.netloc}" if u.scheme and u.netloc else (url or "?")


def _which(origin: str, cfg: Settings) -> str:
    keys = [
        k
        for k, v in (("[broker] base_url", cfg.broker.base_url), ("[data] base_url", cfg.data.base_url))
        if _origin(v) == origin
    ]
    return " / ".join(keys) or "[broker] base_url"


def explain(exc: BaseException, cfg: Settings) -> str | None:
    """The user's message for `exc` if it means "unreachable" or "keys refused", else None."""
    request: Any = getattr(exc, "request", None)
    # 403 also answers a refused order (buying power, qty held); on a read it can only be the keys
    if isinstance(exc, APIError) and (
        exc.status_code == 401 or (exc.status_code == 403 and getattr(request, "method", "GET") == "GET")
    ):
        origin = _origin(getattr(request, "url", None) or cfg.broker.base_url)
        try:
            said = exc.message
        except (ValueError, KeyError, TypeError):
            said = str(exc)
        return f"{origin} rejected the API keys ({exc.status_code} {said}).\n{KEYS_FIX}"
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.Timeout):
        origin = _origin(getattr(request, "url", None) or cfg.broker.base_url)
        u = urlparse(origin)
        start = (
            f"start it (`soxbot sandbox --port {u.port or 8765}` to rehearse offline)"
            if is_loopback(u.hostname or "")
            else "check the network and DNS"
        )
        return (
            f"Cannot reach {origin}: nothing answers there (connection refused or unknown host).\n"
            f"Fix: check {_which(origin, cfg)}, or {start}."
        )
    return None


def check_broker(client: Any, cfg: Settings) -> None:
    """One GET /v2/account before anything else: raises StartError when nothing listens at the URL
    or the keys are refused. Anything else (a 5xx, a 429, a timeout) is left to the callers' own
    retries, since it can pass."""
    try:
        client.get_account()
    except Exception as exc:
        msg = explain(exc, cfg)
        if msg is not None:
            raise StartError(msg) from exc
