"""The dashboard in a real browser (Debian's chromium + chromium-driver, through Selenium) against the
running service on the embedded sandbox (`soxbot run`, one process shared by the module): every page
renders without a JavaScript error in the console, a fill made while a page is open appears on it
without a reload, and off loopback the token rule holds. Screenshots go to test-artifacts/ to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.alpaca_support import REPO, SOXBOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
TOKEN = "browser-t0ken"

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - the dev extra has it
    webdriver = None

if webdriver is None:
    pytest.skip("selenium is not installed (pip install -e '.[dev]')", allow_module_level=True)
if not (CHROMIUM and DRIVER):
    pytest.skip(
        "no chromium + chromedriver on this machine (Debian: apt-get install chromium chromium-driver; "
        ".ci/run installs them)",
        allow_module_level=True,
    )


def fills(db: Path) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(db, timeout=5)
    try:
        return con.execute("SELECT count(*) FROM fills").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


class Service_:
    """`soxbot run` with the example config, its dashboard bound off loopback (0.0.0.0) with a token."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.log = tmp / "run.log"
        self.db = tmp / "soxbot-sandbox.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "SOXBOT_"))}
        env.update(
            SOXBOT_SERVICE__HEALTH_PORT="0", SOXBOT_SERVICE__DASHBOARD_PORT="0",
            SOXBOT_SERVICE__HEALTH_HOST="0.0.0.0", SOXBOT_SERVICE__HEALTH_TOKEN=TOKEN,
        )  # fmt: skip
        self.out = self.log.open("w")
        self.proc = subprocess.Popen([*SOXBOT, "run", "--config", str(REPO / "config.example.toml")], cwd=tmp,
                                     env=env, stdout=self.out, stderr=subprocess.STDOUT)  # fmt: skip
        found = self.wait(lambda: re.search(r"^dashboard: (\S+)", self.log.read_text(), re.M), 90, "URL")
        self.url = found.group(1)

    def wait(self, done: Any, seconds: float, what: str) -> Any:
        """Poll `done` until it gives something, with a generous deadline; the service must stay up."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            got = done()
            if got:
                return got
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.2)
        pytest.fail(f"no {what} within {seconds:.0f} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.out.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service_]:
    s = Service_(tmp_path_factory.mktemp("browser"))
    try:
        yield s
    finally:
        assert s.stop() == 0, s.log.read_text()[-3000:]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1400,1000"):  # fmt: skip
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium fetch a driver or a browser
    d = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield d
    finally:
        d.quit()


def console_errors(d: Any) -> list[str]:
    return [e["message"] for e in d.get_log("browser") if e["level"] == "SEVERE"]


def test_the_token_rule_holds_off_loopback(service: Service_, browser: Any) -> None:
    browser.get(service.url)
    assert "token required" in browser.page_source
    browser.save_screenshot(str(ARTIFACTS / "00-no-token.png"))
    browser.get(service.url + "?token=wrong")
    assert "token required" in browser.page_source
    browser.get(service.url + f"?token={TOKEN}")  # sets the cookie the next pages ride on
    assert browser.find_element(By.ID, "overview")
    browser.get(service.url + "orders")
    assert browser.find_element(By.ID, "orders-table")
    browser.get_log("browser")  # the 401s above are logged as console errors on purpose: drop them


def test_a_fill_appears_on_the_open_pages_without_a_reload(service: Service_, browser: Any) -> None:
    browser.get(service.url + f"orders?token={TOKEN}")
    seen = len(browser.find_elements(By.CSS_SELECTOR, "#fills-table tr.fill"))
    before = fills(service.db)
    marker = browser.execute_script("window.__no_reload = 1; return window.__no_reload;")
    service.wait(lambda: fills(service.db) > max(before, seen), 240, "new fill in the journal")
    WebDriverWait(browser, 30, poll_frequency=0.2).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#fills-table tr.fill")) > seen
    )
    assert browser.execute_script("return window.__no_reload;") == marker  # the same page: no reload
    browser.save_screenshot(str(ARTIFACTS / "03-orders-after-fill.png"))
    cid = sqlite3.connect(service.db).execute("SELECT client_order_id FROM fills").fetchone()[0]
    assert cid in browser.find_element(By.ID, "fills-table").text
    browser.get(service.url)
    WebDriverWait(browser, 30, poll_frequency=0.2).until(
        lambda d: int(d.find_element(By.ID, "fill-count").text) >= 1
    )
    assert not console_errors(browser)


@pytest.mark.parametrize(
    ("page", "ready"),
    [
        ("", "#overview .card"),
        ("chart", "#chart .main-svg"),
        ("orders", "#orders-table"),
        ("signals", "#signals-table"),
        ("equity", "#equity-plot .main-svg"),
        ("events", "#events-slot"),
        ("reports", "#reports-table"),
    ],
)
def test_every_page_renders_without_console_errors(
    service: Service_, browser: Any, page: str, ready: str
) -> None:
    service.wait(lambda: fills(service.db) >= 1, 240, "first fill")  # pages with something to show
    browser.get_log("browser")
    browser.get(service.url + page)
    WebDriverWait(browser, 60, poll_frequency=0.2).until(lambda d: d.find_elements(By.CSS_SELECTOR, ready))
    if page in ("chart", "equity"):  # plotly drew traces from /api/
        WebDriverWait(browser, 30, poll_frequency=0.2).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, ".scatterlayer .trace")
        )
    browser.save_screenshot(str(ARTIFACTS / f"{PAGES_ORDER.index(page) + 1:02d}-{page or 'overview'}.png"))
    assert not console_errors(browser), console_errors(browser)
    assert "Traceback" not in browser.page_source


PAGES_ORDER = ["", "chart", "orders", "signals", "equity", "events", "reports"]
