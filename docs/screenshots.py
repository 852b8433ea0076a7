"""Regenerate the README's screenshots from a graded class folder (run `grader grade` or `grader rescore` first).

    .venv/bin/python docs/screenshots.py reports/

Writes docs/report-seed.png (aditya_singh's report, top), docs/report-deductions.png (bella_wrong_hidden's
item 2.3) and docs/summary.png (summary.html, top), each as a 256-colour PNG under 400 KB.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from grader.render.pdf import Printer, find_browser

DOCS = Path(__file__).resolve().parent
SHOTS = [  # (page in the class folder, element, file, width, height)
    ("aditya_singh/report.html", "body", "report-seed.png", 1000, 1500),
    ("bella_wrong_hidden/report.html", "#item-2\\.3", "report-deductions.png", 1000, 1500),
    ("summary.html", "body", "summary.png", 1200, 1500),
]


def main(out_dir: Path) -> None:
    browser = find_browser()
    if browser is None:
        sys.exit("chromium is not installed")
    with Printer(browser) as printer:
        for page, selector, name, width, height in SHOTS:
            png = DOCS / name
            printer.screenshot(out_dir / page, png, width=width, selector=selector, max_height=height)
            Image.open(png).convert("RGB").quantize(256).save(png, optimize=True)
            print(f"{png}: {png.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "reports"))
