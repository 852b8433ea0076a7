"""Runs INSIDE the student's process: serve ``torchvision.datasets.MNIST`` from tensors, bit for bit.

On a CPU most of a handout notebook's time goes into its loader: ``datasets.MNIST`` builds a PIL
image per digit, and ``ToTensor``/``Normalize`` turn it back into a tensor, one digit at a time in
Python. For the transforms students use (``ToTensor``, ``Normalize`` after it, a ``Compose`` of
exactly those) the same tensors come straight from the dataset's ``data`` tensor, a whole batch at
a time (the DataLoader calls ``__getitems__`` when a dataset has one), with the same float
operations in the same order:

    ToTensor:   uint8 -> ``.to(torch.get_default_dtype()).div(255)``    (transforms.functional.to_tensor)
    Normalize:  ``mean``/``std`` through ``torch.as_tensor(.., dtype)``, ``.view(-1, 1, 1)`` when 1-d,
                then ``.sub_(mean).div_(std)``                          (transforms._functional_tensor.normalize)

Elementwise ops on the same values give the same bits whether one digit or a batch is computed, so
every sample (and every collated batch) is ``torch.equal`` to the stock one; tests/test_fastdata.py
proves it. The labels are ``int(target)`` as stock returns them.

Everything else keeps the stock code, decided again on every call (a few identity checks): a
subclass of MNIST (FashionMNIST, a student's own), a ``__getitem__`` patched by the student, any
other transform (augmentation, a lambda, PIL operations), no transform (stock returns PIL images),
a ``target_transform``, ``data``/``targets`` that are not the uint8/int64 tensors MNIST loads,
a ToTensor/Normalize/Compose (or the functional they call) patched or hooked by the student, and
a non-float32/float64 default dtype. ``data`` and ``targets`` are read on every call, as stock
reads them, so a student who changes them later still gets exactly what stock would serve.

Enabled by ``install()`` only when the environment says ``GRADER_DATA_PATH=fast``; the patch is
applied when ``torchvision`` is first imported (an import hook), so ``import torch`` alone costs
nothing and nothing is imported that the student did not import. ``report()`` says which path ran,
for harvest.json. Self-contained: stdlib here, torch/torchvision only once the student imports them.
"""

import functools
import importlib.abc
import os
import sys

ENV = "GRADER_DATA_PATH"
MODULE_NAME = "_grader_fastdata"  # the name startup.py and module_runner.py load this file under
MAX_REASONS = 20

_state = {"installed": False, "patched": False, "error": None}
_fast_ids = set()  # id() of datasets served at least once from tensors (in this process)
_stock_ids = set()  # id() of datasets served at least once by the stock code
_reasons = {}  # why the stock code served: reason -> number of datasets
_stock = {}  # the original functions, captured when torchvision was imported


def install():
    """Serve MNIST from tensors in this process if ``GRADER_DATA_PATH`` is ``fast``; returns whether it will."""
    if os.environ.get(ENV) != "fast":
        return False
    if _state["installed"]:
        return True
    _state["installed"] = True
    if "torchvision" in sys.modules:
        _patch()
    else:
        sys.meta_path.insert(0, _TorchvisionHook())
    return True


def report():
    """Which data path ran: plain data for harvest.json (counts are this process's, not DataLoader workers')."""
    record = {
        "mode": "fast" if _state["installed"] and not _state["error"] else "stock",
        "requested": str(os.environ.get(ENV, ""))[:20],
        "fast_datasets": len(_fast_ids),
        "stock_datasets": len(_stock_ids),
        "fallbacks": [f"{reason} ({count} dataset{'s' if count != 1 else ''})"
                      for reason, count in list(_reasons.items())[:MAX_REASONS]],
    }
    if _state["error"]:
        record["error"] = _state["error"]
    return record


def uninstall():
    """Undo ``install()`` (for tests in a process that must go back to stock)."""
    for hook in [h for h in sys.meta_path if isinstance(h, _TorchvisionHook)]:
        sys.meta_path.remove(hook)
    if _state["patched"]:
        mnist = sys.modules["torchvision.datasets.mnist"].MNIST
        if mnist.__getitem__ is _getitem:
            mnist.__getitem__ = _stock["getitem"]
        if vars(mnist).get("__getitems__") is _getitems:
            del mnist.__getitems__
    _state.update(installed=False, patched=False, error=None)
    _fast_ids.clear()
    _stock_ids.clear()
    _reasons.clear()


class _TorchvisionHook(importlib.abc.MetaPathFinder):
    """Patches MNIST once ``import torchvision`` has finished (it imports its datasets and transforms)."""

    def find_spec(self, name, path=None, target=None):
        if name != "torchvision":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _PatchAfter(spec.loader, self)
        return spec


class _PatchAfter(importlib.abc.Loader):
    def __init__(self, loader, hook):
        self.loader, self.hook = loader, hook

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.loader  # torchvision sees its own loader
        self.loader.exec_module(module)  # an error propagates: torchvision did not import, try again next time
        if self.hook in sys.meta_path:
            sys.meta_path.remove(self.hook)
        _patch()


def _patch():
    if _state["patched"]:
        return
    try:
        import torch
        import torch.nn.modules.module as nn_module
        from torchvision.datasets import mnist
        from torchvision.transforms import _functional_tensor as F_t
        from torchvision.transforms import functional as F
        from torchvision.transforms import transforms as T

        MNIST = mnist.MNIST
        if "__getitems__" in vars(MNIST):
            raise RuntimeError("torchvision's MNIST already has __getitems__")
        _stock.update(
            torch=torch, MNIST=MNIST, ToTensor=T.ToTensor, Normalize=T.Normalize, Compose=T.Compose,
            getitem=MNIST.__getitem__, mnist=mnist, fromarray=mnist._Image_fromarray, T=T, F=F, F_t=F_t,
            to_tensor_call=T.ToTensor.__call__, normalize_forward=T.Normalize.forward,
            normalize_call=T.Normalize.__call__, compose_call=T.Compose.__call__,
            to_tensor=F.to_tensor, normalize=F.normalize, normalize_t=F_t.normalize, nn_module=nn_module,
            floats=(torch.float32, torch.float64),
        )
        functools.update_wrapper(_getitem, MNIST.__getitem__)
        _getitems.__module__, _getitems.__qualname__ = MNIST.__module__, "MNIST.__getitems__"
        MNIST.__getitem__ = _getitem
        MNIST.__getitems__ = _getitems
        _state["patched"] = True
    except Exception as error:  # stock torchvision keeps working
        _state["error"] = f"not patched: {type(error).__name__}: {error}"[:300]


def _stock_reason(dataset):
    """None when ``dataset`` may be served from tensors now, else why not (a short sentence)."""
    try:
        return _check(dataset)
    except Exception as error:  # a transform without the attributes torchvision's have, ...
        return f"an unusual dataset or transform ({type(error).__name__})"


def _check(dataset):
    s = _stock
    if type(dataset) is not s["MNIST"]:
        return f"{type(dataset).__name__[:60]} (a subclass of MNIST)"
    if dataset.target_transform is not None:
        return "a target_transform"
    transform = dataset.transform
    if transform is None:
        return "no transform (stock serves PIL images)"
    kind = type(transform)
    if kind is s["ToTensor"]:
        steps = (transform,)
    elif kind is s["Compose"]:
        steps = transform.transforms
        if type(steps) not in (list, tuple):
            return "a Compose whose transforms are not a list"
    else:
        return f"the transform {kind.__name__[:60]}"
    if not steps:
        return "an empty Compose"
    for number, step in enumerate(steps):
        if type(step) is not (s["Normalize"] if number else s["ToTensor"]):
            return f"{type(step).__name__[:60]} in the transform"
        if not number:
            continue
        if step._forward_hooks or step._forward_pre_hooks or getattr(step, "_compiled_call_impl", None) is not None:
            return "a hooked Normalize"
    T, F, F_t, nn_module = s["T"], s["F"], s["F_t"], s["nn_module"]
    if (T.ToTensor.__call__ is not s["to_tensor_call"] or T.Normalize.forward is not s["normalize_forward"]
            or T.Normalize.__call__ is not s["normalize_call"] or T.Compose.__call__ is not s["compose_call"]
            or T.F is not F or F.to_tensor is not s["to_tensor"] or F.normalize is not s["normalize"]
            or F.F_t is not F_t or F_t.normalize is not s["normalize_t"]
            or s["mnist"]._Image_fromarray is not s["fromarray"]):
        return "torchvision's transforms were patched"
    if len(steps) > 1 and (nn_module._global_forward_hooks or nn_module._global_forward_pre_hooks):
        return "global module hooks"
    torch = s["torch"]
    data, targets = dataset.data, dataset.targets
    if type(data) is not torch.Tensor or data.dtype != torch.uint8 or data.dim() != 3 or data.device.type != "cpu" \
            or not data.is_contiguous():
        return "data that is not MNIST's uint8 tensor"
    if type(targets) is not torch.Tensor or targets.dtype != torch.int64 or targets.dim() != 1:
        return "targets that are not MNIST's int64 tensor"
    if torch.get_default_dtype() not in s["floats"]:
        return "a default dtype other than float32/float64"
    return None


def _note_stock(dataset, reason):
    key = id(dataset)
    if key not in _stock_ids:
        _stock_ids.add(key)
        if reason in _reasons or len(_reasons) < MAX_REASONS:
            _reasons[reason] = _reasons.get(reason, 0) + 1


class _Fallback(Exception):
    pass


def _normalize(batch, steps, sample_shape):
    """``Normalize`` step by step, in place on ``batch`` (N x C x H x W), as F_t.normalize does per sample."""
    torch = _stock["torch"]
    for step in steps[1:]:
        dtype = batch.dtype
        mean = torch.as_tensor(step.mean, dtype=dtype, device=batch.device)
        std = torch.as_tensor(step.std, dtype=dtype, device=batch.device)
        if mean.requires_grad or std.requires_grad or (std.item() == 0 if std.numel() == 1 else bool((std == 0).any())):
            raise _Fallback  # stock raises (or builds a graph): let it
        if mean.ndim == 1:
            mean = mean.view(-1, 1, 1)
        if std.ndim == 1:
            std = std.view(-1, 1, 1)
        if not (_keeps(mean.shape, sample_shape) and _keeps(std.shape, sample_shape)):
            raise _Fallback
        batch.sub_(mean).div_(std)
    return batch


def _keeps(shape, sample_shape):
    """Whether broadcasting ``shape`` against one sample leaves the sample's shape (stock's in-place op needs it)."""
    if len(shape) > len(sample_shape):
        return False
    return all(a == 1 or a == b for a, b in zip(reversed(tuple(shape)), reversed(sample_shape), strict=False))


def _steps(dataset):
    transform = dataset.transform
    return (transform,) if type(transform) is _stock["ToTensor"] else transform.transforms


def _getitem(self, index):
    reason = _stock_reason(self)
    if reason is not None:
        _note_stock(self, reason)
        return _stock["getitem"](self, index)
    if type(index) is not int:
        return _stock["getitem"](self, index)
    try:
        data = self.data
        image = data[index].unsqueeze(0).to(dtype=_stock["torch"].get_default_dtype()).div(255)
        target = int(self.targets[index])
        image = _normalize(image, _steps(self), tuple(image.shape))
    except Exception:  # an index out of range, a bad mean: stock says it its way
        return _stock["getitem"](self, index)
    if id(self) not in _fast_ids:
        _fast_ids.add(id(self))
    return image, target


def _getitems(self, indices):
    """A batch of samples: what ``[self[i] for i in indices]`` returns (the DataLoader's default)."""
    if type(self).__getitem__ is not _getitem:  # a subclass's own __getitem__, or MNIST's patched by the student
        return [self[i] for i in indices]
    reason = _stock_reason(self)
    if reason is not None or type(indices) is not list or not all(type(i) is int for i in indices):
        return [self[i] for i in indices]
    torch = _stock["torch"]
    try:
        index = torch.tensor(indices, dtype=torch.int64)
        data = self.data
        images = data[index].unsqueeze(1).to(dtype=torch.get_default_dtype()).div(255)
        targets = self.targets[index].tolist()
        images = _normalize(images, _steps(self), (1, *data.shape[1:]))
    except Exception:
        return [self[i] for i in indices]
    if id(self) not in _fast_ids:
        _fast_ids.add(id(self))
    return list(zip(images.unbind(0), targets, strict=True))
