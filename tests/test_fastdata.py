"""The fast MNIST data path (grader/inside/fastdata.py): the stock tensors, bit for bit, only faster.

With ``GRADER_DATA_PATH=fast`` the student's process serves ``torchvision.datasets.MNIST`` samples
with ToTensor / Normalize transforms from the dataset's ``data`` tensor, a batch at a time; every
other case keeps torchvision's own code. Each test runs the same code on stock torchvision and then
with the fast path installed in this process (``install()``/``uninstall()``), or in two
subprocesses, and compares every tensor bit for bit (``torch.equal`` on the raw bits, so even
-0.0 and 0.0 differ). About a minute on 2 cores.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import ROOT

from grader.data import DataSet

INSIDE = ROOT / "grader" / "inside"
SEED = 1234
HANDOUT_MEAN_STD = ((0.1307,), (0.3081,))


# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fastdata() -> Iterator[ModuleType]:
    """grader/inside/fastdata.py loaded as the sandbox loads it; torchvision is imported first (patched at install)."""
    import torchvision  # noqa: F401

    spec = importlib.util.spec_from_file_location("_grader_fastdata", INSIDE / "fastdata.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    module.uninstall()


@contextlib.contextmanager
def fast_path(fastdata: ModuleType) -> Iterator[ModuleType]:
    """The fast path installed in this process for the duration (as GRADER_DATA_PATH=fast does in the sandbox)."""
    previous = os.environ.get("GRADER_DATA_PATH")
    os.environ["GRADER_DATA_PATH"] = "fast"
    try:
        assert fastdata.install()
        assert fastdata.report()["mode"] == "fast"
        yield fastdata
    finally:
        fastdata.uninstall()
        if previous is None:
            del os.environ["GRADER_DATA_PATH"]
        else:
            os.environ["GRADER_DATA_PATH"] = previous


def stock_and_fast(fastdata: ModuleType, script: Callable[[], Any]) -> tuple[Any, Any, dict[str, Any]]:
    """``script()`` on stock torchvision, then with the fast path: both results, and the fast run's record."""
    from torchvision import datasets

    assert "__getitems__" not in vars(datasets.MNIST)  # really stock
    stock = script()
    with fast_path(fastdata):
        fast = script()
        record = fastdata.report()
    assert "__getitems__" not in vars(datasets.MNIST)
    return stock, fast, record


def same_bits(a: Any, b: Any) -> bool:
    """Tensors with the same dtype, shape and bits (floats compared as integers: -0.0 != 0.0, NaN == NaN)."""
    import torch

    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        return False
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        view = {torch.float32: torch.int32, torch.float64: torch.int64}[a.dtype]
        return torch.equal(a.contiguous().view(view), b.contiguous().view(view))
    return torch.equal(a, b)


def assert_same(stock: Any, fast: Any, where: str = "") -> None:
    """The same structure (lists, tuples, ints, tensors) with bit-identical tensors."""
    import torch

    assert type(stock) is type(fast), f"{where}: {type(stock).__name__} vs {type(fast).__name__}"
    if isinstance(stock, torch.Tensor):
        assert same_bits(stock, fast), f"{where}: tensors differ"
    elif isinstance(stock, (list, tuple)):
        assert len(stock) == len(fast), f"{where}: {len(stock)} vs {len(fast)} items"
        for index, (a, b) in enumerate(zip(stock, fast, strict=True)):
            assert_same(a, b, f"{where}[{index}]")
    else:
        assert stock == fast, f"{where}: {stock!r} vs {fast!r}"


def mnist(root: Path, train: bool = False, **kwargs: Any) -> Any:
    from torchvision import datasets

    return datasets.MNIST(str(root), train=train, download=True, **kwargs)


def epoch(dataset: Any, batch_size: int = 64, shuffle: bool = True, drop_last: bool = False, num_workers: int = 0,
          **kwargs: Any) -> list[Any]:
    """Every batch of one shuffled epoch, the sampler seeded as a student's ``torch.manual_seed`` would."""
    import torch

    generator = torch.Generator().manual_seed(SEED)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                                         num_workers=num_workers, generator=generator, **kwargs)
    return list(loader)


def transform(name: str, root: Path) -> Any:
    from torchvision import transforms

    if name == "ToTensor":
        return transforms.ToTensor()
    if name == "Compose(ToTensor)":
        return transforms.Compose([transforms.ToTensor()])
    if name == "Compose(ToTensor, Normalize)":  # the handout's
        return transforms.Compose([transforms.ToTensor(), transforms.Normalize(*HANDOUT_MEAN_STD)])
    if name == "Normalize(tensor mean/std)":  # a student's own statistics: 0-d tensors
        data = mnist(root, train=True).data.float()
        return transforms.Compose([transforms.ToTensor(), transforms.Normalize(data.mean() / 255, data.std() / 255)])
    if name == "Normalize((float64 mean,), (float64 std,))":  # the reference solution's, in float64
        data = mnist(root, train=True).data.double()
        return transforms.Compose([transforms.ToTensor(),
                                   transforms.Normalize((data.mean() / 255.,), (data.std() / 255.,))])
    raise AssertionError(name)


TRANSFORMS = ["ToTensor", "Compose(ToTensor)", "Compose(ToTensor, Normalize)", "Normalize(tensor mean/std)",
              "Normalize((float64 mean,), (float64 std,))"]


# --- the same batches, stock and fast ------------------------------------------------------------


# batch size, drop_last, how many shuffled digits (of the 2,000 test digits) the epoch draws
CONFIGS = [(1, False, 2000), (64, False, 2000), (64, True, 2000), (1000, False, 2000), (1000, True, 1500)]
WORKER_CONFIGS = [(1, False, 300), *CONFIGS[1:]]  # one digit a batch through worker processes: 300 are enough


@pytest.fixture(scope="module")
def stock_epochs() -> dict[Any, list[Any]]:
    return {}  # stock batches by (transform, config), shared by the in-process and the worker runs


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("name", TRANSFORMS)
def test_every_batch_of_a_shuffled_loader_is_bit_identical(fastdata: ModuleType, embedded: DataSet, name: str,
                                                           num_workers: int, stock_epochs: dict[Any, Any]) -> None:
    """Batch sizes 1, 64 and 1000, with and without drop_last, in the process and in 2 forked workers."""
    import torch

    root = embedded.public_dir
    dataset = mnist(root, transform=transform(name, root))

    def counted(items: list[Any]) -> tuple[Any, int]:  # the batch, and whether its process served MNIST fast
        return torch.utils.data.default_collate(items), fastdata.report()["fast_datasets"]

    def run(size: int, drop: bool, draws: int, workers: int, fast: bool = False) -> list[Any]:
        generator = torch.Generator().manual_seed(SEED)
        sampler = torch.utils.data.RandomSampler(dataset, num_samples=draws, generator=generator)
        loader = torch.utils.data.DataLoader(dataset, batch_size=size, sampler=sampler, drop_last=drop,
                                             num_workers=workers, collate_fn=counted if fast else None)
        if not fast:
            return list(loader)
        batches, counts = zip(*loader, strict=True)
        assert set(counts) == {1}, "a batch was not served from tensors"
        return list(batches)

    configs = CONFIGS if num_workers == 0 else WORKER_CONFIGS
    for config in configs:
        if (name, config) not in stock_epochs:
            stock_epochs[name, config] = run(*config, workers=0)  # stock torchvision, in this process
    with fast_path(fastdata):
        for size, drop, draws in configs:
            fast = run(size, drop, draws, num_workers, fast=True)
            assert len(fast) == (draws // size if drop else -(-draws // size))
            assert_same(stock_epochs[name, (size, drop, draws)], fast,
                        f"{name} batch_size={size} drop_last={drop} workers={num_workers}")
        record = fastdata.report()
    if num_workers == 0:  # workers keep their own counts
        assert record["fast_datasets"] == 1 and record["stock_datasets"] == 0, record


def test_the_handout_training_loader_is_bit_identical(fastdata: ModuleType, embedded: DataSet) -> None:
    """The 8,000 training digits through the handout's transform, shuffled with the global seed, two epochs."""
    import torch

    def script() -> list[Any]:
        dataset = mnist(embedded.public_dir, train=True, transform=transform("Compose(ToTensor, Normalize)", None))
        torch.manual_seed(SEED)
        loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True)
        return [list(loader), list(loader)]

    stock, fast, record = stock_and_fast(fastdata, script)
    assert_same(stock, fast)
    assert record["fast_datasets"] == 1


def test_samples_and_batches_have_the_stock_types(fastdata: ModuleType, embedded: DataSet) -> None:
    """``ds[i]`` and ``__getitems__`` give (float tensor 1x28x28, int) pairs; a collated batch is stock's."""
    import torch

    dataset = mnist(embedded.public_dir, transform=transform("Compose(ToTensor, Normalize)", None))
    indices = [5, 0, 1999, -1, 7, 7]

    def script() -> Any:
        items = [dataset[i] for i in indices]
        return items, torch.utils.data.default_collate(items)

    stock, fast, _ = stock_and_fast(fastdata, script)
    assert_same(stock, fast)
    with fast_path(fastdata):
        batch = dataset.__getitems__(indices)
        assert_same(stock[0], batch)
        assert all(type(label) is int for _, label in batch)
        assert all(image.shape == (1, 28, 28) and image.is_contiguous() for image, _ in batch)
        assert dataset.__getitems__([]) == []


def fetch(dataset: Any, indices: list[Any]) -> list[Any]:
    """What the DataLoader's fetcher does with a batch of indices."""
    if hasattr(dataset, "__getitems__"):
        return dataset.__getitems__(indices)  # type: ignore[no-any-return]
    return [dataset[i] for i in indices]


def test_any_index_type_is_served_as_stock_serves_it(fastdata: ModuleType, embedded: DataSet) -> None:
    """numpy integers, 0-d tensors, negative indices: the same samples; out of range: the same error."""
    import numpy as np
    import torch

    dataset = mnist(embedded.public_dir, transform=transform("ToTensor", None))

    def script() -> list[Any]:
        out: list[Any] = [dataset[np.int64(3)], dataset[torch.tensor(4)], dataset[-2],
                          fetch(dataset, [np.int64(3), 4, -1]), fetch(dataset, [torch.tensor(5), 6])]
        for bad in ([2000], [0, -2001]):
            with pytest.raises(IndexError) as error:
                fetch(dataset, bad)
            out.append(str(error.value))
        return out

    stock, fast, _ = stock_and_fast(fastdata, script)
    assert_same(stock, fast)


def test_subsets_and_random_split_are_bit_identical(fastdata: ModuleType, embedded: DataSet) -> None:
    """``random_split`` / ``Subset`` call MNIST's ``__getitems__`` with the mapped indices."""
    import torch

    dataset = mnist(embedded.public_dir, train=True, transform=transform("Compose(ToTensor, Normalize)", None))

    def script() -> list[Any]:
        train, valid = torch.utils.data.random_split(dataset, [7000, 1000], generator=torch.Generator().manual_seed(0))
        return [epoch(train, 128), epoch(valid, 100, shuffle=False)]

    stock, fast, record = stock_and_fast(fastdata, script)
    assert_same(stock, fast)
    assert record["fast_datasets"] == 1


def test_a_float64_default_dtype_is_bit_identical(fastdata: ModuleType, embedded: DataSet) -> None:
    """ToTensor converts to the default dtype at call time: float64 samples, normalised in float64."""
    import torch

    dataset = mnist(embedded.public_dir, transform=transform("Compose(ToTensor, Normalize)", None))

    def script() -> list[Any]:
        torch.set_default_dtype(torch.float64)
        try:
            return [epoch(dataset, 100), dataset[3]]
        finally:
            torch.set_default_dtype(torch.float32)

    stock, fast, record = stock_and_fast(fastdata, script)
    assert stock[1][0].dtype == torch.float64
    assert_same(stock, fast)
    assert record["fast_datasets"] == 1


def test_data_and_targets_changed_by_the_student_are_served_as_stock_serves_them(fastdata: ModuleType,
                                                                                 embedded: DataSet) -> None:
    """``data``/``targets`` are read on every call, like stock: replaced, sliced or edited in place."""
    import torch

    def script() -> list[Any]:
        dataset = mnist(embedded.public_dir, train=True, transform=transform("Compose(ToTensor, Normalize)", None))
        first = epoch(dataset, 500)
        dataset.data, dataset.targets = dataset.data[:1000], dataset.targets[:1000]
        second = epoch(dataset, 64)
        dataset.targets[dataset.targets == 3] = 0  # in place
        dataset.data[:, :4] = 255
        third = epoch(dataset, 64)
        dataset.targets = dataset.targets.to(torch.int32)  # not MNIST's int64: stock
        return [first, second, third, epoch(dataset, 64)]

    stock, fast, record = stock_and_fast(fastdata, script)
    assert_same(stock, fast)
    assert record["fast_datasets"] == 1
    assert any("targets" in reason for reason in record["fallbacks"]), record


# --- everything else keeps the stock code --------------------------------------------------------


def fallback(fastdata: ModuleType, script: Callable[[], Any], reason: str, seed: bool = False) -> dict[str, Any]:
    """``script`` gives the stock results with the fast path installed, and the record says why it fell back."""
    import torch

    def run() -> Any:
        if seed:  # random augmentations: the same draws from the global generator
            torch.manual_seed(SEED)
        return script()

    stock, fast, record = stock_and_fast(fastdata, run)
    assert_same(stock, fast)
    assert record["fast_datasets"] == 0 and record["stock_datasets"] >= 1, record
    assert any(reason in text for text in record["fallbacks"]), record
    return record


@pytest.mark.parametrize("augmentation", ["RandomRotation", "RandomAffine"])
def test_augmentations_keep_the_stock_path_and_its_random_draws(fastdata: ModuleType, embedded: DataSet,
                                                                augmentation: str) -> None:
    from torchvision import transforms

    steps = {"RandomRotation": transforms.RandomRotation(10),
             "RandomAffine": transforms.RandomAffine(0, translate=(0.1, 0.1))}
    dataset = mnist(embedded.public_dir, transform=transforms.Compose(
        [steps[augmentation], transforms.ToTensor(), transforms.Normalize(*HANDOUT_MEAN_STD)]))
    fallback(fastdata, lambda: epoch(dataset, 200), f"{augmentation} in the transform", seed=True)


def test_a_students_own_transform_keeps_the_stock_path(fastdata: ModuleType, embedded: DataSet) -> None:
    from torchvision import transforms

    dataset = mnist(embedded.public_dir, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Lambda(lambda x: x * 2 - 1)]))
    fallback(fastdata, lambda: epoch(dataset, 100), "Lambda in the transform")
    dataset.transform = lambda image: transforms.functional.to_tensor(image).flatten()
    fallback(fastdata, lambda: epoch(dataset, 100), "the transform function")


def test_no_transform_keeps_the_stock_pil_images(fastdata: ModuleType, embedded: DataSet) -> None:
    from PIL import Image

    dataset = mnist(embedded.public_dir)

    def script() -> list[Any]:
        images = [dataset[i] for i in range(0, 2000, 7)] + fetch(dataset, [3, 4])
        assert all(isinstance(image, Image.Image) for image, _ in images)
        return [(image.mode, image.size, image.tobytes(), label) for image, label in images]

    fallback(fastdata, script, "no transform")


def test_a_target_transform_keeps_the_stock_path(fastdata: ModuleType, embedded: DataSet) -> None:
    dataset = mnist(embedded.public_dir, transform=transform("ToTensor", None), target_transform=lambda y: y % 2)
    fallback(fastdata, lambda: epoch(dataset, 64), "target_transform")


def test_a_subclass_of_mnist_keeps_the_stock_path(fastdata: ModuleType, embedded: DataSet) -> None:
    """A student's subclass (and FashionMNIST & co., subclasses too), with or without its own __getitem__."""
    from torchvision import datasets

    class Plain(datasets.MNIST):
        raw_folder = str(embedded.public_dir / "MNIST" / "raw")  # stock looks in <root>/<class name>/raw

    class Flipped(Plain):
        def __getitem__(self, index: int) -> Any:
            image, label = super().__getitem__(index)
            return image.flip(-1), label

    for cls in (Plain, Flipped):
        dataset = cls(str(embedded.public_dir), train=False, transform=transform("ToTensor", None))
        fallback(fastdata, lambda dataset=dataset: epoch(dataset, 64), "(a subclass of MNIST)")


def test_a_student_patching_mnist_getitem_keeps_their_code(fastdata: ModuleType, embedded: DataSet) -> None:
    """``MNIST.__getitem__ = ...`` after import: the DataLoader still calls the student's function."""
    from torchvision import datasets

    dataset = mnist(embedded.public_dir, transform=transform("Compose(ToTensor, Normalize)", None))
    calls: list[int] = []

    def script() -> list[Any]:
        original = datasets.MNIST.__getitem__  # stock, or the fast path's while installed

        def patched(self: Any, index: int) -> Any:
            calls.append(index)
            image, label = original(self, index)
            return image.clamp(min=0), label + 100

        datasets.MNIST.__getitem__ = patched
        try:
            return epoch(dataset, 64)
        finally:
            datasets.MNIST.__getitem__ = original

    stock, fast, _ = stock_and_fast(fastdata, script)
    assert_same(stock, fast)
    assert len(calls) == 2 * 2000
    assert int(fast[0][1].min()) >= 100


def test_patched_torchvision_transforms_keep_the_stock_path(fastdata: ModuleType, embedded: DataSet) -> None:
    from torchvision import transforms

    dataset = mnist(embedded.public_dir, transform=transform("Compose(ToTensor, Normalize)", None))
    original = transforms.functional.normalize

    def script() -> list[Any]:
        transforms.functional.normalize = lambda tensor, mean, std, inplace=False: original(tensor, mean, std) * 2
        try:
            return epoch(dataset, 64)
        finally:
            transforms.functional.normalize = original

    fallback(fastdata, script, "transforms were patched")


def test_a_transform_changed_after_the_first_epoch_is_followed(fastdata: ModuleType, embedded: DataSet) -> None:
    """Decided on every call: epoch 1 from tensors, epoch 2 through the student's new augmentation."""
    import torch
    from torchvision import transforms

    def script() -> list[Any]:
        dataset = mnist(embedded.public_dir, transform=transform("Compose(ToTensor, Normalize)", None))
        first = epoch(dataset, 64)
        dataset.transform = transforms.Compose([transforms.RandomAffine(5), transforms.ToTensor()])
        torch.manual_seed(SEED)
        second = epoch(dataset, 64)
        dataset.transform = transforms.ToTensor()
        third = epoch(dataset, 64)
        return [first, second, third]

    stock, fast, record = stock_and_fast(fastdata, script)
    assert_same(stock, fast)
    assert record["fast_datasets"] == 1 and record["stock_datasets"] == 1, record
    assert any("RandomAffine" in text for text in record["fallbacks"]), record


def test_spawned_workers_serve_the_stock_tensors(fastdata: ModuleType, embedded: DataSet) -> None:
    """A spawned worker is a fresh interpreter (no startup file): stock there, the same batches here."""
    dataset = mnist(embedded.public_dir, transform=transform("Compose(ToTensor, Normalize)", None))
    stock = epoch(dataset, 250)  # in this process, stock torchvision
    with fast_path(fastdata):
        fast = epoch(dataset, 250, num_workers=2, multiprocessing_context="spawn")
    assert_same(stock, fast)


# --- installation: lazy, opt-in, reported --------------------------------------------------------


LAZY = """
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("_grader_fastdata", sys.argv[1])
fastdata = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fastdata)
out = {}
for value in (None, "stock"):
    if value is not None:
        os.environ["GRADER_DATA_PATH"] = value
    out[f"install {value}"] = fastdata.install()
out["hooks after stock"] = [type(h).__name__ for h in sys.meta_path if "Torchvision" in type(h).__name__]
os.environ["GRADER_DATA_PATH"] = "fast"
out["install fast"] = fastdata.install()
import torch
out["torchvision imported by torch"] = "torchvision" in sys.modules
import torchvision.datasets
loader = type(torchvision.__spec__.loader).__name__
out["torchvision's loader"] = [loader, type(torchvision.__loader__).__name__]
out["patched"] = "__getitems__" in vars(torchvision.datasets.MNIST)
out["hooks left"] = [type(h).__name__ for h in sys.meta_path if "Torchvision" in type(h).__name__]
out["getitem"] = torchvision.datasets.MNIST.__getitem__.__qualname__
out["report"] = fastdata.report()
print(json.dumps(out))
"""


def test_install_is_opt_in_and_patches_only_when_torchvision_is_imported() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRADER_DATA_PATH"}
    done = subprocess.run([sys.executable, "-c", LAZY, str(INSIDE / "fastdata.py")], env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["install None"] is False and out["install stock"] is False and out["hooks after stock"] == []
    assert out["install fast"] is True
    assert out["torchvision imported by torch"] is False  # `import torch` alone stays as it was
    assert out["torchvision's loader"] == ["SourceFileLoader", "SourceFileLoader"]
    assert out["patched"] is True and out["hooks left"] == []
    assert out["getitem"] == "MNIST.__getitem__"
    assert out["report"] == {"mode": "fast", "requested": "fast", "fast_datasets": 0, "stock_datasets": 0,
                             "fallbacks": []}


# --- whole runs: the same weights and losses -----------------------------------------------------


STUDENT_MODULE = '''
import torch.nn as nn
import torch.nn.functional as F
from torchvision import transforms

transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])


class MNISTClassifierMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        return F.log_softmax(self.fc2(F.relu(self.fc1(x.view(-1, 784)))), dim=1)
'''


def run_module(tmp: Path, public: Path, mode: str) -> subprocess.Popen[str]:
    """module_runner.py trains the module's MLP for one epoch (seed 1234, Adam lr 0.01, batch 64, a loss per batch)."""
    tmp.mkdir()
    (tmp / "student.py").write_text(STUDENT_MODULE)
    (tmp / "data").symlink_to(public)
    (tmp / "out").mkdir()
    job = {"module": str(tmp / "student.py"), "out_dir": str(tmp / "out"), "threads": 1, "models": [{
        "key": "mlp", "class_name": "MNISTClassifierMLP", "trainable_params": 101770,
        "training": {"batch_size": 64, "lr": 0.01, "epochs": 1, "gamma": 0.7, "log_interval": 1, "seed": SEED,
                     "optimizer": "adam", "momentum": 0.0}}]}
    (tmp / "job.json").write_text(json.dumps(job))
    env = {**os.environ, "GRADER_DATA_PATH": mode, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(INSIDE / "module_runner.py"), str(tmp / "job.json")], cwd=tmp,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def harvested(out: Path) -> tuple[dict[str, Any], Any]:
    from safetensors.torch import load_file

    from grader.channel import Harvest, read_json

    harvest = read_json(out / "harvest.json", Harvest, "harvest.json")
    assert len(harvest.models) == 1, harvest
    return load_file(str(out / harvest.models[0].weights)), harvest  # type: ignore[operator]


def test_a_training_run_gives_the_same_weights_and_losses_stock_and_fast(tmp_path: Path, embedded: DataSet) -> None:
    """Two module_runner.py processes side by side, GRADER_DATA_PATH=stock and =fast: bit-identical results."""
    runs = {mode: run_module(tmp_path / mode, embedded.public_dir, mode) for mode in ("stock", "fast")}
    for mode, process in runs.items():
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output
        status = json.loads((tmp_path / mode / "out" / "runner.json").read_text())
        assert all(step["ok"] for step in status["steps"]), status
    (stock_weights, stock), (fast_weights, fast) = (harvested(tmp_path / mode / "out") for mode in ("stock", "fast"))
    assert sorted(stock_weights) == sorted(fast_weights) == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]
    for name in stock_weights:
        assert same_bits(stock_weights[name], fast_weights[name]), name
    curves = {curve.name: curve.values for curve in stock.curves}
    assert len(curves["mlp_train_losses"]) == 125 and len(curves["mlp_test_losses"]) == 1
    assert curves == {curve.name: curve.values for curve in fast.curves}  # floats: equal means the same bits
    assert stock.data_path is not None and fast.data_path is not None
    assert stock.data_path.model_dump() == {"mode": "stock", "requested": "stock", "fast_datasets": 0,
                                            "stock_datasets": 0, "fallbacks": [], "error": None}
    assert fast.data_path.model_dump() == {"mode": "fast", "requested": "fast", "fast_datasets": 2,
                                           "stock_datasets": 0, "fallbacks": [], "error": None}


NOTEBOOK_CELLS = [
    """import torch, torch.nn as nn, torch.nn.functional as F, torch.optim as optim
from torchvision import datasets, transforms
torch.set_num_threads(1)
torch.manual_seed(1234)""",
    """transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
train_data = datasets.MNIST('data', train=True, download=True, transform=transform)
test_data = datasets.MNIST('data', train=False, download=True, transform=transforms.ToTensor())
train_loader = torch.utils.data.DataLoader(train_data, batch_size=64, shuffle=True)
test_loader = torch.utils.data.DataLoader(test_data, batch_size=1000, shuffle=False)""",
    """class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(784, 64), nn.Linear(64, 10)
    def forward(self, x):
        return F.log_softmax(self.fc2(F.relu(self.fc1(x.flatten(1)))), dim=1)
model = Net()
optimizer = optim.Adam(model.parameters(), lr=0.01)
train_losses = []
for images, labels in train_loader:
    optimizer.zero_grad()
    loss = F.nll_loss(model(images), labels)
    loss.backward()
    optimizer.step()
    train_losses.append(loss.item())
test_losses = [sum(F.nll_loss(model(x), y, reduction='sum').item() for x, y in test_loader)]""",
]


def run_notebook(work: Path, public: Path, mode: str) -> None:
    """The notebook in an IPython kernel started as the grader starts it: startup.py, then the harvest cell."""
    import nbformat
    from nbclient import NotebookClient

    startup = work / ".grader" / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-grader.py").write_text((INSIDE / "startup.py").read_text())
    (work / "data").symlink_to(public)
    harvest = (INSIDE / "harvest.py").read_text() + f"\n__grader_harvest({str(work / 'out')!r})\n"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in [*NOTEBOOK_CELLS, harvest]])
    env = {**os.environ, "GRADER_DATA_PATH": mode, "GRADER_RUNTIME_DIR": str(INSIDE), "OMP_NUM_THREADS": "1",
           "IPYTHONDIR": str(work / ".grader" / "ipython")}
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(work)}})
    client.execute(env=env)
    errors = [o for cell in nb.cells for o in cell.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors


@pytest.mark.slow
def test_a_notebook_graded_stock_and_fast_gives_the_same_weights_and_losses(tmp_path: Path,
                                                                            embedded: DataSet) -> None:
    """Through the kernel's startup file (GRADER_DATA_PATH, GRADER_RUNTIME_DIR) and harvest.py's record."""
    results = {}
    for mode in ("stock", "fast"):
        run_notebook(tmp_path / mode, embedded.public_dir, mode)
        results[mode] = harvested(tmp_path / mode / "out")
    (stock_weights, stock), (fast_weights, fast) = results["stock"], results["fast"]
    for name in stock_weights:
        assert same_bits(stock_weights[name], fast_weights[name]), name
    assert {c.name: c.values for c in stock.curves} == {c.name: c.values for c in fast.curves}
    assert len(next(c for c in fast.curves if c.name == "train_losses").values) == 125
    assert stock.data_path is not None and stock.data_path.mode == "stock"
    assert fast.data_path is not None and fast.data_path.mode == "fast" and fast.data_path.fast_datasets == 2
