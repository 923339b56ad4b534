"""Alerts to chat through apprise, delivered for real over HTTP to receivers on 127.0.0.1 (apprise's
`json://` and `form://` services): delivered end to end, a hanging or failing chat service delays
neither the caller nor the other channels, and its URL (a secret) never reaches a log line."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from bot.core.config import AlertsConfig, ConfigError, load_config
from bot.run.service.alerts import AlertSender
from tests.alpaca_support import REPO, Sandbox, bot_process, wait_until
from tests.alpaca_support import bot_config as config
from tests.test_service_alerts import free_port, wait_for

SECRET = "SECRETPART"


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records what it is sent. `code`: the answer; `hold`: an
    Event each request waits on before answering (a chat service that hangs)."""

    def __init__(self, code: int = 200, hold: threading.Event | None = None) -> None:
        self.bodies: list[tuple[str, bytes]] = []  # (content type, body)
        self.hits = 0
        self.code, self.hold = code, hold
        self.lock = threading.Lock()
        rx = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with rx.lock:
                    rx.hits += 1
                    rx.bodies.append((self.headers.get("Content-Type", ""), body))
                if rx.hold is not None:
                    rx.hold.wait(60)
                try:
                    self.send_response(rx.code)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the client gave up
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=lambda: self.httpd.serve_forever(poll_interval=0.05), daemon=True).start()

    def url(self, scheme: str, path: str = f"hooks/{SECRET}", query: str = "") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{path}" + (f"?{query}" if query else "")

    def messages(self) -> list[dict]:
        """The bodies as dicts (JSON or form-encoded)."""
        out = []
        with self.lock:
            for ctype, body in self.bodies:
                if "json" in ctype:
                    out.append(json.loads(body))
                else:
                    out.append({k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()})
        return out

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(**kw) -> Receiver:
        made.append(Receiver(**kw))
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_delivered_to_chat_end_to_end_as_json_and_form(receiver):
    js, form = receiver(), receiver()
    urls = [SecretStr(js.url("json")), SecretStr(form.url("form"))]
    sender = AlertSender(None, ["fill", "daily"], apprise_urls=urls)
    assert sender.channels == ["apprise:json#0", "apprise:form#1"]
    try:
        assert sender.send("fill", "ENTRY: BUY 10 SOXL @ 31.2000")
        assert sender.send("stop", "not wanted") is False
        assert wait_for(lambda: sender.sent == 2)
    finally:
        sender.close()
    (j,) = js.messages()
    (f,) = form.messages()
    assert (j["title"], j["message"]) == ("soxbot", "ENTRY: BUY 10 SOXL @ 31.2000")
    assert (f["title"], f["message"]) == ("soxbot", "ENTRY: BUY 10 SOXL @ 31.2000")
    assert SECRET not in repr(sender)


def test_config_takes_apprise_urls_from_the_file_or_the_environment_and_keeps_them_secret(
    tmp_path, monkeypatch
):
    p = tmp_path / "c.toml"
    p.write_text(f'[alerts]\napprise_urls = ["tgram://123456:{SECRET}/987"]\n')
    cfg = load_config(p)
    assert [u.get_secret_value() for u in cfg.alerts.apprise_urls] == [f"tgram://123456:{SECRET}/987"]
    assert SECRET not in repr(cfg.alerts) and SECRET not in cfg.model_dump_json()
    monkeypatch.setenv(
        "SOXBOT_ALERTS__APPRISE_URLS", f'["discord://1/{SECRET}", "mailtos://u:{SECRET}@x.org"]'
    )
    cfg = load_config(p)
    assert len(cfg.alerts.apprise_urls) == 2 and SECRET not in repr(cfg)
    assert AlertsConfig().apprise_urls == []


def test_a_hanging_chat_service_delays_neither_the_caller_nor_the_webhook(receiver):
    """The chat service holds the first request (read timeout 30 s). Meanwhile every `send` returns at
    once and the webhook gets every alert; closing is bounded too. A sender that waited on the chat
    service would take 30 s per alert here."""
    hung = receiver(hold=threading.Event())
    hook = receiver()
    webhook_url = f"http://127.0.0.1:{hook.port}/hooks/T0/B0/{SECRET}"
    sender = AlertSender(webhook_url, apprise_urls=[hung.url("json", query="rto=30")], retries=0)
    assert sender.send("fill", "first")
    assert wait_for(lambda: hung.hits == 1)  # the chat service now holds the first alert
    t0 = time.perf_counter()
    for i in range(20):
        assert sender.send("fill", f"fill {i}")
    assert time.perf_counter() - t0 < 1.0
    assert wait_for(lambda: len(hook.bodies) == 21)  # the webhook did not wait for the chat service
    assert hung.hits == 1
    t0 = time.perf_counter()
    sender.close(timeout=0.5)
    assert time.perf_counter() - t0 < 2.0
    assert sender.send("fill", "after close") is False


def test_a_failing_chat_service_is_retried_counted_and_its_url_never_logged(receiver, caplog, capfd):
    """Even with the process logging at DEBUG (where apprise prints whole URLs), no log line, warning,
    counter or repr shows the URL, its token or its password; the warning still says why."""
    caplog.set_level(logging.DEBUG)
    failing = receiver(code=500)
    down = f"json://bot:PASS{SECRET}@127.0.0.1:{free_port()}/hooks/{SECRET}"
    outcomes: list[str] = []
    with capture_logs() as logs:
        sender = AlertSender(
            None,
            apprise_urls=[failing.url("json", path=f"x/{SECRET}"), down],
            retries=1,
            backoff=0.01,
            on_outcome=outcomes.append,
        )
        assert sender.send("error", "engine error")
        assert wait_for(lambda: sender.failed == 2)
        sender.close()
    assert failing.hits == 2 and sender.sent == 0 and outcomes == ["failed", "failed"]
    warns = {e["channel"]: e for e in logs if e["event"] == "alert not delivered"}
    assert set(warns) == {"apprise:json#0", "apprise:json#1"}
    assert "500" in warns["apprise:json#0"]["error"]
    assert "onnection" in warns["apprise:json#1"]["error"]
    out, err = capfd.readouterr()
    for text in (repr(logs), caplog.text, out, err, repr(sender)):
        assert SECRET not in text


def test_a_url_apprise_cannot_read_is_a_config_error_that_hides_the_url():
    with pytest.raises(ConfigError) as exc:
        AlertSender(None, apprise_urls=["json://127.0.0.1/ok", f"nosuchservice://{SECRET}@x/y"])
    msg = str(exc.value)
    assert "apprise_urls[1]" in msg and "'nosuchservice'" in msg and SECRET not in msg


def test_without_apprise_installed_a_chat_url_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "apprise", None)  # import apprise -> ImportError
    cfg = AlertsConfig(apprise_urls=[f"tgram://1:{SECRET}/2"])
    with pytest.raises(ConfigError) as exc:
        AlertSender.from_settings(cfg)
    msg = str(exc.value)
    assert "pip install 'soxbot[chat]'" in msg and "\n" not in msg and SECRET not in msg
    assert not AlertSender.from_settings(AlertsConfig()).enabled  # no chat URL: apprise not needed


def test_soxbot_run_without_apprise_stops_at_start_with_one_line_and_exit_2(tmp_path):
    """The real CLI, apprise hidden, the chat URL given through the environment as in Docker: exit 2
    with the install hint, before any broker is contacted (the broker URL is a closed port)."""
    cfg = config(tmp_path, f"http://127.0.0.1:{free_port()}")
    code = (
        "import sys; sys.modules['apprise'] = None; from bot.cli import main; "
        f"sys.argv = ['soxbot', 'run', '--config', {str(cfg)!r}]; main()"
    )
    env = {"SOXBOT_ALERTS__APPRISE_URLS": f'["tgram://1:{SECRET}/2"]', "APCA_API_KEY_ID": "k",
           "APCA_API_SECRET_KEY": "s", "PATH": "/usr/bin:/bin"}  # fmt: skip
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    out = (res.stdout + res.stderr).strip()
    assert res.returncode == 2, out
    assert "pip install 'soxbot[chat]'" in out and "Traceback" not in out and SECRET not in out
    assert len(out.splitlines()) == 1, out


@pytest.mark.e2e
def test_the_service_trades_on_schedule_while_a_chat_service_hangs(tmp_path, receiver):
    """The real service on the sandbox for a week of sessions, with two chat targets: one holds the first
    alert it gets for the whole run, the other works. Every session is decided and summed up on time,
    and every daily summary reaches the working target. The sandbox's clock waits for the bot to be
    ready (`--hold-clock`), so the week starts with the bot however slow its start."""
    hung = receiver(hold=threading.Event())
    chat = receiver()
    urls = json.dumps([hung.url("json", query="rto=60"), chat.url("form")])
    sb = Sandbox(tmp_path, 60000, "--hold-clock", "--start", "2024-11-04")
    try:
        cfg = config(tmp_path, sb.url, extra=f"[alerts]\napprise_urls = {urls}\n")
        with bot_process(tmp_path, cfg) as proc:
            log = tmp_path / "bot.log"
            wait_until(proc, lambda: "summary='DAILY 2024-11-08" in log.read_text(), 120)  # the bot's pace
            out = log.read_text()
            assert proc.poll() is None, out[-3000:]
            health = re.search(r"health='(http://127\.0\.0\.1:\d+)/healthz'", out)
            assert health, out[-2000:]
            with urllib.request.urlopen(health.group(1) + "/healthz", timeout=5) as r:
                assert r.status == 200  # no job due has been missed
            assert wait_until(
                proc, lambda: sum("DAILY 2024-11-08" in m["message"] for m in chat.messages()), 30
            )
    finally:
        sb.stop()
    out = (tmp_path / "bot.log").read_text()
    assert hung.hits == 1, out[-2000:]  # held all along
    summaries = re.findall(r"summary='(DAILY [^']+)'", out)
    days = [s[6:16] for s in summaries]
    assert days == ["2024-11-04", "2024-11-05", "2024-11-06", "2024-11-07", "2024-11-08"], out[-3000:]
    assert [m["message"] for m in chat.messages() if m["message"].startswith("DAILY")] == summaries
    decided = {d[:10] for d in re.findall(r"event='decision' at='([^']+)'", out)}
    assert set(days) <= decided, out[-3000:]  # every session was decided
    assert "job failed" not in out and "job skipped" not in out
    assert "SECRETPART" not in out
