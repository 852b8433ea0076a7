"""Shared fixtures. Most tests need no kernel; the slow end-to-end ones share one graded batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.data import DataSet, provision
from grader.rubric import Rubric, load_rubric

ROOT = Path(__file__).resolve().parent.parent
RUBRIC = ROOT / "rubric" / "hw4.yaml"


@pytest.fixture(scope="session")
def rubric() -> Rubric:
    return load_rubric(RUBRIC)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("grader-cache")


@pytest.fixture(scope="session")
def embedded(cache_dir: Path) -> DataSet:
    return provision("embedded", cache_dir)
