"""Runs INSIDE the sandbox: import a student's .py module and train its models the handout's way.

Usage: python module_runner.py JOB.json

The job names the module file, the models to train (class name, expected parameter count for
the fallback, hyperparameters) and the output directory. The module's own ``train_one_epoch`` /
``test_one_epoch`` / ``make_optimizer`` / ``transform`` are used where present. Results are
data only: the trained tensors (via harvest.py) and a JSON status file. Self-contained: stdlib,
torch, torchvision, safetensors.
"""

import importlib.util
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


def log(message):
    print(f"[grader] {message}", flush=True)


def install_runtime_module(name, what):
    """Load ``<name>.py`` (beside this file) as ``_grader_<name>`` and call its ``install()``, before any import.

    fastdata.py: the fast MNIST data path (harvest.py reads its report from ``_grader_fastdata``);
    gpucap.py: this process's GPU memory cap, applied when CUDA initialises.
    """
    spec = importlib.util.spec_from_file_location(f"_grader_{name}", os.path.join(HERE, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"_grader_{name}"] = module
    try:
        spec.loader.exec_module(module)
        module.install()
    except Exception:
        sys.modules.pop(f"_grader_{name}", None)
        log(f"{what} could not be installed: {traceback.format_exc(limit=3)}")


def load_module(path):
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    spec = importlib.util.spec_from_file_location("__student__", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["__student__"] = module
    spec.loader.exec_module(module)
    return module


def student_classes(module, torch):
    return {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, torch.nn.Module) and value.__module__ == "__student__"
    }


def find_class(classes, wanted, torch):
    """The rubric's class in the module: by name, then by exact parameter count."""
    if wanted["class_name"] in classes:
        return classes[wanted["class_name"]], "by name"
    for name, cls in classes.items():
        try:
            count = sum(p.numel() for p in cls().parameters() if p.requires_grad)
        except Exception:
            continue
        if count == wanted["trainable_params"]:
            return cls, f"by parameter count ({name})"
    return None, None


def has_convolutions(model, torch):
    return any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in model.modules())


def fits(model, wanted, torch):
    """The network's kind matches the rubric model's: convolutions for a CNN, only dense layers for an MLP."""
    has_linear = any(isinstance(m, torch.nn.Linear) for m in model.modules())
    return has_convolutions(model, torch) == bool(wanted.get("convolutional")) and (
        has_linear or has_convolutions(model, torch))


def find_by_structure(classes, wanted, torch):
    """A class of the kind the rubric model is (e.g. ``Net`` for the CNN), when none has its name or count."""
    for name, cls in classes.items():
        try:
            if fits(cls(), wanted, torch):
                kind = "convolution layers" if wanted.get("convolutional") else "only dense layers"
                return cls, f"by structure ({name}: the module's network with {kind})"
        except Exception:
            continue
    return None, None


def has_main_block(path):
    """Does the module end in ``if __name__ == "__main__":`` (its own training entry point)?"""
    import ast

    try:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
    except (SyntaxError, ValueError, RecursionError, MemoryError, OSError):
        return False
    for node in tree.body:
        test = getattr(node, "test", None)
        if isinstance(node, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) \
                and test.left.id == "__name__":
            return True
    return False


def run_main_block(path, torch):
    """Run the module as a script (its own ``main()``), keeping every network of its classes it trained.

    Returns {name: model}. A network counts as trained when it ran a forward pass in training mode
    with gradients on; strong references keep models that were local to ``main()``.
    """
    import runpy

    seen, kept = set(), []

    def hook(module, inputs, output):
        if module.training and torch.is_grad_enabled() and id(module) not in seen \
                and type(module).__module__ == "__main__":
            seen.add(id(module))
            kept.append(module)

    from torchvision import transforms

    normalized = []  # (mean, std) of every Normalize the run applied: the clean room measures with it too
    original_forward = transforms.Normalize.forward

    def recording_forward(self, tensor):
        pair = (self.mean, self.std)
        if all(pair is not other for other in normalized):
            normalized.append(pair)
        return original_forward(self, tensor)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    transforms.Normalize.forward = recording_forward
    argv = sys.argv
    sys.argv = [path]
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as stop:
        if stop.code not in (None, 0):
            raise
    finally:
        sys.argv = argv
        handle.remove()
        transforms.Normalize.forward = original_forward
    outermost = [m for m in kept if not any(m is not other and any(m is sub for sub in other.modules())
                                             for other in kept)]
    found = {f"main_{type(model).__name__}_{number}": model for number, model in enumerate(outermost)}
    for number, (mean, std) in enumerate(normalized[:5]):
        found[f"main_transform_{number}"] = transforms.Compose([transforms.Normalize(mean, std)])
    return found


def default_train_one_epoch(train_loader, model, device, optimizer, log_interval, epoch):
    import torch.nn.functional as F

    model.train()
    losses, counter, correct = [], [], 0
    for i, (img, label) in enumerate(train_loader):
        img, label = img.to(device), label.to(device)
        optimizer.zero_grad()
        output = model(img)
        loss = F.nll_loss(output, label)
        loss.backward()
        optimizer.step()
        correct += int((output.argmax(dim=1) == label).sum())
        if (i + 1) % log_interval == 0:
            losses.append(loss.item())
            counter.append(i * train_loader.batch_size + img.size(0) + epoch * len(train_loader.dataset))
    return losses, counter, correct


def default_test_one_epoch(test_loader, model, device):
    import torch
    import torch.nn.functional as F

    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for img, label in test_loader:
            img, label = img.to(device), label.to(device)
            output = model(img)
            loss += F.nll_loss(output, label, reduction="sum").item()
            correct += int((output.argmax(dim=1) == label).sum())
    return loss / len(test_loader.dataset), correct


def make_optimizer(module, model, spec, torch):
    if callable(getattr(module, "make_optimizer", None)):
        return module.make_optimizer(model, spec["lr"]), "the module's make_optimizer"
    if spec["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=spec["lr"]), f"Adam(lr={spec['lr']}) from the rubric"
    optimizer = torch.optim.SGD(model.parameters(), lr=spec["lr"], momentum=spec["momentum"])
    return optimizer, f"SGD(lr={spec['lr']}, momentum={spec['momentum']}) from the rubric"


def as_int(value):
    return int(value.item()) if hasattr(value, "item") else int(value)


def train(module, cls, spec, device, torch, datasets, transforms):
    transform = getattr(module, "transform", None)
    if not callable(transform):
        transform = transforms.ToTensor()
    train_data = datasets.MNIST("data", train=True, download=True, transform=transform)
    test_data = datasets.MNIST("data", train=False, download=True, transform=transform)
    torch.manual_seed(spec["seed"])
    train_loader = torch.utils.data.DataLoader(train_data, batch_size=spec["batch_size"], shuffle=True)
    test_loader = torch.utils.data.DataLoader(test_data, batch_size=spec["batch_size"], shuffle=False)
    torch.manual_seed(spec["seed"])
    model = cls().to(device)
    optimizer, optimizer_note = make_optimizer(module, model, spec, torch)
    log(f"optimizer: {optimizer_note}")
    train_one_epoch = getattr(module, "train_one_epoch", None) or default_train_one_epoch
    test_one_epoch = getattr(module, "test_one_epoch", None) or default_test_one_epoch
    curves = {"train_losses": [], "train_counter": [], "test_losses": []}  # for the report's loss plot
    for epoch in range(spec["epochs"]):
        losses, counter, correct_train = train_one_epoch(train_loader, model, device, optimizer,
                                                         spec["log_interval"], epoch)
        test_loss, correct_test = test_one_epoch(test_loader, model, device)
        try:
            curves["train_losses"] += list(losses)
            curves["train_counter"] += list(counter)
            curves["test_losses"].append(test_loss)
        except TypeError:
            pass
        print(
            f"Epoch {epoch + 1}: Train accuracy: {as_int(correct_train) / len(train_data):.4f} "
            f"Test accuracy: {as_int(correct_test) / len(test_data):.4f} test loss {float(test_loss):.4f}",
            flush=True,
        )
    return model, curves


def train_missing(job, module, missing, device, torch, datasets, transforms, record):
    """Rubric models without a class of their name or count: the module's own main() first, else by structure."""
    found = {}
    if has_main_block(job["module"]):
        started = time.time()
        log("training with the module's own main() (no class has the handout's name or parameter count)")
        try:
            found = run_main_block(job["module"], torch)
            names = ", ".join(sorted({type(m).__name__ for m in found.values()
                                      if isinstance(m, torch.nn.Module)})) or "none"
            record("train with the module's main()", True, started, found=f"trained: {names}")
        except BaseException:
            record("train with the module's main()", False, started, error=traceback.format_exc(limit=20))
    for wanted in missing:
        if any(isinstance(model, torch.nn.Module) and fits(model, wanted, torch) for model in found.values()):
            continue
        started = time.time()
        cls, how = find_by_structure(student_classes(module, torch), wanted, torch)
        if cls is None:  # another file of the submission may hold it
            log(f"no {wanted['class_name']} in this module (nor a class with "
                f"{wanted['trainable_params']:,} trainable parameters, nor one of its kind); not trained here")
            continue
        spec = wanted["training"]
        log(f"training {cls.__name__} ({how}) on {device} for {spec['epochs']} epochs")
        try:
            found[f"{wanted['key']}_model"], curves = train(module, cls, spec, device, torch, datasets, transforms)
            found.update({f"{wanted['key']}_{name}": values for name, values in curves.items()})
            record(f"train {wanted['class_name']}", True, started, class_name=cls.__name__, found=how)
        except BaseException:
            record(f"train {wanted['class_name']}", False, started, class_name=cls.__name__,
                   error=traceback.format_exc(limit=20))
    return found


def main():
    with open(sys.argv[1]) as handle:
        job = json.load(handle)
    status = {"steps": []}
    status_path = os.path.join(job["out_dir"], "runner.json")

    def record(step, ok, started, **extra):
        status["steps"].append({"step": step, "ok": ok, "duration_s": round(time.time() - started, 3), **extra})
        with open(status_path, "w") as handle:
            json.dump(status, handle)

    started = time.time()
    if os.environ.get("GRADER_DATA_PATH") == "fast":
        install_runtime_module("fastdata", "the fast data path")
    if os.environ.get("GRADER_GPU_MEMORY_FRACTION"):
        install_runtime_module("gpucap", "the GPU memory cap")
    try:
        import torch
        from torchvision import datasets, transforms

        torch.set_num_threads(job.get("threads", 1))
        module = load_module(job["module"])
    except BaseException:
        record("import", False, started, error=traceback.format_exc(limit=20))
        return 1
    record("import", True, started)
    device = "cuda" if job.get("use_cuda") and torch.cuda.is_available() else "cpu"
    handout_globals = {"DEVICE": device, "device": device}
    trained = {}
    missing = []
    for wanted in job["models"]:
        spec = wanted["training"]
        handout_globals.update(
            batch_size=spec["batch_size"], lr=spec["lr"], max_epochs=spec["epochs"], gamma=spec["gamma"],
            log_interval=spec["log_interval"], seed=spec["seed"],
        )
        for name, value in handout_globals.items():  # the handout's notebook globals the functions may use
            if not hasattr(module, name):
                setattr(module, name, value)
        started = time.time()
        cls, how = find_class(student_classes(module, torch), wanted, torch)
        step = f"train {wanted['class_name']}"
        if cls is None:
            missing.append(wanted)
            continue
        log(f"training {cls.__name__} ({how}) on {device} for {spec['epochs']} epochs")
        try:
            trained[f"{wanted['key']}_model"], curves = train(module, cls, spec, device, torch, datasets, transforms)
            trained.update({f"{wanted['key']}_{name}": values for name, values in curves.items()})
            record(step, True, started, class_name=cls.__name__, found=how)
        except BaseException:
            record(step, False, started, class_name=cls.__name__, error=traceback.format_exc(limit=20))
    if missing:
        trained.update(train_missing(job, module, missing, device, torch, datasets, transforms, record))
    started = time.time()
    sys.path.insert(0, HERE)
    from harvest import __grader_harvest

    try:
        __grader_harvest(job["out_dir"], namespace=trained)
        record("harvest", True, started)
    except BaseException:
        record("harvest", False, started, error=traceback.format_exc(limit=20))
    return 0


if __name__ == "__main__":
    sys.exit(main())
