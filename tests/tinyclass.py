"""A tiny class for the cluster tests: notebooks that train the handout's models for a few batches.

Graded with ``rubric/hw4.yaml`` on the ``embedded`` profile, each takes about 15 s on one core (a
kernel, 30 optimiser steps, the clean room). Deterministic: seeded, one thread, no DataLoader workers.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

SETUP = """import torch, torch.nn as nn, torch.nn.functional as F
from torchvision import datasets, transforms
torch.manual_seed(1234)
transform = transforms.Compose([transforms.ToTensor()])
train_data = datasets.MNIST('data', train=True, download=True, transform=transform)
test_data = datasets.MNIST('data', train=False, download=True, transform=transform)
train_loader = torch.utils.data.DataLoader(train_data, batch_size=64, shuffle=True)
test_loader = torch.utils.data.DataLoader(test_data, batch_size=500)"""

TRAIN = """opt = torch.optim.Adam(model.parameters(), lr=0.01)
for step, (x, y) in enumerate(train_loader):
    if step == 30:
        break
    opt.zero_grad()
    loss = F.nll_loss(model(x), y)
    loss.backward()
    opt.step()
correct = sum((model(x).argmax(1) == y).sum().item() for x, y in test_loader)
print(f"Test accuracy: {correct / len(test_data):.4f}")"""

MLP = """class MNISTClassifierMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)
    def forward(self, x):
        return F.log_softmax(self.fc2(F.relu(self.fc1(x.flatten(1)))), dim=1)
model = MNISTClassifierMLP()"""

CNN = """class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.fc = nn.Linear(320, 10)
    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        return F.log_softmax(self.fc(x.flatten(1)), dim=1)
model = CNN()"""

STUDENTS = {
    "ann": [SETUP, MLP, TRAIN],
    "cat": [SETUP, CNN, TRAIN, "raise ValueError('my plotting code is broken')",
            "print('the CNN has', sum(p.numel() for p in model.parameters()), 'parameters')"],
    "dev": [SETUP, MLP, TRAIN, "mlp = model", CNN, TRAIN],
}


def notebook(cells: list[str]) -> nbformat.NotebookNode:
    made = nbformat.v4.new_notebook()
    made.cells = [nbformat.v4.new_code_cell(source, id=f"cell-{n}") for n, source in enumerate(cells)]  # same bytes
    return made


def write_class(root: Path, students: dict[str, list[str]] | None = None) -> Path:
    """``root/<student>/hw4.ipynb`` for each student; returns ``root``."""
    for student, cells in (students or STUDENTS).items():
        (root / student).mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook(cells), root / student / "hw4.ipynb")
    return root
