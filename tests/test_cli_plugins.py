"""Strategy plugins kept outside the package (a pip or Docker user's own directory), through the real
CLI: `[plugins] paths` in the config (relative to the config file) and `--path` on every command that
loads strategies."""

from __future__ import annotations

import os
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e


# The installed `soxbot` script, as a user runs it: `python -m bot.cli` would put the working
# directory first on sys.path, where a user's own `strategies/` folder shadows the package.
SCRIPT = Path(sys.executable).with_name("soxbot")


def soxbot(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    cmd = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "bot.cli"]
    return subprocess.run(
        [*cmd, *args], cwd=cwd, capture_output=True, text=True, timeout=180, env=dict(os.environ)
    )


def ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return r.stdout


def next_command(stdout: str) -> list[str]:
    """The command the `next:` hint of `soxbot new-strategy` tells the user to type."""
    line = next(ln for ln in stdout.splitlines() if ln.startswith("next: "))
    argv = shlex.split(line.removeprefix("next: ").split(", then")[0])
    assert argv[0] == "soxbot", line
    return argv[1:]


def config(path: Path, body: str = "") -> Path:
    path.write_text(
        f'[[strategies]]\nname = "my_idea"\n[journal]\npath = "{path.parent / "journal.db"}"\n{body}'
    )
    return path


@pytest.mark.parametrize("dest", ["plugins", None])
def test_the_next_hint_of_new_strategy_is_a_command_that_works(tmp_path: Path, dest: str | None) -> None:
    # a user outside the repo: the default dest "strategies" is not the installed package either
    home = tmp_path / "home"
    home.mkdir()
    out = ok(soxbot("new-strategy", "my_idea", *(["--dest", dest] if dest else []), cwd=home))
    assert ok(soxbot(*next_command(out), cwd=home)).strip() == "my_idea: all checks passed"


def test_plugins_paths_in_the_config_are_read_beside_the_config_file(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    ok(soxbot("new-strategy", "my_idea", "--dest", str(conf / "plugins")))
    cfg = config(conf / "bot.toml", '[plugins]\npaths = ["plugins"]\n')
    # started from the repo, not from conf/: "plugins" still means conf/plugins
    assert "my_idea" in ok(soxbot("strategies", "--config", str(cfg)))
    assert "all checks passed" in ok(soxbot("test-strategy", "my_idea", "--config", str(cfg)))
    out = ok(soxbot("backtest", "--config", str(cfg), "--out", str(tmp_path / "bt"), "--no-progress"))
    assert "SYNTHETIC DATA" in out and (tmp_path / "bt" / "summary.json").is_file()
    ok(soxbot("replay", "--config", str(cfg), "--max-bars", "80", "--speed", "100000"))
    with sqlite3.connect(conf / "journal.db") as db:
        n = db.execute("SELECT COUNT(*) FROM signals WHERE strategy = 'my_idea'").fetchone()[0]
    assert n > 0


def test_path_option_on_run_and_backtest(tmp_path: Path) -> None:
    plugins = tmp_path / "elsewhere"
    ok(soxbot("new-strategy", "my_idea", "--dest", str(plugins)))
    cfg = config(tmp_path / "bot.toml")
    r = soxbot("backtest", "--config", str(cfg), "--out", str(tmp_path / "bt"))
    assert r.returncode == 2 and "unknown strategy" in r.stderr and "--path" in r.stderr
    ok(soxbot("backtest", "--config", str(cfg), "--path", str(plugins), "--out", str(tmp_path / "bt")))
    fast = ("--max-bars", "60", "--speed", "100000")
    ok(soxbot("replay", "--config", str(cfg), "--path", str(plugins), *fast))


def test_a_plugin_path_that_does_not_exist_is_named(tmp_path: Path) -> None:
    cfg = config(tmp_path / "bot.toml", '[plugins]\npaths = ["no-such-dir"]\n')
    r = soxbot("backtest", "--config", str(cfg), "--out", str(tmp_path / "bt"))
    assert r.returncode == 2 and str(tmp_path / "no-such-dir") in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
