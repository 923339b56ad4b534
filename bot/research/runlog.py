"""Each research run as a row of the journal's `runs` table (in OUT/research.db): mode, the
config, the seed and what was run, and how it ended, so a result can be traced to its inputs
(`soxbot journal --path OUT/research.db --kind runs --full`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.core.config import Settings


@contextmanager
def journaled(out: Path, mode: str, cfg: Settings, research: dict[str, Any]) -> Iterator[None]:
    """A `runs` row for the block: "ok" when it finishes, "interrupted" when it raises."""
    from bot.journal.journal import Journal
    from bot.run.backtest import set_id_for

    out.mkdir(parents=True, exist_ok=True)
    j = Journal(out / "research.db")
    j.start_run(mode, set_id_for(cfg), {**json.loads(cfg.model_dump_json()), "research": research})
    status = "interrupted"
    try:
        yield
        status = "ok"
    finally:
        j.end_run(status)
        j.close()
