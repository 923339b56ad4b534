"""One seam for many independent jobs: serial, a local process pool (default), or a Dask cluster.

Shaped like `concurrent.futures`: `submit(fn, item)` returns a `concurrent.futures.Future`. Every job
is `fn(context, item)`: the context (cleaned bars, the base config) is shipped to each worker once
(a pool initializer, or a Dask scatter with broadcast), not with every job. Results never depend on
where or in which order jobs ran: each item carries what it needs, seeds included.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from typing import Any

_CONTEXT: Any = None  # a pool worker's context, set once by its initializer


class ClusterError(Exception):
    """The Dask extra is missing or the scheduler cannot be reached; worded for the user."""


def _install(context: Any) -> None:
    global _CONTEXT
    _CONTEXT = context


def _call_in_worker(fn: Callable[[Any, Any], Any], item: Any) -> Any:
    return fn(_CONTEXT, item)


def _call_with(fn: Callable[[Any, Any], Any], context: Any, item: Any) -> Any:
    return fn(context, item)


class Runner:
    """Runs `fn(context, item)` jobs. `where`: "serial", "pool" (a local process pool of `workers`,
    default the CPU count) or a Dask scheduler address such as "tcp://10.0.0.5:8786"."""

    def __init__(self, context: Any, where: str = "pool", workers: int | None = None) -> None:
        self.context = context
        self.where = where
        self.workers = 1 if where == "serial" else (workers or os.cpu_count() or 1)
        self._pool: Executor | None = None
        self._client: Any = None
        self._ctx_future: Any = None

    @property
    def kind(self) -> str:
        return self.where if self.where in ("serial", "pool") else "dask"

    def __enter__(self) -> Runner:
        if self.where == "pool":
            self._pool = ProcessPoolExecutor(
                self.workers, _mp_context(), initializer=_install, initargs=(self.context,)
            )
        elif self.where != "serial":
            self._client = _dask_client(self.where)
            self._ctx_future = self._client.scatter(self.context, broadcast=True)
            self._pool = self._client.get_executor(pure=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if isinstance(self._pool, ProcessPoolExecutor):
            self._pool.shutdown(wait=True, cancel_futures=True)  # an interrupted sweep stops here
        elif self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._client is not None:
            self._client.close()
        self._pool = self._client = self._ctx_future = None

    def submit(self, fn: Callable[[Any, Any], Any], item: Any) -> Future:
        if self.where == "serial":
            fut: Future = Future()
            try:
                fut.set_result(fn(self.context, item))
            except BaseException as exc:  # delivered through the future, as a pool would
                fut.set_exception(exc)
            return fut
        if self._pool is None:
            raise RuntimeError("Runner used outside `with`")
        if self._client is not None:
            return self._pool.submit(_call_with, fn, self._ctx_future, item)
        return self._pool.submit(_call_in_worker, fn, item)

    def run(self, fn: Callable[[Any, Any], Any], items: Iterable[Any]) -> Iterator[tuple[int, Any]]:
        """(position of the item, its result) as jobs finish: the caller records each at once, which
        is what makes a long sweep resumable."""
        futures = {self.submit(fn, item): i for i, item in enumerate(items)}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()

    def map(self, fn: Callable[[Any, Any], Any], items: Iterable[Any]) -> list[Any]:
        """Results in the order of `items`."""
        out = dict(self.run(fn, items))
        return [out[i] for i in range(len(out))]


def _mp_context() -> Any:
    """Workers forked from a clean server process that has imported the backtest once: forking the
    caller itself is unsafe once it runs threads (a Dask client, a progress bar, the test runner),
    and spawning a fresh interpreter per worker re-imports pandas and the engine (~1 s each)."""
    import multiprocessing as mp

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["bot.research.trials", "bot.run.backtest", "bot.research.montecarlo"])
    return ctx


def _dask_client(address: str) -> Any:
    try:
        from distributed import Client
    except ImportError as exc:
        raise ClusterError(
            f"--cluster {address} needs Dask distributed, which is not installed. "
            "Fix: pip install 'soxbot[cluster]' (on this machine and every worker)."
        ) from exc
    try:
        return Client(address, timeout="5s")
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"No Dask scheduler answers at {address} ({exc}). Fix: start one with `dask scheduler` "
            "and workers with `dask worker tcp://HOST:8786` (see README, Research), or drop --cluster."
        ) from exc
