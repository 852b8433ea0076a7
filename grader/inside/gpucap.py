"""GPU memory cap for a student process (runs INSIDE the sandbox; torch only if the student imports it).

With ``GRADER_GPU_MEMORY_FRACTION`` set (the grader gave this process a share of one GPU), the
cap is applied when CUDA initialises: ``torch.cuda.set_per_process_memory_fraction`` queued with
``torch.cuda._lazy_call``, as torch queues its own seeds. A notebook that never touches CUDA pays
nothing. Allocations past the cap raise ``torch.OutOfMemoryError``, which the grader reports as
the verdict "gpu-memory" with the figure.
"""

import importlib.abc
import os
import sys


def _fraction():
    try:
        value = float(os.environ.get("GRADER_GPU_MEMORY_FRACTION", ""))
    except ValueError:
        return None
    return value if 0 < value <= 1 else None


def _cap(torch):
    fraction = _fraction()
    if fraction is None:
        return
    cuda = torch.cuda

    def apply():
        if cuda.device_count():
            cuda.set_per_process_memory_fraction(fraction, 0)

    queue = getattr(cuda, "_lazy_call", None)
    if queue is not None:
        queue(apply)
    elif cuda.is_available():
        apply()


class _AfterTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _CapAfter(spec.loader, self)
        return spec


class _CapAfter(importlib.abc.Loader):
    def __init__(self, loader, hook):
        self.loader, self.hook = loader, hook

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        if self.hook in sys.meta_path:
            sys.meta_path.remove(self.hook)
        _cap(module)


def install():
    """Cap now if torch is already imported, else as soon as it is."""
    if _fraction() is None:
        return
    if "torch" in sys.modules:
        _cap(sys.modules["torch"])
    else:
        sys.meta_path.insert(0, _AfterTorch())
