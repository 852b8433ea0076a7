"""Per-student HTML report, rendered from a jinja2 template: deterministic for given inputs."""

from __future__ import annotations

import base64
import functools
import re
from pathlib import Path

import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup

from grader.evidence import Evidence
from grader.render.context import item_views
from grader.rubric import Rubric
from grader.score import ItemScore, ScoreSheet, fmt

TEMPLATES = Path(__file__).resolve().parent / "templates"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


@functools.cache
def _markdown() -> MarkdownIt:
    # html=False: a student's raw HTML is shown as text, never interpreted
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown_filter(text: str) -> Markup:
    return Markup(_markdown().render(text))


def png_uri(payload: str) -> str:
    """A ``data:`` URI for a notebook's PNG output, or "" unless it is base64 of bytes with the PNG signature."""
    compact = "".join(payload.split())
    if not _BASE64.fullmatch(compact):
        return ""
    try:
        head = base64.b64decode(compact[:16], validate=True)
    except ValueError:
        return ""
    return f"data:image/png;base64,{compact}" if head.startswith(PNG_SIGNATURE) else ""


def score_text(item: ItemScore) -> str:
    if item.pending:
        return f"– / {fmt(item.max_points)}"
    return f"{fmt(item.score or 0)} / {fmt(item.max_points)}"


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "j2"), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["markdown"] = markdown_filter
    env.filters["png_uri"] = png_uri
    env.globals.update(fmt=fmt, score_text=score_text)
    return env


def render_report(rubric: Rubric, evidence: Evidence, sheet: ScoreSheet, *, rubric_name: str) -> str:
    views = item_views(rubric, evidence, {item.id: item for item in sheet.items()})
    run_ok = not evidence.problems and all(f.status == "completed" and not f.message for f in evidence.files)
    return environment().get_template("report.html.j2").render(
        sheet=sheet, evidence=evidence, views=views, rubric_name=rubric_name, run_ok=run_ok,
    )
