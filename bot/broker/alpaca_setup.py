"""From config to a connection: the keys, the paper/live guard and the trade_updates URL, all checked
before the adapter sends anything, with errors worded for the user."""

from __future__ import annotations

from urllib.parse import urlparse

from bot.core.alpaca_http import env_keys
from bot.core.config import BrokerConfig

LIVE_HOST = "api.alpaca.markets"


class AlpacaSetupError(Exception):
    """The adapter cannot start (keys missing, live endpoint not allowed): worded for the user."""


def credentials(cfg: BrokerConfig) -> tuple[str, str]:
    """Keys from the config (SecretStr; also SOXBOT_BROKER__API_KEY) or env APCA_API_KEY_ID/_SECRET_KEY."""
    env_key, env_secret = env_keys()
    key = cfg.api_key.get_secret_value() if cfg.api_key else env_key
    secret = cfg.secret_key.get_secret_value() if cfg.secret_key else env_secret
    if not key or not secret:
        raise AlpacaSetupError(
            "Alpaca keys missing: set APCA_API_KEY_ID and APCA_API_SECRET_KEY in the environment "
            "(or [broker] api_key / secret_key). Paper keys come from the Alpaca dashboard, Paper account."
        )
    return key, secret


def is_live_endpoint(base_url: str) -> bool:
    return (urlparse(base_url).hostname or "").lower() == LIVE_HOST


def check_endpoint(cfg: BrokerConfig, live_flag: bool) -> bool:
    """True for paper. A live endpoint needs `[broker] live = true` AND the --live flag."""
    if is_live_endpoint(cfg.base_url) and not (cfg.live and live_flag):
        raise AlpacaSetupError(
            f"{cfg.base_url} trades real money: it needs `[broker] live = true` and `soxbot run --live`. "
            "For paper use https://paper-api.alpaca.markets (the default)."
        )
    return not (cfg.live and live_flag)


def stream_url(base_url: str, override: str | None = None) -> str:
    """trade_updates URL: http -> ws, https -> wss, plus /stream (as Alpaca's own paper/live URLs)."""
    if override:
        return override
    u = urlparse(base_url)
    scheme = "wss" if u.scheme == "https" else "ws"
    return f"{scheme}://{u.netloc}{u.path.rstrip('/')}/stream"
