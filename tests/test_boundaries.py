"""The architecture's two rules, as tests.

1. Scoring and rendering are pure: importing them loads no execution code, no notebook client,
   no torch. (So a rubric change is rescored in a second, and the boundary cannot erode unseen.)
2. The trusted process never runs or unpickles what students produced: outside ``grader/inside/``
   (the scripts that run *in* the sandbox) no module imports pickle-like loaders or calls
   ``exec``/``eval``/``torch.load``/``np.load(..., allow_pickle=True)``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

PURE = ("grader.score", "grader.outputs", "grader.render.html", "grader.rubric", "grader.marks")
FORBIDDEN_IN_PURE = ("grader.execute", "grader.inside", "grader.measure", "grader.collect", "grader.batch",
                     "grader.pipeline", "nbclient", "jupyter_client", "torch", "torchvision")
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
UNSAFE_CALLS = {"exec", "eval", "torch.load", "pickle.load", "pickle.loads", "marshal.loads", "shelve.open"}
TRUSTED = [path for path in (ROOT / "grader").rglob("*.py") if "inside" not in path.relative_to(ROOT).parts]


def test_scoring_and_rendering_load_no_execution_code() -> None:
    probe = f"import json, sys\nimport {', '.join(PURE)}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout)
    leaked = [name for name in loaded if name.startswith(FORBIDDEN_IN_PURE)]
    assert leaked == [], f"importing {', '.join(PURE)} loaded {leaked}"


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _unsafe(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in UNSAFE_MODULES:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in UNSAFE_CALLS:
                found.append(f"{name}(...) at line {node.lineno}")
            pickled = any(k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                          for k in node.keywords)
            if name.endswith("load") and pickled:
                found.append(f"{name}(..., allow_pickle=...) at line {node.lineno}")
    return found


@pytest.mark.parametrize("path", TRUSTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_trusted_process_never_runs_or_unpickles_student_output(path: Path) -> None:
    assert _unsafe(ast.parse(path.read_text(), str(path))) == []


def test_the_scan_finds_what_it_looks_for() -> None:
    bad = "import pickle\nfrom dill import loads\nexec(code)\ntorch.load(p)\nnp.load(p, allow_pickle=True)\n"
    assert len(_unsafe(ast.parse(bad))) == 5
    assert _unsafe(ast.parse("np.load(io.BytesIO(data), allow_pickle=False)\n")) == []
