"""Run a student's .py module: the grader imports it in a sandboxed process and trains its models."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grader.channel import ResultError, RunnerStatus, read_json, result_path
from grader.evidence import Cell, CellError, FileStatus
from grader.execute.gpu import GpuSlot, gpu_env, is_gpu_memory_error
from grader.execute.limits import GiB, Limits, Mount
from grader.execute.notebook import RunResult
from grader.execute.process import run_process
from grader.execute.sandbox import Sandbox, base_env
from grader.execute.workdir import WorkDir

STEP_MARKER = "[grader] training "


def _split_output(output: str, steps: int) -> list[str]:
    """Output before the first training marker, then one chunk per training step."""
    chunks = output.split(STEP_MARKER)
    head, rest = chunks[0], [STEP_MARKER + chunk for chunk in chunks[1:]]
    return [head, *rest[:steps], *([""] * max(0, steps - len(rest)))]


def _last_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1][:500] if lines else "failed"


def run_module(relative: str, source: str, work: WorkDir, *, runtime: Path, sandbox: Sandbox,
               mounts: list[Mount], limits: Limits, threads: int, plan: list[dict[str, Any]],
               data_path: str = "fast", gpu: GpuSlot | None = None) -> RunResult:
    job = {
        "module": str(work.root / relative), "models": plan, "out_dir": str(work.out),
        "threads": threads, "use_cuda": True,
    }
    job_path = work.job_file("job.json")
    job_path.write_text(json.dumps(job))
    mounts = [*mounts, *work.job_mounts()]
    sandbox.prepare(mounts)
    env = {**base_env(work.root, threads), "GRADER_DATA_PATH": data_path, **gpu_env(gpu)}
    launch = sandbox.wrap([sys.executable, str(runtime / "module_runner.py"), str(job_path)], cwd=work.root,
                          mounts=mounts, env=env, limits=limits)
    result = run_process(launch, cwd=work.root, timeout_s=limits.total_timeout_s,
                         max_output_bytes=limits.max_output_bytes)
    limit_hit = launch.finish()
    try:
        steps = read_json(result_path(work.root, "runner.json"), RunnerStatus, "the module runner's status").steps
    except ResultError:
        steps = []
    status: FileStatus = "completed"
    message = ""
    if limit_hit == "memory":
        status = "memory"
        message = f"the module run used more than its memory limit ({limits.memory_bytes / GiB:.0f} GiB)"
    elif result.timed_out:
        status, message = "timeout", f"the module run {result.describe_exit()} ({limits.total_timeout_s:.0f} s)"
    elif result.returncode not in (0, 1) or not steps:
        status, message = "crashed", f"the module runner {result.describe_exit()}"
        if limit_hit == "processes":
            message += f"; it reached the limit of {limits.max_processes} processes"
    training = [step for step in steps if step.step.startswith("train ")]
    chunks = _split_output(result.output, len(training))
    import_step = next((step for step in steps if step.step == "import"), None)
    cells = [Cell(
        index=0, cell_type="code", source=source,
        status="ok" if import_step and import_step.ok else ("error" if import_step else "not_run"),
        duration_s=import_step.duration_s if import_step else None,
        error=CellError(ename="ImportError", evalue="importing the module failed", traceback=import_step.error or "")
        if import_step and not import_step.ok else None,
        output_text=chunks[0],
        truncated=result.truncated,
    )]
    for number, step in enumerate(training, start=1):
        cells.append(Cell(
            index=number, cell_type="code",
            source=f"# [grader] {step.step} with the handout's loop (found {step.found or '-'})",
            status="ok" if step.ok else "error", duration_s=step.duration_s,
            error=None if step.ok else CellError(ename="TrainingError", evalue=_last_line(step.error),
                                                 traceback=step.error or ""),
            output_text=chunks[number] if number < len(chunks) else "",
        ))
    gpu_memory = [c.index for c in cells if c.error and is_gpu_memory_error(c.error.traceback or c.error.evalue)]
    if status == "completed" and gpu_memory:
        share = f"its share of {gpu.describe()}" if gpu else "the GPU's memory"
        where = ", ".join(map(str, gpu_memory))
        status, message = "gpu-memory", f"training step(s) {where} ran out of GPU memory ({share})"
    harvested = (work.out / "harvest.json").is_file()
    return RunResult(status=status, message=message, cells=cells, duration_s=result.duration_s, harvested=harvested)
