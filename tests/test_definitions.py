"""The clean room gets definitions only: imports, constants, classes, functions; never work."""

from __future__ import annotations

from grader.definitions import extract

CELLS = [
    ("nb, cell 1", "import torch\nfrom torch import nn\nimport matplotlib.pyplot as plt\n"
                   "DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'\nseed = 1234\ntorch.manual_seed(seed)\n"),
    ("nb, cell 2", "train_data = datasets.MNIST('data', train=True, download=True)\nbatch_size = 64\n"),
    ("nb, cell 3", "input_size = 1 * 28 * 28\nhidden_size = 128\nclass MNISTClassifierMLP(nn.Module):\n"
                   "    def __init__(self, hidden=hidden_size):\n        super().__init__()\n"
                   "        self.fc1 = nn.Linear(input_size, hidden)\n\n"
                   "model = MNISTClassifierMLP(hidden_size).to(DEVICE)\nprint(model)\n"),
    ("nb, cell 4", "for epoch in range(10):\n    train()\n"),
    ("nb, cell 5", "def broken(:\n"),
    ("nb, cell 6", "try:\n    from google.colab import drive\nexcept ImportError:\n    pass\n"),
]


def test_keeps_definitions_and_constants_only() -> None:
    result = extract(CELLS)
    kept = [s.code.splitlines()[0] for s in result.statements]
    assert kept == [
        "import torch", "from torch import nn", "import matplotlib.pyplot as plt",
        "DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'", "seed = 1234", "batch_size = 64",
        "input_size = 1 * 28 * 28", "hidden_size = 128", "class MNISTClassifierMLP(nn.Module):", "try:",
    ]
    assert result.statements[8].defines == ("MNISTClassifierMLP",)
    assert result.statements[8].origin == "nb, cell 3, line 3"


def test_constructor_arguments_are_collected() -> None:
    assert extract(CELLS).constructor_args["MNISTClassifierMLP"] == ["hidden_size"]


def test_unparsable_cells_are_reported() -> None:
    assert extract(CELLS).unparsable == ["nb, cell 5: line 1: invalid syntax"]


def test_assignments_that_do_work_are_dropped() -> None:
    result = extract([("m.py", "import os\nx = os.system('rm -rf /')\nn = len([1, 2])\ny = open('f').read()\n")])
    assert [s.code for s in result.statements] == ["import os", "n = len([1, 2])"]


def test_code_too_deeply_nested_to_parse_is_reported_not_raised() -> None:
    deep = "x = " + " + ".join(["1"] * 5000) + "\n"  # ast.parse raises RecursionError
    deep_argument = "import os\nnet = Net(" + " + ".join(["1"] * 900) + ")\n"  # parses; unparse recurses too deep
    result = extract([("nb, cell 1", "import torch\n"), ("nb, cell 2", deep), ("nb, cell 3", deep_argument),
                      ("nb, cell 4", "seed = 1\n"), ("nb, cell 5", "x = 1\0\n")])
    assert result.unparsable == ["nb, cell 2: too deeply nested to parse", "nb, cell 3: too deeply nested to parse",
                                 "nb, cell 5: source code string cannot contain null bytes"]
    assert [s.code for s in result.statements] == ["import torch", "seed = 1"]  # nothing of cell 3 is half-taken
