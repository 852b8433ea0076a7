"""GPU planning without a GPU: what each student process would see, and how students are packed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT, RUBRIC

from grader.cli import EXIT_ENVIRONMENT, cli
from grader.evidence import Cell, CellError
from grader.execute import gpu as gpu_module
from grader.execute.bubblewrap import Bubblewrap
from grader.execute.gpu import (
    CONTROL_NODES,
    DeviceUnavailable,
    Gpu,
    GpuSlot,
    device_nodes,
    gpu_env,
    parse_smi,
    plan_devices,
)
from grader.execute.limits import Limits
from grader.execute.notebook import _Tracker, verdict

SMI = """0, GPU-aaaa, NVIDIA H200, 143771, 570.86.15, 00000000:19:00.0
1, GPU-bbbb, NVIDIA H200, 143771, 570.86.15, 00000000:3B:00.0
"""
H200 = parse_smi(SMI, {"00000000:3b:00.0": 5})


def test_nvidia_smi_rows_become_gpus_with_their_device_nodes() -> None:
    assert [(g.index, g.uuid, g.name, g.driver) for g in H200] == [
        (0, "GPU-aaaa", "NVIDIA H200", "570.86.15"), (1, "GPU-bbbb", "NVIDIA H200", "570.86.15")]
    assert H200[0].memory_bytes == 143771 << 20
    assert H200[0].node == "/dev/nvidia0", "no /proc entry: the index"
    assert H200[1].node == "/dev/nvidia5", "the minor number from /proc/driver/nvidia"
    assert parse_smi("No devices were found\n", {}) == []


def test_cuda_without_a_gpu_is_a_clear_error_and_auto_falls_back_to_the_cpu() -> None:
    with pytest.raises(DeviceUnavailable, match="no GPU is visible"):
        plan_devices("cuda", gpus=())
    auto = plan_devices("auto", gpus=())
    assert auto.device == "cpu" and "CPU" in auto.note
    assert auto.gpu_slots() == []
    assert plan_devices("cpu", gpus=H200).device == "cpu", "--device cpu hides the GPUs"


def test_students_are_packed_by_gpu_memory_and_cpu_cores() -> None:
    plan = plan_devices("auto", gpus=H200, cpu_cores=16)
    assert plan.device == "cuda" and plan.jobs_per_gpu == 8, "16 cores over 2 GPUs; memory would allow 35"
    small = Gpu(0, "GPU-s", "T4", 15 << 30, "535", 0)
    assert plan_devices("auto", gpus=(small,), cpu_cores=16).jobs_per_gpu == 3, "15 GiB at 4 GiB a student"
    assert plan_devices("cuda", 4, gpus=H200, cpu_cores=2).jobs_per_gpu == 4, "--jobs-per-gpu wins"


def test_slots_interleave_gpus_and_share_memory() -> None:
    slots = plan_devices("cuda", 3, gpus=H200).gpu_slots()
    assert [s.gpu.index for s in slots] == [0, 1, 0, 1, 0, 1], "a prefix of them spreads over both GPUs"
    assert slots[0].memory_fraction == pytest.approx(0.95 / 3, abs=1e-4)
    assert slots[0].memory_cap_bytes < H200[0].memory_bytes / 3


def test_a_student_process_is_told_about_its_one_gpu_only() -> None:
    slot = GpuSlot(H200[1], 0.25)
    env = gpu_env(slot)
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-bbbb" and env["GRADER_GPU_MEMORY_FRACTION"] == "0.2500"
    assert gpu_env(None) == {"CUDA_VISIBLE_DEVICES": ""}, "no slot: no GPU, as in the clean room"


def test_the_sandbox_binds_that_gpus_node_and_the_control_nodes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_module, "visible_gpus", lambda: tuple(H200))
    assert device_nodes(gpu_env(GpuSlot(H200[1], 0.5))) == [*CONTROL_NODES, "/dev/nvidia5"]
    assert device_nodes(gpu_env(None)) == []
    args = Bubblewrap()._filesystem([], Limits(), gpu_env(GpuSlot(H200[0], 0.5)))
    bound = {args[i + 1] for i, arg in enumerate(args) if arg == "--dev-bind-try"}
    assert bound == {*CONTROL_NODES, "/dev/nvidia0"}
    args = Bubblewrap()._filesystem([], Limits(), gpu_env(None))
    assert "--dev-bind-try" not in args


def test_cuda_out_of_memory_is_its_own_verdict_with_the_figure() -> None:
    error = CellError(ename="OutOfMemoryError", evalue="CUDA out of memory. Tried to allocate 20.00 GiB", traceback="")
    cells = [Cell(index=0, cell_type="code", source="x", status="error", error=error)]
    status, message = verdict("completed", "", cells, _Tracker(deadline=0), None, True, Limits(), GpuSlot(H200[0], 0.5))
    assert status == "gpu-memory"
    assert "cell(s) 0 ran out of GPU memory" in message and "NVIDIA H200" in message and "GiB" in message
    host = CellError(ename="OutOfMemoryError", evalue="can't allocate memory", traceback="")
    cells = [Cell(index=0, cell_type="code", source="x", status="error", error=host)]
    assert verdict("completed", "", cells, _Tracker(deadline=0), None, True, Limits())[0] == "memory"


def test_the_memory_cap_is_queued_for_when_cuda_initialises() -> None:
    """gpucap.py hooks the import of torch and queues set_per_process_memory_fraction (no GPU needed)."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('gpucap', {str(ROOT / 'grader/inside/gpucap.py')!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); module.install()\n"
        "assert 'torch' not in sys.modules\n"
        "import torch\n"
        "queued = [getattr(call, '__qualname__', '') for call, _ in torch.cuda._queued_calls]\n"
        "print(queued)\n"
        "assert any('_cap.<locals>.apply' in q for q in queued), queued\n"
    )
    env = {**os.environ, "GRADER_GPU_MEMORY_FRACTION": "0.25"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    without = subprocess.run([sys.executable, "-c", code], env={k: v for k, v in env.items()
                                                               if k != "GRADER_GPU_MEMORY_FRACTION"},
                             capture_output=True, text=True, timeout=120)
    assert without.returncode != 0, "without a share nothing is queued"


def test_grade_on_cuda_without_a_gpu_exits_with_the_environment_code(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_module, "visible_gpus", lambda: ())
    result = CliRunner().invoke(cli, ["grade", str(ROOT / "submissions"), "--rubric", str(RUBRIC), "--out",
                                      str(tmp_path / "out"), "--device", "cuda", "--no-pdf"])
    assert result.exit_code == EXIT_ENVIRONMENT, result.output
    assert "no GPU is visible" in result.output
