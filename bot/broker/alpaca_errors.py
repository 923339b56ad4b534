"""What an alpaca-py failure means for an order: it may or may not have happened ('ambiguous'), it was
sent already ('duplicate'), it does not exist ('not_found') or it was refused ('rejected'). Every retry
decision in the adapter starts from this one classification."""

from __future__ import annotations

import json
from typing import Any

import requests
from alpaca.common.exceptions import APIError

DUPLICATE_CODE = 40010001


def _api_body(exc: APIError) -> dict[str, Any]:
    try:
        body = json.loads(str(exc))
        return body if isinstance(body, dict) else {}
    except ValueError:
        return {}


def error_kind(exc: BaseException) -> str:
    """'ambiguous' (may or may not have happened), 'duplicate', 'not_found' or 'rejected'."""
    if isinstance(exc, APIError):
        status = exc.status_code
        body = _api_body(exc)
        if status == 422 and (
            body.get("code") == DUPLICATE_CODE or "client_order_id must be unique" in str(body.get("message"))
        ):
            return "duplicate"
        if status == 404:
            return "not_found"
        if status is None or status == 429 or status >= 500:
            return "ambiguous"
        return "rejected"
    if isinstance(exc, requests.RequestException | TimeoutError | ConnectionError):
        return "ambiguous"
    raise exc


def error_message(exc: BaseException) -> str:
    if isinstance(exc, APIError):
        body = _api_body(exc)
        return f"{exc.status_code} {body.get('message', str(exc))}"
    return f"{type(exc).__name__}: {exc}"
