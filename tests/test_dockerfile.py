"""No Docker engine runs here, so check what can be checked: every path the Dockerfile names exists,
the entry point is the installed `soxbot` script, the journal lives on the volume, the image runs as
a non-root user and its HEALTHCHECK asks the port and path the health server serves."""

from __future__ import annotations

import re
import tomllib

from bot.core.config import Settings
from tests.conftest import REPO


def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def test_base_image_user_volume_and_entrypoint():
    text = dockerfile()
    assert re.search(r"^FROM python:3\.12-slim", text, re.M)
    user = re.search(r"^USER (\S+)", text, re.M)
    assert user and user.group(1) not in ("root", "0")
    assert 'VOLUME ["/data"]' in text
    assert "SOXBOT_JOURNAL__PATH=/data/" in text
    entry = re.search(r'^ENTRYPOINT \["(\w+)", "run"\]', text, re.M)
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert entry and entry.group(1) in scripts and scripts[entry.group(1)] == "bot.cli:main"


def test_copied_paths_exist_and_cmd_config_is_the_copied_one():
    text = dockerfile()
    for src in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for part in src.split():
            assert (REPO / part).exists(), part
    copied = re.search(r"^COPY config\.example\.toml (\S+)$", text, re.M)
    cmd = re.search(r'^CMD \["--config", "(\S+)"\]', text, re.M)
    assert copied and cmd and copied.group(1) == cmd.group(1)


def test_healthcheck_matches_the_health_server_defaults():
    text = dockerfile()
    hc = re.search(r"HEALTHCHECK.*?127\.0\.0\.1:(\d+)(/\w+)", text, re.S)
    assert hc is not None
    svc = Settings().service
    assert int(hc.group(1)) == svc.health_port and hc.group(2) == "/healthz"
