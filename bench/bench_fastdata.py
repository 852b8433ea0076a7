"""Benchmark the fast MNIST data path (grader/inside/fastdata.py): stock vs fast, side by side in one run.

    .venv/bin/python bench/bench_fastdata.py [--profile embedded-60k] [--models mlp cnn]

For each model (the handout's MLP with Adam, lr 0.01; its CNN with SGD, lr 0.01, momentum 0.9) the
handout's code runs as a plain script in a fresh process with one torch thread, twice: on stock
torchvision, and with the fast path installed first (GRADER_DATA_PATH=fast, as the grader's kernel
does). Each process loads MNIST with ``Compose([ToTensor(), Normalize((0.1307,), (0.3081,))])``,
trains one epoch (batch 64, shuffled, seed 1234) and tests once (batch 1000). The runs go one after
the other (not concurrently), so they do not compete for the cores.

Printed: the process's wall time (imports included), the epoch's (train + test loops), the
stock/fast ratios, and whether the weights and every batch's loss are bit-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FASTDATA = ROOT / "grader" / "inside" / "fastdata.py"

SCRIPT = r"""
import hashlib, importlib.util, json, os, sys, time
started = time.perf_counter()
kind, root, fastdata_path = sys.argv[1:4]
if os.environ.get("GRADER_DATA_PATH") == "fast":
    spec = importlib.util.spec_from_file_location("_grader_fastdata", fastdata_path)
    fastdata = importlib.util.module_from_spec(spec)
    sys.modules["_grader_fastdata"] = fastdata
    spec.loader.exec_module(fastdata)
    fastdata.install()
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision import datasets, transforms
torch.set_num_threads(1)
torch.manual_seed(1234)

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(784, 128), nn.Linear(128, 10)
    def forward(self, x):
        return F.log_softmax(self.fc2(F.relu(self.fc1(x.flatten(1)))), dim=1)

class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d(p=0.5)
        self.fc = nn.Linear(320, 10)
    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        return F.log_softmax(self.fc(x.view(-1, 320)), dim=1)

transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
train_data = datasets.MNIST(root, train=True, download=True, transform=transform)
test_data = datasets.MNIST(root, train=False, download=True, transform=transform)
train_loader = torch.utils.data.DataLoader(train_data, batch_size=64, shuffle=True)
test_loader = torch.utils.data.DataLoader(test_data, batch_size=1000, shuffle=False)
model = MLP() if kind == "mlp" else CNN()
if kind == "mlp":
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
else:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
epoch_started = time.perf_counter()
losses = []
model.train()
for images, labels in train_loader:
    optimizer.zero_grad()
    loss = F.nll_loss(model(images), labels)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
train_s = time.perf_counter() - epoch_started
model.eval()
correct = 0
with torch.no_grad():
    for images, labels in test_loader:
        output = model(images)
        losses.append(F.nll_loss(output, labels, reduction="sum").item())
        correct += int((output.argmax(1) == labels).sum())
epoch_s = time.perf_counter() - epoch_started
digest = hashlib.sha256()
for name, tensor in model.state_dict().items():
    digest.update(name.encode() + tensor.numpy().tobytes())
digest.update(json.dumps(losses).encode())
record = sys.modules["_grader_fastdata"].report() if "_grader_fastdata" in sys.modules else {"mode": "stock"}
print(json.dumps({"train_s": train_s, "epoch_s": epoch_s, "script_s": time.perf_counter() - started,
                  "digest": digest.hexdigest(), "accuracy": correct / len(test_data), "batches": len(losses),
                  "data_path": record}))
"""


def run(kind: str, root: Path, mode: str) -> dict[str, object]:
    env = {**os.environ, "GRADER_DATA_PATH": mode, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", SCRIPT, kind, str(root), str(FASTDATA)], env=env,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{kind} {mode} failed:\n{done.stderr[-3000:]}")
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    result["process_s"] = wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="embedded-60k", help="data profile (default embedded-60k)")
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    options = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from grader.data import provision

    root = provision(options.profile).public_dir
    print(f"profile {options.profile}, data {root}, one torch thread, {os.cpu_count()} cores")
    print(f"{'':4} {'path':6} {'process s':>10} {'epoch s':>8} {'train s':>8}  accuracy  data path")
    for kind in options.models:
        results = {mode: run(kind, root, mode) for mode in ("stock", "fast")}
        for mode, r in results.items():
            print(f"{kind:4} {mode:6} {r['process_s']:10.2f} {r['epoch_s']:8.2f} {r['train_s']:8.2f}  "
                  f"{r['accuracy']:.4f}    {json.dumps(r['data_path'])}")
        stock, fast = results["stock"], results["fast"]
        same = stock["digest"] == fast["digest"]
        process = float(str(stock["process_s"])) / float(str(fast["process_s"]))
        epoch = float(str(stock["epoch_s"])) / float(str(fast["epoch_s"]))
        print(f"{kind:4} stock/fast: process {process:.2f}x, epoch {epoch:.2f}x; weights and {stock['batches']} "
              f"losses {'bit-identical' if same else 'DIFFER'}")
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
