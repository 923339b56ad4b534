"""The sandbox's full option list (`soxbot sandbox --help-all`, `python -m bot.sandbox --help`).

Kept beside the flag table in app.py rather than inside it, so the parser stays a plain mapping;
tests require a line here for every flag the parser accepts.
"""

from __future__ import annotations

from collections.abc import Iterable

OPTIONS: dict[str, tuple[str, str]] = {
    "--host": ("ADDR", "address to listen on (default 127.0.0.1)"),
    "--port": ("N", "port; 0 = any free port, printed at start (default 8765)"),
    "--data-dir": ("DIR", "directory of {SYMBOL}_{TF}.csv bar files to replay (default: synthetic bars)"),
    "--timeframe": ("TF", "bar length served and streamed: 1d, 1h, 30m, 15m, 5m or 1m (default 1d)"),
    "--speed": ("X", "simulated seconds per wall second; 0 freezes the clock (default 1)"),
    "--seed": ("N", "seed of the synthetic bars and of the partial fills (default 7)"),
    "--key": ("K", "the only API key accepted (default: any non-empty key); needs --secret"),
    "--secret": ("S", "the only API secret accepted (default: any non-empty secret); needs --key"),
    "--start": ("WHEN", "simulated start: a date (09:00 New York that day) or a datetime"),
    "--symbols": ("A,B", "symbols to serve (default: every file in --data-dir, or SOXX,SOXL,SOXS)"),
    "--slippage-bps": ("BPS", "slippage on market and stop fills, in basis points (default 0)"),
    "--cash": ("USD", "the paper account's starting cash (default 100000)"),
    "--multiplier": ("X", "buying-power multiplier of equity, Reg-T style (default 2)"),
    "--synthetic-years": ("Y", "years of synthetic history when there is no --data-dir (default 3)"),
    "--fault-429": ("P", "share of matched requests answered 429 rate limit (0..1)"),
    "--fault-500": ("P", "share of matched requests answered 500 internal error (0..1)"),
    "--fault-504": ("P", "share of matched requests answered 504 gateway timeout (0..1)"),
    "--fault-delay": ("SEC", "seconds added to matched requests"),
    "--fault-delay-rate": ("P", "share of matched requests that get --fault-delay (default 1)"),
    "--fault-routes": ("R,R", "routes the faults apply to, e.g. 'POST /v2/orders' (default: all)"),
    "--fault-when": ("W", "'before' = the fault replaces the request; 'after' = it runs, then fails"),
    "--fault-times": ("N", "HTTP faults still to inject; 0 = no limit"),
    "--partial-fills": ("P", "chance that a fill is split into partial fills (0..1)"),
    "--reject-next": ("N", "reject the next N orders"),
    "--reject-mode": ("M", "'event' = 200 then a rejected update; 'http' = 403, nothing created"),
    "--rate-limit": ("N", "real limit of requests per minute, 429 past it; 0 = off"),
    "--hold-clock": ("", "start with the clock still until a bot is ready (`soxbot run` releases it)"),
}


def help_text(flags: Iterable[str]) -> str:
    """Usage and one line per flag, in the parser's order. Faults can also be set later through
    POST /admin/faults."""
    flags = list(flags)
    width = max(len(f"{f} {OPTIONS.get(f, ('X', ''))[0]}") for f in flags)
    lines = [
        "usage: soxbot sandbox [OPTIONS]   (or: python -m bot.sandbox [OPTIONS])",
        "",
        "A local Alpaca-compatible paper broker: trading API, market data, both WebSockets,",
        "on a simulated NYSE clock. Options (--flag VALUE or --flag=VALUE):",
    ]
    for f in flags:
        meta, desc = OPTIONS.get(f, ("X", ""))
        lines.append(f"  {f + ' ' + meta:<{width}}  {desc}".rstrip())
    lines += ["", 'Faults can be changed while it runs: POST /admin/faults, e.g. {"rate_500": 0.2}.']
    lines += ['A split, the way Alpaca applies one: POST /admin/split {"symbol": "SOXS", "new_rate": 1, '
              '"old_rate": 10}.']  # fmt: skip
    return "\n".join(lines)
