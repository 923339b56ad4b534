"""What every alpaca-py REST client of soxbot needs: a request timeout and no SDK retry.

alpaca-py sends requests without a timeout and retries 429/504 three times, 3 s apart, for every
method, POST included (alpaca/common/rest.py). A retried order POST can double an order, and a hung
request freezes the bot, so each client gets a timeout and the SDK retry is switched off; callers
decide what is safe to repeat (GETs are, order POSTs only after a look-up says "not created").
"""

from __future__ import annotations

import os
from typing import Any


def harden(client: Any, timeout: float) -> Any:
    """Give `client` (any alpaca-py RESTClient) a per-request timeout and no retries; returns it."""
    session = client._session
    original = session.request

    def request(method: str, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", timeout)
        return original(method, url, **kwargs)

    session.request = request
    client._retry = 0
    return client


def env_keys() -> tuple[str, str]:
    """Keys from the environment: APCA_API_KEY_ID / APCA_API_SECRET_KEY, else SOXBOT_BROKER__*."""
    key = os.environ.get("APCA_API_KEY_ID") or os.environ.get("SOXBOT_BROKER__API_KEY", "")
    secret = os.environ.get("APCA_API_SECRET_KEY") or os.environ.get("SOXBOT_BROKER__SECRET_KEY", "")
    return key, secret
