"""The paper's equations as MathML beside their code (fer_lib/report/maths.py), and the walkthrough that shows them."""

from __future__ import annotations

import ast
import inspect
import json
import re

import pytest

from fer_lib import PROJECT_ROOT
from fer_lib.report import maths

WALKTHROUGH = PROJECT_ROOT / "notebooks" / "11_walkthrough.ipynb"


def test_the_table_holds_eq_1_to_17() -> None:
    assert sorted(maths.EQUATIONS) == list(range(1, 18))
    assert all(eq.number == n and eq.title and eq.code for n, eq in maths.EQUATIONS.items())


@pytest.mark.parametrize("number", range(1, 18))
def test_every_equation_converts_to_mathml(number: int) -> None:
    out = maths.mathml(maths.EQUATIONS[number].latex)
    assert out.startswith("<math") and 'display="block"' in out and "merror" not in out and "http" not in out
    assert 'display="inline"' in maths.mathml("x_F", display=False)


@pytest.mark.parametrize("number", range(1, 18))
def test_implementing_names_resolve_and_name_their_equation(number: int) -> None:
    sources = [inspect.getsource(maths.resolve(name)) for name in maths.EQUATIONS[number].code]
    # the code names the equation it computes ("# Eq. 2: x_FcalS"), so the table and the comments agree
    assert any(re.search(rf"Eq\. {number}(?!\d)", s) for s in sources), number


def test_resolve_refuses_a_missing_name() -> None:
    with pytest.raises(AttributeError):
        maths.resolve("fer_lib.losses.no_such_loss")


def test_equation_9_folds_the_source_of_the_head_forward() -> None:
    out = maths.equation_html(9)
    assert "<math" in out and "(9)" in out
    folded = out[out.index("<details>"):]
    assert "SpatialChannelHead.forward" in folded
    assert "def forward(self, x: torch.Tensor, a_s: torch.Tensor | None" in folded  # escaped source, dedented
    assert "-&gt; tuple[torch.Tensor, torch.Tensor]:" in folded  # HTML-escaped
    assert "<mark>" in folded and "# Eq. 9: x_s" in folded


def _shown_equations(notebook: dict) -> set[int]:
    """The equation numbers the notebook's code passes, as literals, to show(...) or maths.equation_html(...)."""
    shown: set[int] = set()
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        tree = ast.parse("".join(cell["source"]))
        for node in ast.walk(tree):
            if isinstance(node, ast.For) and isinstance(node.iter, ast.Tuple):  # for n in (1, 2, 3): show(n)
                shown |= {e.value for e in node.iter.elts if isinstance(e, ast.Constant) and isinstance(e.value, int)}
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in ("show", "equation_html"):
                shown |= {a.value for a in node.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, int)}
    return shown


def test_the_walkthrough_shows_every_equation_and_never_prints() -> None:
    """Static and cheap; the executed page (MathML present, no stream output) is checked by the report build."""
    notebook = json.loads(WALKTHROUGH.read_text())
    assert set(range(1, 18)) <= _shown_equations(notebook)
    code = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    assert "maths.equation_html" in code and "print(" not in code
    assert "parameters" in notebook["cells"][1]["metadata"]["tags"]
