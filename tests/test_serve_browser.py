"""`grader serve` in a real browser: Debian's Chromium driven by Selenium through Debian's chromedriver.

Nothing downloads a browser: the binaries are the ones `make setup` installs (chromium, chromium-driver).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import ROOT, RUBRIC
from test_serve import SHIFT, XSS, student

from grader.cli import cli
from grader.marks import Mark
from grader.marksdb import MarksDB
from grader.render.pdf import find_browser
from grader.serve.app import Server, bind
from grader.serve.security import Keys
from grader.serve.state import Grading

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed ('make setup' installs it)")
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys as Key  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = find_browser()
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="chromium and chromium-driver are not installed ('make setup' installs them)")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--window-size=1300,1000")
CLASS = ROOT / "tests" / "data" / "class"


class Live:
    """The app on uvicorn, on a free port of 127.0.0.1, in a thread of the test process."""

    def __init__(self, out: Path) -> None:
        self.db = MarksDB.open(out / "marks.sqlite")
        self.grading = Grading(out, RUBRIC, self.db)
        self.keys = Keys()
        self.server = Server(self.grading, self.keys, bind("127.0.0.1", 0))
        self.uvicorn = self.server.uvicorn()
        self.thread = threading.Thread(target=self.uvicorn.run, kwargs={"sockets": [self.server.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.uvicorn.started and time.monotonic() < deadline:
            time.sleep(0.05)
        host, port = self.server.address
        self.base = f"http://{host}:{port}"

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(10)
        self.db.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    out = tmp_path / "reports"
    for name in ("aditya_singh", "bella_wrong_hidden"):
        (out / name).mkdir(parents=True)
        shutil.copy(CLASS / name / "evidence.json", out / name / "evidence.json")
    student(out, "xena_xss", {"1.3": XSS})
    student(out, "yan_copy", {"1.3": SHIFT})
    server = Live(out)
    yield server
    server.stop()


@pytest.fixture
def browsers() -> Iterator[Callable[[], WebDriver]]:
    started: list[tuple[WebDriver, tempfile.TemporaryDirectory[str]]] = []

    def start() -> WebDriver:
        profile = tempfile.TemporaryDirectory(prefix="grader-test-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*FLAGS, f"--user-data-dir={profile.name}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        driver.set_page_load_timeout(30)
        started.append((driver, profile))
        return driver

    yield start
    for driver, profile in started:
        driver.quit()
        profile.cleanup()


def log_in(driver: WebDriver, live: Live, name: str) -> None:
    driver.get(f"{live.base}/?token={live.keys.token}")
    driver.get(f"{live.base}/name")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "save-name").click()
    wait(driver, lambda d: d.find_elements(By.ID, "ta-name"))


def wait(driver: WebDriver, condition: Callable[[WebDriver], object], timeout: float = 15) -> object:
    return WebDriverWait(driver, timeout, ignored_exceptions=[StaleElementReferenceException]).until(condition)


def press(driver: WebDriver, *keys: str) -> None:
    ActionChains(driver).send_keys(*keys).perform()


def status_says(text: str) -> Callable[[WebDriver], bool]:
    return lambda d: text in d.find_element(By.ID, "status").text


def ticked(driver: WebDriver) -> list[str]:
    return [box.get_attribute("value") for box in driver.find_elements(By.CSS_SELECTOR, "input.line-box")
            if box.is_selected()]


def test_mark_two_students_with_the_keyboard_reload_and_export(live: Live, browsers: Callable[[], WebDriver],
                                                               tmp_path: Path) -> None:
    driver = browsers()
    log_in(driver, live, "alice")
    driver.get(f"{live.base}/item/1.2")
    assert driver.current_url.endswith("/grade/1.2/aditya_singh")
    assert driver.find_element(By.ID, "progress").text == "0 / 4 graded"
    press(driver, "2")  # "did not mention internal co-varient shift"
    wait(driver, status_says("saved by alice (version 1)"))
    assert driver.find_element(By.ID, "item-score").text == "2 / 3"
    assert driver.find_element(By.ID, "progress").text == "1 / 4 graded"
    press(driver, "n")
    wait(driver, lambda d: d.current_url.endswith("/grade/1.2/bella_wrong_hidden"))
    press(driver, "1")  # Correct
    wait(driver, status_says("version 1"))
    press(driver, "c")
    driver.switch_to.active_element.send_keys("clear and complete")
    ActionChains(driver).key_down(Key.CONTROL).send_keys(Key.ENTER).key_up(Key.CONTROL).perform()
    wait(driver, status_says("version 2"))
    driver.refresh()
    assert ticked(driver) == ["correct"]
    assert driver.find_element(By.ID, "comment").get_attribute("value") == "clear and complete"
    assert driver.find_element(By.ID, "progress").text == "2 / 4 graded"
    press(driver, "p")
    wait(driver, lambda d: d.current_url.endswith("/grade/1.2/aditya_singh"))
    assert ticked(driver) == ["no_covariate_shift"] and driver.find_element(By.ID, "item-score").text == "2 / 3"

    clicked = {"aditya_singh": {"1.2": ["no_covariate_shift"]},
               "bella_wrong_hidden": {"1.2": {"lines": ["correct"], "comment": "clear and complete"}}}
    exported = tmp_path / "marks.yaml"
    result = CliRunner().invoke(cli, ["marks", "export", "--out", str(live.grading.out_dir), "-o", str(exported)])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(exported.read_text()) == clicked
    assert [e.who for e in live.db.history()] == ["alice", "alice", "alice"]

    press(driver, "u")  # the next ungraded student after aditya: bella and aditya are marked
    wait(driver, lambda d: d.current_url.endswith("/grade/1.2/xena_xss"))
    press(driver, "p", "z")  # back to bella's answer (p), undo the comment (z)
    wait(driver, lambda d: d.current_url.endswith("/grade/1.2/bella_wrong_hidden"))
    press(driver, "z")
    wait(driver, status_says("undone by alice"))
    assert live.db.state("bella_wrong_hidden", "1.2").mark == Mark(("correct",))


def test_two_browsers_on_one_answer_conflict_and_nothing_is_lost(live: Live,
                                                                browsers: Callable[[], WebDriver]) -> None:
    alice, bob = browsers(), browsers()
    log_in(alice, live, "alice")
    log_in(bob, live, "bob")
    for driver in (alice, bob):
        driver.get(f"{live.base}/grade/1.1/yan_copy")
    press(alice, "1")  # Correct
    wait(alice, status_says("saved by alice"))
    press(bob, "2")  # partially correct, on the page he loaded before alice saved
    wait(bob, lambda d: d.find_element(By.ID, "conflict").is_displayed())
    assert "alice changed this mark" in bob.find_element(By.ID, "conflict-message").text
    assert bob.find_element(By.ID, "conflict-theirs").text == "Correct"
    assert bob.find_element(By.ID, "conflict-mine").text == "partially correct"
    assert live.db.state("yan_copy", "1.1").mark == Mark(("correct",))  # alice's mark stands
    assert [c["who"] for c in live.db.open_conflicts()] == ["bob"]  # bob's is kept
    bob.find_element(By.ID, "use-mine").click()
    wait(bob, lambda d: not d.find_element(By.ID, "conflict").is_displayed())
    assert ticked(bob) == ["partially_correct"]
    press(alice, "1")  # alice's page is now stale in turn
    wait(alice, lambda d: d.find_element(By.ID, "conflict").is_displayed())
    alice.find_element(By.ID, "keep-theirs").click()
    wait(alice, lambda d: not d.find_element(By.ID, "conflict").is_displayed())
    assert ticked(alice) == ["partially_correct"]
    history = [(e.who, e.after) for e in live.db.history(student="yan_copy", item="1.1")]
    assert history == [("alice", Mark(("correct",))), ("bob", Mark(("partially_correct",)))]
    assert live.db.open_conflicts() == [] and len(live.db.history()) == 2


def test_an_answer_with_script_or_onerror_runs_nothing(live: Live, browsers: Callable[[], WebDriver]) -> None:
    driver = browsers()
    log_in(driver, live, "alice")
    driver.get(f"{live.base}/grade/1.3/xena_xss")
    answer = driver.find_element(By.ID, "answer-1")
    assert "<script>window.__pwned = 1; alert(1)</script>" in answer.text
    assert '<img src=x onerror="window.__pwned = 2">' in answer.text
    assert answer.find_elements(By.CSS_SELECTOR, "img, script, a") == []
    assert answer.find_elements(By.CSS_SELECTOR, "math mfrac")  # the LaTeX is shown as math
    time.sleep(0.5)
    assert driver.execute_script("return window.__pwned === undefined")
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018
    press(driver, "1")  # the page still works
    wait(driver, status_says("saved by alice"))
