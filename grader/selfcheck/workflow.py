"""The GitHub Actions workflow that ``grader ci-template`` writes into a student's repository.

Its ``run:`` scripts hold no ``${{ }}`` expressions (settings reach them as environment
variables, with defaults in the shell), so a test can run them as they are, and a value from a
pull request can never be spliced into a script. The install step is skipped when
``$GRADER_VENV`` already holds a ``grader`` (a cache hit on GitHub, or an existing venv when the
steps are run locally).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from grader import __version__
from grader.profiles import DEFAULT_PROFILE, FAST_PROFILE

TORCH = "torch==2.14.1 torchvision==0.29.1"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
DEFAULT_OUTPUT = ".github/workflows/grader.yml"


@dataclass(frozen=True)
class WorkflowOptions:
    rubric: str
    path: str = "."
    python: str = "3.11"
    grader_spec: str = f"grader=={__version__}"
    torch_index: str = TORCH_CPU_INDEX
    fast: bool = False


def _quoted(value: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is YAML's)."""
    return json.dumps(value)


def _variable_or(name: str, default: str) -> str:
    """A repository variable, else ``default``: a GitHub expression, quoted for YAML."""
    literal = "'" + default.replace("'", "''") + "'"
    return _quoted(f"${{{{ vars.{name} || {literal} }}}}")


TEMPLATE = """\
# GitHub Actions workflow written by `grader ci-template` (grader {version}).
# On every push it checks this repository's notebooks against the public part of the course
# rubric (`grader check --ci`): the job fails when an automatic item falls short, and the job
# summary says what was measured and what to fix. It does not grade: manual items are graded by
# a TA and hidden checks by the instructor, later.
#
# Settings: set repository variables (Settings > Secrets and variables > Actions > Variables) or
# edit the env below.
#   GRADER_PIP_SPEC     what `pip install` installs as the grader (a version, a wheel URL, a git URL)
#   GRADER_TORCH_INDEX  where {torch} come from (empty: PyPI)
name: grader check

on:
  push:
  pull_request:
  workflow_dispatch:

permissions:
  contents: read

jobs:
  check:
    runs-on: ubuntu-latest
    timeout-minutes: 45
    env:
      GRADER_VERSION: {version_q}
      GRADER_PIP_SPEC: {spec_q}
      GRADER_TORCH_INDEX: {index_q}
      GRADER_RUBRIC: {rubric_q}
      GRADER_CHECK_PATH: {path_q}
      GRADER_PROFILE: {profile_q}
      GRADER_CHECK_OPTIONS: {options_q}
    steps:
      - uses: actions/checkout@v4

      - id: python
        uses: actions/setup-python@v5
        with:
          python-version: {python_q}

      - name: Restore the grader's virtual environment
        uses: actions/cache@v4
        with:
          path: ~/.grader-venv
          key: grader-venv-${{{{ runner.os }}}}-python${{{{ steps.python.outputs.python-version }}}}-grader-{version}

      - name: Restore the MNIST data cache
        uses: actions/cache@v4
        with:
          path: ~/.cache/grader
          key: grader-data-{version}

      - name: Install the grader
        run: |
          GRADER_VENV="${{GRADER_VENV:-$HOME/.grader-venv}}"
          if [ -x "$GRADER_VENV/bin/grader" ]; then
            echo "using the grader already in $GRADER_VENV"
          else
            python -m venv "$GRADER_VENV"
            "$GRADER_VENV/bin/pip" install --quiet {torch} ${{GRADER_TORCH_INDEX:+--index-url "$GRADER_TORCH_INDEX"}}
            "$GRADER_VENV/bin/pip" install --quiet "$GRADER_PIP_SPEC"
          fi
          echo "$GRADER_VENV/bin" >> "$GITHUB_PATH"
          echo "GRADER_CACHE_DIR=${{GRADER_CACHE_DIR:-$HOME/.cache/grader}}" >> "$GITHUB_ENV"
          "$GRADER_VENV/bin/grader" --version

      - name: Provision MNIST (offline, from the digits the grader ships)
        run: grader data --profile "$GRADER_PROFILE"

      - name: Check the notebooks
        run: |
          grader check "$GRADER_CHECK_PATH" --rubric "$GRADER_RUBRIC" --ci --junit grader-junit.xml \\
            $GRADER_CHECK_OPTIONS

      - name: Keep the JUnit report
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: grader-junit
          path: grader-junit.xml
          if-no-files-found: ignore
"""


def render_workflow(options: WorkflowOptions) -> str:
    return TEMPLATE.format(
        version=__version__, version_q=_quoted(__version__), torch=TORCH,
        spec_q=_variable_or("GRADER_PIP_SPEC", options.grader_spec),
        index_q=_variable_or("GRADER_TORCH_INDEX", options.torch_index),
        rubric_q=_quoted(options.rubric), path_q=_quoted(options.path),
        profile_q=_quoted(FAST_PROFILE if options.fast else DEFAULT_PROFILE),
        options_q=_quoted("--fast" if options.fast else ""), python_q=_quoted(options.python),
    )
