"""A ``CheckResult`` for people (a rich table, a markdown job summary) and for tools (JSON, JUnit XML).

Everything here is a pure function of the result. Text that came from a student's run (error
messages, class names) is never read as markup: rich cells are ``Text`` objects, markdown is
escaped, and characters XML cannot hold are dropped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from grader.points import fmt
from grader.selfcheck.result import CheckResult, ItemCheck

JSON_SCHEMA = "grader-check/1"
_NOT_XML = re.compile("\x1b\\[[0-9;]*[A-Za-z]|[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def clean(text: str) -> str:
    """Without ANSI colour codes and the control characters XML 1.0 cannot hold."""
    return _NOT_XML.sub("", text)


def headline(result: CheckResult) -> str:
    verdict = "all automatic items pass" if result.passed else f"{len(result.failed)} automatic item(s) fall short"
    if not result.run_ok:
        verdict = "the check could not run"
    return (f"{result.assignment_title}: {fmt(result.points)} / {fmt(result.max_points)} automatic points "
            f"({verdict})")


def scope_lines(result: CheckResult) -> list[str]:
    """What was and was not scored, in sentences (the same in every rendering)."""
    return [result.accuracy_sentence(), result.manual_sentence(), result.hidden_sentence()]


def details(item: ItemCheck) -> list[str]:
    """An item's lines for a person: what was measured, what to fix, what is not scored here."""
    lines = [f"measured: {item.measured}"]
    lines += [f"fix: {fix}" for fix in item.fixes]
    lines += [f"advice (not deducted): {advice}" for advice in item.advice]
    lines += list(item.not_scored)
    return lines


# --------------------------------------------------------------------------- terminal


def rich_report(result: CheckResult) -> RenderableType:
    table = Table(title=Text(headline(result), style="bold"), title_justify="left", show_lines=True, expand=True)
    table.add_column("item", ratio=1, min_width=16)
    table.add_column("points", justify="right", no_wrap=True)
    table.add_column("measured / what to fix", ratio=4)
    for item in result.items:
        mark = Text("PASS ", style="bold green") if item.passed else Text("FAIL ", style="bold red")
        body = Text()
        for number, line in enumerate(details(item)):
            style = "red" if line.startswith("fix:") else "yellow" if line.startswith("not scored") else ""
            body.append(("\n" if number else "") + clean(line), style=style)
        table.add_row(Text.assemble(mark, Text(f"{item.id} {item.title}")),
                      Text(item.points_label, style="green" if item.passed else "red"), body)
    parts: list[RenderableType] = [table]
    parts += [Text(line, style="yellow" if "NOT scored" in line else "") for line in scope_lines(result)]
    if result.notes:
        parts.append(Text("Notes from running your notebook(s):", style="bold"))
        parts += [Text(f"  - {clean(note)}") for note in result.notes]
    return Group(*parts)


# --------------------------------------------------------------------------- JSON


def to_json(result: CheckResult, exit_code: int) -> dict[str, Any]:
    """The machine-readable result; its fields are documented in docs/selfcheck.md ("grader check --json")."""
    return {
        "schema": JSON_SCHEMA,
        "grader_version": result.grader_version,
        "assignment": {"id": result.assignment_id, "title": result.assignment_title},
        "rubric": result.rubric,
        "student": result.student,
        "profile": {"name": result.profile, "fast": result.fast, "accuracy_scored": result.accuracy_scored,
                    "description": result.profile_description},
        "sandbox": result.sandbox,
        "passed": result.passed,
        "exit_code": exit_code,
        "points": result.points,
        "max_points": result.max_points,
        "items": [
            {"id": item.id, "title": item.title, "passed": item.passed, "points": item.points,
             "max_points": item.max_points, "measured": clean(item.measured),
             "fixes": [clean(fix) for fix in item.fixes], "advice": [clean(a) for a in item.advice],
             "deductions": [{"line": d.line, "text": d.text, "points": d.points, "reason": clean(d.reason)}
                            for d in item.deductions],
             "not_scored": list(item.not_scored)}
            for item in result.items
        ],
        "manual_items": [{"id": item.id, "title": item.title, "points": item.points} for item in result.manual],
        "hidden": {"items": result.hidden_items, "lines": result.hidden_lines},
        "files": [{"path": path, "status": status} for path, status in result.files],
        "notes": [clean(note) for note in result.notes],
        "duration_s": result.duration_s,
    }


# --------------------------------------------------------------------------- JUnit XML


def to_junit(result: CheckResult) -> str:
    """One testcase per automatic item; an item that falls short is a failure carrying the reason."""
    failures = len(result.failed)
    attributes = {"tests": str(len(result.items)), "failures": str(failures), "errors": "0" if result.run_ok else "1",
                  "skipped": "0", "time": f"{result.duration_s:.3f}"}
    suites = ET.Element("testsuites", {"name": "grader check", **attributes})
    suite = ET.SubElement(suites, "testsuite", {"name": clean(f"{result.assignment_title} ({result.profile} data)"),
                                                **attributes})
    properties = ET.SubElement(suite, "properties")
    for name, value in (("student", result.student), ("rubric", result.rubric), ("profile", result.profile),
                        ("accuracy_scored", str(result.accuracy_scored).lower()), ("sandbox", result.sandbox),
                        ("points", f"{fmt(result.points)} / {fmt(result.max_points)}"),
                        ("manual_items", ", ".join(item.id for item in result.manual)),
                        ("hidden_checks", str(result.hidden_total)), ("grader_version", result.grader_version)):
        ET.SubElement(properties, "property", {"name": name, "value": clean(value)})
    for item in result.items:
        case = ET.SubElement(suite, "testcase", {"classname": result.assignment_id,
                                                 "name": clean(f"{item.id} {item.title}"), "time": "0"})
        if not item.passed:
            applied = "; ".join(f"{d.text} ({fmt(d.points)})" for d in item.deductions)
            failure = ET.SubElement(case, "failure", {"message": clean(f"{item.points_label}: {applied}"),
                                                      "type": "rubric"})
            failure.text = clean("\n".join([*(f"{d.text} ({fmt(d.points)}): {d.reason}" for d in item.deductions),
                                            *(f"to fix: {fix}" for fix in item.fixes)]))
        out = ET.SubElement(case, "system-out")
        out.text = clean("\n".join([item.points_label, *details(item)]))
    system_out = ET.SubElement(suite, "system-out")
    system_out.text = clean("\n".join([*scope_lines(result), *result.notes]))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


# --------------------------------------------------------------------------- markdown


def _cell(text: str) -> str:
    escaped = clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
    return escaped.replace("\n", "<br>")


def to_markdown(result: CheckResult) -> str:
    """A job summary (GitHub's $GITHUB_STEP_SUMMARY renders it)."""
    icon = ":white_check_mark:" if result.passed else ":x:"
    lines = [
        f"## {icon} grader check: {_cell(headline(result))}",
        "",
        f"Student `{_cell(result.student)}`, rubric `{_cell(result.rubric)}`, data profile `{result.profile}`, "
        f"sandbox `{result.sandbox}`, grader {result.grader_version}.",
        "",
        "| item | points | measured | what to fix |",
        "|:--|--:|:--|:--|",
    ]
    for item in result.items:
        mark = ":white_check_mark:" if item.passed else ":x:"
        todo = details(item)[1:]
        lines.append(f"| {mark} {_cell(item.id)} {_cell(item.title)} | {item.points_label} | {_cell(item.measured)} | "
                     f"{'<br>'.join(_cell(line) for line in todo) if todo else 'nothing'} |")
    lines += ["", *(f"- {_cell(line)}" for line in scope_lines(result))]
    if result.notes:
        lines += ["", "<details><summary>Notes from running the notebook(s)</summary>", "",
                  *(f"- {_cell(note)}" for note in result.notes), "", "</details>"]
    return "\n".join(lines) + "\n"
