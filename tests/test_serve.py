"""`grader serve` over HTTP (Starlette's TestClient): token, CSRF, CSP, XSS, marks and scores, rubric edits, groups."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT, RUBRIC
from factories import evidence, markdown
from starlette.testclient import TestClient

from grader.cli import EXIT_ENVIRONMENT, EXIT_INPUT, cli
from grader.evidence import write_evidence
from grader.marks import Mark
from grader.marksdb import MarksDB
from grader.serve.answers import highlight, mathml, render_markdown
from grader.serve.app import create_app
from grader.serve.security import APP_CSP, REPORT_CSP, Keys
from grader.serve.state import Grading, ServeError
from grader.similarity import group_answers, possible_copies

CLASS = ROOT / "tests" / "data" / "class"
HOST = "http://127.0.0.1:8765"
XSS = ("**Problem 1 C)**\n\nThe distributions differ <script>window.__pwned = 1; alert(1)</script> and "
       "<img src=x onerror=\"window.__pwned = 2\"> and $\\text{<img src=x onerror=alert(3)>} x^2$ "
       "[link](javascript:alert(4))\n\n$$\\href{javascript:alert(5)}{y} = \\frac{a}{b}$$")
SHIFT = ("**Problem 1 C)**\n\nIf the training and test distributions differ, the model learns patterns of the "
         "training data that do not hold at test time, so its test accuracy drops; this is called covariate shift "
         "and it can be reduced by collecting training data like the test data or by reweighting samples.")


def student(out: Path, name: str, answers: dict[str, str]) -> None:
    cells = [markdown(index, text) for index, text in enumerate(answers.values())]
    write_evidence(evidence(cells=cells, student=name), out / name / "evidence.json")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "reports"
    for name in ("aditya_singh", "bella_wrong_hidden"):
        (folder / name).mkdir(parents=True)
        shutil.copy(CLASS / name / "evidence.json", folder / name / "evidence.json")
    student(folder, "xena_xss", {"1.3": XSS})
    student(folder, "yan_copy", {"1.3": SHIFT})
    student(folder, "zoe_copy", {"1.3": SHIFT.replace("drops;", "drops,").replace("**Problem 1 C)**",
                                                                               "**Problem 1 c)**")})
    return folder


@pytest.fixture
def grading(out: Path) -> Grading:
    db = MarksDB.open(out / "marks.sqlite")
    yield Grading(out, RUBRIC, db)
    db.close()


class Browser:
    """A TestClient logged in with the token, with the page's CSRF token at hand."""

    def __init__(self, grading: Grading, keys: Keys, name: str = "alice") -> None:
        self.client = TestClient(create_app(grading, keys), base_url=HOST)
        assert self.client.get(f"/?token={keys.token}", follow_redirects=False).status_code == 303
        self.csrf = re.search(r'name="csrf-token" content="([^"]+)"', self.client.get("/").text).group(1)
        self.client.post("/name", data={"csrf": self.csrf, "name": name, "next": "/"})

    def mark(self, item: str, who: str, version: int, lines: list[str], comment: str = "",
             **extra: str) -> dict[str, object]:
        response = self.client.post(f"/grade/{item}/{who}", data={"csrf": self.csrf, "version": str(version),
                                                                   "lines": lines, "comment": comment, **extra},
                                    headers={"Accept": "application/json"})
        return {**response.json(), "code": response.status_code}


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def browser(grading: Grading, keys: Keys) -> Browser:
    return Browser(grading, keys)


def test_every_page_needs_the_token(grading: Grading, keys: Keys) -> None:
    client = TestClient(create_app(grading, keys), base_url=HOST)
    for path in ("/", "/grade/1.2/aditya_singh", "/export/yaml", "/groups/1.3", "/summary"):
        response = client.get(path)
        assert response.status_code == 403 and "needs its token" in response.text
    assert client.get("/?token=wrong").status_code == 403
    login = client.get(f"/grade/1.2/aditya_singh?token={keys.token}", follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/grade/1.2/aditya_singh"  # token leaves the URL
    assert "HttpOnly" in login.headers["set-cookie"] and "SameSite=strict" in login.headers["set-cookie"]
    assert client.get("/").status_code == 200
    other = TestClient(create_app(grading, keys), base_url=HOST)
    assert other.get("/", headers={"Authorization": f"token {keys.token}"}).status_code == 200
    forged = TestClient(create_app(grading, keys), base_url=HOST, cookies={"grader_session": "abc.def"})
    assert forged.get("/").status_code == 403


def test_changes_need_the_csrf_token_and_this_origin(browser: Browser, grading: Grading) -> None:
    client = browser.client
    base = {"version": "0", "lines": ["correct"]}
    assert client.post("/grade/1.2/aditya_singh", data=base).status_code == 403
    assert client.post("/grade/1.2/aditya_singh", data={**base, "csrf": "0" * 64}).status_code == 403
    assert client.post("/grade/1.2/aditya_singh", data={**base, "csrf": browser.csrf},
                       headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.post("/publish", data={}).status_code == 403
    assert client.post("/rubric/1.2", data={"text": "x", "points": "-1"}).status_code == 403
    assert grading.db.history() == [] and grading.db.rubric_edits() == []  # nothing was written
    response = client.post("/grade/1.2/aditya_singh", data={**base, "csrf": browser.csrf},
                           headers={"Origin": HOST}, follow_redirects=False)
    assert response.status_code == 303 and grading.db.state("aditya_singh", "1.2").who == "alice"


def test_security_headers(browser: Browser, out: Path, grading: Grading) -> None:
    page = browser.client.get("/grade/1.2/aditya_singh")
    assert page.headers["content-security-policy"] == APP_CSP and "'unsafe-inline'" not in APP_CSP
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    assert re.findall(r"<script[^>]*>", page.text) == ['<script src="/static/serve.js" defer>']
    assert " style=" not in page.text  # the policy allows no inline style either
    grading.publish(who="alice")
    report = browser.client.get("/report/aditya_singh")
    assert report.status_code == 200 and report.headers["content-security-policy"] == REPORT_CSP
    assert browser.client.get("/static/serve.js").headers["content-type"].startswith("text/javascript")


def test_an_answer_with_html_is_shown_as_text(browser: Browser) -> None:
    page = browser.client.get("/grade/1.3/xena_xss").text
    answer = page[page.index('id="answer-1"'):page.index("</section>")]
    assert "&lt;script&gt;window.__pwned = 1; alert(1)&lt;/script&gt;" in answer
    assert "&lt;img src=x onerror=" in answer and "<img" not in answer and "<script" not in answer
    assert "href=" not in answer and "onerror=\"" not in answer  # the javascript: link stays text
    assert "<math" in answer and "<mfrac>" in answer  # the LaTeX is still shown as math


def test_latex_becomes_safe_mathml() -> None:
    html = mathml(r"\text{<img src=x onerror=alert(1)>} \href{javascript:alert(1)}{x} \frac{a}{b}")
    assert "<img" not in html and "&lt;img" in html and "onerror=alert(1)&gt;" in html and "javascript" not in html
    assert html.startswith('<math xmlns="http://www.w3.org/1998/Math/MathML"')
    assert mathml(r"\frac{") == '<code class="tex">\\frac{</code>'
    rendered = highlight(render_markdown("Internal co-variate  Shift, `covariate shift` and $shift$"),
                         ["co-variate shift", "shift"])
    assert '<mark class="hint">co-variate  Shift</mark>' in rendered
    assert "<code>covariate shift</code>" in rendered and "<mi>s</mi>" in rendered  # not inside code or math


def test_marking_recomputes_scores_at_once(browser: Browser, grading: Grading) -> None:
    page = browser.client.get("/grade/1.2/aditya_singh").text
    assert 'id="progress">0 / 5 graded' in page and "– / 3" in page and "(pending: 1.1, 1.2" in page
    assert '<mark class="hint">covariate shift</mark>' in page  # the keyword hint, highlighted in the answer
    saved = browser.mark("1.2", "aditya_singh", 0, ["no_covariate_shift"], "see lecture 5")
    assert saved["code"] == 200 and saved["item_score"] == "2 / 3" and saved["progress"] == "1 / 5 graded"
    assert saved["applied"] == {"correct": False, "no_covariate_shift": True}
    assert saved["total"].startswith("47 / 100 (pending: 1.1, 1.3")
    page = browser.client.get("/grade/1.2/aditya_singh").text
    assert 'value="no_covariate_shift" data-key="2" checked' in page and "see lecture 5" in page
    undone = browser.mark("1.2", "aditya_singh", 1, [], action="undo")
    assert undone["graded"] is False and undone["version"] == 2 and undone["item_score"] == "– / 3"
    cleared = browser.mark("1.2", "aditya_singh", 2, [])  # nothing ticked, no comment: pending
    assert cleared["graded"] is False
    assert [e.action for e in grading.db.history()] == ["mark", "undo"]
    unknown = browser.client.post("/grade/1.2/aditya_singh", data={"csrf": browser.csrf, "version": "2",
                                                                   "lines": ["nope"]})
    assert unknown.status_code == 400 and "no line(s) nope" in unknown.text


def test_navigation_and_next_ungraded(browser: Browser, grading: Grading) -> None:
    grading.db.set_mark("aditya_singh", "1.1", Mark(("correct",)), who="bob")
    start = browser.client.get("/item/1.1", follow_redirects=False)
    assert start.headers["location"] == "/grade/1.1/bella_wrong_hidden"
    following = browser.client.get("/next/1.1?after=bella_wrong_hidden", follow_redirects=False)
    assert following.headers["location"] == "/grade/1.1/xena_xss"
    page = browser.client.get("/grade/1.1/bella_wrong_hidden").text
    assert 'id="prev" href="/grade/1.1/aditya_singh"' in page and 'id="next" href="/grade/1.1/xena_xss"' in page


def test_two_tas_on_the_same_answer_conflict_and_nothing_is_lost(grading: Grading, keys: Keys) -> None:
    alice, bob = Browser(grading, keys, "alice"), Browser(grading, keys, "bob")
    assert alice.mark("1.3", "yan_copy", 0, ["correct"])["code"] == 200
    conflict = bob.mark("1.3", "yan_copy", 0, [], "missing the covariate shift")  # bob still saw version 0
    assert conflict["code"] == 409 and conflict["theirs"]["who"] == "alice" and conflict["version"] == 1
    assert grading.db.state("yan_copy", "1.3").mark == Mark(("correct",))
    page = bob.client.get("/grade/1.3/yan_copy").text  # a reload still shows bob's attempt
    assert 'class="conflict"' in page and "missing the covariate shift" in page
    resolved = bob.mark("1.3", "yan_copy", 1, [], "missing the covariate shift", resolve="1")
    assert resolved["code"] == 200 and resolved["version"] == 2
    assert [(e.who, e.after) for e in grading.db.history(student="yan_copy")] == [
        ("alice", Mark(("correct",))), ("bob", Mark((), "missing the covariate shift"))]
    assert grading.db.open_conflicts() == []


def test_automatic_items_show_evidence_and_can_be_overridden(browser: Browser) -> None:
    page = browser.client.get("/grade/2.3/bella_wrong_hidden").text
    assert "Measured evidence" in page and "203,530" in page and 'id="override"' in page
    refused = browser.mark("2.3", "bella_wrong_hidden", 0, ["correct"], override="1")
    assert refused["code"] == 400 and "needs a comment" in refused["error"]
    saved = browser.mark("2.3", "bella_wrong_hidden", 0, ["correct"], "checked by hand", override="1")
    assert saved["item_score"] == "20 / 20" and saved["override"] is True
    back = browser.mark("2.3", "bella_wrong_hidden", 1, [])  # override off: the automatic result again
    assert back["item_score"] == "15 / 20"


def test_changing_a_rubric_line_rescores_the_students_marked_with_it(browser: Browser, grading: Grading) -> None:
    browser.mark("1.2", "aditya_singh", 0, ["no_covariate_shift"])
    browser.mark("1.2", "bella_wrong_hidden", 0, ["correct"])
    page = browser.client.post("/rubric/1.2", data={"csrf": browser.csrf, "line": "no_covariate_shift",
                                                    "text": "did not mention internal covariate shift",
                                                    "points": "-2"}).text
    assert "1 student(s) rescored" in page and "aditya_singh: 2 → 1" in page
    assert browser.client.get("/state/1.2/aditya_singh").json()["item_score"] == "1 / 3"
    added = browser.client.post("/rubric/1.2", data={"csrf": browser.csrf, "line": "", "text": "Formula wrong",
                                                     "points": "-0.5"}).text
    assert "added line &#39;formula_wrong&#39;" in added
    assert browser.mark("1.2", "bella_wrong_hidden", 1, ["formula_wrong"])["item_score"] == "2.5 / 3"
    bad = browser.client.post("/rubric/1.2", data={"csrf": browser.csrf, "line": "", "text": "bonus",
                                                   "points": "2"})
    assert bad.status_code == 400 and "points must be 0 or negative" in bad.text
    assert [e.line for e in grading.db.rubric_edits()] == ["no_covariate_shift", "formula_wrong"]
    assert "formula_wrong" not in RUBRIC.read_text()  # never a silent edit of the rubric file


def test_alike_answers_are_grouped_and_marked_in_one_step(browser: Browser, grading: Grading) -> None:
    assert grading.group_of("1.3", "yan_copy") == ["yan_copy", "zoe_copy"]
    page = browser.client.get("/groups/1.3").text
    assert 'id="group-yan_copy"' in page and "2 alike answers" in page
    grading.db.set_mark("zoe_copy", "1.3", Mark(("correct",)), who="bob")  # after alice opened the page
    page = browser.client.post("/groups/1.3", data={"csrf": browser.csrf, "students": ["yan_copy", "zoe_copy"],
                                                     "version:yan_copy": "0", "version:zoe_copy": "0",
                                                     "lines": ["correct"], "comment": "same as the key"}).text
    assert "marked 1 student(s): yan_copy" in page and "not saved for zoe_copy: bob changed it" in page
    assert grading.db.state("yan_copy", "1.3").mark == Mark(("correct",), "same as the key")
    assert [e.action for e in grading.db.history(student="yan_copy")] == ["group"]


def test_grouping_and_copies_are_deterministic(rubric: object) -> None:
    texts = {"a": "ReLU does not saturate.", "b": "relu does NOT saturate!", "c": "", "d": "",
             "e": "Sigmoid saturates for large inputs so gradients vanish in deep networks."}
    assert group_answers(texts) == [["a", "b"], ["c", "d"], ["e"]]


def test_publish_renders_the_changed_students_and_lists_copies(browser: Browser, grading: Grading,
                                                              out: Path) -> None:
    first = grading.publish(who="alice")
    assert len(first.students) == 5 and (out / "summary.html").exists()
    browser.mark("1.3", "yan_copy", 0, ["correct"], "clear")
    page = browser.client.post("/publish", data={"csrf": browser.csrf}).text
    assert "1 student(s) re-rendered" in page and "re-rendered yan_copy" in page
    assert "TA comment: clear" in (out / "yan_copy" / "report.html").read_text()
    summary = (out / "summary.html").read_text()
    assert "Possibly copied answers" in summary and "yan_copy</a> and <a" in summary and "1.3 (" in summary
    assert grading.publish(who="alice").students == []  # nothing changed since


def test_possible_copies_need_long_alike_answers(out: Path, grading: Grading) -> None:
    pairs = possible_copies(grading.rubric, [s.evidence for s in grading.students.values()])
    assert [(p.students, [i for i, _ in p.items]) for p in pairs] == [(("yan_copy", "zoe_copy"), ["1.3"])]


def test_start_errors_are_clear(tmp_path: Path, out: Path) -> None:
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(cli, ["serve", str(empty), "--rubric", str(RUBRIC)])
    assert result.exit_code == EXIT_INPUT and "no */evidence.json found" in result.output
    (out / "marks.sqlite").write_bytes(b"not sqlite" * 100)
    result = runner.invoke(cli, ["serve", str(out), "--rubric", str(RUBRIC)])
    assert result.exit_code == EXIT_INPUT and "not a usable marks database" in result.output
    (out / "marks.sqlite").unlink()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        result = runner.invoke(cli, ["serve", str(out), "--rubric", str(RUBRIC), "--port",
                                     str(taken.getsockname()[1])])
    finally:
        taken.close()
    assert result.exit_code == EXIT_ENVIRONMENT and "is in use" in result.output
    db = MarksDB.open(out / "marks.sqlite")
    db.set_mark("aditya_singh", "1.2", Mark(("gone_line",)), who="alice")
    with pytest.raises(ServeError, match=r"unknown rubric line.*gone_line.*nothing was changed"):
        Grading(out, RUBRIC, db)
    assert db.state("aditya_singh", "1.2").mark == Mark(("gone_line",))


def test_the_page_scores_are_those_of_the_score_function(grading: Grading) -> None:
    from grader.score import score

    grading.db.set_mark("aditya_singh", "1.2", Mark(("no_covariate_shift",), "x"), who="a")
    grading.db.set_mark("aditya_singh", "2.3", Mark(("low_accuracy",), "by hand", override=True), who="a")
    grading.db.set_mark("bella_wrong_hidden", "2.1", Mark(("missing", "relu_not_mentioned")), who="a")
    grading.db.set_mark("bella_wrong_hidden", "3.3", Mark(("correct",), "counted by hand", override=True), who="a")
    grading.change_rubric("1.2", "no_covariate_shift", "no covariate shift", -2, who="a")
    for name in grading.order:
        marks = grading.db.marks().for_student(name)
        assert grading.sheet(name) == score(grading.rubric, grading.students[name].evidence, marks)
