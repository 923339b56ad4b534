"""The layer contract (pyproject.toml, [tool.importlinter]) holds on the tree, and it would catch an
import up the chain or a cycle: the same contract run on a copy of `bot/` with one bad import added."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(
    not LINT.exists(), reason="import-linter is not installed (pip install -e '.[dev]')"
)


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def test_the_tree_keeps_every_contract() -> None:
    out = lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "BROKEN" not in out.stdout and "4 kept, 0 broken" in out.stdout


def copy_of_bot(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "bot", tmp_path / "bot", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize(
    ("module", "bad_import", "broken"),
    [
        ("bot/risk/sizing.py", "import bot.execution.engine", "Stages: each imports only the ones below it"),
        ("bot/core/ids.py", "import bot.data.calendar", "Stages: each imports only the ones below it"),
        ("bot/sandbox/clock.py", "import bot.journal.journal", "The sandbox is a broker of its own"),
        ("bot/data/quality.py", "import bot.sandbox.clock", "Only the CLI starts the sandbox"),
        ("bot/run/service/health.py", "import bot.run.alpaca.driver", "No import cycles"),
    ],
)
def test_a_bad_import_breaks_the_contract(tmp_path: Path, module: str, bad_import: str, broken: str) -> None:
    root = copy_of_bot(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{bad_import}  # added by the test\n")
    out = lint(root)
    assert out.returncode != 0
    broken_lines = [line for line in out.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(broken) for line in broken_lines), out.stdout


def test_the_plugin_api_paths_are_the_implementation() -> None:
    """A plugin written against `bot.strategy` / `bot.stepping` gets the very classes the engine uses."""
    import bot.signals.stepping as stepping_impl
    import bot.signals.strategy as strategy_impl
    import bot.stepping
    import bot.strategy

    for name in bot.strategy.__all__:
        assert getattr(bot.strategy, name) is getattr(strategy_impl, name)
    for name in bot.stepping.__all__:
        assert getattr(bot.stepping, name) is getattr(stepping_impl, name)
