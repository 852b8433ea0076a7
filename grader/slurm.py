"""The Slurm job script that ``grader slurm-template`` writes: a job array of shards, then the class files.

One file does all three steps, chosen by its environment::

    bash grade-slurm.sh                     # on the login node: provision the data once, then
                                            #   sbatch --array=1-N grade-slurm.sh           (the shards)
                                            #   sbatch --dependency=afterany:<array> ...    (the class files)
    $SLURM_ARRAY_TASK_ID=K (array task)     grader grade ... --shard K/N --workers $SLURM_CPUS_PER_TASK
    $GRADER_STEP=class-files (last job)     grader rescore ...: gradebook.csv, summary.html

``afterany`` rather than ``afterok``: a shard exits 1 when one of its students could not be graded,
and the class files are still wanted then (their reports say why). Every path is absolute: a job
starts wherever Slurm puts it. The grader, its venv and the data cache must be at the same paths
on every node (a shared filesystem, or the same image).
"""

from __future__ import annotations

import datetime as dt
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from grader import __version__

STEP_VARIABLE = "GRADER_STEP"
CLASS_FILES_STEP = "class-files"


@dataclass(frozen=True)
class SlurmOptions:
    paths: tuple[Path, ...]
    rubric: Path
    out: Path
    shards: int
    grader: Path  # the grading venv's `grader` executable
    cache_dir: Path
    profile: str = "embedded"
    mnist_dir: Path | None = None
    sandbox: str = "bubblewrap"
    cpus_per_task: int = 8
    mem: str | None = None
    time: str = "04:00:00"
    partition: str | None = None
    account: str | None = None
    job_name: str = "grader"
    logs: Path | None = None  # where Slurm writes each task's output [default: OUT/.slurm-logs]
    pdf: bool = False
    grade_args: tuple[str, ...] = field(default_factory=tuple)  # more `grader grade` options, as given


def _q(value: object) -> str:
    return shlex.quote(str(value))


def render_sbatch(options: SlurmOptions, name: str = "grade-slurm.sh") -> str:
    """The script's text; ``name`` is what the header tells the user to run."""
    logs = options.logs or options.out / ".slurm-logs"
    directives = [f"--job-name={options.job_name}", f"--cpus-per-task={options.cpus_per_task}",
                  f"--time={options.time}", f"--output={logs}/%x-%A_%a.out"]
    if options.mem:
        directives.append(f"--mem={options.mem}")
    if options.partition:
        directives.append(f"--partition={options.partition}")
    if options.account:
        directives.append(f"--account={options.account}")
    data = ["--profile", options.profile, *(["--mnist-dir", str(options.mnist_dir)] if options.mnist_dir else [])]
    grade = [*(str(p) for p in options.paths), "--rubric", str(options.rubric), "--out", str(options.out), *data,
             "--sandbox", options.sandbox, *options.grade_args]
    lines = [
        "#!/bin/bash",
        f"# Grade a class on Slurm: written by `grader slurm-template` (grader {__version__}) on "
        f"{dt.date.today().isoformat()}.",
        "#",
        "# Submit it from a login node, with the grading venv's paths visible on every node:",
        "#",
        f"#   bash {name}",
        "#",
        "# That provisions the data once, then submits a job array of "
        f"{options.shards} task(s) (task K grades the K-th",
        "# share of the students with the local worker pool of its allocation) and a last job, run after",
        "# all of them (afterany), that writes the gradebook and the summary with `grader rescore`.",
        "# A shard that was killed (time limit, preemption) can be run again as it is: students with",
        "# finished evidence are kept, the others are graded.",
        *(f"#SBATCH {directive}" for directive in directives),
        "",
        "set -euo pipefail",
        "",
        f"GRADER={_q(options.grader)}",
        f"SHARDS={options.shards}",
        f"export GRADER_CACHE_DIR={_q(options.cache_dir)}",
        "",
        "grade_shard() {  # grade_shard K: the K-th of $SHARDS shares of the class",
        '  "$GRADER" grade ' + " ".join(_q(arg) for arg in grade) + ' \\',
        '    --shard "$1/$SHARDS" --workers "${SLURM_CPUS_PER_TASK:-1}" --threads 1 --no-pdf',
        "}",
        "",
        "class_files() {  # the gradebook and the summary of every student in the output folder",
        f'  "$GRADER" rescore --rubric {_q(options.rubric)} --out {_q(options.out)} '
        f'{"--pdf" if options.pdf else "--no-pdf"}',
        "}",
        "",
        'if [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then',
        '  grade_shard "$SLURM_ARRAY_TASK_ID"',
        f'elif [ "${{{STEP_VARIABLE}:-}}" = {CLASS_FILES_STEP} ]; then',
        "  class_files",
        'elif [ -n "${SLURM_JOB_ID:-}" ]; then',
        '  echo "submit this script with: bash $0 (it submits the job array and the last step itself)" >&2',
        "  exit 2",
        "else",
        '  "$GRADER" data ' + " ".join(_q(arg) for arg in data) + "  # once, before the shards share it",
        f"  mkdir -p {_q(logs)}",
        '  array=$(sbatch --parsable --array="1-$SHARDS" "$0")',
        '  array=${array%%;*}  # "jobid;cluster" on a multi-cluster site',
        f'  last=$(sbatch --parsable --dependency="afterany:$array" --job-name={_q(options.job_name + "-class-files")} '
        f'--export="ALL,{STEP_VARIABLE}={CLASS_FILES_STEP}" "$0")',
        '  echo "submitted job array $array ($SHARDS shards) and the class-files job ${last%%;*} after it"',
        f'  echo "results: {options.out}/<student>/report.html, then {options.out}/gradebook.csv"',
        "fi",
        "",
    ]
    return "\n".join(lines)
