"""`soxbot journal --kind runs`: one readable row per run instead of its whole config in a column.

A run row stores the full configuration as JSON (what the run actually used). The table shows what a
person scans for: mode, strategy set, when, how it ended, the settings that matter, and a short hash
of the config so two runs with the same settings are seen to match; `--full` prints the JSON itself.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd

COLUMNS = [
    "id",
    "mode",
    "set_id",
    "started_at",
    "ended_at",
    "status",
    "data",
    "trades",
    "strategies",
    "broker",
    "config",
]


def config_hash(config_json: str | None) -> str:
    """8 hex digits of the canonical config JSON (key order and spacing do not matter)."""
    try:
        canon = json.dumps(json.loads(config_json or "{}"), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canon = config_json or ""
    return hashlib.sha1(canon.encode()).hexdigest()[:8]


def _settings(config_json: str | None) -> dict[str, str]:
    try:
        cfg: dict[str, Any] = json.loads(config_json or "{}")
    except ValueError:
        return {}
    data, uni, broker = cfg.get("data", {}), cfg.get("universe", {}), cfg.get("broker", {})
    strategies = cfg.get("strategies", [])
    legs = "/".join(s for s in (uni.get("bull"), uni.get("bear")) if s) or "-"
    return {
        "data": f"{data.get('source', '?')} {data.get('timeframe', '?')}",
        "trades": f"{uni.get('signal', '?')} -> {legs}",
        "strategies": "+".join(str(s.get("name", "?")) for s in strategies)
        + (f" ({cfg.get('combine', {}).get('mode')})" if len(strategies) > 1 else ""),
        "broker": str(broker.get("kind", "?")),
    }


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs table as shown: the config column replaced by key settings and the config's hash."""
    rows = []
    for r in runs.to_dict("records"):
        synthetic = " [SYNTHETIC]" if r.get("synthetic") else ""
        rows.append(
            {
                "id": r["id"],
                "mode": f"{r['mode']}{synthetic}",
                "set_id": r["set_id"],
                "started_at": _short(r["started_at"]),
                "ended_at": _short(r["ended_at"]),
                "status": r["status"],
                **_settings(r["config"]),
                "config": config_hash(r["config"]),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def full(runs: pd.DataFrame) -> str:
    """Each run's whole configuration, indented JSON under a header line."""
    out = []
    for r in runs.to_dict("records"):
        try:
            text = json.dumps(json.loads(r["config"] or "{}"), indent=2)
        except ValueError:
            text = str(r["config"])
        out.append(f"run #{r['id']} ({r['mode']}, config {config_hash(r['config'])}):\n{text}")
    return "\n\n".join(out)


def _short(ts: Any) -> str:
    """The journal's local time with its offset, or '-' for a run that has not ended."""
    if ts is None or (isinstance(ts, float) and pd.isna(ts)):
        return "-"
    return str(ts).replace("T", " ")
