"""Runs INSIDE the student's process (kernel or module runner) after their code: save models as tensors.

Self-contained (stdlib + torch + safetensors); the trusted grader never imports this file, it sends
its text to the kernel. Output is data only: ``models/*.safetensors`` and ``harvest.json``. A
student can sabotage this step in their own process, which only loses their own models: every
number that is graded is measured later, in a fresh process, from these tensors.
"""


def __grader_harvest(out_dir, namespace=None, max_models=20):
    import json
    import os
    import sys

    import torch
    from safetensors.torch import save_file

    work = os.path.realpath(os.getcwd())
    if namespace is None:
        namespace = vars(sys.modules["__main__"])

    def defined_by_student(cls):
        if cls.__module__ in ("__main__", "__student__"):
            return True
        module = sys.modules.get(cls.__module__)
        path = getattr(module, "__file__", None)
        return bool(path) and os.path.realpath(path).startswith(work + os.sep)

    found, seen = [], set()

    def consider(name, value):
        if isinstance(value, torch.nn.Module) and id(value) not in seen and defined_by_student(type(value)):
            seen.add(id(value))
            found.append((name, value))

    for name, value in list(namespace.items()):
        if name.startswith("_") or name in ("In", "Out", "exit", "quit", "get_ipython"):
            continue
        consider(name, value)
        if isinstance(value, (list, tuple)):
            for index, inner in enumerate(list(value)[:50]):
                consider(f"{name}[{index}]", inner)
        elif isinstance(value, dict):
            for key, inner in list(value.items())[:50]:
                consider(f"{name}[{key!r}]", inner)

    optimized = set()  # parameters an optimizer in the namespace holds state for (Adam moments, momentum)
    for value in list(namespace.values()):
        if isinstance(value, torch.optim.Optimizer):
            try:
                optimized.update(id(p) for p in value.state)
            except Exception:
                continue

    def was_trained(model):
        """A hint for choosing among models: gradients left by backward(), or optimizer state."""
        try:
            return any(p.grad is not None or id(p) in optimized for p in model.parameters())
        except Exception:
            return None

    os.makedirs(os.path.join(out_dir, "models"), exist_ok=True)
    models = []
    for number, (name, model) in enumerate(found[:max_models]):
        try:
            state = {
                key: tensor.detach().to("cpu").contiguous().clone()
                for key, tensor in model.state_dict().items()
                if isinstance(tensor, torch.Tensor)
            }
            if not state:
                continue
            file_name = f"models/model{number}.safetensors"
            save_file(state, os.path.join(out_dir, file_name))
            models.append(
                {
                    "variable": name,
                    "class_name": type(model).__name__,
                    "class_module": type(model).__module__,
                    "weights": file_name,
                    "trainable": [key for key, p in model.named_parameters() if p.requires_grad],
                    "trained": was_trained(model),
                }
            )
        except Exception as error:  # one broken model must not lose the others
            models.append({"variable": name, "class_name": type(model).__name__, "error": repr(error)[:500]})

    normalize = []

    def transforms_of(value):
        for holder in (value, getattr(value, "dataset", None)):
            transform = getattr(holder, "transform", None)
            if transform is not None:
                yield transform
        if type(value).__name__ == "Compose":
            yield value

    for name, value in list(namespace.items()):
        if name.startswith("_"):
            continue
        try:
            for transform in transforms_of(value):
                for step in getattr(transform, "transforms", [transform]):
                    if type(step).__name__ == "Normalize":
                        pair = [
                            [float(v) for v in torch.as_tensor(step.mean).flatten().tolist()],
                            [float(v) for v in torch.as_tensor(step.std).flatten().tolist()],
                        ]
                        if pair not in normalize and len(normalize) < 5:
                            normalize.append(pair)
        except Exception:
            continue

    curves = __grader_curves(namespace)
    with open(os.path.join(out_dir, "harvest.json"), "w") as handle:
        json.dump({"models": models, "normalize": normalize, "curves": curves,
                   "data_path": __grader_data_path()}, handle)
    return len(models)


def __grader_data_path():
    """Which MNIST data path served this process: fastdata.py's report(), checked and capped (see results.py)."""
    import os
    import sys

    requested = ""
    try:
        requested = str(os.environ.get("GRADER_DATA_PATH", ""))[:20]
        module = sys.modules.get("_grader_fastdata")
        record = module.report() if module is not None else None
        if not isinstance(record, dict):
            record = {"mode": "stock"}
            if requested == "fast":
                record["error"] = "the fast data path was not installed"
        out = {"mode": "fast" if record.get("mode") == "fast" else "stock", "requested": requested}
        for key in ("fast_datasets", "stock_datasets"):
            value = record.get(key, 0)
            out[key] = value if type(value) is int and 0 <= value < 10**9 else 0
        fallbacks = record.get("fallbacks", [])
        out["fallbacks"] = [str(item)[:300] for item in list(fallbacks)[:20]] if type(fallbacks) is list else []
        if record.get("error"):
            out["error"] = str(record["error"])[:500]
        return out
    except Exception as error:
        return {"mode": "stock", "requested": requested, "error": f"unreadable record ({type(error).__name__})"}


def __grader_curves(namespace, max_lists=8, max_values=10000):
    """Numeric lists kept in globals named like *loss* (then *counter*, their x axis), for the loss plot.

    Finite numbers only (floats, ints, one-element tensors or arrays); a longer list is thinned evenly
    to at most ``max_values``; names as results.Harvest accepts them.
    """
    import math
    import re

    def numbers(value):
        if hasattr(value, "dim") and hasattr(value, "tolist") and value.dim() == 1:  # a 1-d tensor
            value = value.detach().cpu().tolist()
        if not isinstance(value, (list, tuple)) or not value:
            return None
        step = -(-len(value) // max_values)
        out = []
        for item in list(value)[::step]:
            if isinstance(item, bool):
                return None
            if not isinstance(item, (int, float)):
                numel = getattr(item, "numel", None)  # a tensor; numpy scalars and arrays have .size
                count = numel() if callable(numel) else getattr(item, "size", None)
                if count != 1 or not hasattr(item, "item"):
                    return None
                try:
                    item = item.item()
                except Exception:
                    return None
                if isinstance(item, bool) or not isinstance(item, (int, float)):
                    return None
            item = float(item)
            if not math.isfinite(item):
                return None
            out.append(item)
        return out

    found = []
    for word in ("loss", "counter"):
        for name, value in list(namespace.items()):
            if len(found) >= max_lists:
                return found
            if word not in name.lower() or any(name == f["name"] for f in found):
                continue
            if name.startswith("_") or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,99}", name):
                continue
            try:
                values = numbers(value)
            except Exception:
                continue
            if values:
                found.append({"name": name, "values": values, "length": len(value)})
    return found
