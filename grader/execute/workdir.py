"""Fresh work directories for student processes, and the grader's in-sandbox runtime files."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from grader.execute.sandbox import Mount

INSIDE = Path(__file__).resolve().parent.parent / "inside"
RUNTIME_FILES = ("harvest.py", "module_runner.py", "cleanroom.py", "startup.py")


def install_runtime(destination: Path) -> Path:
    """Copy the scripts that run inside the sandbox to a directory mounted read-only there.

    They are copied rather than used in place so that the sandbox never needs a view of the
    grader's source tree (which sits beside the rubric and the reference solutions).
    """
    destination = destination.resolve()
    destination.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_FILES:
        target = destination / name
        if target.exists():
            target.chmod(0o644)
        shutil.copyfile(INSIDE / name, target)
        target.chmod(0o444)
    return destination


@dataclass(frozen=True)
class WorkDir:
    root: Path  # the student process's working directory: a copy of the submission

    @property
    def out(self) -> Path:
        """Where the student process writes its results (tensors, JSON)."""
        return self.root / ".grader" / "out"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def data_mounts(self, public_dir: Path) -> list[Mount]:
        """MNIST where notebooks look for it: ``data/`` (the handout's root) and, for ``root='.'``, ``MNIST/``."""
        mounts = [Mount(source=public_dir, target=self.data)]
        if not (self.root / "MNIST").exists():
            mounts.append(Mount(source=public_dir / "MNIST", target=self.root / "MNIST"))
        return mounts


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        for item in path.rglob("*"):
            if item.is_dir() and not item.is_symlink():
                item.chmod(0o755)
        shutil.rmtree(path)


def make_workdir(base: Path, submission_root: Path, files: list[Path]) -> WorkDir:
    """A fresh directory holding a copy of ``files`` (paths under ``submission_root``).

    Its path is absolute: sandboxes bind it, and the kernel runs in it, whatever the grader's cwd.
    """
    base = base.resolve()
    _remove(base)
    base.mkdir(parents=True)
    for path in files:
        target = base / path.relative_to(submission_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    work = WorkDir(base)
    work.out.mkdir(parents=True)
    return work
