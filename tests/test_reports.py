"""Per-student reports: the graded-PDF structure, measured evidence, loss curves, hints, determinism,
and what Chromium and poppler show of them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from browser import dump_dom, needs_chromium, needs_poppler, pdf_pages, pdf_text, screenshot
from click.testing import CliRunner
from conftest import ROOT, RUBRIC
from factories import code, evidence, markdown, model
from PIL import Image, ImageStat

from grader.cli import cli
from grader.evidence import Cell, Evidence, LoggedCurve, read_evidence
from grader.marks import Mark
from grader.outputs import publish_student
from grader.render.curves import curve_view
from grader.render.html import render_report
from grader.render.pdf import Printer, find_browser
from grader.rubric import Rubric
from grader.score import score

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden" / "report_aditya_singh.html"
CURVES = [LoggedCurve(name="train_losses", values=[2.3, 1.1, 0.7, 0.5, 0.45, 0.4], length=6),
          LoggedCurve(name="train_counter", values=[640, 1280, 1920, 2560, 3200, 3840], length=6),
          LoggedCurve(name="test_losses", values=[0.9, 0.5], length=2)]


def student(name: str) -> Evidence:
    return read_evidence(DATA / "class" / name / "evidence.json")


def render(rubric: Rubric, evidence: Evidence, marks: dict[str, Mark] | None = None) -> str:
    return render_report(rubric, evidence, score(rubric, evidence, marks), rubric_name="rubric/hw4.yaml")


def normalise(html: str) -> str:
    """Image payloads elided, each SVG reduced to its text (the golden survives a matplotlib upgrade),
    carriage returns (progress bars in outputs) as newlines, as git and editors would have them."""
    html = html.replace("\r\n", "\n").replace("\r", "\n")
    html = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png;base64,...", html)

    def texts(match: re.Match[str]) -> str:
        return "<svg>" + " | ".join(re.findall(r"<text[^>]*>([^<]*)</text>", match.group(0))) + "</svg>"

    return re.sub(r"<svg .*?</svg>", texts, html, flags=re.DOTALL)


def applied_lines(html: str, item: str) -> list[str]:
    article = re.search(rf'<article class="item[^"]*" id="item-{re.escape(item)}">(.*?)</article>', html, re.DOTALL)
    assert article, f"no item {item}"
    return re.findall(r'<li class="line applied" data-line="([a-z0-9_]+)">', article.group(1))


# --------------------------------------------------------------------------- content


def test_golden_report_of_the_seed_student(rubric: Rubric) -> None:
    html = normalise(render(rubric, student("aditya_singh")))
    if os.environ.get("GRADER_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(html)
    assert html == GOLDEN.read_text(), "report changed; if intended, rerun with GRADER_UPDATE_GOLDEN=1"


def test_report_is_byte_identical_in_fresh_processes() -> None:
    """Same evidence, rubric and marks: the same bytes, SVG plots included (no hash salt or date drift)."""
    script = (
        "import hashlib, pathlib\n"
        "from grader.evidence import LoggedCurve, read_evidence\n"
        "from grader.render.html import render_report\n"
        "from grader.rubric import load_rubric\n"
        "from grader.score import score\n"
        "rubric = load_rubric(pathlib.Path('rubric/hw4.yaml'))\n"
        "e = read_evidence(pathlib.Path('tests/data/class/bella_wrong_hidden/evidence.json'))\n"
        f"e.files[1].curves = [LoggedCurve(**c) for c in {[c.model_dump() for c in CURVES]!r}]\n"
        "for cell in e.files[1].cells: cell.images = []  # no plot of its own: the grader draws one\n"
        "html = render_report(rubric, e, score(rubric, e), rubric_name='r')\n"
        "assert '<svg class=\"chart\"' in html\n"
        "print(hashlib.sha256(html.encode()).hexdigest())\n"
    )
    digests = {subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout for _ in range(2)}
    assert len(digests) == 1


def test_structure_of_the_graded_pdf(rubric: Rubric) -> None:
    html = render(rubric, student("bella_wrong_hidden"))
    assert '<div class="total" id="total">40 / 100</div>' in html
    assert "<h2>QUESTION 2 <span class=\"qscore\">15 / 50 pts</span></h2>" in html
    assert '<span class="item-id">2.3</span> <span class="item-score">15 / 20</span>' in html
    assert applied_lines(html, "2.3") == ["architecture"]
    assert applied_lines(html, "3.2") == ["correct"]
    assert applied_lines(html, "1.2") == []  # pending: nothing ticked
    # every rubric line is listed, the applied one with a check mark and its reason
    assert html.count('<li class="line') == sum(len(item.lines) for item in rubric.items())
    assert re.search(r'data-line="architecture">\s*<span class="check">✓</span>', html)
    assert "MNISTClassifierMLP has 203,530 trainable parameters; expected 101,770" in html


def test_automatic_items_show_the_measured_evidence(rubric: Rubric) -> None:
    html = render(rubric, student("hana_fake_accuracy"))
    assert "Trainable parameters" in html and "(expected 101,770" in html
    assert "printed &#39;Test accuracy: 0.987&#39;; measured 0.098" in html  # claimed vs measured
    assert "Layer (torchinfo)" in html and "Handout: Linear 100,480, Linear 1,290 = 101,770" in html
    eli = render(rubric, student("eli_few_epochs"))
    assert "measured accuracy: train 0.119 &lt; 0.96, test 0.110 &lt; 0.90 (embedded data)" in eli  # the reason


def test_cells_that_raised_and_run_status(rubric: Rubric) -> None:
    html = render(rubric, student("dana_raises_midway"))
    run = html[html.index('<section class="run"'):]
    assert "Sandbox: <b>bubblewrap</b>" in run and "2 of 2 file(s) ran to the end" in run
    assert "problem2_mlp.ipynb · cell 11 · <b>error</b>" in run and "NameError" in run
    provenance = html[html.index('<footer class="provenance">'):]
    evidence = student("dana_raises_midway")
    for fact in (evidence.submission_sha256, evidence.environment.python, evidence.environment.torch,
                 f"grader {evidence.grader_version}", "Measurement seed</th><td>0", "embedded: "):
        assert fact in provenance


def test_loss_curve_from_the_notebook_plot_or_drawn(rubric: Rubric) -> None:
    plotted = student("aditya_singh")
    view = curve_view(plotted, plotted.models[0], "mlp", list(rubric.models))
    assert view is not None and view.cell is not None and view.cell.index == 23
    assert view.source == "plotted by the notebook: problem2_mlp.ipynb, cell 23"
    logged = evidence(cells=[code(0, "train_losses = []")])
    logged.files[0].curves = CURVES
    drawn = curve_view(logged, logged.models[0], "mlp", list(rubric.models))
    assert drawn is not None and drawn.svg is not None and drawn.cell is None
    svg = str(drawn.svg)
    assert svg.startswith('<svg class="chart" role="img"') and "<metadata>" not in svg and "<?xml" not in svg
    assert ">train_losses</text>" in svg and ">test_losses</text>" in svg and ">training examples seen</text>" in svg
    assert 'id="loss-mlp-' in svg and "Date" not in svg
    html = render(rubric, logged)
    assert "drawn by the grader from the lists the code logged (train_losses, test_losses, train_counter)" in html
    nothing = evidence()
    assert "this evidence does not record the losses the code logged" in render(rubric, nothing)
    nothing.files[0].curves = []
    assert "no loss curve: problem2_mlp.ipynb neither plotted one nor kept its losses" in render(rubric, nothing)


def test_module_runner_curves_go_to_their_own_model(rubric: Rubric) -> None:
    module = evidence(models=[model(), model("CNN", 8490)], cells=[code(0, "class CNN: ...")])
    module.files[0].curves = [LoggedCurve(name=f"{key}_{c.name}", values=c.values) for key in ("mlp", "cnn")
                              for c in CURVES]
    view = curve_view(module, module.models[1], "cnn", list(rubric.models))
    assert view is not None and [c.name for c in view.curves] == ["cnn_train_losses", "cnn_test_losses",
                                                                  "cnn_train_counter"]


def test_hints_for_pending_items_only(rubric: Rubric) -> None:
    seed = student("aditya_singh")
    html = render(rubric, seed)
    assert "Suggestions for the TA (not applied)" in html
    assert "mentions “covariate shift”: no deduction suggested" in html
    lacking = evidence(cells=[markdown(1, "**Problem 1 B)** Batch norm normalises every mini-batch.")])
    assert "consider “did not mention internal co-varient shift” (-1, line id no_covariate_shift)" in render(
        rubric, lacking)
    marked = render(rubric, lacking, {"1.2": Mark(lines=("correct",))})
    assert "Suggestions for the TA" not in marked and applied_lines(marked, "1.2") == ["correct"]


ONE_PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
PNG_BOMB = "iVBORw0KGgoAAAANSUhEUgAAdTAAAHUwAQAAAABOXMUXAAAAAElFTkSuQmCC"  # 30,000 x 30,000, 67 bytes


def test_markdown_is_cut_and_data_links_are_dropped(rubric: Rubric) -> None:
    table = "| a | b |\n|---|---|\n" + "| 1 | 2 |\n" * 120_000  # 1.2 MB: once 71 s and 1 GiB to render
    answer = f"**Problem 1 B)** ![plot](data:image/png;base64,{ONE_PIXEL_PNG}) [x](data:text/html,evil)\n\n{table}"
    html = render(rubric, evidence(cells=[markdown(1, answer)]))
    assert len(html) < 400_000 and "is not shown" in html
    assert 'href="data:' not in html and f'src="data:image/png;base64,{ONE_PIXEL_PNG}"' not in html, \
        "data: links and images in markdown are not links (their text is shown)"


def test_student_text_is_never_markup(rubric: Rubric) -> None:
    hostile = evidence(cells=[
        markdown(1, "**Problem 1 B)** <script>alert(1)</script> <img src=x onerror=alert(2)> [a](javascript:alert(3))"),
        Cell(index=2, cell_type="code", source="print('</pre><script>alert(4)</script>')", status="error",
             output_text="<b>bold</b>", images=['" onerror="alert(5)', "PHN2Zz48L3N2Zz4=", ONE_PIXEL_PNG,
                                                 PNG_BOMB, "iVBORw0KGgoAAAAN"]),
    ])
    html = render(rubric, hostile)
    for raw in ("<script>alert", "<img src=x", 'href="javascript:', "<b>bold</b>", "alert(5)", "PHN2Zz48L3N2Zz4="):
        assert raw not in html
    assert html.count(f'src="data:image/png;base64,{ONE_PIXEL_PNG}"') == 1  # only a real PNG is embedded
    assert PNG_BOMB not in html, "a PNG that declares a 30,000 x 30,000 image never reaches the browser"
    assert "iVBORw0KGgoAAAAN\"" not in html, "nor a PNG signature without an image header"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "default-src 'none'" in html  # and the page may not run scripts or fetch anything anyway


def test_publish_student_writes_the_files(tmp_path: Path, rubric: Rubric) -> None:
    stale = tmp_path / "bella_wrong_hidden" / "report.pdf"
    stale.parent.mkdir()
    stale.write_bytes(b"%PDF old")
    published = publish_student(tmp_path, rubric, "rubric/hw4.yaml", student("bella_wrong_hidden"), None)
    assert published.report.is_file() and (tmp_path / "bella_wrong_hidden" / "results.json").is_file()
    assert not stale.exists() and published.pdf is None  # a PDF that would disagree with the report is removed


def test_missing_chromium_is_said_once_and_skipped(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    for name in ("aditya_singh", "bella_wrong_hidden"):
        (out / name).mkdir(parents=True)
        (out / name / "evidence.json").write_text((DATA / "class" / name / "evidence.json").read_text())
    result = CliRunner(env={"GRADER_CHROMIUM": "no-such-browser"}).invoke(
        cli, ["rescore", "--rubric", str(RUBRIC), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.count("Chromium was not found: report.pdf is skipped") == 1
    assert (out / "summary.html").is_file() and (out / "aditya_singh" / "results.json").is_file()
    assert not list(out.glob("*/report.pdf"))


# --------------------------------------------------------------------------- as a person sees them


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, rubric: Rubric) -> Path:
    out = tmp_path_factory.mktemp("reports")
    browser = find_browser()
    printer = Printer(browser) if browser else None
    try:
        for name in ("aditya_singh", "bella_wrong_hidden"):
            done = publish_student(out, rubric, "rubric/hw4.yaml", student(name), None, printer=printer)
            assert printer is None or done.pdf is not None, done.pdf_error
    finally:
        if printer:
            printer.close()
    return out


def not_blank(png: Path) -> bool:
    image = Image.open(png).convert("L")
    return image.width > 300 and ImageStat.Stat(image).stddev[0] > 10


@needs_chromium
@pytest.mark.parametrize(("name", "total", "applied"), [
    ("aditya_singh", "45 / 100", {"2.3": ["correct"], "3.2": ["correct"], "3.3": ["correct"]}),
    ("bella_wrong_hidden", "40 / 100", {"2.3": ["architecture"], "3.2": ["correct"], "3.3": ["correct"]}),
])
def test_report_in_chromium(published: Path, tmp_path: Path, name: str, total: str,
                            applied: dict[str, list[str]]) -> None:
    dom = dump_dom(published / name / "report.html")
    assert f'<div class="total" id="total">{total}</div>' in dom and f'id="student">{name}</div>' in dom
    for item, lines in applied.items():
        assert applied_lines(dom, item) == lines
    assert dom.count('<span class="check">✓</span>') == sum(len(v) for v in applied.values())
    assert not_blank(screenshot(published / name / "report.html", tmp_path / "report.png"))


@needs_chromium
@needs_poppler
@pytest.mark.parametrize(("name", "expected"), [
    ("aditya_singh", ["45 / 100", "Pending TA marks for 7 item(s)", "20 / 20", "Suggestions for the TA (not applied)",
                      "Loss curve", "plotted by the notebook: problem2_mlp.ipynb, cell 23"]),
    ("bella_wrong_hidden", ["40 / 100", "15 / 20", "Architecture differs from the handout",
                            "203,530 trainable parameters"]),
])
def test_pdf_reads_like_the_graded_pdf(published: Path, tmp_path: Path, name: str, expected: list[str]) -> None:
    pdf = published / name / "report.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")
    text = pdf_text(pdf)
    for wanted in ["DS5220 Homework 4", name, "TOTAL POINTS", "QUESTION 2", "✓", "Provenance", *expected]:
        assert wanted in text, wanted
    assert text.index("QUESTION 1") < text.index("QUESTION 2") < text.index("QUESTION 3") < text.index("Provenance")
    pages = pdf_pages(pdf, tmp_path / "page")
    assert len(pages) == 2 and all(not_blank(page) for page in pages)
