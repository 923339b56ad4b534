"""No Docker engine runs here, so check what can be checked without one: every path the Dockerfile
copies exists and is not ignored, the dependencies come from requirements.lock in a layer before the
code, the lock pins every dependency for the image's Python and installs into a fresh venv, the
image's own command starts the service against the sandbox with its health server on 0.0.0.0 behind
the token, the HEALTHCHECK script passes, and compose.yaml keeps the journal on its volume."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bot.core.config import Settings, load_config
from tests.alpaca_support import KEY, SECRET, Sandbox, wait_until
from tests.conftest import REPO

LOCK = REPO / "requirements.lock"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (REPO / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def first(word: str) -> str:
    return next(a for w, a in instructions() if w == word)


def copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY."""
    out = []
    for w, a in instructions():
        if w == "COPY":
            *src, dest = a.split()
            out.append((src, dest))
    return out


def image_python() -> str:
    m = re.fullmatch(r"python:(3\.\d+)-slim", first("FROM"))
    assert m, first("FROM")
    return m.group(1)


def image_env() -> dict[str, str]:
    return dict(kv.split("=", 1) for w, a in instructions() if w == "ENV" for kv in a.split())


def image_command() -> list[str]:
    return json.loads(first("ENTRYPOINT")) + json.loads(first("CMD"))


def image_config() -> Path:
    """The repo file the image's command reads as its --config."""
    cmd = image_command()
    path = cmd[cmd.index("--config") + 1]
    (src,) = next(s for s, dest in copies() if dest == path)
    return REPO / src


def lock_pins() -> dict[str, tuple[str, str]]:
    """name -> (version, line) of every requirement in requirements.lock."""
    text = re.sub(r"\\\n\s*", " ", LOCK.read_text())
    pins = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            m = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", line)
            assert m, f"not pinned: {line[:80]}"
            pins[canonicalize_name(m.group(1))] = (m.group(2), line)
    return pins


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# -- the Dockerfile --------------------------------------------------------------------------------
def test_base_image_user_volume_and_entrypoint():
    assert image_python() in ("3.12", "3.13")
    user = first("USER")
    assert user not in ("root", "0")
    assert first("VOLUME") == '["/data"]'
    env = image_env()
    assert env["SOXBOT_JOURNAL__PATH"].startswith("/data/") and env["SOXBOT_DATA__CACHE_DIR"].startswith(
        "/data/"
    )
    cmd = image_command()
    scripts = PYPROJECT["project"]["scripts"]
    assert cmd[:2] == ["soxbot", "run"] and scripts["soxbot"] == "bot.cli:main"


def test_copied_paths_exist_and_are_not_ignored_by_dockerignore():
    ignored = [
        p.strip() for p in (REPO / ".dockerignore").read_text().splitlines() if p.strip() and p[0] != "#"
    ]

    def excluded(path: str) -> bool:
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(
            fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.removeprefix("**/"))
            for pat in ignored
            for p in prefixes
        )

    for src, _ in copies():
        for part in src:
            assert (REPO / part).exists(), part
            assert not excluded(part), f"{part} is copied but .dockerignore leaves it out"
            if (REPO / part).is_dir():
                for f in (REPO / part).rglob("*.py"):
                    assert not excluded(str(f.relative_to(REPO))), f
    for secret_or_junk in (".env", ".venv", ".git", "soxbot.db", "bot/__pycache__"):
        assert excluded(secret_or_junk), secret_or_junk


def test_dependencies_come_from_the_lock_in_a_layer_before_the_code():
    steps = instructions()
    lock_copy = steps.index(("COPY", "requirements.lock ./"))
    install = next(i for i, (w, a) in enumerate(steps) if w == "RUN" and "-r requirements.lock" in a)
    code = next(i for i, (w, a) in enumerate(steps) if w == "COPY" and a.split()[0] == "bot")
    assert lock_copy < install < code
    assert "--require-hashes" in steps[install][1] and "--no-deps" in steps[install][1]
    project = next(a for w, a in steps[code:] if w == "RUN" and "pip install" in a)
    assert "--no-deps" in project and "--no-build-isolation" in project and "pip check" in project


def test_the_healthcheck_runs_the_script_the_image_copies():
    hc = first("HEALTHCHECK")
    cmd = json.loads(hc[hc.index("CMD") + 3 :])
    assert cmd[0] == "python" and [s for s, dest in copies() if dest == cmd[1]] == [["docker/healthcheck.py"]]


# -- the lock ---------------------------------------------------------------------------------------
def test_the_lock_pins_every_dependency_with_hashes_for_the_image_python():
    pins = lock_pins()
    project = PYPROJECT["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["chat"]]
    wanted += PYPROJECT["dependency-groups"]["build"]
    for spec in wanted:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is a dependency but not in requirements.lock: run `make lock`"
        version = pins[name][0]
        assert req.specifier.contains(version, prereleases=True), (
            f"{req.name}=={version} in requirements.lock does not satisfy {spec}: run `make lock`"
        )
    assert all("--hash=sha256:" in line for _, line in pins.values())
    # the build backend is the one [build-system] asks for, so the image builds soxbot from the lock
    assert PYPROJECT["dependency-groups"]["build"] == PYPROJECT["build-system"]["requires"]
    header = LOCK.read_text().splitlines()[1].lstrip("# ").strip()
    assert f"--python-version {image_python()}" in header
    make = re.sub(r"\\\n\s*", " ", (REPO / "Makefile").read_text())
    lock_cmd = re.search(r"^LOCK_CMD := (.+)$", make, re.M)
    assert lock_cmd and header == " ".join(lock_cmd.group(1).split())


def _image_python_binary() -> str | None:
    """An interpreter of the image's Python version on this machine (PATH or pyenv), if any."""
    ver = image_python()
    found = [shutil.which(f"python{ver}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found += sorted(str(p / "bin" / "python3") for p in pyenv.glob(f"{ver}.*"))
    for cand in filter(None, found):
        probe = [
            cand,
            "-c",
            f"import sys, venv; sys.exit(sys.version_info[:2] != {tuple(map(int, ver.split('.')))})",
        ]
        if subprocess.run(probe, capture_output=True).returncode == 0:
            return cand
    return None


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_the_lock_installs_into_a_fresh_venv_as_the_dockerfile_does(tmp_path):
    """The image's steps in a fresh venv of the image's Python: the lock (hash-checked, no resolution),
    then soxbot from the files the Dockerfile copies, `pip check` (the set is complete and consistent,
    apprise included), and the command runs (pandas-ta, TA-Lib and the plugins load)."""
    python = _image_python_binary()
    if python is None:
        pytest.skip(f"no Python {image_python()} on this machine to build the image's venv")
    if not _pypi_reachable():
        pytest.skip("PyPI is not reachable: the lock cannot be installed")
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]

    def run(*args: str, cwd: Path = tmp_path) -> None:
        res = subprocess.run([*pip, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]

    run("install", "--no-compile", "--require-hashes", "--no-deps", "-r", str(LOCK))
    app = tmp_path / "app"  # what the Dockerfile copies into its WORKDIR, and nothing else
    app.mkdir()
    for src, dest in copies():
        if dest == "./":
            for s in src:
                shutil.copy(REPO / s, app / s)
        elif dest.startswith("./"):
            shutil.copytree(REPO / src[0], app / dest[2:], ignore=shutil.ignore_patterns("__pycache__"))
    run("install", "--no-deps", "--no-build-isolation", ".", cwd=app)
    run("check")
    res = subprocess.run(
        [str(venv / "bin" / "soxbot"), "strategies"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0 and "ma_cross" in res.stdout, res.stdout[-1000:] + res.stderr[-2000:]


# -- the image's configuration and compose.yaml -----------------------------------------------------
def _compose() -> dict:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def _compose_env(values: dict[str, str]) -> dict[str, str]:
    """compose.yaml's environment with ${VAR:?...} taken from `values` and ${VAR:-default} defaulted."""
    env = {}
    for k, v in _compose()["services"]["soxbot"]["environment"].items():
        m = re.fullmatch(r"\$\{(\w+)(?::([?-])(.*))?\}", str(v))
        assert m, v
        name, kind, rest = m.groups()
        if name in values:
            env[k] = values[name]
        elif kind == "-":
            env[k] = rest
        else:
            raise AssertionError(f"compose.yaml requires {name}")
    return env


def test_compose_keeps_the_journal_on_its_volume_and_the_secrets_in_the_environment(monkeypatch):
    svc = _compose()["services"]["soxbot"]
    assert svc["build"] == "."
    secrets = {"APCA_API_KEY_ID": "PKX", "APCA_API_SECRET_KEY": "S", "SOXBOT_SERVICE__HEALTH_TOKEN": "T0KEN"}
    with pytest.raises(AssertionError, match="requires SOXBOT_SERVICE__HEALTH_TOKEN"):
        _compose_env({k: v for k, v in secrets.items() if k != "SOXBOT_SERVICE__HEALTH_TOKEN"})
    for k, v in {**image_env(), **_compose_env(secrets)}.items():
        monkeypatch.setenv(k, v)
    cfg = load_config(image_config())
    assert cfg.broker.kind == "alpaca" and not cfg.broker.live and "paper" in cfg.broker.base_url
    assert cfg.data.source == "alpaca" and cfg.service.scheduler
    assert cfg.service.health_host == "0.0.0.0" and cfg.service.health_token is not None
    assert not cfg.alerts.apprise_urls and not (
        cfg.alerts.webhook_url and cfg.alerts.webhook_url.get_secret_value()
    )
    volumes = {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"]}
    assert volumes.get("/data") in _compose()["volumes"]  # a named volume...
    assert cfg.journal.path.parent == Path("/data") and cfg.data.cache_dir.parent == Path(
        "/data"
    )  # ...holds these
    ports = [p.rsplit(":", 1) for p in svc["ports"]]
    published = [("127.0.0.1", cfg.service.health_port), ("127.0.0.1", cfg.service.dashboard_port)]
    assert [(host.split(":")[0], int(c)) for host, c in ports] == published  # this host only
    assert Settings().service.health_port == cfg.service.health_port  # the documented default
    assert Settings().service.dashboard_port == cfg.service.dashboard_port


def test_the_image_command_without_a_health_token_stops_with_one_line(tmp_path):
    env = {**os.environ, **image_env(), "SOXBOT_JOURNAL__PATH": str(tmp_path / "j.db"),
           "APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET}  # fmt: skip
    env.pop("SOXBOT_SERVICE__HEALTH_TOKEN", None)
    cmd = image_command()
    cmd[cmd.index("--config") + 1] = str(image_config())
    res = subprocess.run([sys.executable, "-m", "bot.cli", *cmd[1:]], env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    out = (res.stdout + res.stderr).strip()
    assert res.returncode == 2, out
    assert "SOXBOT_SERVICE__HEALTH_TOKEN" in out and "Traceback" not in out


@pytest.mark.e2e
def test_the_image_command_runs_the_service_on_paper_keys_from_the_environment(tmp_path):
    """ENTRYPOINT + CMD as the image runs them (the installed `soxbot` script, the image's config, the
    image's ENV with /data moved to a temporary directory), the Alpaca URLs pointed at the sandbox: the
    service starts on 0.0.0.0, /healthz refuses a request without the token and answers 200 with it,
    the HEALTHCHECK script passes, the journal is written under the volume's path, SIGTERM exits 0."""
    sb = Sandbox(tmp_path, 1, "--start", "2024-11-04T10:00:00-05:00")
    data = tmp_path / "data"  # the volume
    port, token = free_port(), "t0ken-for-the-test"
    env = {k: v.replace("/data", str(data), 1) for k, v in image_env().items()}
    env.update(
        APCA_API_KEY_ID=KEY, APCA_API_SECRET_KEY=SECRET, SOXBOT_SERVICE__HEALTH_TOKEN=token,
        SOXBOT_SERVICE__HEALTH_PORT=str(port), SOXBOT_BROKER__BASE_URL=sb.url, SOXBOT_DATA__BASE_URL=sb.url,
        SOXBOT_SERVICE__DASHBOARD_PORT="0",
    )  # fmt: skip
    env = {**os.environ, **env}
    cmd = image_command()
    cmd[0] = str(Path(sys.executable).with_name(cmd[0]))  # the installed console script
    cmd[cmd.index("--config") + 1] = str(image_config())
    log = tmp_path / "bot.log"
    healthz = f"http://127.0.0.1:{port}/healthz"
    with log.open("w+") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            assert wait_until(proc, lambda: '"service start"' in log.read_text(), 90), log.read_text()[-3000:]
            start = next(json.loads(x) for x in log.read_text().splitlines() if '"service start"' in x)
            assert start["health"] == f"http://0.0.0.0:{port}/healthz"
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(healthz, timeout=5)
            assert refused.value.code == 401
            req = urllib.request.Request(healthz, headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=5) as r:
                assert r.status == 200 and json.loads(r.read())["mode"] == "alpaca"
            check = [sys.executable, str(REPO / "docker" / "healthcheck.py")]
            assert subprocess.run(check, env=env, timeout=30).returncode == 0
            wrong = {**env, "SOXBOT_SERVICE__HEALTH_TOKEN": "wrong"}
            assert subprocess.run(check, env=wrong, capture_output=True, timeout=30).returncode == 1
            assert (data / "soxbot.db").is_file()
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            code = proc.wait(60)
            sb.stop()
    assert code == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert '"paper-alpaca"' in text and token not in text and SECRET not in text
