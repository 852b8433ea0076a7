"""Run one sandboxed process with a wall-clock limit and a cap on the output kept."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from grader.execute.sandbox import Launch


@dataclass(frozen=True)
class ProcessResult:
    returncode: int | None  # negative: killed by that signal
    output: str
    timed_out: bool
    truncated: bool
    duration_s: float

    def describe_exit(self) -> str:
        if self.timed_out:
            return "ran past its time limit and was killed"
        if self.returncode is not None and self.returncode < 0:
            name = signal.Signals(-self.returncode).name if -self.returncode in signal.valid_signals() else "?"
            return f"was killed by signal {-self.returncode} ({name})"
        return f"exited with status {self.returncode}"


def _drain(stream: object, keep: bytearray, limit: int, flags: dict[str, bool]) -> None:
    read = stream.read  # type: ignore[attr-defined]
    while chunk := read(65536):
        room = limit - len(keep)
        if room > 0:
            keep.extend(chunk[:room])
        if len(chunk) > room:
            flags["truncated"] = True


class Deadline:
    """A kill time (``time.monotonic()``) that another thread may move while the process runs."""

    def __init__(self, at: float) -> None:
        self.at = at


def run_process(launch: Launch, *, cwd: Path, timeout_s: float, max_output_bytes: int,
                deadline: Deadline | None = None) -> ProcessResult:
    """Run to the end, or kill the whole session at ``timeout_s`` or at ``deadline`` (whichever is first)."""
    started = time.monotonic()
    process = subprocess.Popen(
        launch.argv, cwd=cwd, env=launch.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    kept = bytearray()
    flags = {"truncated": False}
    reader = threading.Thread(target=_drain, args=(process.stdout, kept, max_output_bytes, flags), daemon=True)
    reader.start()
    timed_out = False
    try:
        if deadline is None:
            process.wait(timeout=timeout_s)
        else:
            while process.poll() is None:
                left = min(started + timeout_s, deadline.at) - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(launch.argv, timeout_s)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=min(left, 0.25))
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        _kill_group(process)
        process.wait()
        reader.join(timeout=5)
    text = kept.decode("utf-8", errors="replace")
    if flags["truncated"]:
        text += f"\n[grader] output truncated at {max_output_bytes:,} bytes\n"
    return ProcessResult(process.returncode, text, timed_out, flags["truncated"], round(time.monotonic() - started, 3))


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill what the process left behind too (it runs in its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
