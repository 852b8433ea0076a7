"""The pages of the grading app: index, grade one answer, answer groups, rubric changes, publishing.

Every handler is a plain function (Starlette runs it in a thread): the marks database is SQLite.
Pages are rendered on the server with the grader's jinja2 templates (``serve_*.html.j2``);
``serve.js`` adds the keyboard and saves without reloading, but every form works without it.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from grader import __version__
from grader.marks import Mark
from grader.marks_export import marks_csv, marks_yaml
from grader.marksdb import Change, Conflict, MarksDbError, MarksDbLocked, MarkState, NothingToUndo
from grader.points import fmt
from grader.render.context import item_views
from grader.render.html import environment, score_text
from grader.rubric_edits import RubricEditError
from grader.score import ItemScore
from grader.serve.answers import highlight, render_markdown
from grader.serve.security import (
    NAME_COOKIE,
    REPORT_CSP,
    SESSION_COOKIE,
    SUMMARY_CSP,
    Keys,
    clean_name,
    name_cookie,
    name_of,
    same_origin,
    session_of,
)
from grader.serve.state import Grading
from grader.similarity import GROUP_THRESHOLD

STATIC = Path(__file__).resolve().parent.parent / "render" / "static"
STATIC_FILES = {"serve.js": "text/javascript", "serve.css": "text/css"}
Handler = Callable[[Request], Response]
AsyncHandler = Callable[[Request], Awaitable[Response]]


class Forbidden(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def url(*parts: str, **query: str) -> str:
    path = "/" + "/".join(quote(part, safe="") for part in parts)
    return path + ("?" + urlencode(query) if query else "")


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def mark_text(mark: Mark | None, item_lines: dict[str, str]) -> str:
    if mark is None:
        return "not marked (pending)"
    lines = ", ".join(item_lines.get(line, line) for line in mark.lines) or "no lines (full points)"
    return lines + (" (override)" if mark.override else "") + (f"; comment: {mark.comment}" if mark.comment else "")


class Pages:
    """The app's handlers, bound to one class being graded and one set of keys."""

    def __init__(self, grading: Grading, keys: Keys) -> None:
        self.grading = grading
        self.keys = keys

    # -- plumbing ------------------------------------------------------------------

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        session = session_of(request, self.keys) or ""
        page = environment().get_template(template).render(
            rubric=self.grading.rubric, ta=name_of(request), csrf=self.keys.csrf(session) if session else "",
            version=__version__, url=url, fmt=fmt, score_text=score_text, **context)
        return HTMLResponse(page, status_code=status)

    def message(self, request: Request, title: str, text: str, status: int) -> Response:
        if wants_json(request):
            return JSONResponse({"error": text}, status_code=status)
        return self.render(request, "serve_message.html.j2", status, title=title, text=text, links=[])

    def guard(self, handler: Handler, *, write: bool = False, needs_name: bool = False) -> AsyncHandler:
        """Token (or session cookie) for every page; CSRF and same origin for writes; a TA name where marks change."""

        async def guarded(request: Request) -> Response:
            request.state.form = await request.form() if request.method == "POST" else FormData()
            return await run_in_threadpool(checked, request)

        def checked(request: Request) -> Response:
            token = request.query_params.get("token")
            if token is not None and self.keys.token_ok(token) and request.method == "GET":
                query = {k: v for k, v in request.query_params.items() if k != "token"}
                response = RedirectResponse(request.url.path + ("?" + urlencode(query) if query else ""), 303)
                response.set_cookie(SESSION_COOKIE, self.keys.new_session(), httponly=True, samesite="strict")
                return response
            session = session_of(request, self.keys)
            if session is None:
                return self.message(request, "Token required", "This grading server needs its token: open the URL "
                                    "that 'grader serve' printed (http://HOST:PORT/?token=...).", 403)
            try:
                if write:
                    self.check_csrf(request, session)
                if needs_name and not name_of(request) and session != "token":
                    if request.method == "GET":
                        return RedirectResponse(url("name", next=str(request.url.path)), 303)
                    raise Forbidden("give your name first (it is recorded with each mark): open /name")
                return handler(request)
            except Forbidden as error:
                return self.message(request, "Refused", error.message, 403)
            except MarksDbLocked as error:
                return self.message(request, "Database locked", f"{error} Your change is kept in this page: "
                                    "save it again in a moment.", 503)
            except (MarksDbError, RubricEditError) as error:
                return self.message(request, "Not saved", str(error), 400)
            except KeyError as error:
                return self.message(request, "Not found", f"no such item or student: {error}", 404)

        return guarded

    def check_csrf(self, request: Request, session: str) -> None:
        if not same_origin(request):
            raise Forbidden("a change from another site was refused (Origin does not match this server)")
        if session == "token":
            return  # the request carries the token itself: no browser sends that across sites
        expected = self.keys.csrf(session)
        given = request.headers.get("x-csrf-token") or request.state.form.get("csrf", "")
        if not (given and hmac.compare_digest(str(given), expected)):
            raise Forbidden("the form's CSRF token is missing or wrong: reload the page and try again")

    # -- pages -------------------------------------------------------------------

    def index(self, request: Request) -> Response:
        grading = self.grading
        rows = []
        for item in grading.rubric.items():
            states = grading.states(item.id)
            graded = len(grading.graded(item.id, states))
            groups = [g for g in grading.groups(item.id) if len(g) > 1] if item.grading == "manual" else []
            overridden = sum(1 for s in states.values() if s.mark is not None and s.mark.override)
            rows.append({"item": item, "graded": graded, "groups": len(groups), "overridden": overridden})
        return self.render(request, "serve_index.html.j2", rows=rows, students=len(grading.order),
                           changed=len(grading.changed()), skipped=grading.skipped,
                           edits=grading.db.rubric_edits())

    def name(self, request: Request) -> Response:
        next_page = request.query_params.get("next", "/")
        if request.method == "POST":
            form = request.state.form
            name = clean_name(str(form.get("name", "")))
            target = str(form.get("next", "/"))
            if not name:
                return self.render(request, "serve_name.html.j2", 400, next=target, error="a name is needed")
            response = RedirectResponse(target if target.startswith("/") and not target.startswith("//") else "/", 303)
            response.set_cookie(NAME_COOKIE, name_cookie(name), samesite="strict", max_age=86400 * 180)
            return response
        return self.render(request, "serve_name.html.j2", next=next_page, error="")

    def item_start(self, request: Request) -> Response:
        item_id = request.path_params["item"]
        self.grading.item(item_id)
        student = self.grading.next_ungraded(item_id) or self.grading.order[0]
        return RedirectResponse(url("grade", item_id, student), 303)

    def next_ungraded(self, request: Request) -> Response:
        item_id = request.path_params["item"]
        after = request.query_params.get("after")
        student = self.grading.next_ungraded(item_id, after)
        if student is None:
            return RedirectResponse(url("grade", item_id, after or self.grading.order[0], done="1"), 303)
        return RedirectResponse(url("grade", item_id, student), 303)

    def _item_context(self, item_id: str, student: str) -> dict[str, Any]:
        grading = self.grading
        item = grading.item(item_id)
        if student not in grading.students:
            raise KeyError(student)
        states = grading.states(item_id)
        state = states[student]
        sheet = grading.sheet(student)
        result = sheet.item(item_id)
        previous, following = grading.neighbours(item_id, student)
        messages, keywords = grading.hints(item_id, student)
        answers = [(view, highlight(render_markdown(view.cell.source), keywords))
                   for view in grading.students[student].answers.get(item_id, [])]
        view = None
        if item.grading == "auto":
            view = item_views(grading.rubric, grading.students[student].evidence, {item_id: result})[item_id]
        group = grading.group_of(item_id, student) if item.grading == "manual" else [student]
        lines = {line.id: line.text for line in item.lines}
        history = [(event, mark_text(event.after, lines)) for event in
                   reversed(grading.db.history(student=student, item=item_id))]
        conflicts = [(c, mark_text(c["mark"], lines)) for c in  # type: ignore[arg-type]
                     grading.db.open_conflicts(student=student, item=item_id)]
        return {
            "item": item, "student": student, "state": state, "sheet": sheet, "result": result,
            "graded": len(grading.graded(item_id, states)), "total_students": len(grading.order),
            "position": grading.order.index(student) + 1, "previous": previous, "following": following,
            "hints": messages, "answers": answers, "view": view, "group": group, "history": history[:20],
            "conflicts": conflicts, "marked": set(state.mark.lines) if state.mark else set(),
        }

    def grade(self, request: Request) -> Response:
        item_id, student = request.path_params["item"], request.path_params["student"]
        context = self._item_context(item_id, student)
        done = request.query_params.get("done") == "1"
        return self.render(request, "serve_grade.html.j2", done=done, **context)

    def _result(self, item_id: str, student: str, state: MarkState, note: str = "") -> dict[str, Any]:
        grading = self.grading
        sheet = grading.sheet(student)
        result: ItemScore = sheet.item(item_id)
        states = grading.states(item_id)
        return {
            "ok": True, "version": state.version, "graded": state.mark is not None or result.grading == "auto",
            "lines": list(state.mark.lines) if state.mark else [], "comment": state.mark.comment if state.mark else "",
            "override": bool(state.mark and state.mark.override),
            "applied": {line.id: line.applied for line in result.lines},
            "item_score": score_text(result), "total": sheet.total_label,
            "progress": f"{len(grading.graded(item_id, states))} / {len(grading.order)} graded",
            "status": note or (f"saved by {state.who} (version {state.version})" if state.version else "not marked"),
        }

    def _posted_mark(self, form: FormData) -> Mark | None:
        lines = tuple(str(v) for v in form.getlist("lines"))
        comment = str(form.get("comment", "")).strip()
        override = form.get("override") in ("1", "on", "true")
        if not lines and not comment and not override:
            return None  # nothing ticked: the item is pending again
        return Mark(lines=lines, comment=comment, override=override)

    def save(self, request: Request) -> Response:
        grading = self.grading
        item_id, student = request.path_params["item"], request.path_params["student"]
        item = grading.item(item_id)
        if student not in grading.students:
            raise KeyError(student)
        form = request.state.form
        who = name_of(request) or "token"
        action = str(form.get("action", "save"))
        version = int(str(form.get("version", "0")) or 0)
        known = {line.id for line in item.lines}
        try:
            if action == "undo":
                state = grading.db.undo(student, item_id, who=who, expected_version=version)
                note = f"undone by {who} (version {state.version})"
            elif action == "theirs":
                grading.db.resolve_conflicts(student, item_id, who)
                state, note = grading.db.state(student, item_id), "kept the other TA's mark"
            else:
                mark = None if action == "clear" else self._posted_mark(form)
                if mark is not None:
                    unknown = [line for line in mark.lines if line not in known]
                    if unknown:
                        return self.message(request, "Not saved", f"item {item_id} has no line(s) "
                                            f"{', '.join(unknown)}", 400)
                    if item.grading == "auto" and mark.lines and not mark.override:
                        return self.message(request, "Not saved", f"item {item_id} is graded automatically: tick "
                                            "'override' (with a comment) to replace its result", 400)
                    if item.grading == "auto" and not mark.lines and not mark.override:
                        mark = None  # an automatic item without override: back to the automatic result
                    if mark is not None and mark.override and not mark.comment:
                        return self.message(request, "Not saved", "an override needs a comment saying why", 400)
                state = grading.db.set_mark(student, item_id, mark, who=who, expected_version=version)
                if form.get("resolve") == "1":
                    grading.db.resolve_conflicts(student, item_id, who)
                note = ""
        except Conflict as conflict:
            return self._conflict(request, item_id, student, conflict)
        except NothingToUndo as nothing:
            state, note = grading.db.state(student, item_id), str(nothing)
        if wants_json(request):
            return JSONResponse(self._result(item_id, student, state, note))
        return RedirectResponse(url("grade", item_id, student), 303)

    def _conflict(self, request: Request, item_id: str, student: str, conflict: Conflict) -> Response:
        lines = {line.id: line.text for line in self.grading.item(item_id).lines}
        theirs = conflict.current
        body = {
            "conflict": True, "version": theirs.version,
            "theirs": {"who": theirs.who, "at": theirs.at, "text": mark_text(theirs.mark, lines),
                       "lines": list(theirs.mark.lines) if theirs.mark else []},
            "mine": {"text": mark_text(conflict.attempted, lines) if conflict.attempted else "undo",
                     "lines": list(conflict.attempted.lines) if conflict.attempted else [],
                     "comment": conflict.attempted.comment if conflict.attempted else "",
                     "override": bool(conflict.attempted and conflict.attempted.override)},
            "message": f"{theirs.who or 'another TA'} changed this mark while you were editing it "
                       f"(now version {theirs.version}). Nothing was overwritten: choose which to keep.",
        }
        if wants_json(request):
            return JSONResponse(body, status_code=409)
        context = self._item_context(item_id, student)
        return self.render(request, "serve_grade.html.j2", 409, done=False, conflict_now=body, **context)

    # -- groups --------------------------------------------------------------------

    def groups(self, request: Request) -> Response:
        grading = self.grading
        item_id = request.path_params["item"]
        item = grading.item(item_id)
        threshold = _threshold(request.query_params.get("threshold"))
        states = grading.states(item_id)
        messages: list[str] = []
        if request.method == "POST":
            messages = self._apply_group(request, item_id, states)
            states = grading.states(item_id)
        groups = []
        for members in grading.groups(item_id, threshold):
            if len(members) < 2:
                continue
            answers = [(student, [render_markdown(view.cell.source) for view in
                                  grading.students[student].answers.get(item_id, [])], states[student])
                       for student in members]
            groups.append({"members": members, "answers": answers,
                           "marked": sum(1 for s in members if states[s].mark is not None)})
        singles = sum(1 for members in grading.groups(item_id, threshold) if len(members) == 1)
        lines = {line.id: line.text for line in item.lines}
        return self.render(request, "serve_groups.html.j2", item=item, groups=groups, singles=singles,
                           threshold=threshold, messages=messages, mark_text=lambda m: mark_text(m, lines),
                           graded=len(grading.graded(item_id, states)), total_students=len(grading.order))

    def _apply_group(self, request: Request, item_id: str, states: dict[str, MarkState]) -> list[str]:
        form = request.state.form
        who = name_of(request) or "token"
        students = [str(s) for s in form.getlist("students") if str(s) in self.grading.students]
        mark = self._posted_mark(form)
        known = {line.id for line in self.grading.item(item_id).lines}
        if mark is not None and any(line not in known for line in mark.lines):
            return ["not saved: unknown rubric line"]
        changes = []
        for student in students:
            version = int(str(form.get(f"version:{student}", states[student].version)))
            changes.append(Change(student, item_id, mark, version))
        applied, conflicts = self.grading.db.apply(changes, who=who, action="group")
        messages = [f"marked {len(applied)} student(s): {', '.join(s.student for s in applied)}"]
        messages += [f"not saved for {c.current.student}: {c.current.who} changed it meanwhile (version "
                     f"{c.current.version}); open their page to resolve" for c in conflicts]
        return messages

    # -- rubric, publishing, files ----------------------------------------------------

    def rubric_change(self, request: Request) -> Response:
        item_id = request.path_params["item"]
        form = request.state.form
        line = str(form.get("line", "")).strip() or None
        text = str(form.get("text", "")).strip()
        try:
            points = float(str(form.get("points", "")))
        except ValueError:
            return self.message(request, "Not changed", "points must be a number (0 or negative)", 400)
        change = self.grading.change_rubric(item_id, line, text, points, who=name_of(request) or "token")
        back = str(form.get("back", "")) or url("item", item_id)
        rescored = [f"{student}: {fmt(before) if before is not None else '–'} → "
                    f"{fmt(after) if after is not None else '–'}" for student, before, after in change.rescored]
        return self.render(request, "serve_message.html.j2", title="Rubric changed",
                           text=f"{change.edit.describe()}. {len(change.rescored)} student(s) rescored. "
                                "The rubric file is unchanged: 'grader rubric export' writes the new rubric.",
                           items=rescored, links=[(back, "back to grading")])

    def publish(self, request: Request) -> Response:
        everyone = request.state.form.get("everyone") == "1"
        done = self.grading.publish(who=name_of(request) or "token", everyone=everyone)
        items = [f"re-rendered {student}" for student in done.students] + done.pdf_errors
        text = (f"{len(done.students)} student(s) re-rendered (report.html, results.json"
                f"{', report.pdf' if self.grading.pdf else ''}), {done.unchanged} unchanged; gradebook.csv and "
                "summary.html written.")
        links = [(url("summary"), "summary.html"), ("/", "back")]
        return self.render(request, "serve_message.html.j2", title="Published", text=text, items=items, links=links)

    def report(self, request: Request) -> Response:
        student = request.path_params["student"]
        if student not in self.grading.students:
            raise KeyError(student)
        path = self.grading.out_dir / student / "report.html"
        if not path.is_file():
            return self.message(request, "Not published", f"{student} has no report.html yet: publish first", 404)
        return FileResponse(path, media_type="text/html", headers={"Content-Security-Policy": REPORT_CSP})

    def summary(self, request: Request) -> Response:
        path = self.grading.out_dir / "summary.html"
        if not path.is_file():
            return self.message(request, "Not published", "no summary.html yet: publish first", 404)
        return FileResponse(path, media_type="text/html", headers={"Content-Security-Policy": SUMMARY_CSP})

    def export(self, request: Request) -> Response:
        kind = request.path_params["format"]
        order = [item.id for item in self.grading.rubric.items()]
        marks = self.grading.db.marks()
        if kind == "csv":
            return PlainTextResponse(marks_csv(marks, order), media_type="text/csv",
                                     headers={"Content-Disposition": 'attachment; filename="marks.csv"'})
        return PlainTextResponse(marks_yaml(marks, order), media_type="text/yaml",
                                 headers={"Content-Disposition": 'attachment; filename="marks.yaml"'})

    def state_json(self, request: Request) -> Response:
        """The current mark and scores of one student and item (what the page shows), for scripts and tests."""
        item_id, student = request.path_params["item"], request.path_params["student"]
        self.grading.item(item_id)
        if student not in self.grading.students:
            raise KeyError(student)
        state = self.grading.db.state(student, item_id)
        return JSONResponse({**self._result(item_id, student, state), "state": asdict(state)})

    def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_FILES:
            return PlainTextResponse("not found", 404)
        return FileResponse(STATIC / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"})


def _threshold(value: str | None) -> float:
    try:
        return min(1.0, max(0.3, float(value))) if value else GROUP_THRESHOLD
    except ValueError:
        return GROUP_THRESHOLD

