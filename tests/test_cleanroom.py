"""The clean room's student definitions: heavy non-model libraries are imported only when used."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

CLEANROOM = ROOT / "grader" / "inside" / "cleanroom.py"

PRELUDE = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("cleanroom", {str(CLEANROOM)!r})
cleanroom = importlib.util.module_from_spec(spec); spec.loader.exec_module(cleanroom)
import torch
namespace = {{"__name__": "__cleanroom__", "__builtins__": cleanroom.definitions_builtins()}}
def define(*sources):
    statements = [{{"code": code, "origin": f"cell {{i}}", "defines": ["Net"]}} for i, code in enumerate(sources)]
    return cleanroom.run_definitions(statements, namespace)
"""


def run(body: str) -> str:
    done = subprocess.run([sys.executable, "-c", PRELUDE + body], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_plotting_and_data_imports_are_not_paid_for_when_the_model_does_not_use_them() -> None:
    out = run("""
versions, problems = define(
    "import torch.nn as nn\\nimport torch.nn.functional as F",
    "from torchvision import datasets, transforms\\nimport matplotlib.pyplot as plt\\nimport seaborn as sns",
    "from google.colab import drive",
    "class Net(nn.Module):\\n    def __init__(self):\\n        super().__init__()\\n"
    "        self.fc = nn.Linear(784, 10)\\n"
    "    def forward(self, x):\\n        return F.log_softmax(self.fc(x.view(-1, 784)), dim=1)")
net = namespace["Net"]()
print(tuple(net(torch.zeros(2, 1, 28, 28)).shape), problems)
print(sorted(m for m in ("torchvision", "matplotlib", "seaborn", "google.colab") if m in sys.modules))
""")
    assert out.splitlines() == ["(2, 10) []", "[]"]


def test_a_lazy_name_behaves_as_the_real_one_where_a_model_uses_it() -> None:
    out = run("""
versions, problems = define(
    "import torch.nn as nn",
    "from torchvision import transforms\\nimport torchvision.transforms as T\\nfrom torchvision.models import ResNet",
    "class Net(nn.Module):\\n    def __init__(self):\\n        super().__init__()\\n"
    "        self.norm = transforms.Normalize((0.5,), (0.5,))\\n        self.fc = nn.Linear(784, 10)\\n"
    "    def forward(self, x):\\n        return self.fc(self.norm(x).view(-1, 784))",
    "class Wide(ResNet):\\n    pass")
net = namespace["Net"]()
import torchvision
print(isinstance(net.norm, namespace["T"].Normalize), issubclass(namespace["Wide"], torchvision.models.ResNet))
print(tuple(net(torch.zeros(2, 1, 28, 28)).shape), problems)
""")
    assert out.splitlines() == ["True True", "(2, 10) []"]


def test_a_missing_library_fails_where_it_is_used_not_where_it_is_imported() -> None:
    out = run("""
versions, problems = define("import wandb\\nfrom plotly import express", "class Net:\\n    pass")
print(problems, "Net" in versions)
try:
    namespace["wandb"].init()
except ImportError as error:
    print("ImportError")
""")
    assert out.splitlines() == ["[] True", "ImportError"]
