"""The documentation: relative links point at files and headings that exist; runnable examples run.

A runnable example is a ```sh block whose opening fence is on the line right after
``<!-- example -->`` (both at the start of the line); docs/README.md states the convention. Each
runs with bash -e -o pipefail from the root of a temporary copy of the repository, with this
venv's ``grader`` first on the PATH, and must exit with status 0.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT

MARKER = "<!-- example -->"
EXAMPLE_TIMEOUT_S = 120
# what an example must not run: notebooks (slow), the network, a server that never returns
FORBIDDEN = re.compile(r"\bgrader\s+(grade|check|calibrate|data|serve)\b|\bmake\b")
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", ".cache", "reports", "__pycache__", ".pytest_cache",
                                     ".mypy_cache", ".ruff_cache", "*.egg-info", "build")


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    info: str  # the fence's info string ("sh", "yaml", ...)
    text: str
    example: bool


def blocks(page: Path) -> tuple[list[Block], list[tuple[int, str]]]:
    """The fenced code blocks of a page, and its other lines (line number, text) outside them."""
    lines = page.read_text().splitlines()
    found: list[Block] = []
    prose: list[tuple[int, str]] = []
    fence = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
    number = 0
    while number < len(lines):
        opening = fence.match(lines[number])
        if not opening:
            prose.append((number + 1, lines[number]))
            number += 1
            continue
        marker, info = opening.group(2), opening.group(3).strip()
        body = []
        end = number + 1
        while end < len(lines):
            closing = fence.match(lines[end])
            if closing and closing.group(2)[0] == marker[0] and len(closing.group(2)) >= len(marker) \
                    and not closing.group(3).strip():
                break
            body.append(lines[end])
            end += 1
        example = number > 0 and lines[number - 1] == MARKER and lines[number] == "```sh"
        found.append(Block(page, number + 1, info, "\n".join(body) + "\n", example))
        number = end + 1
    return found, prose


def examples() -> list[Block]:
    return [block for page in pages() for block in blocks(page)[0] if block.example]


def _id(block: Block) -> str:
    return f"{block.page.relative_to(ROOT)}:{block.line}"


# ----------------------------------------------------------------------------------------- links

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in blocks(page)[1]:
        found.update(ANCHOR.findall(line))
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in blocks(page)[1]:
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            found.append((number, target))
    return found


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_a_file_and_heading_that_exist(page: Path) -> None:
    broken = []
    for number, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(ROOT)}:{number}: {target}"
        if not resolved.exists():
            broken.append(f"{where} (no such file)")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{where} (no heading '#{fragment}' in {resolved.relative_to(ROOT)})")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_link_checker_finds_links_and_headings() -> None:
    assert "the-fast-data-path---data-path" in anchors(ROOT / "docs" / "data.md")
    assert slug("`grader marks template`: a marks file for the TA") == "grader-marks-template-a-marks-file-for-the-ta"
    front = {target for _, target in links(ROOT / "README.md")}
    assert "docs/commands.md" in front and "docs/serve-grade.png" in front, "links and images are found"
    assert not any("data.md#" in target for _, target in links(ROOT / "docs" / "README.md")), "not in inline code"


# -------------------------------------------------------------------------------------- examples


def test_there_are_runnable_examples_and_they_are_cheap() -> None:
    found = examples()
    assert len(found) >= 4, [_id(b) for b in found]
    assert any(b.page.name == "README.md" and b.page.parent == ROOT for b in found), "the front page has one"
    for block in found:
        assert not FORBIDDEN.search(block.text), f"{_id(block)}: an example must not run notebooks, servers or make"


def test_the_example_marker_needs_the_fence_right_after_it(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"{MARKER}\n```sh\ntrue\n```\n\n{MARKER}\n\n```sh\nfalse\n```\n\n````markdown\n{MARKER}\n"
                    "```sh\nfalse\n```\n````\n")
    assert [(b.line, b.text, b.example) for b in blocks(page)[0]] == [
        (2, "true\n", True), (8, "false\n", False), (12, f"{MARKER}\n```sh\nfalse\n```\n", False)]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the repository (sources, docs, rubric, test data; no venv, cache or reports)."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT, copy, ignore=COPY_IGNORE, symlinks=True)
    return copy


@pytest.mark.parametrize("block", examples(), ids=_id)
def test_runnable_example(block: Block, checkout: Path, tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "GRADER_CACHE_DIR": str(tmp_path / "cache"), "TMPDIR": str(temp), "COLUMNS": "100", "NO_COLOR": "1"}
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.text], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT_S, check=False)
    assert done.returncode == 0, f"{_id(block)} exited {done.returncode}:\n{block.text}\n{done.stdout[-3000:]}" \
                                 f"\n{done.stderr[-3000:]}"
