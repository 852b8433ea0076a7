"""What a sandboxed student process may use (``Limits``) and see (``Mount``): plain data, no policy.

Kept apart from the sandboxes themselves so that cgroups, bubblewrap and the uid sandbox can all
import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

GiB = 1 << 30
MiB = 1 << 20

# The keys a rubric's `limits:` section and the command line may set, and how each becomes a field.
_SCALED = {"memory_gb": ("memory_bytes", GiB), "max_file_mb": ("max_file_bytes", MiB),
           "max_output_mb": ("max_output_bytes", MiB)}
_PLAIN = ("cell_timeout_s", "total_timeout_s", "max_processes")


@dataclass(frozen=True)
class Limits:
    """Per-process limits; the defaults fit DS5220 PS4 on full MNIST on a CPU."""

    cell_timeout_s: float = 900.0
    total_timeout_s: float = 2400.0  # per notebook or module run
    measure_timeout_s: float = 600.0  # the clean-room process
    memory_bytes: int = 12 * GiB  # address space; the CUDA build of torch maps about 4.4 GiB
    max_processes: int = 512  # threads count too (RLIMIT_NPROC counts the uid's tasks)
    max_file_bytes: int = 1 * GiB  # largest single file a student process may write
    max_output_bytes: int = 2 * MiB  # text + images kept from one notebook's outputs
    max_tmp_bytes: int = 2 * GiB  # size of the sandbox's private /tmp (RAM-backed)

    @property
    def harvest_timeout_s(self) -> float:
        """Time for the grader's own harvest cell after the notebook (saving tensors)."""
        return min(180.0, max(30.0, self.total_timeout_s / 8))

    @classmethod
    def from_rubric(cls, spec: Any, overrides: dict[str, float | int | None] | None = None) -> Limits:
        """Defaults, overridden by the rubric's ``limits`` (a ``LimitsSpec`` or mapping), then by ``overrides``.

        Keys of both: cell_timeout_s, total_timeout_s, memory_gb, max_processes, max_file_mb,
        max_output_mb. A None value means "not given".
        """
        given: dict[str, Any] = dict(spec.model_dump() if hasattr(spec, "model_dump") else (spec or {}))
        given.update({key: value for key, value in (overrides or {}).items() if value is not None})
        unknown = set(given) - set(_SCALED) - set(_PLAIN)
        if unknown:
            raise ValueError(f"unknown limit(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for key, value in given.items():
            if value is None:
                continue
            if key in _SCALED:
                name, unit = _SCALED[key]
                values[name] = int(float(value) * unit)
            else:
                values[key] = int(value) if key == "max_processes" else float(value)
        base = cls()
        total = float(values.get("total_timeout_s", base.total_timeout_s))
        values["measure_timeout_s"] = min(base.measure_timeout_s, max(60.0, total / 4))
        return cls(**values)

    def describe(self, memory_cap: str) -> dict[str, float | int | str]:
        """The limits as recorded in evidence and reports."""
        return {
            "cell_timeout_s": self.cell_timeout_s, "total_timeout_s": self.total_timeout_s,
            "memory_gb": round(self.memory_bytes / GiB, 2), "memory_cap": memory_cap,
            "max_processes": self.max_processes, "max_file_mb": round(self.max_file_bytes / MiB, 1),
            "max_output_mb": round(self.max_output_bytes / MiB, 2), "tmp_mb": round(self.max_tmp_bytes / MiB),
        }


LIMIT_FIELDS = tuple(field.name for field in fields(Limits))


@dataclass(frozen=True)
class Mount:
    """A host path made visible to the sandboxed process at ``target``."""

    source: Path
    target: Path
    writable: bool = False
