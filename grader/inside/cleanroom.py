"""Runs INSIDE a fresh sandboxed process: rebuild student classes, load weights, return logits.

Usage: python cleanroom.py START.json

Started before the student's notebooks run (START.json: the evaluation images, the output folder,
the seed), it imports torch and reads the images, then waits for the job file the grader writes
when the run is over. The job gives, per student file, the definitions taken from its code by the grader (imports,
constants, classes and functions; never the notebook's live state), and per harvested model its
class name, weights file, candidate constructor arguments, and the exact names of the output
files the grader will read. For each model this script rebuilds the class, loads the tensors
with ``load_state_dict(strict=True)``, runs torchinfo, and writes float32 logits for the
evaluation images it is given, under each input transform; then logits of a freshly initialised
instance of the same class (no trained weights), which the grader uses to tell a model from a
lookup of answers. It never sees a label: accuracy is computed by the grader. Output is data
only (JSON + .npy). Self-contained: stdlib, numpy, torch, safetensors, torchinfo.
"""

import json
import os
import struct
import sys
import time
import traceback


def read_idx_images(path):
    import numpy as np

    with open(path, "rb") as handle:
        data = handle.read()
    magic, n, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != 2051:
        raise ValueError(f"{path}: not an IDX3 images file")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, 1, rows, cols)


# Imported lazily in the clean room: plotting, data and progress libraries a model's forward never needs at
# definition time. The name is bound to a stand-in that imports the real thing on first use (a call, an
# attribute, a base class, isinstance), so code that does use one still works; the import cost is paid
# only then. torch itself is imported for real.
LAZY_TOP_LEVEL = frozenset({
    "matplotlib", "seaborn", "pandas", "sklearn", "scipy", "tqdm", "IPython", "ipywidgets", "torchsummary",
    "PIL", "cv2", "plotly", "google", "torchvision", "mlxtend", "tensorboard", "wandb", "skimage", "keras",
})


class Lazy:
    """A module or attribute not imported yet: ``module`` (dotted) then ``path`` (attributes)."""

    __slots__ = ("_grader_module", "_grader_path", "_grader_value")

    def __init__(self, module, path=()):
        object.__setattr__(self, "_grader_module", module)
        object.__setattr__(self, "_grader_path", tuple(path))

    def _grader_resolve(self):
        try:
            return object.__getattribute__(self, "_grader_value")
        except AttributeError:
            pass
        import importlib

        value = importlib.import_module(self._grader_module)
        for name in self._grader_path:
            try:
                value = getattr(value, name)
            except AttributeError:  # a submodule not imported by its package
                value = importlib.import_module(f"{value.__name__}.{name}")
        object.__setattr__(self, "_grader_value", value)
        return value

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            return getattr(self._grader_resolve(), name)
        return Lazy(self._grader_module, (*self._grader_path, name))

    def __call__(self, *args, **kwargs):
        return self._grader_resolve()(*args, **kwargs)

    def __mro_entries__(self, bases):  # class Net(SomeLazyBase): the real class
        return (self._grader_resolve(),)

    def __instancecheck__(self, instance):
        return isinstance(instance, self._grader_resolve())

    def __subclasscheck__(self, subclass):
        return issubclass(subclass, self._grader_resolve())

    def __iter__(self):
        return iter(self._grader_resolve())

    def __getitem__(self, key):
        return self._grader_resolve()[key]

    def __repr__(self):
        return f"<lazy {'.'.join((self._grader_module, *self._grader_path))}>"


def lazy_import(name, globals=None, locals=None, fromlist=(), level=0):
    """``__import__`` for student definitions: stand-ins for LAZY_TOP_LEVEL modules, the real thing otherwise."""
    import builtins

    if level or name.split(".")[0] not in LAZY_TOP_LEVEL:
        return builtins.__import__(name, globals, locals, fromlist, level)
    if fromlist:  # from a.b import c: the statement takes attributes of what this returns
        return Lazy(name)
    return _LazyPackage(name.split(".")[0], name)  # import a.b.c binds a; a.b.c is imported on first use


class _LazyPackage(Lazy):
    """``import a.b.c``: the name ``a``, whose attributes are looked up after importing ``a.b.c``."""

    __slots__ = ("_grader_full",)

    def __init__(self, top, full):
        super().__init__(top)
        object.__setattr__(self, "_grader_full", full)

    def _grader_resolve(self):
        import importlib

        importlib.import_module(self._grader_full)
        return super()._grader_resolve()


def definitions_builtins():
    import builtins

    names = dict(vars(builtins))
    names["__import__"] = lazy_import
    return names


def run_definitions(statements, namespace):
    """Execute each kept statement on its own; remember every version of every class."""
    versions, problems = {}, []
    for statement in statements:
        try:
            exec(compile(statement["code"], statement["origin"], "exec"), namespace)
        except BaseException as error:  # an import of google.colab, a missing package, ...
            problems.append(f"{statement['origin']}: {type(error).__name__}: {error}"[:400])
            continue
        for name in statement.get("defines", []):
            if isinstance(namespace.get(name), type):
                versions.setdefault(name, []).append(namespace[name])
    return versions, problems


def candidate_classes(name, versions, namespace):
    found = list(reversed(versions.get(name, [])))
    current = namespace.get(name)
    if isinstance(current, type) and current not in found:
        found.append(current)
    return found


def instantiate(cls, constructor_args, namespace):
    yield "()", lambda: cls()
    for args in constructor_args:
        yield f"({args})", lambda args=args: eval(f"__grader_cls({args})", {**namespace, "__grader_cls": cls})


def rebuild(model_job, versions, namespace, torch):
    """(model, how, make, attempts): the first class version whose state_dict matches the saved tensors."""
    from safetensors.torch import load_file

    state = load_file(model_job["weights"])
    wanted = {key: tuple(tensor.shape) for key, tensor in state.items()}
    attempts = []
    classes = candidate_classes(model_job["class_name"], versions, namespace)
    for number, cls in enumerate(classes):
        for shown, make in instantiate(cls, model_job["constructor_args"], namespace):
            try:
                torch.manual_seed(0)
                model = make()
                have = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
            except BaseException as error:
                attempts.append(f"definition #{number + 1}{shown}: {type(error).__name__}: {error}"[:300])
                continue
            if have != wanted:
                missing = sorted(set(wanted) - set(have))[:5]
                extra = sorted(set(have) - set(wanted))[:5]
                shapes = sorted(k for k in set(have) & set(wanted) if have[k] != wanted[k])[:5]
                attempts.append(
                    f"definition #{number + 1}{shown}: state_dict differs (missing {missing}, unexpected "
                    f"{extra}, other shapes {shapes})"
                )
                continue
            model.load_state_dict(state, strict=True)
            how = f"{cls.__name__}{shown}, definition {len(classes) - number} of {len(classes)} in the code"
            return model, how, make, attempts
    if not attempts:
        attempts.append(f"no class named {model_job['class_name']} could be rebuilt from the submitted code")
    return None, None, None, attempts


def layer_summary(model, torch):
    from torchinfo import summary

    errors = []
    for shape in ((1, 1, 28, 28), (1, 784)):
        try:
            torch.manual_seed(0)
            result = summary(model, input_size=shape, verbose=0, device="cpu")
        except BaseException as error:
            errors.append(f"input {shape}: {type(error).__name__}: {error}"[:300])
            continue
        rows = [
            {
                "depth": layer.depth,
                "type": layer.class_name,
                "name": layer.var_name,
                "output_shape": list(layer.output_size) if layer.output_size else [],
                "params": int(layer.trainable_params),
                "leaf": bool(layer.is_leaf_layer),
            }
            for layer in result.summary_list
        ]
        return {"input_shape": list(shape), "rows": rows, "error": None}
    return {"input_shape": None, "rows": [], "error": "; ".join(errors)}


def normalisation_buffers(model, torch):
    """State-dict keys that are statistics of torch's own normalisation layers (BatchNorm, InstanceNorm)."""
    found = []
    norm_types = (torch.nn.modules.batchnorm._NormBase,)
    for prefix, module in model.named_modules():
        if type(module).__module__.startswith("torch.nn.") and isinstance(module, norm_types):
            for name, _ in module.named_buffers(recurse=False):
                found.append(f"{prefix}.{name}" if prefix else name)
    return found


def logits_for(model, images, transform, seed, torch):
    import numpy as np

    x_all = torch.from_numpy(images.astype("float32") / 255.0)
    if transform is not None:
        mean, std = transform
        x_all = (x_all - mean[0]) / std[0]
    torch.manual_seed(seed)  # dropout left on in eval() must not make the measurement random
    chunks = []
    with torch.no_grad():
        for start in range(0, x_all.shape[0], 500):
            out = model(x_all[start : start + 500])
            chunks.append(out.detach().to("cpu", torch.float32).reshape(out.shape[0], -1).numpy())
    return np.concatenate(chunks)


def save(out_dir, name, array):
    import numpy as np

    np.save(os.path.join(out_dir, name), array, allow_pickle=False)


def measure(model_job, namespace, versions, images, job, torch, record):
    model, how, make, attempts = rebuild(model_job, versions, namespace, torch)
    record["attempts"] = attempts
    if model is None:
        record["error"] = "could not rebuild the model: " + "; ".join(attempts)[:1500]
        return
    model.eval()
    record["rebuilt_from"] = how
    record["parameters"] = [
        {"name": name, "shape": list(p.shape), "trainable": bool(p.requires_grad)}
        for name, p in model.named_parameters()
    ]
    record["normalisation_buffers"] = normalisation_buffers(model, torch)
    record["summary"] = layer_summary(model, torch)
    transforms = model_job["transforms"]
    for t_index, names in model_job["outputs"].items():
        for split, name in names.items():
            save(job["out_dir"], name, logits_for(model, images[split], transforms[int(t_index)], job["seed"], torch))
    torch.manual_seed(job["seed"] + 1)
    fresh = make()  # the same class, freshly initialised: what the forward does without trained weights
    fresh.eval()
    for t_index, name in model_job["untrained_outputs"].items():
        save(job["out_dir"], name, logits_for(fresh, images["holdout"], transforms[int(t_index)], job["seed"], torch))
    record["ok"] = True


def wait_for_job(start):
    """The models to measure: a file the grader writes (atomically) once the student's run is over."""
    path, deadline = start["job"], time.monotonic() + float(start["wait_s"])
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"[cleanroom] no job after {start['wait_s']} s")
        time.sleep(0.05)
    with open(path) as handle:
        return {**start, **json.load(handle)}


def main():
    with open(sys.argv[1]) as handle:
        start = json.load(handle)
    import torch  # warm: imported while the student's notebooks still run

    torch.set_num_threads(1)
    images = {split: read_idx_images(path) for split, path in start["eval"].items()}
    import torchinfo  # noqa: F401  (layer_summary)
    from safetensors.torch import load_file  # noqa: F401  (rebuild)

    job = wait_for_job(start)
    results = {"programs": {}, "models": []}
    namespaces = {}
    for key, statements in job["programs"].items():
        namespace = {"__name__": "__cleanroom__", "__builtins__": definitions_builtins()}
        sys.modules.pop("__main__", None)
        versions, problems = run_definitions(statements, namespace)
        namespaces[key] = (namespace, versions)
        results["programs"][key] = {"problems": problems}
    results_path = os.path.join(job["out_dir"], "results.json")
    for model_job in job["models"]:
        started = time.time()
        record = {"id": model_job["id"], "ok": False}
        results["models"].append(record)
        try:
            namespace, versions = namespaces[model_job["program"]]
            measure(model_job, namespace, versions, images, job, torch, record)
        except BaseException:
            record["ok"] = False
            record["error"] = traceback.format_exc(limit=8)[-2000:]
        finally:
            record["duration_s"] = round(time.time() - started, 3)
            with open(results_path, "w") as handle:
                json.dump(results, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
