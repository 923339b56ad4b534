"""A parameter space over strategy parameters and risk keys, and the trials drawn from it.

Keys: `STRATEGY.PARAM` (the first strategy of that name; `STRATEGY[i].PARAM` for its i-th
occurrence) and `risk.KEY`, `risk.bull.KEY`, `risk.bear.KEY`. Values: a list "5,10,20" or an
inclusive range "5:50:5" (ints when every bound is an int). Grid takes every combination (in a
fixed order, risk keys varying fastest so trials sharing strategy signals sit together); random
draws `n` of them with a seeded generator; Optuna (optional extra) proposes them one at a time.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from bot.core.config import ConfigError, RiskConfig, Settings, StrategyConfig

_STRATEGY_KEY = re.compile(r"^([A-Za-z_][\w-]*)(?:\[(\d+)\])?\.(\w+)$")


class SpaceError(ConfigError):
    """A parameter space the user wrote that cannot be read; the message names the fix."""


@dataclass(frozen=True)
class Dim:
    key: str
    values: tuple[Any, ...]

    @property
    def is_risk(self) -> bool:
        return self.key.startswith("risk.")


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_values(key: str, spec: Any) -> tuple[Any, ...]:
    """ "5,10,20" -> (5, 10, 20); "5:20:5" -> (5, 10, 15, 20); a TOML list as it is."""
    if isinstance(spec, list):
        values: tuple[Any, ...] = tuple(spec)
    elif isinstance(spec, str) and ":" in spec:
        parts = [_number(p.strip()) for p in spec.split(":")]
        if len(parts) != 3 or not all(isinstance(p, int | float) for p in parts) or parts[2] <= 0:
            raise SpaceError(f"{key}={spec}: a range is START:STOP:STEP with STEP > 0, e.g. 5:50:5.")
        lo, hi, step = parts
        n = int(np.floor((hi - lo) / step + 1e-9)) + 1
        vals = [lo + k * step for k in range(max(n, 0))]
        if all(isinstance(p, int) for p in parts):
            values = tuple(int(v) for v in vals)
        else:
            values = tuple(round(float(v), 12) for v in vals)
    elif isinstance(spec, str):
        values = tuple(_number(p.strip()) for p in spec.split(",") if p.strip())
    else:
        values = (spec,)
    if not values:
        raise SpaceError(f"{key}: no values. Fix: give a list (5,10,20) or a range (5:50:5).")
    return values


def parse_dims(specs: list[str] | dict[str, Any]) -> list[Dim]:
    """From `--param KEY=VALUES` strings or a TOML [params] table."""
    items: list[tuple[str, Any]] = []
    if isinstance(specs, dict):
        items = list(specs.items())
    else:
        for s in specs:
            key, sep, val = s.partition("=")
            if not sep or not key.strip():
                raise SpaceError(f"--param {s!r}: expected KEY=VALUES, e.g. ma_cross.fast=5:50:5.")
            items.append((key.strip(), val.strip()))
    if not items:
        raise SpaceError("No parameters to vary. Fix: add --param KEY=VALUES, e.g. ma_cross.fast=5:50:5.")
    dims = [Dim(k, parse_values(k, v)) for k, v in items]
    keys = [d.key for d in dims]
    if len(set(keys)) != len(keys):
        raise SpaceError(f"A parameter is given twice: {keys}. Fix: give each key once.")
    return sorted(dims, key=lambda d: d.is_risk)  # strategy keys first: risk keys vary fastest


def check_keys(cfg: Settings, dims: list[Dim]) -> None:
    """Every key names a configured strategy and parameter, or a [risk] key."""
    for d in dims:
        if d.is_risk:
            parts = d.key.split(".")
            known = set(RiskConfig.model_fields)
            ok = (len(parts) == 2 and parts[1] in known) or (
                len(parts) == 3 and parts[1] in ("bull", "bear") and parts[2] in known
            )
            if not ok:
                raise SpaceError(
                    f"{d.key}: not a [risk] key. Fix: use risk.KEY, risk.bull.KEY or risk.bear.KEY "
                    f"with a key of [risk], e.g. risk.stop_loss_pct."
                )
        else:
            _strategy_slot(cfg, d.key)


def _strategy_slot(cfg: Settings, key: str) -> tuple[int, str]:
    m = _STRATEGY_KEY.match(key)
    if not m:
        raise SpaceError(f"{key}: expected STRATEGY.PARAM (e.g. ma_cross.fast) or risk.KEY.")
    name, occ, param = m.group(1), int(m.group(2) or 0), m.group(3)
    slots = [i for i, s in enumerate(cfg.strategies) if s.name == name]
    if len(slots) <= occ:
        names = ", ".join(s.name for s in cfg.strategies)
        raise SpaceError(f"{key}: the config has no strategy {name!r} there (it has: {names}).")
    return slots[occ], param


def apply(cfg: Settings, point: dict[str, Any]) -> Settings:
    """A copy of `cfg` with the point's values set, each section validated (a ValidationError or
    ConfigError says which combination is not valid, e.g. slow <= fast)."""
    strategies = [s.model_dump() for s in cfg.strategies]
    risk = cfg.risk.model_dump()
    for key, value in point.items():
        if key.startswith("risk."):
            parts = key.split(".")
            if len(parts) == 2:
                risk[parts[1]] = value
            else:
                risk[parts[1]] = {**(risk.get(parts[1]) or {}), parts[2]: value}
        else:
            i, param = _strategy_slot(cfg, key)
            strategies[i]["params"] = {**strategies[i]["params"], param: value}
    return cfg.model_copy(
        update={
            "strategies": [StrategyConfig.model_validate(s) for s in strategies],
            "risk": RiskConfig.model_validate(risk),
        }
    )


def strategy_part(point: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The point's strategy keys: trials that share them share their signals."""
    return tuple((k, v) for k, v in point.items() if not k.startswith("risk."))


def grid(dims: list[Dim]) -> list[dict[str, Any]]:
    return [
        dict(zip([d.key for d in dims], combo, strict=True))
        for combo in itertools.product(*[d.values for d in dims])
    ]


def random_points(dims: list[Dim], n: int, seed: int) -> list[dict[str, Any]]:
    """`n` distinct points of the grid drawn without replacement (all of it when n >= its size),
    then ordered like the grid so trials sharing signals sit together."""
    sizes = [len(d.values) for d in dims]
    total = int(np.prod(sizes))
    rng = np.random.default_rng(seed)
    flat = np.sort(rng.choice(total, size=min(n, total), replace=False))
    out = []
    for f in flat.tolist():
        idx = np.unravel_index(f, sizes)
        out.append({d.key: d.values[int(i)] for d, i in zip(dims, idx, strict=True)})
    return out


def is_invalid(exc: Exception) -> bool:
    return isinstance(exc, ValidationError | ConfigError)
