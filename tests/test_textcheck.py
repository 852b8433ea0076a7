"""How the rubric's text checks read the numbers students write (grader/textcheck.py), specified.

Item 3.3 ("Parameter counts of both networks") asks for the totals 8,490 and 101,770 and their
per-layer calculation. Students write them in many ways; every way a TA reads as the number is
accepted here, and a number that is not there (or not readable) gives a reason that says what
was looked for and where, so that a TA can override in one step.
"""

from __future__ import annotations

import time

import pytest
import yaml
from conftest import RUBRIC
from factories import code, evidence, markdown, model

from grader.evidence import Cell, Evidence, FileEvidence, LayerRow, ModelEvidence
from grader.rubric import Rubric, RubricError, Scope, TextCheck, parse_rubric
from grader.score import score
from grader.textcheck import evaluate, find, passages


def applied(rubric: Rubric, ev: Evidence, item_id: str = "3.3") -> list[str]:
    return [line.id for line in score(rubric, ev).item(item_id).lines if line.applied]


def check(numbers: tuple[int, ...], scope: tuple[Scope, ...] = ("markdown", "code", "outputs"), **options: str
          ) -> TextCheck:
    return TextCheck(numbers=numbers, scope=scope, **options)


def found_in(cells: list[Cell], number: int, scope: tuple[Scope, ...] = ("markdown", "code", "outputs")) -> bool:
    return evaluate(check((number,), scope), evidence(cells=cells)).found


def reason(rubric: Rubric, ev: Evidence, line: str) -> str:
    return next(result.reason for result in score(rubric, ev).item("3.3").lines if result.id == line)


# --------------------------------------------------------------------------- written forms of one number


@pytest.mark.parametrize(
    ("number", "text"),
    [
        pytest.param(101770, "The MLP has 101770 parameters.", id="plain digits"),
        pytest.param(101770, "The MLP has 101,770 parameters.", id="comma thousands"),
        pytest.param(101770, "The MLP has 101 770 parameters.", id="space thousands"),
        pytest.param(101770, "The MLP has 101\u202f770 parameters.", id="narrow no-break space"),
        pytest.param(101770, "The MLP has 101\u2009770 parameters.", id="thin space"),
        pytest.param(101770, "The MLP has 101&nbsp;770 parameters.", id="html no-break space"),
        pytest.param(101770, "The MLP has 101'770 parameters.", id="apostrophe thousands (Swiss)"),
        pytest.param(101770, "Das MLP hat 101.770 Parameter.", id="dot thousands (European)"),
        pytest.param(101770, "about 1.0177e5 parameters", id="scientific e"),
        pytest.param(101770, "about 1.0177E+05 parameters", id="scientific E+05"),
        pytest.param(101770, r"$1.0177 \times 10^{5}$ parameters", id="scientific LaTeX times"),
        pytest.param(101770, "1.0177·10⁵ parameters", id="scientific superscript"),
        pytest.param(101770, "the MLP has ~101K parameters", id="~101K truncated"),
        pytest.param(101770, "the MLP has 102k parameters", id="102k rounded"),
        pytest.param(101770, "roughly 0.102M weights", id="0.102M"),
        pytest.param(101770, "101.77 thousand parameters", id="thousand"),
        pytest.param(8490, "the CNN has 8.49K parameters", id="8.49K"),
        pytest.param(101770, r"$101{,}770$", id="LaTeX {,}"),
        pytest.param(101770, r"$101\,770$", id="LaTeX thin space"),
        pytest.param(101770, r"$101~770$", id="LaTeX tie"),
        pytest.param(101770, r"\num{101770} parameters", id="siunitx num"),
        pytest.param(101770, r"\num{101 770} parameters", id="siunitx num with space"),
        pytest.param(101770, "Total: **101,770**", id="bold"),
        pytest.param(101770, "Total: *101,770*", id="italic"),
        pytest.param(101770, "Total: __101770__", id="bold underscores"),
        pytest.param(101770, "Total: _101,770_", id="italic underscore"),
        pytest.param(101770, "Total: `101770`", id="inline code"),
        pytest.param(101770, "| network | parameters |\n|---|---|\n| MLP | 101,770 |\n| CNN | 8,490 |",
                     id="table cell"),
        pytest.param(101770, "Total = 101,770.", id="end of sentence"),
    ],
)
def test_a_number_written_in_markdown_is_read(number: int, text: str) -> None:
    assert found_in([markdown(3, text)], number)


def test_a_number_in_a_code_comment_is_read() -> None:
    cell = code(4, "total = fc1 + fc2  # 101,770 trainable parameters")
    assert found_in([cell], 101770, ("code",))
    assert not found_in([cell], 101770, ("markdown",))


def test_a_number_printed_by_a_code_cell_is_read_with_scope_outputs() -> None:
    cell = code(5, "print(f'MLP: {total}')", output="MLP: 101770\n")
    assert found_in([cell], 101770, ("outputs",))
    assert not found_in([cell], 101770, ("markdown", "code"))


TORCHSUMMARY = """----------------------------------------------------------------
        Layer (type)               Output Shape         Param #
================================================================
            Conv2d-1           [-1, 10, 24, 24]             260
            Conv2d-2             [-1, 20, 8, 8]           5,020
         Dropout2d-3             [-1, 20, 8, 8]               0
            Linear-4                   [-1, 10]           3,210
================================================================
Total params: 8,490
Trainable params: 8,490
Non-trainable params: 0
----------------------------------------------------------------
"""


def test_a_printed_summary_is_read_with_scope_summaries_only() -> None:
    """What torch counted is not what the student wrote: the template prints summary(model) in every notebook."""
    cell = code(9, "from torchsummary import summary\nsummary(model, (1, 28, 28))", output=TORCHSUMMARY)
    for number in (8490, 260, 5020, 3210):
        assert found_in([cell], number, ("summaries",))
        assert not found_in([cell], number, ("markdown", "code", "outputs"))


@pytest.mark.parametrize(
    "cells",
    [
        pytest.param([code(7, "print('trainable:', sum(p.numel() for p in model.parameters()))", "trainable: 8490")],
                     id="numel in the cell"),
        pytest.param([code(6, "def count_parameters(m):\n    return sum(p.numel() for p in m.parameters())\n"),
                      code(7, "print(count_parameters(model))", "8490")], id="a helper that calls numel"),
        pytest.param([code(7, "print(stats(model))", "Total params: 8,490\nTrainable params: 8,490")],
                     id="a summary table in the output"),
    ],
)
def test_parameter_counts_torch_printed_are_summaries(cells: list[Cell]) -> None:
    assert not found_in(cells, 8490, ("outputs",))
    assert found_in(cells, 8490, ("summaries",))


def test_the_graders_own_training_cells_are_not_read() -> None:
    cell = code(1, "# [grader] train CNN with the handout's loop (found by name)", "CNN 8490 parameters")
    assert passages(evidence(cells=[cell]), ("markdown", "code", "outputs", "summaries")) == []


@pytest.mark.parametrize(
    ("number", "text"),
    [
        pytest.param(100352, "the first layer has 100 parameters", id="bare 100 is not 100,352"),
        pytest.param(100352, "about 100,000 weights", id="a bare round number is never rounded"),
        pytest.param(8490, "about 8.5K parameters", id="8.5K has 2 significant digits"),
        pytest.param(8490, "about 8K parameters", id="8K has 1 significant digit"),
        pytest.param(8490, "accuracy 0.8490", id="inside a decimal"),
        pytest.param(770, "101,770", id="the tail of a grouped number"),
        pytest.param(101, "101,770", id="the head of a grouped number"),
        pytest.param(8490, "the CNN has 18490 parameters", id="inside a longer number"),
        pytest.param(8490, "hash a8490f", id="glued to letters"),
        pytest.param(8490, "Accuracy 8,49", id="other digits"),
        pytest.param(101770, "1.02e5x", id="scientific glued to letters"),
        pytest.param(101770, "10,1770", id="separators not between groups of three"),
    ],
)
def test_what_is_not_the_number(number: int, text: str) -> None:
    assert find(number, text) is None


def test_a_dot_separates_thousands_in_text_but_not_in_printed_output() -> None:
    """Python prints decimals (``Time: 8.490 s``), never European thousands."""
    assert found_in([markdown(3, "Das CNN hat 8.490 Parameter.")], 8490)
    assert not found_in([code(5, "print(f'{t:.3f}')", "Time: 8.490 s")], 8490, ("outputs",))


# --------------------------------------------------------------------------- calculations written as expressions


@pytest.mark.parametrize(
    ("number", "text"),
    [
        pytest.param(100480, "fc1: 784*128 + 128", id="product plus bias"),
        pytest.param(100352, "fc1 weights: 784 * 128", id="product alone"),
        pytest.param(260, "conv1: 5*5*1*10+10", id="no spaces"),
        pytest.param(5020, "conv2: (5 × 5 × 10 + 1) × 20", id="unicode times and parentheses"),
        pytest.param(260, r"$(5 \times 5 \times 1 + 1) \times 10$", id="LaTeX times"),
        pytest.param(3210, r"$320 \cdot 10 + 10$", id="LaTeX cdot"),
        pytest.param(260, "5·5·1·10 + 10", id="middle dot"),
        pytest.param(250, "conv1: 5x5x1x10 weights", id="x between numbers"),
        pytest.param(1280, "fc2: 128 X 10", id="capital X"),
        pytest.param(260, "5^2 * 10 + 10", id="caret power"),
        pytest.param(260, "5**2*10 + 10", id="python power"),
        pytest.param(100480, "fc1 = 784 * 128 + 128  # weights + biases", id="python code"),
        pytest.param(5020, "**5 × 5 × 10 × 20 + 20** parameters", id="in bold markdown"),
        pytest.param(3210, "fc: 320 × 10 − 10 + 20", id="unicode minus"),
        pytest.param(8490, "250 + 10 + 5,000 + 20 + 3,200 + 10", id="a sum of grouped numbers is the total"),
        pytest.param(5020, "250 + 10 + 5,000 + 20 + 3,200 + 10", id="consecutive terms of a sum are a layer"),
        pytest.param(260, "5*5*1*10 + 10 + 5*5*10*20 + 20 + 320*10 + 10", id="a layer inside a long sum"),
        pytest.param(260, "5x5x1x10 = 250 (+10)", id="a bracketed addition after a number"),
    ],
)
def test_an_expression_counts_as_its_value(number: int, text: str) -> None:
    assert find(number, text) is not None


@pytest.mark.parametrize(
    ("number", "text"),
    [
        pytest.param(100352, r"$W_1 \in \mathbb{R}^{128 \times 784}$", id="a shape written as an exponent"),
        pytest.param(250, "5*5*1*10.5", id="a decimal ends the expression"),
        pytest.param(30, "5000 - 100 + 130", id="a stretch does not start at a subtracted term"),
        pytest.param(260, "Conv2d-1 5*5*1*10", id="numbers glued to words are not operands"),
        pytest.param(9, "2 + 3 = 4 + 1", id="an equals sign ends the expression"),
    ],
)
def test_what_an_expression_is_not(number: int, text: str) -> None:
    assert find(number, text) is None


def test_expressions_are_parsed_never_run_and_stay_small() -> None:
    started = time.perf_counter()
    assert find(387420489, "9^9^9^9^9^9") is None  # too large: dropped, not computed
    assert find(10, "sum(range(5))") is None  # not Python: only numbers, operators and parentheses
    assert find(10**6, "+".join(["1"] * 5000)) is None  # an expression of more than 120 tokens is not read
    assert find(500, " + ".join(["10"] * 50)) is not None
    assert time.perf_counter() - started < 2


# --------------------------------------------------------------------------- item 3.3 with the rubric


def test_totals_printed_by_a_code_calculation_get_full_marks(rubric: Rubric) -> None:
    """Issue 9.4: the counts computed in code, the totals only in the cell's printed output."""
    cells = [
        markdown(20, "**Problem 3 C)**"),
        code(21, "conv1 = 5 * 5 * 1 * 10 + 10  # 250 + 10\nconv2 = 5 * 5 * 10 * 20 + 20  # 5000 + 20\n"
                 "fc = 320 * 10 + 10  # 3200 + 10\nprint(f'CNN: {conv1} + {conv2} + {fc} = {conv1 + conv2 + fc}')\n"
                 "fc1 = 784 * 128 + 128\nfc2 = 128 * 10 + 10\nprint(f'MLP: {fc1} + {fc2} = {fc1 + fc2}')",
             output="CNN: 260 + 5020 + 3210 = 8490\nMLP: 100480 + 1290 = 101770\n"),
    ]
    sheet = score(rubric, evidence(cells=cells))
    assert applied(rubric, evidence(cells=cells)) == ["correct"] and sheet.item("3.3").score == 5
    assert "found 8,490 in problem2_mlp.ipynb, cell 21 (output)" in sheet.item("3.3").reason


def test_a_parameter_count_printed_for_a_sanity_check_is_not_an_answer(rubric: Rubric) -> None:
    """carlos_no_cnn: no 3.3 answer, only numel() printed after the class; still Not Done."""
    cells = [code(7, "model = MNISTClassifierMLP()\nprint(model)\n"
                     "print('trainable parameters:', sum(p.numel() for p in model.parameters() if p.requires_grad))",
                  output="MNISTClassifierMLP(...)\ntrainable parameters: 101770\n")]
    ev = evidence([model()], cells=cells)
    assert applied(rubric, ev) == ["not_done"]
    text = reason(rubric, ev, "not_done")
    assert "101,770 appears where this check does not read: problem2_mlp.ipynb, cell 7 (output) " \
           "(a parameter summary printed by torch)" in text


def test_totals_from_a_summary_without_a_calculation_lose_the_calculation_points(rubric: Rubric) -> None:
    """ivan_normalized: totals in the text, the per-layer numbers only in torchinfo's table."""
    cells = [code(8, "summary(model, input_size=(1, 1, 28, 28))", output=TORCHSUMMARY),
             markdown(19, "The CNN has 8,490 trainable parameters and the MLP has 101,770 (from `torchinfo.summary`).")]
    assert applied(rubric, evidence(cells=cells)) == ["calculation_not_shown"]
    assert "260, 5,020, 3,210 appear where this check does not read: problem2_mlp.ipynb, cell 8 (output) " \
           "(a parameter summary printed by torch)" in reason(rubric, evidence(cells=cells), "calculation_not_shown")


WIDE_CNN = [  # Conv2d(1, 16, 5), Conv2d(16, 32, 5), Linear(512, 10): 18,378 parameters
    LayerRow(depth=0, type="CNN", name="CNN", output_shape=[1, 10], params=18378, leaf=False),
    LayerRow(depth=1, type="Conv2d", name="conv1", output_shape=[1, 16, 24, 24], params=416, leaf=True),
    LayerRow(depth=1, type="Dropout2d", name="drop", output_shape=[1, 32, 8, 8], params=0, leaf=True),
    LayerRow(depth=1, type="Conv2d", name="conv2", output_shape=[1, 32, 8, 8], params=12832, leaf=True),
    LayerRow(depth=1, type="Linear", name="fc", output_shape=[1, 10], params=5130, leaf=True),
]


def wide_cnn() -> ModelEvidence:
    return model("CNN", 18378, file="problem3_cnn.ipynb").model_copy(update={"layers": WIDE_CNN})


MLP_CALCULATION = "MLP: 784*128 + 128 = 100,480; 128*10 + 10 = 1,290; total 101,770."


def test_the_calculation_of_the_students_own_network_is_accepted(rubric: Rubric) -> None:
    """Issue 9.3: a wider CNN (18,378 parameters) and the per-layer calculation of that network."""
    cells = [markdown(12, "**Problem 3 C)**\nconv1: 5*5*1*16 + 16 = 416\nconv2: 5*5*16*32 + 32 = 12,832\n"
                          "fc: 512*10 + 10 = 5,130\nTotal: 18,378\n\n" + MLP_CALCULATION)]
    ev = evidence([model(), wide_cnn()], cells=cells)
    sheet = score(rubric, ev)
    assert [line.id for line in sheet.item("3.2").lines if line.applied] == ["architecture"]
    assert applied(rubric, ev) == ["correct"] and sheet.item("3.3").score == 5
    text = sheet.item("3.3").reason
    assert ("found the per-layer calculation of the student's own CNN (18,378 parameters): 416, 12,832, 5,130 "
            "in problem2_mlp.ipynb, cell 12 (markdown)") in text
    assert ("found 18,378, the parameter count of the student's own CNN (not the handout's 8,490), "
            "in problem2_mlp.ipynb, cell 12 (markdown)") in text


def test_the_weights_alone_of_the_students_own_network_are_a_calculation(rubric: Rubric) -> None:
    cells = [markdown(12, "CNN weights: 400, 12,800 and 5,120, plus 16 + 32 + 10 biases: 18,378\n" + MLP_CALCULATION)]
    ev = evidence([model(), wide_cnn()], cells=cells)
    assert applied(rubric, ev) == ["correct"]
    assert "found the weights of each layer of the student's own CNN (18,378 parameters): 400, 12,800, 5,120" \
        in score(rubric, ev).item("3.3").reason


def test_own_network_numbers_count_only_where_the_rubric_says_so() -> None:
    ev = evidence([model(), wide_cnn()], cells=[markdown(12, "416 + 12,832 + 5,130 = 18,378")])
    own = {"cnn": wide_cnn()}
    plain = TextCheck(any_of=({"numbers": (260, 5020, 3210)},))  # type: ignore[arg-type]
    assert not evaluate(plain, ev, own).found
    assert evaluate(plain.model_copy(update={"or_student_layers": "cnn"}), ev, own).found
    assert not evaluate(check((8490,)), ev, own).found
    assert evaluate(check((8490,), or_student_total="cnn"), ev, own).found
    assert not evaluate(check((8490,), or_student_total="cnn"), ev).found  # no model matched: the rubric's only


def test_the_handouts_numbers_still_count_for_a_student_whose_network_differs(rubric: Rubric) -> None:
    """bella_wrong_hidden: a 256-wide MLP, and the handout's calculation for 128: 3.3 is correct (3.2 deducts)."""
    wide = model(params=203530, rows=[("MNISTClassifierMLP", 0, 203530, False), ("Linear", 1, 200960, True),
                                      ("Linear", 1, 2570, True)])
    ev = evidence([wide, model("CNN", 8490, file="problem3_cnn.ipynb")])
    assert applied(rubric, ev) == ["correct"]
    assert "found 101,770 in" in score(rubric, ev).item("3.3").reason


def test_only_the_own_total_and_no_calculation(rubric: Rubric) -> None:
    """Both networks differ, both totals right for them, no calculation: 'not shown' (-2), not 'Not Done' (-5)."""
    wide_mlp = model(params=203530, rows=[("MNISTClassifierMLP", 0, 203530, False), ("Linear", 1, 200960, True),
                                          ("Linear", 1, 2570, True)])
    ev = evidence([wide_mlp, wide_cnn()], cells=[markdown(5, "CNN: 18,378 parameters; MLP: 203,530 parameters.")])
    assert applied(rubric, ev) == ["calculation_not_shown"]


# --------------------------------------------------------------------------- the reason when a check fails


def test_a_failed_check_says_what_it_looked_for_and_where(rubric: Rubric) -> None:
    cells = [
        markdown(3, "The CNN has about 8480 parameters."),
        code(9, "summary(model, (1, 28, 28))", output=TORCHSUMMARY),
        code(10, "print(f'cnn{total}')", output="cnn8490\n"),
    ]
    text = reason(rubric, evidence(cells=cells), "not_done")
    assert text.startswith("the CNN's parameter count, 8,490: 8,490 not found in the markdown, code or printed "
                           "outputs [looked for 8,490 as 8490, 8,490, 8 490, 8.490, 8.49K, 8.49e3 or an expression "
                           "equal to it in 4 cells of problem2_mlp.ipynb (1 markdown, 2 code, 1 printed outputs); ")
    assert "8,490 appears where this check does not read: problem2_mlp.ipynb, cell 9 (output) " \
           "(a parameter summary printed by torch)" in text
    assert 'the digits 8490 inside "cnn8490" in problem2_mlp.ipynb, cell 10 (output)' in text
    assert "close to 8,490: 8480 in problem2_mlp.ipynb, cell 3 (markdown)" in text
    assert "looked for 101,770 as 101770, 101,770, 101 770, 101.770, 102K, 1.0177e5 or an expression" in text


def test_a_failed_check_names_the_students_own_numbers_it_would_accept(rubric: Rubric) -> None:
    ev = evidence([model(), wide_cnn()], cells=[markdown(12, "CNN: 18,378. " + MLP_CALCULATION)])
    text = reason(rubric, ev, "calculation_not_shown")
    assert "250, 5,000, 3,200 not found in the markdown, code or printed outputs" in text
    assert ("or the per-layer counts of the student's own CNN (18,378 parameters): 416, 12,832, 5,130; "
            "or its weights alone: 400, 12,800, 5,120") in text


def test_a_found_number_says_how_it_was_read() -> None:
    result = evaluate(check((8490,)), evidence(cells=[markdown(2, "The CNN has ~8.49K parameters.")]))
    assert result.found
    assert result.detail == 'found 8,490 in problem2_mlp.ipynb, cell 2 (markdown) (read "8.49K" as 8,490)'
    assert result.where == ("problem2_mlp.ipynb, cell 2 (markdown)",)


# --------------------------------------------------------------------------- the rubric options


def test_the_rubric_names_a_model_that_exists() -> None:
    document = yaml.safe_load(RUBRIC.read_text())
    document["text_checks"]["cnn_total"]["or_student_total"] = "rnn"
    with pytest.raises(RubricError, match="text check 'cnn_total': model 'rnn' is not defined under 'models'"):
        parse_rubric(document)
    document = yaml.safe_load(RUBRIC.read_text())
    document["text_checks"]["cnn_total"]["scope"] = []
    with pytest.raises(RubricError, match=r"text_checks\.cnn_total\.scope"):
        parse_rubric(document)


def test_hw4_reads_printed_outputs_and_the_students_own_networks(rubric: Rubric) -> None:
    for name, key in (("cnn_total", "cnn"), ("mlp_total", "mlp"), ("cnn_calculation", "cnn"),
                      ("mlp_calculation", "mlp")):
        text_check = rubric.text_checks[name]
        assert text_check.scope == ("markdown", "code", "outputs")
        assert text_check.student_models() == (key,)


def test_a_module_is_read_as_code() -> None:
    module = FileEvidence(path="hw4.py", kind="module", sha256="0" * 64, status="completed",
                          cells=[Cell(index=0, cell_type="code", source="# CNN: 8,490 parameters", status="ok")])
    ev = evidence(cells=[]).model_copy(update={"files": [module]})
    result = evaluate(check((8490,), ("code",)), ev)
    assert result.found and result.where == ("hw4.py",)
