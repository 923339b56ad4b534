"""Holdings to hedge: `SYM=QTY,...` inline, or a CSV file with header `symbol,quantity`.

One symbol may appear once; quantities are positive share counts (fractions allowed). Anything else
is a `DataError` naming the entry and the fix. The broker's positions are read by the caller.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

from bot.data.errors import DataError

FIX = "Fix: SYM=QTY,... (e.g. NVDA=100,AMD=250) or a CSV file with header symbol,quantity."
_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}$")


def _add(out: dict[str, float], sym: str, qty: str, where: str) -> None:
    sym = sym.strip().upper()
    if not _SYMBOL.match(sym):
        raise DataError(f"{where}: unknown symbol {sym!r} (not a ticker). {FIX}")
    try:
        q = float(qty)
    except ValueError:
        raise DataError(f"{where}: quantity {qty.strip()!r} of {sym} is not a number. {FIX}") from None
    if not math.isfinite(q) or q <= 0:
        raise DataError(
            f"{where}: quantity of {sym} must be a positive number of shares, got {qty.strip()}. {FIX}"
        )
    if sym in out:
        raise DataError(f"{where}: {sym} is listed twice: give each holding once. {FIX}")
    out[sym] = q


def parse_holdings(text: str) -> dict[str, float]:
    """`text` is a path to a CSV file when one exists there, else `SYM=QTY,...`."""
    text = text.strip()
    if not text:
        raise DataError(f"no holdings given (--holdings, or [hedge] holdings in the config). {FIX}")
    p = Path(text).expanduser()
    if "=" not in text:
        if not p.is_file():
            raise DataError(f"holdings file {p} does not exist. {FIX}")
        return _from_file(p)
    out: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        if part.count("=") != 1:
            raise DataError(f"holdings: {part.strip()!r} is not SYM=QTY. {FIX}")
        sym, qty = part.split("=")
        _add(out, sym, qty, "holdings")
    if not out:
        raise DataError(f"no holdings given. {FIX}")
    return out


def _from_file(p: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    with p.open(newline="", encoding="utf-8-sig") as fh:
        rows = [(n, r) for n, r in enumerate(csv.reader(fh), 1) if r and any(c.strip() for c in r)]
    if not rows or [c.strip().lower() for c in rows[0][1][:2]] != ["symbol", "quantity"]:
        raise DataError(f"{p} line 1: the header must be symbol,quantity. {FIX}")
    for n, row in rows[1:]:
        if len(row) < 2:
            raise DataError(f"{p} line {n}: expected symbol,quantity, got {','.join(row)!r}. {FIX}")
        _add(out, row[0], row[1], f"{p} line {n}")
    if not out:
        raise DataError(f"{p}: no holdings below the header. {FIX}")
    return out
