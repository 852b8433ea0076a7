"""Shell escapes and machine-changing magics are neutralised and recorded; Python magics stay."""

from __future__ import annotations

import ast

from grader.execute.magics import as_python, neutralise


def test_shell_and_installer_lines_become_pass_and_are_recorded() -> None:
    source = "import numpy as np\n!pip install torch torchvision\n%pip install tqdm\nx = 1\n"
    result = neutralise(source)
    assert result.skipped == ("!pip install torch torchvision", "%pip install tqdm")
    assert result.source == ("import numpy as np\npass  # grader: shell command skipped\n"
                             "pass  # grader: %pip skipped\nx = 1\n")


def test_indentation_is_kept_so_the_cell_still_parses() -> None:
    result = neutralise("if True:\n    !nvidia-smi\n    y = 2\n")
    ast.parse(result.source)
    assert result.skipped == ("!nvidia-smi",)


def test_captured_shell_output_and_cd() -> None:
    result = neutralise("files = !ls\n%cd /content/drive\n")
    assert result.skipped == ("files = !ls", "%cd /content/drive")


def test_harmless_magics_and_inequality_are_untouched() -> None:
    source = "%matplotlib inline\n%load_ext autoreload\nif a != b:\n    pass\n"
    result = neutralise(source)
    assert result.source == source and result.skipped == ()


def test_shell_cell_magic_skips_the_whole_cell() -> None:
    result = neutralise("%%bash\npip install torch\necho done\n")
    assert result.source.startswith("pass") and result.skipped == ("%%bash",)


def test_backslash_continuation_is_skipped_with_its_line() -> None:
    result = neutralise("!pip install \\\n    torch\nprint(1)\n")
    assert result.source.splitlines()[-1] == "print(1)"
    ast.parse(result.source)


def test_as_python_turns_magics_into_calls_and_unwraps_time() -> None:
    ast.parse(as_python("%matplotlib inline\n!ls\nx = 1\n"))
    tree = ast.parse(as_python("%%time\nclass CNN:\n    pass\n"))
    assert isinstance(tree.body[0], ast.ClassDef)


def test_a_cell_too_deep_to_compile_becomes_an_error_of_that_cell_only() -> None:
    """IPython lets RecursionError escape run_cell (the kernel hangs): such a cell is replaced before the run."""
    import nbformat

    from grader.execute.notebook import TOO_DEEP_CELL, compiles_in_depth, prepare_notebook

    deep = "value = " + " + ".join(["1"] * 5000)
    assert not compiles_in_depth(deep)
    assert compiles_in_depth("def broken(:\n    pass"), "a syntax error is IPython's to show"
    assert compiles_in_depth("%matplotlib inline\nx = 1")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(deep),
                                         nbformat.v4.new_code_cell("print(x)")])
    prepared, _ = prepare_notebook(nb, "pass")
    assert [c.source for c in prepared.cells] == ["x = 1", TOO_DEEP_CELL, "print(x)", "pass"]
