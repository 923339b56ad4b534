"""The reports page: the backtest, sweep and walk-forward output folders a user points the dashboard at.

A folder with a summary.json is one report; its files are served read-only, and only files under a
configured folder (a path that escapes it is a 404).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MAX_REPORTS = 200
HIDDEN = ("-wal", "-shm", ".tmp")  # SQLite's side files: part of journal.db, not reports


def _summary(p: Path) -> dict[str, Any]:
    try:
        s = json.loads((p / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    strat = s.get("strategy", {}) if isinstance(s, dict) else {}
    period = s.get("period", {}) if isinstance(s, dict) else {}
    return {k: strat.get(k) for k in ("total_return", "cagr", "sharpe", "max_drawdown", "n_trades")} | {
        "period": f"{period.get('start', '?')} .. {period.get('end', '?')}" if period else ""
    }


def list_reports(folders: list[Path]) -> list[dict[str, Any]]:
    """Each output folder under the configured ones (the folder itself, or its subfolders, one deep)."""
    out: list[dict[str, Any]] = []
    for i, root in enumerate(folders):
        if not root.is_dir():
            out.append({"folder": str(root), "name": str(root), "missing": True, "files": []})
            continue
        candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
        for p in candidates:
            files = sorted(f.name for f in p.iterdir() if f.is_file() and not f.name.endswith(HIDDEN))
            if not files or (p == root and not any(f in files for f in ("summary.json", "report.html"))):
                continue
            rel = "" if p == root else p.name + "/"
            out.append({
                "folder": str(root), "index": i, "name": str(p.relative_to(root.parent)),
                "files": [{"name": f, "href": f"/files/{i}/{rel}{f}"} for f in files],
                "summary": _summary(p),
            })  # fmt: skip
            if len(out) >= MAX_REPORTS:
                return out
    return out


def report_file(folders: list[Path], i: int, rel: str) -> Path | None:
    """The file `rel` under folder `i`, or None when it is not there or escapes the folder."""
    if not 0 <= i < len(folders):
        return None
    root = folders[i].resolve()
    p = (root / rel).resolve()
    if not p.is_file() or not p.is_relative_to(root):
        return None
    return p
