"""Grading beyond one machine: ``grade``'s --backend/--ray-address/--ray-gpus/--shard, and ``slurm-template``."""

from __future__ import annotations

import functools
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from grader.backends import BACKENDS, ClusterOptions, ray_missing
from grader.commands.common import (
    EXIT_ENVIRONMENT,
    EXIT_USAGE,
    cache_option,
    err,
    fail,
    mnist_dir_option,
    out_option,
    profile_option,
    rubric_option,
    write_output,
)
from grader.execute.select import SANDBOX_CHOICES
from grader.shard import Shard, ShardError, parse_shard
from grader.slurm import SlurmOptions, render_sbatch

F = TypeVar("F", bound=Callable[..., Any])


class ShardType(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2 on
    name = "K/N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Shard:
        if isinstance(value, Shard):
            return value
        try:
            return parse_shard(str(value))
        except ShardError as error:
            self.fail(str(error), param, ctx)


_OPTIONS = (
    click.option("--backend", type=click.Choice(BACKENDS), default="local", show_default=True,
                 help="Where submissions run: 'local', this machine's worker pool; 'ray', one Ray task per "
                      "submission on a Ray cluster (pip install -e '.[ray]'; see docs/cluster.md)."),
    click.option("--ray-address", default="auto", show_default=True,
                 help="With --backend ray: 'auto' (the cluster this machine joined with `ray start`, or "
                      "$RAY_ADDRESS), ray://HEAD:10001 (Ray Client), HEAD:6379, or 'local' (a private Ray on this "
                      "machine)."),
    click.option("--ray-gpus", type=click.FloatRange(min=0, max=1), default=None,
                 help="With --backend ray: GPUs per task, e.g. 0.25 packs four students on a GPU "
                      "[default: 1 / --jobs-per-gpu when given, else 0].", ),
    click.option("--shard", type=ShardType(), default=None,
                 help="Grade only the K-th of N shares of the students (K from 1; sorted ids, index % N == K-1) "
                      "into a shared --out; the gradebook and summary are left to 'grader rescore'. For Slurm "
                      "job arrays: see 'grader slurm-template'."),
)


def cluster_options(command: F) -> F:
    """Add the cluster options to ``grade``; it receives them as one ``cluster: ClusterOptions`` argument."""

    @functools.wraps(command)
    def wrapper(*args: Any, backend: str, ray_address: str, ray_gpus: float | None, shard: Shard | None,
                **kwargs: Any) -> Any:
        if backend != "ray" and (ray_address != "auto" or ray_gpus is not None):
            fail("--ray-address and --ray-gpus go with --backend ray", EXIT_USAGE)
        if backend == "ray":
            missing = ray_missing()
            if missing:
                fail(missing, EXIT_ENVIRONMENT)
            err.print(f"backend: ray, cluster at {ray_address}")
        if shard is not None:
            err.print(f"shard {shard}: grading the students at positions {shard.index}, {shard.index + shard.count}, "
                      f"{shard.index + 2 * shard.count}, ... of the class sorted by id; the gradebook and summary are "
                      "left to 'grader rescore'")
        cluster = ClusterOptions(backend=backend, ray_address=ray_address, ray_gpus=ray_gpus, shard=shard)
        return command(*args, cluster=cluster, **kwargs)

    decorated: Any = wrapper
    for option in reversed(_OPTIONS):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


def _default_grader() -> Path:
    """The grading venv's `grader` (the one running now), as every node must find it."""
    candidate = Path(sys.executable).parent / "grader"
    return candidate if candidate.exists() else Path(sys.argv[0]).resolve()


@click.command("slurm-template")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@rubric_option
@out_option
@click.option("--shards", type=click.IntRange(min=1), required=True,
              help="Array tasks: each grades 1/N of the students (e.g. students / 20 for about 20 each).")
@click.option("--cpus-per-task", type=click.IntRange(min=1), default=8, show_default=True,
              help="CPUs of each array task; its local pool runs that many students at once (--workers).")
@click.option("--mem", default=None, help="Memory of each array task, as sbatch takes it (e.g. 64G) [default: the "
                                          "partition's].")
@click.option("--time", "time_limit", default="04:00:00", show_default=True, help="Time limit of each array task.")
@click.option("--partition", default=None, help="Slurm partition [default: the cluster's].")
@click.option("--account", default=None, help="Slurm account to charge [default: yours].")
@click.option("--job-name", default="grader", show_default=True, help="Name of the jobs in squeue.")
@profile_option
@mnist_dir_option
@cache_option
@click.option("--sandbox", "sandbox_mode", type=click.Choice(SANDBOX_CHOICES), default="bubblewrap",
              show_default=True, help="Isolation for student code on the nodes (see 'grader grade --help').")
@click.option("--grader", "grader_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The grader executable on the nodes [default: this venv's, which must be at the same path there].")
@click.option("--grade-args", default="",
              help="More 'grader grade' options for every shard, as one string (e.g. \"--timeout 3600\").")
@click.option("--pdf/--no-pdf", "pdf", default=False, show_default=True,
              help="Print report.pdf for every student in the last step (needs Chromium on that node).")
@click.option("-o", "--output", "output", default="grade-slurm.sh", show_default=True,
              help="Where to write the script ('-' for stdout).")
@click.option("--force", is_flag=True, help="Overwrite an existing script.")
def slurm_template(paths: tuple[Path, ...], rubric_path: Path, out_dir: Path, shards: int, cpus_per_task: int,
                   mem: str | None, time_limit: str, partition: str | None, account: str | None, job_name: str,
                   profile: str, mnist_dir: Path | None, cache_dir: Path | None, sandbox_mode: str,
                   grader_path: Path | None, grade_args: str, pdf: bool, output: str, force: bool) -> None:
    """Write a Slurm script: a job array of 'grader grade --shard K/N', then 'grader rescore' for the class files.

    Run the script with bash on a login node: it provisions the data once, submits the array (one task
    per shard, each grading its students with the local pool of its allocation) and a last job that
    writes the gradebook and the summary after every shard has ended. Paths are made absolute; the
    grader's venv and the data cache must be at the same paths on every node.

    \b
    Example:
      grader slurm-template submissions/ --rubric rubric/hw4.yaml --out /scratch/hw4-reports --shards 20
      bash grade-slurm.sh
    """
    try:
        extra = tuple(shlex.split(grade_args))
    except ValueError as error:
        fail(f"--grade-args: {error}", EXIT_USAGE)
    if any(arg.startswith(("--shard", "--workers", "--out", "--rubric", "--backend")) for arg in extra):
        fail("--grade-args cannot set --shard, --workers, --out, --rubric or --backend: the script sets them",
             EXIT_USAGE)
    cache = cache_dir or Path(os.environ.get("GRADER_CACHE_DIR") or Path.home() / ".cache" / "grader")
    options = SlurmOptions(
        paths=tuple(p.resolve() for p in paths), rubric=rubric_path.resolve(), out=out_dir.resolve(), shards=shards,
        grader=(grader_path or _default_grader()).absolute(), cache_dir=cache.resolve(), profile=profile,
        mnist_dir=mnist_dir.resolve() if mnist_dir else None, sandbox=sandbox_mode, cpus_per_task=cpus_per_task,
        mem=mem, time=time_limit, partition=partition, account=account, job_name=job_name, pdf=pdf,
        grade_args=extra)
    name = "grade-slurm.sh" if output == "-" else Path(output).name
    target = None if output == "-" else Path(output)
    if write_output(render_sbatch(options, name), target, force=force, exists_code=EXIT_USAGE,
                    done=f"run 'bash {output}' on a login node to submit {shards} shard(s) and the class files "
                         f"step (results in {options.out})"):
        Path(output).chmod(0o755)
