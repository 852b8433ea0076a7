"""Look at rendered pages as a person would: headless Chromium (DOM, screenshots) and poppler (PDF)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from grader.render.pdf import FLAGS, find_browser

CHROMIUM = find_browser()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed ('make setup' installs it)")
needs_poppler = pytest.mark.skipif(shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
                                   reason="poppler-utils (pdftoppm, pdftotext) is not installed ('make setup')")


def chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="grader-test-chromium-") as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout, check=False)


def dump_dom(page: Path) -> str:
    """The DOM after Chromium has loaded and laid out ``page``."""
    return chromium("--dump-dom", page.resolve().as_uri()).stdout


def screenshot(page: Path, png: Path, width: int = 1100, height: int = 1500, fragment: str = "") -> Path:
    chromium(f"--screenshot={png.resolve()}", f"--window-size={width},{height}",
             page.resolve().as_uri() + (f"#{fragment}" if fragment else ""))
    return png


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout


def pdf_pages(pdf: Path, prefix: Path, resolution: int = 50, last: int = 2) -> list[Path]:
    subprocess.run(["pdftoppm", "-png", "-r", str(resolution), "-l", str(last), str(pdf), str(prefix)], check=True)
    return sorted(prefix.parent.glob(f"{prefix.name}*.png"))
