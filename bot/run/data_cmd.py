"""`soxbot data download` and `soxbot data check`: the typer sub-app (the logic is in bot/data).

Exit codes: 0 done (check: no problems), 1 check found problems, 2 a user error (bad option, unknown
symbol, unwritable directory, unreachable data URL, a file on another price basis), one line each.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from bot.core.config import Settings

app = typer.Typer(
    no_args_is_help=True,
    help="Bar files: download them from Alpaca's data API, check them against the bad-bar rules.",
)

# the data client retries a failed GET; a person at a terminal waits less than the live bot
_BACKOFF = (0.5, 1.0)


def _fail(msg: str) -> typer.Exit:
    typer.echo(msg, err=True)
    return typer.Exit(2)


# Help texts name config keys as data.base_url, not [data] base_url: rich markup eats brackets.
@app.command("download")
def download_cmd(
    symbols: Annotated[str, typer.Option(help="Tickers separated by commas, e.g. SOXX,SOXL,SOXS.")],
    directory: Annotated[Path, typer.Option("--dir", help="Directory of the {SYMBOL}_{TF}.csv files.")],
    start: Annotated[
        str | None, typer.Option(help="First date, YYYY-MM-DD; needed for a file not yet there.")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Last date, YYYY-MM-DD (default: today).")] = None,
    timeframe: Annotated[str, typer.Option(help="1d, 1h, 30m, 15m, 5m or 1m.")] = "1d",
    adjustment: Annotated[
        str, typer.Option(help="raw, split, dividend or all (the live bot reads all).")
    ] = "all",
    feed: Annotated[str | None, typer.Option(help="iex or sip (default: data.feed in the config).")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")] = None,
) -> None:
    """Download bars from Alpaca into {SYMBOL}_{TF}.csv files, appending only what is missing.

    Keys: APCA_API_KEY_ID / APCA_API_SECRET_KEY, or broker.api_key / broker.secret_key in the
    config; the endpoint is data.base_url. Each file gets a {SYMBOL}_{TF}.meta.json recording its
    adjustment and feed; a later download with another one is refused. If the source re-based the
    history since (a split or dividend under an adjusted series), the file is rewritten, never mixed."""
    import pandas as pd

    from bot.core.config import ConfigError, load_config
    from bot.data import download as dl
    from bot.data.alpaca_feed import ADJUSTMENTS, AlpacaBars
    from bot.data.calendar import TIMEFRAMES
    from bot.data.errors import DataError

    try:
        cfg = load_config(config)
        syms = dl.parse_symbols(symbols)
        tf = dl.check_choice(timeframe, TIMEFRAMES, "--timeframe")
        adj = dl.check_choice(adjustment, ADJUSTMENTS, "--adjustment")
        if feed is not None:
            cfg.data.feed = dl.check_choice(feed, ("iex", "sip"), "--feed")  # type: ignore[assignment]
        first, last = dl.parse_day(start, "--start"), dl.parse_day(end, "--end")
        if first is not None and last is not None and first > last:
            raise DataError(f"--start {start} is after --end {end}: swap them.")
        key, secret = _keys(cfg)
        source = AlpacaBars(cfg.data, key, secret, backoff=_BACKOFF, adjustment=adj)
        origin = dl.Origin(adj, cfg.data.feed, cfg.data.base_url)
        outcomes = dl.download(
            source.fetch, directory, syms, tf, first, last, origin, pd.Timestamp.now(tz="UTC")
        )
    except (ConfigError, DataError) as exc:
        raise _fail(str(exc)) from exc
    for o in outcomes:
        typer.echo(o.line())


def _keys(cfg: Settings) -> tuple[str, str]:
    """Keys as the live bot finds them: the config first, then the environment."""
    from bot.core.alpaca_http import env_keys
    from bot.data.errors import DataError

    b = cfg.broker
    env_key, env_secret = env_keys()
    key = b.api_key.get_secret_value() if b.api_key else env_key
    secret = b.secret_key.get_secret_value() if b.secret_key else env_secret
    if not key or not secret:
        raise DataError(
            "Alpaca keys missing: set APCA_API_KEY_ID and APCA_API_SECRET_KEY (or [broker] api_key / "
            "secret_key in the config); paper keys come from the Alpaca dashboard."
        )
    return key, secret


@app.command("check")
def check_cmd(
    directory: Annotated[Path, typer.Argument(help="Directory of {SYMBOL}_{TF}.csv files.")],
    max_gap_bars: Annotated[
        int, typer.Option(min=0, help="Missing bars tolerated before a bar is not traded on.")
    ] = 1,
) -> None:
    """Run the bad-bar rules over every {SYMBOL}_{TF}.csv in DIR: a table per file.

    Exit 0 when no bar would be rejected or repaired, 1 when one would (or a file is unreadable),
    2 when DIR holds no bar files. Gaps are listed but are not problems."""
    from bot.core import log
    from bot.data.check import bar_files, check_file, render
    from bot.data.errors import DataError

    log.configure("console", "ERROR")  # the table says it all; no per-rule log lines
    try:
        files = bar_files(directory)
    except DataError as exc:
        raise _fail(str(exc)) from exc
    checks = [check_file(p, sym, tf, max_gap_bars) for p, sym, tf in files]
    for fc in checks:
        typer.echo(render(fc) + "\n")
    bad = [fc for fc in checks if fc.problems]
    typer.echo(
        f"{len(checks)} files, {len(bad)} with problems"
        + (f": {', '.join(fc.path.name for fc in bad)}" if bad else "")
    )
    raise typer.Exit(1 if bad else 0)
