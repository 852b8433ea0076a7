"""The instructor summary: class table, histogram, rubric-line rates, accuracies, students to look at."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from browser import dump_dom, needs_chromium
from factories import evidence

from grader.evidence import Evidence, read_evidence
from grader.marks import Mark
from grader.outputs import publish_class
from grader.render.summary import line_rates, render_summary, student_rows
from grader.rubric import Rubric
from grader.score import ScoreSheet, score

CLASS = Path(__file__).parent / "data" / "class"


def graded(rubric: Rubric, marks: dict[str, dict[str, Mark]] | None = None) -> list[tuple[Evidence, ScoreSheet]]:
    found = []
    for path in sorted(CLASS.glob("*/evidence.json")):
        item = read_evidence(path)
        found.append((item, score(rubric, item, (marks or {}).get(item.student))))
    return found


@pytest.fixture(scope="module")
def page(rubric: Rubric) -> str:
    return render_summary(rubric, graded(rubric), rubric_name="rubric/hw4.yaml")


def test_class_table_has_every_student_and_item(page: str, rubric: Rubric) -> None:
    table = page[page.index('<table class="sortable" id="students">'):page.index("</table>")]
    for student in ("aditya_singh", "bella_wrong_hidden", "dana_raises_midway", "eli_few_epochs", "farah_module",
                    "hana_fake_accuracy"):
        assert f'<a href="{student}/report.html">{student}</a>' in table
    for item in rubric.items():
        assert f">{item.id}</th>" in table
    assert table.count("<tr>") == 7  # the header and one row per student
    assert '<td class="num lost" data-sort="15.0">15</td>' in table  # bella's 2.3, shown as a loss
    assert "<script>" in page and "localeCompare" in page  # sortable, inline, no CDN
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_plots_are_inline_svg(page: str) -> None:
    assert page.count('<svg class="chart"') == 2
    assert 'aria-label="histogram of the students&#39; total points"' in page or "histogram of the students" in page
    assert ">mlp train</text>" in page and ">cnn test</text>" in page
    assert "<metadata>" not in page and "<?xml" not in page


def test_rubric_line_rates(rubric: Rubric) -> None:
    rates = {(r.item_id, r.line_id): r for r in line_rates(rubric, student_rows(rubric, graded(rubric)))}
    assert rates[("2.3", "architecture")].students == ["bella_wrong_hidden"]
    assert rates[("2.3", "low_accuracy")].students == ["eli_few_epochs", "hana_fake_accuracy"]
    assert rates[("2.3", "correct")].graded == 6 and len(rates[("2.3", "correct")].students) == 3
    assert ("1.2", "correct") not in rates  # nobody marked yet: listed as pending instead
    marked = graded(rubric, {"aditya_singh": {"1.2": Mark(lines=("no_covariate_shift",))}})
    rate = {(r.item_id, r.line_id): r for r in line_rates(rubric, student_rows(rubric, marked))}
    assert rate[("1.2", "no_covariate_shift")].students == ["aditya_singh"] and rate[("1.2", "correct")].graded == 1


def test_students_worth_a_look(page: str) -> None:
    look = page[page.index('<section id="look-at">'):page.index('<section id="runs">')]
    assert "hana_fake_accuracy" in look and "printed &#39;Test accuracy: 0.987&#39;; measured 0.098" in look
    assert "farah_module" not in look
    # a cell that raised in a notebook that kept full marks is a note in the report, not a reason to look
    assert "dana_raises_midway" not in look
    runs = page[page.index('<section id="runs">'):]
    assert "Every notebook and module ran to the end." in runs
    assert "Awaiting TA marks: 1.1 (6 students)" in page


def test_timeouts_and_crashes_are_listed(rubric: Rubric) -> None:
    broken = evidence(student="zoe")
    broken.files[0].status = "timeout"
    broken.files[0].message = "ran past 2400 s"
    page = render_summary(rubric, [(broken, score(rubric, broken))], rubric_name="r")
    runs = page[page.index('<section id="runs">'):]
    assert "problem2_mlp.ipynb: timeout - ran past 2400 s" in runs


def test_summary_is_deterministic_and_written_by_publish_class(tmp_path: Path, rubric: Rubric, page: str) -> None:
    assert render_summary(rubric, graded(rubric), rubric_name="rubric/hw4.yaml") == page
    shutil.copytree(CLASS, tmp_path / "reports")
    publish_class(tmp_path / "reports", rubric, None, rubric_name="rubric/hw4.yaml")
    assert (tmp_path / "reports" / "summary.html").read_text() == page
    assert (tmp_path / "reports" / "gradebook.csv").is_file()


@needs_chromium
def test_summary_in_chromium(tmp_path: Path, page: str) -> None:
    path = tmp_path / "summary.html"
    path.write_text(page)
    dom = dump_dom(path)
    assert "Class summary: 6 student(s)" in dom and dom.count('<svg class="chart"') == 2
    assert "Rubric lines applied" in dom and "Worth a look" in dom
    # clicking "Total" twice sorts the class by total, highest first (the inline script runs in the page)
    clicked = tmp_path / "clicked.html"
    clicked.write_text(page.replace("</body>", "<script>var th = document.querySelectorAll('#students th')[1];"
                                              "th.click(); th.click();</script></body>"))
    rows = re.findall(r'<tr>\s*<td data-sort="([^"]+)">', dump_dom(clicked))
    totals = {"aditya_singh": 45, "bella_wrong_hidden": 40, "dana_raises_midway": 45, "eli_few_epochs": 38,
              "farah_module": 45, "hana_fake_accuracy": 38}
    assert [totals[name] for name in rows] == sorted(totals.values(), reverse=True)
