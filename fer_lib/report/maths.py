"""The paper's equations (Eq. 1-17 of Sections 2.2-2.5) as typeset MathML beside the code that computes them.

:data:`EQUATIONS` is the one home of the equations: each as the paper prints it, in LaTeX, with a title
and the fer_lib objects that implement it. Where the text extraction garbled a symbol the evident formula
is written (Eq. 2's ``x_{F_{culS}}`` is ``x_{F_{calS}}``); the numbering is the paper's. :func:`mathml`
converts LaTeX with latex2mathml, so the walkthrough page renders the maths offline, without scripts;
:func:`equation_html` adds, folded, the source of the implementing code.
"""

from __future__ import annotations

import html
import importlib
import inspect
import re
import textwrap
from dataclasses import dataclass
from typing import Any

from latex2mathml.converter import convert

MODEL = "fer_lib.models.daf_mhsca"
LOSSES = "fer_lib.losses"
MATHML_NS = "http://www.w3.org/1998/Math/MathML"


@dataclass(frozen=True)
class Equation:
    """One numbered equation: its title, LaTeX as printed, the paper's section and the implementing objects."""

    number: int
    title: str
    latex: str
    section: str
    code: tuple[str, ...]


def _eq(number: int, section: str, title: str, code: tuple[str, ...], latex: str) -> Equation:
    return Equation(number, title, latex.strip(), section, code)


EQUATIONS: dict[int, Equation] = {e.number: e for e in (
    _eq(1, "2.2", "AFC: multi-scale dilated convolutions", (f"{MODEL}.AFC.forward",), r"""
\begin{cases}
x_{F_{1}} = \text{ReLU}\left(\text{Conv2d}_{3\times3}^{p_{1}}(x_{F})\right) \\
x_{F_{2}} = \text{ReLU}\left(\text{Conv2d}_{3\times3}^{p_{2},d_{2}}(x_{F})\right) \\
x_{F_{3}} = \text{ReLU}\left(\text{Conv2d}_{3\times3}^{p_{4},d_{4}}(x_{F})\right) \\
x_{F_{\text{sum}}} = x_{F_{1}} + x_{F_{2}} + x_{F_{3}}
\end{cases}"""),
    _eq(2, "2.2", "AFC: integration and spatial calibration", (f"{MODEL}.AFC.forward",), r"""
\begin{cases}
x_{F_{\text{int}}} = \text{ReLU}\left(\text{BN}\left(\text{Conv2d}_{1\times 1}(x_{F_{\text{sum}}})\right)\right) \\
x_{F_{\text{calS}}} = \sigma\left(\text{Conv2d}_{1\times 1}(x_{F})\right) \odot x_{F_{\text{int}}}
\end{cases}"""),
    _eq(3, "2.2", "AFC: channel calibration and residual", (f"{MODEL}.AFC.forward",), r"""
\begin{cases}
x_{F_{\text{Dre}}} = \text{Conv2d}_{1\times 1}\left(\text{GAP}(x_{F_{\text{calS}}})\right) \\
x_{F_{\text{Dra}}} = \text{Conv2d}_{1\times 1}\left(\text{ReLU}\left(x_{F_{\text{Dre}}}\right)\right) \\
x_{F_{\text{calC}}} = \sigma\left(x_{F_{\text{Dra}}}\right) \odot x_{F_{\text{calS}}} \\
x'_{F} = x_{F_{\text{calC}}} + x_{F}
\end{cases}"""),
    _eq(4, "2.3", "DAF: dual-direction convolution", (f"{MODEL}.DAF.forward",), r"""
\begin{cases}
x_H = \text{Conv2D}_{1\times 1}\left(\text{GDConv}_H\left(\text{Conv2D}_{1\times 1}(x_F')\right)\right) \\
x_W = \text{Conv2D}_{1\times 1}\left(\text{GDConv}_W\left(\text{Conv2D}_{1\times 1}(x_F')\right)\right)
\end{cases}"""),
    _eq(5, "2.3", "DAF: queries, keys and values of each direction", (f"{MODEL}.DAF.forward", f"{MODEL}._Tokens.forward"), r"""
\begin{bmatrix} Q_H & K_H & V_H \\ Q_W & K_W & V_W \end{bmatrix}
= \begin{bmatrix} x_H' & 0 \\ 0 & x_W' \end{bmatrix}
\begin{bmatrix} W_H^Q & W_H^K & W_H^V \\ W_W^Q & W_W^K & W_W^V \end{bmatrix}"""),
    _eq(6, "2.3", "DAF: self-attention per direction", (f"{MODEL}.DAF.forward", f"{MODEL}._attend"), r"""
\begin{cases}
x_{Ha} = \operatorname{softmax}\left(\frac{Q_H K_H^T}{\sqrt{C}}\right) V_H \\
x_{Wa} = \operatorname{softmax}\left(\frac{Q_W K_W^T}{\sqrt{C}}\right) V_W
\end{cases}"""),
    _eq(7, "2.3", "DAF: cross-direction attention", (f"{MODEL}.DAF.forward", f"{MODEL}._attend"), r"""
x_{Ca} = \operatorname{concat}\left\{\operatorname{softmax}\left(\frac{Q_{Hc} K_{Hc}^{\top}}{\sqrt{C}}\right) V_{Wc},
\operatorname{softmax}\left(\frac{Q_{Wc} K_{Wc}^{\top}}{\sqrt{C}}\right) V_{Hc}\right\} W_{Ca}"""),
    _eq(8, "2.3", "DAF: spatial attention map A_s", (f"{MODEL}.DAF.forward",), r"""
A_s = \sigma(x_{Ha} + x_{Ca}) \odot \sigma(x_{Wa} + x_{Ca})"""),
    _eq(9, "2.4", "MHSCA head: spatial attention", (f"{MODEL}.SpatialChannelHead.forward",), r"""
x_s = \delta\left(\operatorname{Conv}_{1 \times 3}\left(\operatorname{Conv}_{1 \times 1}(x_F)\right)
+ \operatorname{Conv}_{3 \times 3}\left(\operatorname{Conv}_{1 \times 1}(x_F)\right)
+ \operatorname{Conv}_{3 \times 1}\left(\operatorname{Conv}_{1 \times 1}(x_F)\right)\right) \odot x_F"""),
    _eq(10, "2.4", "MHSCA head: spatial features weighted by A_s", (f"{MODEL}.SpatialChannelHead.forward",), r"""
\widetilde{x}_s = A_s \cdot x_s"""),
    _eq(11, "2.4", "MHSCA head: channel attention", (f"{MODEL}.SpatialChannelHead.forward",), r"""
x_c = \delta\left(\text{Linear}\left(\text{GAP}(\widetilde{x}_s)\right)\right) \odot \widetilde{x}_s"""),
    _eq(12, "2.4", "MHSCA head: channel features weighted by A_c = GAP(A_s)",
        (f"{MODEL}.DAF.forward", f"{MODEL}.SpatialChannelHead.forward"), r"""
\widetilde{x}_c = A_c \cdot x_c = \text{GAP}(A_s) \cdot x_c"""),
    _eq(13, "2.4", "MHSCA: sum over the N_h heads", (f"{MODEL}.MHSCA.forward",), r"""
x_{\text{out}} = \sum_{i=1}^{N_h} \widetilde{x}_c^{(i)}"""),
    _eq(14, "2.5.1", "Weighted cross-entropy and class weights", (f"{LOSSES}.weighted_cross_entropy", f"{LOSSES}.class_weights"), r"""
\begin{cases}
L_{wce} = -\frac{1}{N} \sum_{i=1}^{N} w_{y_i} \log\left(\frac{e^{z_{i,y_i}}}{\sum_{c=1}^{C} e^{z_{i,c}}}\right) \\
w_c = \left(\frac{N_{\text{max}}}{N_c + \epsilon}\right)^{1/2}
\end{cases}"""),
    _eq(15, "2.5.2", "Feature affinity loss", (f"{LOSSES}.AffinityLoss",), r"""
L_{dna} = \frac{1}{N} \sum_{i=1}^{N} w_{y_i} \frac{\|\mathbf{f}_i - \mathbf{m}_{y_i}\|_2^2}{\sigma_M^2 + \epsilon}"""),
    _eq(16, "2.5.3", "Attention diversity loss", (f"{LOSSES}.diversity_loss",), r"""
L_{mhv} = -\frac{\alpha}{BHW} \sum_{b=1}^{B} \sum_{h=1}^{H} \sum_{w=1}^{W} \text{Var}(\mathbf{A}_{b,h,w})
+ \frac{2\beta}{N(N-1)} \sum_{i \neq j} \cos(\mathbf{A}_i, \mathbf{A}_j)"""),
    _eq(17, "2.5.4", "Total loss", (f"{LOSSES}.DAFMHSCACriterion",), r"""
L_{total} = L_{wce} + L_{dna} + \theta L_{mhv}"""),
)}


def mathml(latex: str, display: bool = True) -> str:
    """LaTeX as a MathML ``<math>`` element, a block (``display``) or inline."""
    out = convert(latex, display="block" if display else "inline")
    return out.replace(f' xmlns="{MATHML_NS}"', "", 1)  # HTML5 needs no namespace; the pages keep no http strings


def resolve(name: str) -> Any:
    """The object a dotted name such as ``fer_lib.losses.AffinityLoss.forward`` refers to."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"no module in {name!r}")


def _source_html(name: str, number: int) -> str:
    """The source of ``name``, HTML-escaped in a <pre>; lines naming this equation are marked."""
    source = textwrap.dedent(inspect.getsource(resolve(name)))
    named = re.compile(rf"Eq\. {number}(?![\d-])")
    lines = [f"<mark>{html.escape(line)}</mark>" if named.search(line) else html.escape(line)
             for line in source.rstrip().splitlines()]
    return f'<pre style="font-size:0.8em;overflow-x:auto">{chr(10).join(lines)}</pre>'


def equation_html(number: int) -> str:
    """Eq. ``number`` typeset as MathML with its number and title, then the source of its code, folded."""
    eq = EQUATIONS[number]
    code = "".join(
        f"<details><summary>code: <code>{html.escape(name)}</code></summary>{_source_html(name, number)}</details>"
        for name in eq.code
    )
    return (
        f'<div class="equation" id="eq-{number}" style="margin:0.8em 0">'
        f"<div><b>Eq. {number}</b> (Sec. {eq.section}): {html.escape(eq.title)}</div>"
        f'<div style="display:flex;align-items:center;gap:1em"><div style="flex:1;overflow-x:auto">{mathml(eq.latex)}</div>'
        f"<div>({number})</div></div>{code}</div>"
    )

