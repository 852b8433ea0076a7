"""The command line: every command has help and is documented; errors map to exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import ROOT, RUBRIC

from grader.cli import EXIT_ENVIRONMENT, EXIT_INPUT, cli


def commands(group: click.Group, prefix: str = "") -> list[str]:
    found = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += commands(command, f"{prefix}{name} ")
        else:
            found.append(f"{prefix}{name}")
    return found


ALL = commands(cli)


@pytest.mark.parametrize("command", ALL)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(cli, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"'grader {command} --help' shows no example"


def documentation() -> str:
    """README.md and every page under docs/ (pages added later count as soon as they exist)."""
    return "\n".join(path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


def mentioned(flag: str, text: str) -> bool:
    """``flag`` as a whole option (``--out`` is not found inside ``--output``)."""
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


@pytest.mark.parametrize("command", ALL)
def test_every_command_is_in_the_docs(command: str) -> None:
    assert f"grader {command}" in documentation(), f"neither README.md nor docs/*.md documents 'grader {command}'"


@pytest.mark.parametrize("command", ALL)
def test_every_option_of_every_command_is_in_the_docs(command: str) -> None:
    docs = documentation()
    found: click.Command = cli
    for part in command.split():
        found = found.commands[part]  # type: ignore[attr-defined]
    missing = [max(param.opts, key=len) for param in found.params
               if isinstance(param, click.Option) and not param.hidden
               and not mentioned(max(param.opts, key=len), docs)]
    assert not missing, f"README.md and docs/*.md do not mention {', '.join(missing)} of 'grader {command}'"


def test_the_option_search_matches_whole_options() -> None:
    assert mentioned("--out", "`--out` DIR") and not mentioned("--out", "--output FILE")
    assert mentioned("-o", "`-o/--output`") and not mentioned("--pdf", "--pdf-x")


def test_invalid_rubric_exits_with_the_input_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(RUBRIC.read_text().replace("points: 2\n", "pointz: 2\n", 1))
    result = CliRunner().invoke(cli, ["rubric", "check", str(bad)])
    assert result.exit_code == EXIT_INPUT
    assert re.search(r"Error: .*bad.yaml: invalid rubric", result.output)
    assert "pointz: unknown key" in result.output
    assert "Traceback" not in result.output


def test_rescore_without_evidence(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["rescore", "--rubric", str(RUBRIC), "--out", str(tmp_path)])
    assert result.exit_code == EXIT_INPUT and "no */evidence.json found" in result.output


def test_full_profile_offline_says_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["data", "--profile", "full", "--mnist-dir", str(tmp_path),
                                      "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == EXIT_ENVIRONMENT and "no train-images-idx3-ubyte" in result.output


def test_rubric_check_lists_items() -> None:
    result = CliRunner().invoke(cli, ["rubric", "check", str(RUBRIC)])
    assert result.exit_code == 0 and "DS5220 Homework 4: 100 points" in result.output


def test_messages_on_a_piped_stderr_are_not_wrapped() -> None:
    """A CI log or `grep` sees one message per line, however long the paths in it (CI's checkout is deep)."""
    message = "checking " + "/very/deep/checkout" * 10 + " with a rubric"
    done = subprocess.run([sys.executable, "-c", f"from grader.commands.common import err; err.print({message!r})"],
                          capture_output=True, text=True, check=True)
    assert done.stderr == message + "\n"
