"""Run a student notebook top to bottom with nbclient, in a sandboxed kernel, then harvest its models.

A cell that raises is recorded and execution goes on; a cell that runs past its timeout is
interrupted (the kernel survives, so models trained before it are kept); once the notebook's
total time is spent the remaining cells are not run, but the harvest still is.
"""

from __future__ import annotations

import ast
import asyncio
import atexit
import base64
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import zmq
import zmq.asyncio
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode

from grader.channel import ResultError, read_tail
from grader.evidence import Cell, CellError, CellStatus, FileStatus
from grader.execute.gpu import GpuSlot, is_gpu_memory_error
from grader.execute.kernel import kernel_launch, kernel_manager
from grader.execute.limits import GiB, Limits, MiB, Mount
from grader.execute.magics import as_python, neutralise
from grader.execute.sandbox import Sandbox
from grader.execute.workdir import WorkDir

HARVEST_TAG = "grader-harvest"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MAX_IMAGES_PER_CELL = 4
MAX_TRACEBACK_CHARS = 6000
MAX_SOURCE_CHARS = 64_000  # of one cell, kept in the evidence
MAX_HARVEST_OUTPUT_BYTES = 64 << 10  # what the grader's own harvest cell may print (a student can make it print)
MAX_MESSAGE_BYTES = 16 << 20  # one kernel message; a bigger one disconnects the sender instead of filling memory
DATA_MESSAGES = ("stream", "display_data", "execute_result", "update_display_data")


@dataclass
class RunResult:
    status: FileStatus
    message: str
    cells: list[Cell]
    duration_s: float
    harvested: bool


@dataclass
class _Tracker:
    deadline: float
    timed_out: set[int] = field(default_factory=set)
    not_run: set[int] = field(default_factory=set)
    durations: dict[int, float] = field(default_factory=dict)
    truncated: set[int] = field(default_factory=set)
    output_bytes: int = 0
    harvest_bytes: int = 0
    current: int | None = None  # the cell being run (from nbclient's public on_cell_start hook)
    started: float = 0.0
    timeouts: dict[int, float] = field(default_factory=dict)  # the limit each cell ran under


class GradingClient(NotebookClient):  # type: ignore[misc]
    """nbclient with a total deadline, timeout bookkeeping and output caps, through its public hooks."""

    def __init__(self, nb: NotebookNode, *, tracker: _Tracker, limits: Limits, **kwargs: Any) -> None:
        super().__init__(nb, **kwargs)
        self.tracker = tracker
        self.limits = limits
        self.timeout_func = self._timeout_for
        self.on_cell_start = self._on_cell_start
        self.on_cell_executed = self._on_cell_executed
        self.store_widget_state = False  # widget state is unbounded and never shown

    def _is_harvest(self, cell: NotebookNode) -> bool:
        return HARVEST_TAG in cell.get("metadata", {}).get("tags", [])

    def _timeout_for(self, cell: NotebookNode) -> int:
        if self._is_harvest(cell):
            return int(self.limits.harvest_timeout_s)
        remaining = self.tracker.deadline - time.monotonic()
        return max(1, int(min(self.limits.cell_timeout_s, remaining)))

    def _on_cell_start(self, cell: NotebookNode, cell_index: int) -> None:
        self.tracker.current = cell_index
        self.tracker.started = time.monotonic()
        if cell.cell_type == "code":
            self.tracker.timeouts[cell_index] = float(self._timeout_for(cell))

    def _on_cell_executed(self, cell: NotebookNode, cell_index: int, execute_reply: dict[str, Any]) -> None:
        """A cell interrupted by nbclient's timeout ends in KeyboardInterrupt once its limit has passed."""
        content = (execute_reply or {}).get("content", {})
        elapsed = time.monotonic() - self.tracker.started
        limit = self.tracker.timeouts.get(cell_index)
        if content.get("status") == "error" and content.get("ename") == "KeyboardInterrupt" \
                and limit is not None and elapsed >= limit:
            self.tracker.timed_out.add(cell_index)

    async def async_execute_cell(self, cell: NotebookNode, cell_index: int, execution_count: int | None = None,
                                 store_history: bool = True) -> NotebookNode:
        if cell.cell_type == "code" and not self._is_harvest(cell) and time.monotonic() >= self.tracker.deadline:
            self.tracker.not_run.add(cell_index)
            return cell
        started = time.monotonic()
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        finally:
            self.tracker.durations[cell_index] = time.monotonic() - started

    def process_message(self, msg: dict[str, Any], cell: NotebookNode, cell_index: int) -> NotebookNode | None:
        # a display update replaces an earlier output: it is counted like new output, and dropped past the cap
        if msg.get("msg_type") == "update_display_data" and not self._within_cap(msg, cell_index):
            return None
        return super().process_message(msg, cell, cell_index)

    def output(self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None,
               cell_index: int) -> NotebookNode | None:
        if msg.get("msg_type") == "error":  # every error is kept, past the cap too (its traceback cut)
            return super().output(outs, _cut_error(msg), display_id, cell_index)  # type: ignore[no-any-return]
        if msg.get("msg_type") in DATA_MESSAGES and not self._within_cap(msg, cell_index):
            if cell_index not in self.tracker.truncated:
                self.tracker.truncated.add(cell_index)
                outs.append(nbformat.v4.new_output(
                    "stream", name="stderr", text=f"[grader] output truncated: {self._cap_text(cell_index)}\n"))
            return None
        return super().output(outs, msg, display_id, cell_index)  # type: ignore[no-any-return]

    def _within_cap(self, msg: dict[str, Any], cell_index: int) -> bool:
        size = len(str(msg.get("content", "")))
        if self._is_harvest_index(cell_index):
            self.tracker.harvest_bytes += size
            return self.tracker.harvest_bytes <= MAX_HARVEST_OUTPUT_BYTES
        if self.tracker.output_bytes + size > self.limits.max_output_bytes:
            return False
        self.tracker.output_bytes += size
        return True

    def _cap_text(self, cell_index: int) -> str:
        if self._is_harvest_index(cell_index):
            return f"the harvest step's output passed {MAX_HARVEST_OUTPUT_BYTES:,} bytes"
        return f"the notebook's output passed {self.limits.max_output_bytes:,} bytes"

    def _is_harvest_index(self, index: int) -> bool:
        return 0 <= index < len(self.nb.cells) and self._is_harvest(self.nb.cells[index])


def _cut_error(msg: dict[str, Any]) -> dict[str, Any]:
    """An error message with a bounded name, value and traceback."""
    content = dict(msg.get("content", {}))
    trace = [str(line) for line in content.get("traceback", [])[-200:]]
    text = "\n".join(trace)
    content["traceback"] = [text[-MAX_TRACEBACK_CHARS:]] if len(text) > MAX_TRACEBACK_CHARS else trace
    content["ename"] = str(content.get("ename", ""))[:200]
    content["evalue"] = str(content.get("evalue", ""))[:2000]
    return {**msg, "content": content}


# IPython itself fails on a cell nested deeper than Python's compiler allows: RecursionError escapes run_cell,
# the kernel never answers, and the notebook hangs to its time limit. Such a cell is replaced by this one:
# an error of that cell only, and the later cells run.
TOO_DEEP_CELL = ('raise RecursionError("[grader] this cell is nested too deeply for Python to compile; '
                 'it was not run")')


def compiles_in_depth(source: str) -> bool:
    """False when Python's parser gives up on ``source`` for its depth (not for a syntax error: IPython shows those)."""
    try:
        ast.parse(as_python(source))
    except (RecursionError, MemoryError):
        return False
    except (SyntaxError, ValueError):
        return True
    return True


def prepare_notebook(nb: NotebookNode, harvest_code: str) -> tuple[NotebookNode, dict[int, tuple[str, ...]]]:
    """Neutralise shell escapes in code cells and append the harvest cell."""
    skipped: dict[int, tuple[str, ...]] = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            result = neutralise(cell.source)
            cell.source = result.source if compiles_in_depth(result.source) else TOO_DEEP_CELL
            cell.outputs = []
            if result.skipped:
                skipped[index] = result.skipped
    harvest = nbformat.v4.new_code_cell(harvest_code)
    harvest.metadata["tags"] = [HARVEST_TAG]
    nb.cells.append(harvest)
    return nb, skipped


def _cut_source(source: str) -> str:
    """A cell's source as kept in the evidence: bounded (a notebook may hold a megabyte-long table)."""
    if len(source) <= MAX_SOURCE_CHARS:
        return source
    return source[:MAX_SOURCE_CHARS] + f"\n[grader] {len(source) - MAX_SOURCE_CHARS:,} more characters not kept\n"


def _text_of(output: NotebookNode) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        return str(output.get("text", ""))
    if kind in ("execute_result", "display_data"):
        data = output.get("data", {})
        if "text/plain" in data and "image/png" not in data:
            return str(data["text/plain"]) + "\n"
    return ""


def cell_records(nb: NotebookNode, original: NotebookNode, tracker: _Tracker,
                 skipped: dict[int, tuple[str, ...]], crashed_at: int | None) -> list[Cell]:
    records = []
    for index, cell in enumerate(nb.cells):
        if HARVEST_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        source = _cut_source(original.cells[index].source)
        if cell.cell_type != "code":
            records.append(Cell(index=index, cell_type=cell.cell_type, source=source))
            continue
        outputs = cell.get("outputs", [])
        error = next((o for o in outputs if o.get("output_type") == "error"), None)
        images = [
            o["data"]["image/png"] for o in outputs
            if o.get("output_type") in ("display_data", "execute_result") and "image/png" in o.get("data", {})
        ]
        status: CellStatus
        if index in tracker.timed_out:
            status = "timeout"
        elif error is not None or index == crashed_at:
            status = "error"
        elif index in tracker.not_run or (crashed_at is not None and index > crashed_at) or (
            cell.source.strip() and index not in tracker.durations
        ):
            status = "not_run"
        else:
            status = "ok"
        cell_error = None
        if error is not None:
            trace = _ANSI.sub("", "\n".join(error.get("traceback", [])))
            cell_error = CellError(ename=str(error.get("ename", "")), evalue=str(error.get("evalue", ""))[:2000],
                                   traceback=trace[-MAX_TRACEBACK_CHARS:])
        elif index == crashed_at:
            cell_error = CellError(ename="DeadKernelError", evalue="the kernel died while running this cell")
        records.append(Cell(
            index=index, cell_type="code", source=source, status=status,
            duration_s=round(tracker.durations[index], 3) if index in tracker.durations else None,
            error=cell_error, output_text=_ANSI.sub("", "".join(_text_of(o) for o in outputs)),
            images=[str(i).replace("\n", "") for i in images[:MAX_IMAGES_PER_CELL]],
            skipped_magics=list(skipped.get(index, ())), truncated=index in tracker.truncated,
        ))
    return records


async def _run(client: GradingClient, manager: Any, env: dict[str, str], limits: Limits, log: Path) -> None:
    """Execute, with an outer wall clock (a kernel that ignores interrupts), then always stop the kernel."""
    try:
        with log.open("ab") as stream:  # the kernel's own stdout/stderr (crash messages end up here)
            await asyncio.wait_for(client.async_execute(env=env, stdout=stream, stderr=stream),
                                   timeout=limits.total_timeout_s + limits.harvest_timeout_s + 30)
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
        try:
            if manager.has_kernel:
                await manager.shutdown_kernel(now=True)
        except Exception:  # already gone
            pass


def run_notebook(notebook: NotebookNode, work: WorkDir, *, runtime: Path, sandbox: Sandbox, mounts: list[Mount],
                 limits: Limits, threads: int, data_path: str = "fast", gpu: GpuSlot | None = None) -> RunResult:
    original = nbformat.from_dict(notebook)
    harvest_code = (runtime / "harvest.py").read_text() + \
        f"\n__grader_harvest({str(work.out)!r})\ndel __grader_harvest\n"
    nb, skipped = prepare_notebook(nbformat.from_dict(notebook), harvest_code)
    ipc_dir = Path(tempfile.mkdtemp(prefix="gk", dir="/tmp")) if sandbox.name != "none" else None
    if ipc_dir is not None:
        mounts = [*mounts, Mount(ipc_dir, ipc_dir, writable=True)]
    sandbox.prepare(mounts)
    launch = kernel_launch(work, runtime, sandbox, mounts, limits, threads, data_path, gpu)
    manager = kernel_manager(work, launch, ipc_dir=ipc_dir)
    manager.context = zmq.asyncio.Context()
    manager.context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)  # every socket of the client: bounded messages
    tracker = _Tracker(deadline=time.monotonic() + limits.total_timeout_s)
    client = GradingClient(
        nb, km=manager, tracker=tracker, limits=limits, allow_errors=True, interrupt_on_timeout=True,
        record_timing=False, startup_timeout=120, iopub_timeout=10, shutdown_kernel="immediate",
        resources={"metadata": {"path": str(work.root)}},
    )
    log = work.kernel_log  # outside the work dir: the student cannot plant a link in its place
    started = time.monotonic()
    status: FileStatus = "completed"
    message = ""
    crashed_at: int | None = None
    outer_deadline = started + limits.total_timeout_s + limits.harvest_timeout_s + 30
    try:
        asyncio.run(_run(client, manager, launch.env, limits, log))
    except DeadKernelError:
        crashed_at = tracker.current
        if time.monotonic() >= outer_deadline - 1:  # nbclient reports our own cancellation as a dead kernel
            status = "timeout"
            message = (f"the notebook ran past its total time limit ({limits.total_timeout_s:.0f} s) "
                       f"and its kernel, which ignored interrupts in cell {crashed_at}, was killed")
        else:
            status, message = "crashed", (f"the kernel died while running cell {crashed_at} (killed, out of memory, "
                                          "or exited)")
    except TimeoutError:
        crashed_at = tracker.current
        status, message = "timeout", f"the notebook ran past its total time limit ({limits.total_timeout_s:.0f} s)"
    except (RecursionError, ValueError, KeyError, TypeError) as error:  # e.g. a message nested too deep to decode
        crashed_at = tracker.current
        status, message = "error", (f"the run was stopped in cell {crashed_at}: the grader could not read what the "
                                    f"kernel sent ({type(error).__name__}: {str(error)[:200]})")
    except RuntimeError as error:  # e.g. "Kernel didn't respond in 120 seconds"
        status, message = "error", f"the kernel could not be run: {error}"
    except Exception as error:  # anything else the kernel's messages provoke: the student's run ends here
        crashed_at = tracker.current
        status, message = "error", (f"the run was stopped in cell {crashed_at}: the grader could not read what the "
                                    f"kernel sent ({type(error).__name__}: {str(error)[:200]})")
    finally:
        # nbclient leaves this registered when the kernel fails to start (pinned: tests/test_notebook_client.py)
        atexit.unregister(client._cleanup_kernel)
        limit_hit = launch.finish()
        manager.context.destroy(linger=0)
        if ipc_dir is not None:
            shutil.rmtree(ipc_dir, ignore_errors=True)
    if status == "timeout" and crashed_at is not None:
        tracker.timed_out.add(crashed_at)
    harvested = (work.out / "harvest.json").is_file()
    cells = cell_records(nb, original, tracker, skipped, crashed_at if status == "crashed" else None)
    status, message = verdict(status, message, cells, tracker, limit_hit, harvested, limits, gpu)
    if status in ("crashed", "error"):
        message += kernel_log_tail(log)
    return RunResult(status=status, message=message, cells=cells, duration_s=round(time.monotonic() - started, 3),
                     harvested=harvested)


def _is_gpu_memory_error(error: CellError) -> bool:
    return is_gpu_memory_error(f"{error.ename}: {error.evalue}")


def _is_memory_error(error: CellError) -> bool:
    text = f"{error.ename}: {error.evalue}"
    return not _is_gpu_memory_error(error) and (
        error.ename in ("MemoryError", "OutOfMemoryError") or "can't allocate memory" in text
        or "not enough memory" in text)


def _is_process_limit(error: CellError) -> bool:
    text = f"{error.ename}: {error.evalue}"
    return error.ename == "BlockingIOError" or "can't start new thread" in text \
        or "Resource temporarily unavailable" in text


def verdict(status: FileStatus, message: str, cells: list[Cell], tracker: _Tracker, limit_hit: str | None,
            harvested: bool, limits: Limits, gpu: GpuSlot | None = None) -> tuple[FileStatus, str]:
    """How the run ended, in one status and one sentence for the report."""
    def listed(indexes: list[int] | set[int]) -> str:
        return ", ".join(map(str, sorted(indexes)))

    memory = [c.index for c in cells if c.error and _is_memory_error(c.error)]
    processes = [c.index for c in cells if c.error and _is_process_limit(c.error)]
    gpu_memory = [c.index for c in cells if c.error and _is_gpu_memory_error(c.error)]
    if limit_hit == "memory":
        return "memory", (f"the notebook used more than its memory limit ({limits.memory_bytes / GiB:.0f} GiB) "
                          "and its kernel was killed")
    if status != "completed":
        if limit_hit == "processes":
            message += f"; it reached its limit of {limits.max_processes} processes"
        return status, message
    harvest_index = len(cells) and max(c.index for c in cells) + 1
    if harvest_index in tracker.timed_out:
        return "timeout", (f"the grader's harvest step ran past its time limit ({limits.harvest_timeout_s:.0f} s): "
                           "something in the notebook's variables made saving the models hang")
    if tracker.timed_out or tracker.not_run:
        parts = []
        if tracker.timed_out:
            parts.append(f"cell(s) {listed(tracker.timed_out)} ran past the per-cell time limit "
                         f"({limits.cell_timeout_s:.0f} s) and were interrupted")
        if tracker.not_run:
            parts.append(f"the notebook's total time limit ({limits.total_timeout_s:.0f} s) was reached; "
                         f"{len(tracker.not_run)} cell(s) were not run")
        else:
            parts.append("later cells still ran")
        return "timeout", "; ".join(parts)
    if memory:
        return "memory", (f"cell(s) {listed(memory)} ran out of memory (limit {limits.memory_bytes / GiB:.0f} GiB "
                          "per process); later cells still ran")
    if gpu_memory:
        share = f"its share of {gpu.describe()}" if gpu else "the GPU's memory"
        return "gpu-memory", f"cell(s) {listed(gpu_memory)} ran out of GPU memory ({share}); later cells still ran"
    if processes or limit_hit == "processes":
        where = f" in cell(s) {listed(processes)}" if processes else ""
        return "processes", f"the notebook reached its limit of {limits.max_processes} processes{where}"
    truncated = [c.index for c in cells if c.truncated]
    notes = [f"output truncated at {limits.max_output_bytes / MiB:g} MiB (from cell {truncated[0]} on)"] \
        if truncated else []
    if not harvested:
        notes.append("the grader's harvest step did not complete (see the last cell's error)")
    return "completed", "; ".join(notes)


# what every kernel prints at start-up: not about the crash
KERNEL_BANNER = ("running over TCP", "To connect another client", "--existing", "[IPKernelApp]", "NOTE: When using",
                 "kernel-", "connection file", "jupyter console", "ipykernel", "To exit, you will have to",
                 '"quit" from a client', "To read more about this", "Ctrl-\\", "explicitly quit")


def kernel_log_tail(log: Path, lines: int = 3) -> str:
    """The last lines the kernel printed itself (e.g. 'Segmentation fault'), for a crash message."""
    try:
        text = read_tail(log, 4000).decode("utf-8", errors="replace")
    except ResultError:
        return ""
    useful = [line for line in text.splitlines() if line.strip() and not any(n in line for n in KERNEL_BANNER)]
    useful = useful[-lines:]
    return ("; the kernel printed: " + " | ".join(useful)) if useful else ""


def image_bytes(encoded: str) -> bytes:
    return base64.b64decode(encoded)
