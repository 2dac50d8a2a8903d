"""The offline HTML: notebook pages through nbconvert without CDN scripts or inline CSS, the index and the notes.

Every page links the stylesheets of :mod:`fer_lib.report.site` and carries its navigation bar.

The index and the notes read what the notebooks published (:mod:`fer_lib.report.published`), field by field.
"""

from __future__ import annotations

import functools
import html
import os
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from fer_lib import PROJECT_ROOT, paper
from fer_lib.data import dataset_info
from fer_lib.engine import PROFILES as ENGINE_PROFILES
from fer_lib.engine import evidence
from fer_lib.report import published as P
from fer_lib.report import site
from fer_lib.report.plan import NOTEBOOKS, SYNTHETIC, banner
from fer_lib.report.tables import CHANCE_COL, MEAN

NOTES_MD = PROJECT_ROOT / "docs" / "reproduction_notes.md"
NOTES_PAGE = site.NOTES_PAGE

OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{# Offline: no require.js, MathJax, Mermaid or widget scripts from a CDN, and no inlined CSS: the
   page links the site's stylesheets (fer_lib.report.site), written once beside the pages. #}
{%- block html_head -%}
<meta charset="utf-8" />
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{{ resources.site_title | escape_html_keep_quotes }}</title>
{{ resources.site_head }}
{%- endblock html_head -%}
{%- block body_header -%}
{{ super() }}
{{ resources.site_nav }}
{{ resources.site_box }}
{%- endblock body_header -%}
"""

# Rules of the lab template's inline <style> that the pages need (its notebook_css block).
LAB_EXTRA_CSS = """
* { -webkit-print-color-adjust: exact; }
a.anchor-link { display: none; }
.jp-InputArea, .jp-InputArea-editor { overflow: hidden; }
.jp-OutputArea-output pre { line-height: inherit; font-family: inherit; }
.jp-RenderedText pre { color: var(--jp-content-font-color1); font-size: var(--jp-code-font-size); }
.jp-Collapser { display: none; }
@page { margin: 0.5in; }
@media print { .jp-Cell-inputWrapper, .jp-Cell-outputWrapper { display: block; } }
"""


def html_exporter() -> Any:
    """nbconvert's lab template without CDN scripts or inline CSS; input cells hidden (the .ipynb beside it has the code)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(extra_loaders=[DictLoader({"offline.html.j2": OFFLINE_TEMPLATE})], template_name="lab")
    exporter.template_file = "offline.html.j2"
    exporter.embed_images = True
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    return exporter


@functools.lru_cache(maxsize=1)
def notebook_css() -> str:
    """The CSS the lab template would inline in every page: JupyterLab's, its light theme, code highlighting."""
    from jupyterlab_pygments import JupyterStyle
    from pygments.formatters import HtmlFormatter

    env = html_exporter().environment
    lab = [env.loader.get_source(env, f"static/{name}")[0] for name in ("index.css", "theme-light.css")]
    return "\n".join([*lab, LAB_EXTRA_CSS, HtmlFormatter(style=JupyterStyle).get_style_defs(".highlight")])


def write_stylesheets(out_dir: str | os.PathLike) -> list[Path]:
    """The site's stylesheets in ``out_dir``: ``report.css`` (every page) and ``notebook.css`` (notebook pages)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [site.write_file(out / site.STYLESHEET, site.SITE_CSS),
            site.write_file(out / site.NOTEBOOK_STYLESHEET, notebook_css())]


def page_title(stem: str, notebooks: Sequence[tuple[str, str]] = NOTEBOOKS) -> str:
    """A notebook page's title: its title in the reading order, else its stem."""
    return dict(notebooks).get(stem, stem)


def render_notebook(ipynb: str | os.PathLike, html_path: str | os.PathLike, nav: str | None = None, box: str = "") -> Path:
    """Write the offline HTML page of an executed notebook, linking the site's stylesheets (written
    beside it), with the navigation bar (default: the page's place in the reading order) and ``box``
    (the "Rebuild this" box) under it."""
    import nbformat

    stem = Path(ipynb).stem
    write_stylesheets(Path(html_path).parent)
    nb = nbformat.read(str(ipynb), as_version=4)
    nb.metadata.pop("widgets", None)
    resources = {"metadata": {"name": stem}, "site_title": page_title(stem), "site_head": site.stylesheet_links(notebook=True),
                 "site_nav": site.nav_html(stem) if nav is None else nav, "site_box": box}
    body, _ = html_exporter().from_notebook_node(nb, resources=resources)
    Path(html_path).write_text(body, encoding="utf-8")
    return Path(html_path)


def markdown_to_html(text: str) -> str:
    """Markdown (with tables) to HTML, through the markdown renderer nbconvert itself uses."""
    import mistune

    return mistune.create_markdown(plugins=["table", "strikethrough"], escape=False)(text)


def standalone(title: str, body: str, stem: str = "", notebooks: Sequence[tuple[str, str]] = NOTEBOOKS) -> str:
    """A page of the site: the shared stylesheet, the navigation bar of ``stem``, then ``body``."""
    nav = site.nav_html(stem, notebooks) if stem else ""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0\"><title>{html.escape(title)}</title>"
            f"{site.stylesheet_links()}</head><body>\n{nav}\n{body}\n</body></html>\n")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} %"


NO_WINNER = "no winner at this budget (see the claims ledger)"


def _backed(ledger: Sequence[Any] | None, claim: str) -> bool:
    """Whether the claims ledger supports ``claim`` (a winner is stated only where the rule backs it)."""
    return any(r.claim == claim and r.verdict == evidence.SUPPORTED for r in ledger or [])


def findings(out_dir: Path, profile: str, ledger: Sequence[Any] | None = None) -> str:
    """Markdown: what this build's runs say about each oddity, read from the notebooks' published results.

    A best N_h or theta is named only where the claims ledger (``ledger``) supports the paper's choice;
    otherwise the line says there is no winner at this budget.
    """
    lines = [f"## What this build's runs say (profile {profile})", ""]
    if ENGINE_PROFILES[profile].synthetic:
        lines += [f"*{profile.capitalize()} profile: the built-in synthetic faces ({ENGINE_PROFILES[profile].describe()}). "
                  "The lines below show what each check measures on faces whose answers are known; "
                  "they say nothing about the paper.*", ""]
    t3, t4, t5 = P.load(out_dir, P.Table3), P.load(out_dir, P.Table4), P.load(out_dir, P.Table5)
    synthetic = next((r for r in (t3.index.rows if t3 else []) if r.get("Dataset") == dataset_info(SYNTHETIC).label), None)
    if synthetic:
        linear = next((f.get("pixel_linear") for f in (t3.data if t3 else {}).values() if f.get("synthetic")), None)
        lines.append(f"- **The built-in faces**: DAF-MHSCA's test accuracy in this build, in %: {synthetic.get(MEAN, '—')} "
                     f"(chance: {synthetic.get(CHANCE_COL, '—')}); a multinomial logistic regression on the pixels "
                     f"of the same faces reaches {'—' if linear is None else f'{100 * linear:.1f}'} % on the same test faces "
                     "(`fer_lib.data.synthetic.pixel_linear_accuracy`).")
    t8, t9, t10 = P.load(out_dir, P.Fig8), P.load(out_dir, P.Fig9), P.load(out_dir, P.Attributions)
    rafdb = t3.rafdb_recipes if t3 else {}
    lines.append("- **RAF-DB lr 0.1 with Adam**: " + (
        f"Table 2 as printed (lr 0.1): {rafdb.get('paper', '—')}; with lr 1e-4 (recipe ours): {rafdb.get('ours', '—')}."
        if rafdb else "not run in this build (RAF-DB absent or not requested)."))
    for name, facts in (t3.data if t3 else {}).items():
        if facts.get("synthetic"):
            continue
        classes = facts.get("classes") or []
        lines.append(f"- **{paper.dataset_label(name)} as loaded**: {facts.get('n_train')} training, {facts.get('n_val')} validation, "
                     f"{facts.get('n_test')} test faces; {len(classes)} classes ({', '.join(classes)}).")
    for name, r in (t4.readings if t4 else {}).items():
        gates = ", ".join(f"{k} {v:.3f}" for k, v in r.gates.items())
        lines.append(f"- **{name}** on {r.dataset}: {_pct(r.ours)} against {_pct(r.default)} for the default reading"
                     + (f"; mean gates {gates} (1.0 = Eq. 17's fixed weights)" if gates else "") + ".")
    if not (t4 and t4.readings):
        lines.append("- **Gradient gating, AFC sum vs concat**: the alternative readings were not trained in this build.")
    for ds, variants in (t4.ablations if t4 else {}).items():
        full = variants.get(paper.OURS)
        if full is None:
            continue
        others = [v for v in variants if v != paper.OURS]
        lower = [v for v in others if variants[v] is not None and variants[v] < full]
        lines.append(f"- **Table 4 on {paper.dataset_label(ds)}**: full model {_pct(full)}; removing a component lowered accuracy for "
                     f"{len(lower)} of {len(others)} ablations ({', '.join(lower) or 'none'}); the paper: all four.")
    for name, ser in (t5.series if t5 else {}).items():
        if ser.mean:
            best = "best 4" if _backed(ledger, f"N_h = 4 heads is best on {name}") else NO_WINNER
            lines.append(f"- **N_h on {name}**: {best} among {', '.join(f'{h:g}' for h in ser.x)} (paper: 4).")
    if t8 and t8.theta.mean:
        best = "best 0.3" if _backed(ledger, "theta = 0.3 is best") else NO_WINNER
        lines.append(f"- **theta on {t8.dataset}**: {best} among {', '.join(f'{t:g}' for t in t8.theta.x)} "
                     "(paper: 0.3 on RAF-DB).")
    regions = t10.regions if t10 else []
    if regions:
        def mass(family: str) -> str:
            return "; ".join(f"{r.model} {r.map} {r.mass:.1%} (lift {r.lift:.2f})" for r in regions if r.family == family)
        lines.append(f"- **Maps \"concentrate on key facial action units\"** (Sec. 3.5), on {t10.dataset}"
                     f"{' (SYNTHETIC)' if t10.synthetic else ''}: the regions that carry each expression cover "
                     f"{regions[0].area:.1%} of the face (lift 1 = no preference). Attention mass inside: {mass('attention')}. "
                     f"Attribution mass inside: {mass('attribution')}.")
    elif t10:
        lines.append(f"- **Maps on key facial regions**: {t10.dataset} has no region masks; the smoke report "
                     "(`./run_all.sh`) measures this on the built-in faces, whose regions are known.")
    ours = next((r for r in (t9.rows if t9 else []) if r.get("label") == paper.OURS), None)
    if ours:
        lines.append(f"- **16.5 MB and 43 ms/iter**: DAF-MHSCA as built has {ours['params'] / 1e6:.2f} M parameters, "
                     f"{ours['param_mb']:.1f} MiB in fp32; training memory {ours['train_total_mb']:.0f} MiB ({ours['train_memory_kind']}); "
                     f"{ours['ms_per_iter']:.0f} ms per step at batch {ours['train_batch']} and {ours['image_size']} px on "
                     f"{t9.machine.get('device', '?')}.")
    return "\n".join(lines) + "\n"


def render_notes(out_dir: Path, profile: str = "smoke", ledger: Sequence[Any] | None = None) -> Path:
    """The reproduction notes page: docs/reproduction_notes.md, then what this build's runs say."""
    text = NOTES_MD.read_text(encoding="utf-8") if NOTES_MD.exists() else "# Reproduction notes\n\n(docs/reproduction_notes.md is missing)\n"
    body = markdown_to_html(text + "\n" + findings(out_dir, profile, ledger))
    path = out_dir / f"{NOTES_PAGE}.html"
    write_stylesheets(out_dir)
    path.write_text(standalone("Reproduction notes", f'<div class="banner">{markdown_to_html(banner(profile))}</div>\n' + body,
                               NOTES_PAGE), encoding="utf-8")
    return path


LEDGER_COLUMNS = ("Claim", "Source", "Our evidence", "Verdict", "Why")
# Judged claims first, so a reader meets the evidence before the rows with none; the paper's order within each.
LEDGER_ORDER = (evidence.SUPPORTED, evidence.CONTRADICTED, evidence.INCONCLUSIVE, evidence.PENDING,
                evidence.UNTESTABLE, evidence.SMOKE)


def ledger_tally(rows: Sequence[Any]) -> str:
    """How many claims got each verdict, in :data:`LEDGER_ORDER`: e.g. ``2 contradicted, 40 not testable here``."""
    counts = Counter(r.verdict for r in rows)
    return ", ".join(f"{counts[v]} {v}" for v in LEDGER_ORDER if counts[v])


def ledger_html(rows: Sequence[Any] | None, error: str = "") -> str:
    """The claims ledger (rows of :func:`fer_lib.claims.ledger`): the rule, the tally of verdicts, then one
    table row per claim, judged ones first, each linking to the page that shows its evidence; our own
    addition (the control) is marked as ours."""
    parts = ["<h2>Claims ledger: what the paper claims and what our runs say</h2>",
             f'<p class="rule"><b>The rule.</b> {html.escape(evidence.RULE)}</p>']
    if rows is None:
        parts.append(f'<p class="failed">The claims ledger was not computed{": " + html.escape(error) if error else ""}.</p>')
        return "\n".join(parts)
    parts.append(f'<p class="tally"><b>{len(rows)} claims:</b> {html.escape(ledger_tally(rows))}. '
                 "Judged claims come first; within a verdict, the paper's order.</p>")
    head = "".join(f"<th>{c}</th>" for c in LEDGER_COLUMNS)
    body = []
    for r in sorted(rows, key=lambda r: LEDGER_ORDER.index(r.verdict)):
        source = html.escape(r.source) + (" <i>(our addition, not a claim of the paper)</i>" if r.extra else "")
        claim = f'<a href="{html.escape(r.page)}.html">{html.escape(r.claim)}</a>'
        css = "verdict-" + r.verdict.split()[0]
        body.append(f'<tr class="{"extra" if r.extra else "claim"}"><td>{claim}</td><td>{source}</td><td>{html.escape(r.ours)}</td>'
                    f'<td class="{css}">{html.escape(r.verdict)}</td><td>{html.escape(r.why)}</td></tr>')
    parts.append(f'<table class="ledger"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')
    return "\n".join(parts)


STATUS_COLUMNS = ("dataset", "run here", "why / note")
DATASETS_ANCHOR = "datasets"


def status_html(statuses: Sequence[Any] | None) -> str:
    """The datasets of the build (:class:`~fer_lib.report.plan.DatasetStatus`): run here or not, and why."""
    parts = [f'<h2 id="{DATASETS_ANCHOR}">Datasets: which ran here, and why not the others</h2>']
    if statuses is None:
        return parts[0] + '<p class="pending">The dataset statuses were not given to this page.</p>'
    head = "".join(f"<th>{c}</th>" for c in STATUS_COLUMNS)
    rows = "".join(f"<tr><td>{html.escape(s.label)}</td><td>{'yes' if s.run else 'no'}</td>"
                   f"<td>{html.escape(('not run: ' if not s.run else '') + s.why)}</td></tr>" for s in statuses)
    return parts[0] + f'<table class="status"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def render_index(out_dir: Path, profile: str, pages: dict[str, str], meta: dict[str, Any],
                 notebooks: Sequence[tuple[str, str]] = NOTEBOOKS, ledger: Sequence[Any] | None = None,
                 ledger_error: str = "", statuses: Sequence[Any] | None = None) -> Path:
    """index.html: banner, the claims ledger, the summary table (published vs reproduced per dataset), the
    dataset statuses (the one place they are listed), links, the build."""
    t3 = P.load(out_dir, P.Table3)
    parts = [f"<h1>DAF-MHSCA reproduction report — profile <code>{html.escape(profile)}</code></h1>",
             f'<div class="banner">{markdown_to_html(banner(profile))}</div>',
             "<p>Paper: Shao, Li and Wu, <i>A Directional Attention Fusion and Multi-Head Spatial-Channel Attention "
             "Network for Facial Expression Recognition</i> (2025). Published numbers are typed in from the paper "
             "(fer_lib/paper.py); reproduced numbers come from the run records under results/runs/.</p>",
             ledger_html(ledger, ledger_error),
             "<h2>Summary: DAF-MHSCA test accuracy (%), published vs reproduced</h2>"]
    if t3:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in t3.index.columns)
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in t3.index.columns) + "</tr>"
                       for r in t3.index.rows)
        parts.append(f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>')
        parts.append(f"<p>{html.escape(t3.index.caption)}</p>")
    else:
        parts.append('<p class="failed">Table 3 has not run: no summary.</p>')
    parts.append(status_html(statuses))
    parts.append("<h2>Pages</h2><ol>")
    for stem, title in notebooks:
        state = pages.get(stem, "not reached")
        link = f'<a href="{stem}.html">{html.escape(title)}</a>' if (out_dir / f"{stem}.html").exists() else html.escape(title)
        css = "ok" if state == "ok" else ("failed" if state.startswith("failed") else "pending")
        parts.append(f'<li>{link} — <span class="{css}">{html.escape(state)}</span></li>')
    parts.append(f'<li><a href="{NOTES_PAGE}.html">Reproduction notes</a> — readings, oddities of the paper, what our runs say</li></ol>')
    parts.append("<h2>This build</h2><table>" + "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in meta.items()) + "</table>")
    path = out_dir / f"{site.INDEX_PAGE}.html"
    write_stylesheets(out_dir)
    path.write_text(standalone(f"DAF-MHSCA reproduction ({profile})", "\n".join(parts), site.INDEX_PAGE, notebooks), encoding="utf-8")
    return path

