"""Per-student HTML report, rendered from a jinja2 template: deterministic for given inputs."""

from __future__ import annotations

import base64
import functools
import re
import struct
from pathlib import Path

import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup

from grader.evidence import Evidence
from grader.points import fmt
from grader.render.context import item_views
from grader.rubric import Rubric
from grader.score import ItemScore, ScoreSheet

TEMPLATES = Path(__file__).resolve().parent / "templates"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
MAX_MARKDOWN_CHARS = 20_000  # of one cell, rendered (a 1.2 MB table took 71 s and 1 GiB)
MAX_PNG_PIXELS = 4096 * 4096  # a plot; a small file can declare a huge image that Chromium would allocate
MAX_PNG_BASE64 = 2_000_000
SAFE_LINK = re.compile(r"^(https?:|mailto:|#|[^:]*$)", re.IGNORECASE)  # no data:, javascript:, file:, ...


@functools.cache
def _markdown() -> MarkdownIt:
    # html=False: a student's raw HTML is shown as text, never interpreted
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    # links and images with data:, javascript:, file: (or any other scheme but http/https/mailto) are dropped
    md.validateLink = lambda url: bool(SAFE_LINK.match(url.strip()))  # type: ignore[method-assign]
    return md


def cut_markdown(text: str) -> str:
    if len(text) <= MAX_MARKDOWN_CHARS:
        return text
    rest = len(text) - MAX_MARKDOWN_CHARS
    return text[:MAX_MARKDOWN_CHARS] + f"\n\n*[grader] the rest of this cell ({rest:,} characters) is not shown*\n"


def markdown_filter(text: str) -> Markup:
    return Markup(_markdown().render(cut_markdown(text)))


def png_uri(payload: str) -> str:
    """A ``data:`` URI for a notebook's PNG output, or "" unless it is base64 of a PNG of sane size."""
    compact = "".join(payload.split())
    if len(compact) > MAX_PNG_BASE64 or not _BASE64.fullmatch(compact):
        return ""
    try:
        head = base64.b64decode(compact[:32], validate=True)
    except ValueError:
        return ""
    if not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return ""
    width, height = struct.unpack(">II", head[16:24])
    if width == 0 or height == 0 or width * height > MAX_PNG_PIXELS:
        return ""
    return f"data:image/png;base64,{compact}"


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
