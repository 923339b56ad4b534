from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "SOXX_1d.csv").is_file():
        pytest.skip(f"real market data not found at {SHARED_DATA} (../shared/data beside the repo)")
    return SHARED_DATA
