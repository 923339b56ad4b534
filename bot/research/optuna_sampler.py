"""Optuna as the sweep's sampler (`--method optuna`, extra `soxbot[optuna]`): a seeded TPE sampler
proposes points of the space one batch (one per worker) at a time; every trial is recorded like a
grid trial, and a resumed sweep first tells Optuna the trials already run."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from bot.research.curves import score
from bot.research.space import SpaceError


def run_optuna(
    runner: Any, spec: Any, store: Any, done: pd.DataFrame, on_result: Callable[[int, int], None] | None
) -> None:
    try:
        import optuna
    except ImportError as exc:
        raise SpaceError(
            "--method optuna needs Optuna. Fix: pip install 'soxbot[optuna]', or --method random."
        ) from exc
    from bot.research.trials import run_group

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {d.key: optuna.distributions.CategoricalDistribution(list(d.values)) for d in spec.dims}
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=spec.seed))
    for _, row in done.iterrows():
        value = _value(row.get(spec.objective), spec.objective)
        params = {d.key: _match(row[d.key], d.values) for d in spec.dims}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value))
    next_id = len(done)
    while next_id < spec.n:
        batch = min(runner.workers, spec.n - next_id)
        asked = [study.ask(dists) for _ in range(batch)]
        groups = [[(next_id + k, dict(t.params))] for k, t in enumerate(asked)]
        results = runner.map(run_group, groups)
        for t, res in zip(asked, results, strict=True):
            store.add(res)
            r = res[0]
            study.tell(t, _value(r.metrics.get(spec.objective), spec.objective) if r.status == "ok" else -1e9)
        next_id += batch
        if on_result is not None:
            on_result(next_id, spec.n)


def _value(v: Any, objective: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return -1e9
    s = score({objective: f}, objective)
    return s if math.isfinite(s) else -1e9


def _match(v: Any, choices: tuple[Any, ...]) -> Any:
    for c in choices:
        if c == v or (isinstance(c, int | float) and isinstance(v, int | float) and math.isclose(c, v)):
            return c
    return v
