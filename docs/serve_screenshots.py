"""Regenerate the README's screenshots of `grader serve` (Chromium through Selenium and chromium-driver).

    .venv/bin/python docs/serve_screenshots.py

Builds a demo class in a temporary folder from the stored evidence of the sample students
(tests/data/class, plus `gus_copy`: dana's notebook handed in again under another name), marks a
few answers, starts the app as `grader serve` does and writes, as 256-colour PNGs:
docs/serve-grade.png (item 1.2: keyword hint highlighted), docs/serve-math.png (item 2.2: LaTeX
as MathML), docs/serve-groups.png (answer groups of 1.1) and docs/serve-conflict.png (two TAs on
one answer).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from grader.evidence import read_evidence, write_evidence
from grader.marks import Mark
from grader.marksdb import MarksDB
from grader.render.pdf import find_browser
from grader.serve.app import Server, bind
from grader.serve.security import Keys
from grader.serve.state import Grading

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--window-size=1300,860")


def demo_class(out: Path) -> None:
    for source in sorted((ROOT / "tests" / "data" / "class").glob("*/evidence.json")):
        (out / source.parent.name).mkdir(parents=True)
        shutil.copy(source, out / source.parent.name / "evidence.json")
    copy = read_evidence(out / "dana_raises_midway" / "evidence.json").model_copy(update={"student": "gus_copy"})
    write_evidence(copy, out / "gus_copy" / "evidence.json")


def browser(profile: str) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = find_browser() or "chromium"
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))


def log_in(driver: WebDriver, base: str, token: str, name: str) -> None:
    driver.get(f"{base}/?token={token}")
    driver.get(f"{base}/name")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "save-name").click()
    WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.ID, "ta-name"))


def shot(driver: WebDriver, name: str) -> None:
    png = DOCS / name
    driver.save_screenshot(str(png))
    Image.open(png).convert("RGB").quantize(256).save(png, optimize=True)
    print(f"{png}: {png.stat().st_size // 1024} KB")


def main() -> None:
    if find_browser() is None or shutil.which("chromedriver") is None:
        sys.exit("chromium and chromium-driver are not installed")
    with tempfile.TemporaryDirectory(prefix="grader-serve-shots-") as folder:
        out = Path(folder) / "reports"
        demo_class(out)
        db = MarksDB.open(out / "marks.sqlite")
        db.set_mark("bella_wrong_hidden", "1.2", Mark(("correct",)), who="Sam (TA)")
        db.set_mark("dana_raises_midway", "1.2", Mark(("correct",)), who="Sam (TA)")
        db.set_mark("eli_few_epochs", "1.2", Mark(("no_covariate_shift",), "BN is motivated by internal covariate "
                                                  "shift"), who="Sam (TA)")
        grading = Grading(out, ROOT / "rubric" / "hw4.yaml", db)
        grading.warm_up().join()
        keys = Keys()
        server = Server(grading, keys, bind("127.0.0.1", 0))
        runner = server.uvicorn()
        thread = threading.Thread(target=runner.run, kwargs={"sockets": [server.sock]}, daemon=True)
        thread.start()
        while not runner.started:
            time.sleep(0.05)
        base = "http://{}:{}".format(*server.address)
        with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
            priya, sam = browser(one), browser(two)
            try:
                log_in(priya, base, keys.token, "Priya (TA)")
                log_in(sam, base, keys.token, "Sam (TA)")
                priya.get(f"{base}/grade/1.2/aditya_singh")
                ActionChains(priya).send_keys("1").perform()
                WebDriverWait(priya, 15).until(lambda d: "saved by" in d.find_element(By.ID, "status").text)
                shot(priya, "serve-grade.png")
                priya.get(f"{base}/grade/2.2/aditya_singh")
                shot(priya, "serve-math.png")
                priya.get(f"{base}/groups/1.1")
                priya.find_element(By.CSS_SELECTOR, "details.member").click()
                shot(priya, "serve-groups.png")
                for driver in (priya, sam):
                    driver.get(f"{base}/grade/1.1/hana_fake_accuracy")
                ActionChains(priya).send_keys("1").perform()
                WebDriverWait(priya, 15).until(lambda d: "saved by" in d.find_element(By.ID, "status").text)
                ActionChains(sam).send_keys("2").perform()
                WebDriverWait(sam, 15).until(lambda d: d.find_element(By.ID, "conflict").is_displayed())
                shot(sam, "serve-conflict.png")
            finally:
                priya.quit()
                sam.quit()
        runner.should_exit = True
        thread.join(10)
        db.close()


if __name__ == "__main__":
    main()
