"""What `soxbot ... --help`, `--version` and `soxbot sandbox --help-all` print, through the real CLI."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.sandbox.app import _FLAGS

runner = CliRunner()


def _help(*args: str) -> str:
    r = runner.invoke(app, [*args, "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    return r.output


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("run", ["[broker] live = true"]),
        ("status", ['[broker] kind = "alpaca"', "[journal] path"]),
        ("journal", ["[journal] path"]),
        ("rearm", ["[journal] path"]),
        ("backtest", ["[plugins] paths"]),
        ("test-strategy", ["[plugins] paths"]),
    ],
)
def test_help_keeps_bracketed_section_names(command: str, words: list[str]) -> None:
    # rich markup used to read "[broker]" as a style tag and drop it: "(also needs  live = true)"
    text = " ".join(_help(command).split())  # the help wraps lines; compare word runs
    for w in words:
        assert w in text, f"{w!r} missing from `soxbot {command} --help`:\n{text}"


def test_version_prints_the_installed_version() -> None:
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"soxbot {version('soxbot')}"


def test_sandbox_help_all_describes_every_sandbox_option() -> None:
    r = runner.invoke(app, ["sandbox", "--help-all"], terminal_width=200)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    for flag in _FLAGS:
        # one line per option: the flag, its value and a description of a few words
        row = next((ln for ln in lines if re.match(rf"\s*{re.escape(flag)}\b", ln)), None)
        assert row is not None, f"{flag} not described:\n{r.output}"
        assert len(row.split(flag, 1)[1].split()) >= 3, row
    assert "--help-all" in _help("sandbox")
