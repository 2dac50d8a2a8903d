"""The site around the pages: one stylesheet, one navigation bar, the page checks and the "Rebuild this" box.

Every page links ``report.css`` (written once into the output folder); notebook pages also link
``notebook.css`` (nbconvert's lab CSS, written once instead of inlined in each page). The build
fails on a page over :data:`MAX_PAGE_BYTES` and on a notebook that leaves stdout, stderr or a bare
value on its page (:func:`check_outputs`).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from fer_lib.engine.records import RunRecord, load_record, run_hardware, runs_dir
from fer_lib.report.plan import NOTEBOOKS, ReportPlan

STYLESHEET = "report.css"
NOTEBOOK_STYLESHEET = "notebook.css"
INDEX_PAGE = "index"
NOTES_PAGE = "reproduction_notes"
MAX_PAGE_BYTES = 1_500_000
STRAY_OUTPUTS = ("stream", "execute_result")

SITE_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
p, li, dd, blockquote, .banner, .rule { max-width: 75ch; }
p:has(img) { max-width: none; }
img { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.banner { border: 2px solid #d7191c; background: #fff3f0; padding: 0.6em 1em; margin: 1em 0; }
.verdict-supported { color: #1a9641; font-weight: bold; } .verdict-contradicted { color: #d7191c; font-weight: bold; }
tr.extra td { background: #f7f7ff; }
.ok { color: #1a9641; } .failed { color: #d7191c; font-weight: bold; } .pending { color: #888; }
code, pre { background: #f6f6f6; padding: 1px 3px; }
pre { padding: 0.6em; overflow-x: auto; }
nav.site-nav { display: flex; flex-wrap: wrap; gap: 0.4em 1.5em; padding: 0.5em 0; margin-bottom: 1em; border-bottom: 1px solid #ccc; font-size: 14px; }
nav.site-nav a[aria-current] { color: #222; font-weight: bold; text-decoration: none; }
details.rebuild { border: 1px solid #bbb; background: #fafafa; padding: 0.4em 1em; margin: 0 0 1em; font-size: 14px; }
details.rebuild summary { cursor: pointer; font-weight: bold; }
details.rebuild pre { white-space: pre-wrap; }
/* Notebook pages (nbconvert's lab markup): prose at a readable width, outputs as wide as the page. */
body.jp-Notebook { padding: 0 1em; }
.jp-Notebook .jp-Cell { padding-left: 0; padding-right: 0; }
.jp-RenderedHTMLCommon p, .jp-RenderedHTMLCommon li, .jp-RenderedHTMLCommon blockquote { max-width: 75ch; }
"""


# ---------------------------------------------------------------- stylesheets and navigation


def stylesheet_links(notebook: bool = False) -> str:
    """The <link> elements of a page: nbconvert's CSS first (notebook pages only), then the site's."""
    sheets = ([NOTEBOOK_STYLESHEET] if notebook else []) + [STYLESHEET]
    return "\n".join(f'<link rel="stylesheet" href="{s}">' for s in sheets)


def write_file(path: Path, text: str) -> Path:
    """Write ``text`` unless ``path`` already holds it."""
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


def page_order(notebooks: Sequence[tuple[str, str]] = NOTEBOOKS) -> list[tuple[str, str]]:
    """(page stem, title) in reading order: the index, the notebooks, the reproduction notes."""
    return [(INDEX_PAGE, "Contents"), *notebooks, (NOTES_PAGE, "Reproduction notes")]


def nav_html(current: str, notebooks: Sequence[tuple[str, str]] = NOTEBOOKS) -> str:
    """The navigation bar of every page: Contents, the previous and next page in reading order (where
    there is one), the reproduction notes; the link to the page itself is marked ``aria-current``."""
    order = page_order(notebooks)
    stems = [s for s, _ in order]
    k = stems.index(current) if current in stems else None

    def link(stem: str, title: str, rel: str = "") -> str:
        attr = (f' rel="{rel}"' if rel else "") + (' aria-current="page"' if stem == current and not rel else "")
        short = title.split(":")[0]  # "Table 4: ablations" -> "Table 4"; the whole title on hover
        attr += f' title="{html.escape(title)}"' if short != title else ""
        return f'<a href="{stem}.html"{attr}>{html.escape(short)}</a>'

    parts = [link(INDEX_PAGE, "Contents")]
    if k:
        parts.append(f"&larr; {link(*order[k - 1], rel='prev')}")
    if k is not None and k + 1 < len(order):
        parts.append(f"{link(*order[k + 1], rel='next')} &rarr;")
    parts.append(link(NOTES_PAGE, "Reproduction notes"))
    return '<nav class="site-nav">' + "".join(f"<span>{p}</span>" for p in parts) + "</nav>"


# ---------------------------------------------------------------- checks


class PageCheckFailed(ValueError):
    """A rendered page or an executed notebook breaks a rule of the site."""


def stray_outputs(nb: Any) -> list[tuple[int, int, str]]:
    """(cell index in the executed notebook, in the source notebook, output kind) of every stdout,
    stderr or bare value; papermill's injected parameters cell is not counted in the source index."""
    found, injected = [], 0
    for i, cell in enumerate(nb.cells):
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            injected += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") in STRAY_OUTPUTS:
                kind = out.get("name", "stream") if out["output_type"] == "stream" else "execute_result (a bare value)"
                found.append((i, i - injected, kind))
    return found


def check_outputs(ipynb: str | Path, stem: str | None = None) -> None:
    """Raise :class:`PageCheckFailed` naming the notebook and cell if an executed notebook has a stream
    (stdout / stderr) or execute_result output; display_data outputs are fine."""
    import nbformat

    name = stem or Path(ipynb).stem
    found = stray_outputs(nbformat.read(str(ipynb), as_version=4))
    if found:
        where = "; ".join(f"cell {src} ({kind}; cell {i} of the executed copy)" for i, src, kind in found)
        raise PageCheckFailed(f"{name} leaves output on its page that is not display_data: {where}. "
                              "Quiet it, assign the value or end the line with ';'")


def check_page_size(path: str | Path, limit: int = MAX_PAGE_BYTES) -> int:
    """The size of a page in bytes; :class:`PageCheckFailed` naming it if it is over ``limit``."""
    size = Path(path).stat().st_size
    if size > limit:
        raise PageCheckFailed(f"page {Path(path).name} is {size / 1e6:.1f} MB, over the {limit / 1e6:.1f} MB limit "
                              "(save figures as files beside the page instead of embedding them)")
    return size


# ---------------------------------------------------------------- the rebuild box

# The plan groups each notebook fetches ("group" or "group:key"); () = reads no run record.
PAGE_GROUPS: dict[str, tuple[str, ...]] = {
    "01_table3_accuracy": ("table3",),
    "02_table4_ablations": ("table4",),
    "03_table5_heads": ("table5",),
    "04_fig5_confusion": ("figures",),
    "05_fig6_tsne": ("figures",),
    "06_fig7_attention": ("figures",),
    "07_fig8_theta": ("theta",),
    "08_fig9_efficiency": (),
    "09_explore_heads": ("figures",),
    "10_attributions": ("figures",),
    "11_walkthrough": ("figures:DAF-MHSCA",),
    "12_training_curves": ("table3", "table4", "table5", "theta"),
}


def rebuild_command(profile: str, datasets: Sequence[str], seeds: Sequence[int], device: str = "", no_train: bool = False) -> str:
    """The command that rebuilds this report."""
    cmd = f"./run_all.sh --profile {profile} --datasets {' '.join(datasets)} --seeds {' '.join(map(str, seeds))}"
    return cmd + (f" --device {device}" if device else "") + (" --no-train" if no_train else "")


def planned_ids(plan: ReportPlan, groups: Iterable[str]) -> list[str]:
    """Run ids of plan groups ("group" or "group:key"), without duplicates, in plan order."""
    ids: list[str] = []
    for entry in groups:
        name, _, key = entry.partition(":")
        for k, cfgs in plan.groups.get(name, {}).items():
            if not key or k == key:
                ids += [c.id for c in cfgs if c.id not in ids]
    return ids


def page_run_ids(stem: str, plan: ReportPlan, out_dir: Path) -> list[str] | None:
    """The runs a page used: its published ``runs`` list where it has one, else its plan groups
    (:data:`PAGE_GROUPS`); None when unknown."""
    path = Path(out_dir) / f"{stem}.json"
    runs = json.loads(path.read_text()).get("runs") if path.exists() else None
    if isinstance(runs, list) and all(isinstance(r, str) for r in runs):
        return list(dict.fromkeys(runs))
    if stem not in PAGE_GROUPS:
        return None
    return planned_ids(plan, PAGE_GROUPS[stem])


@dataclass
class RunsFacts:
    """What the rebuild box says about a page's runs."""

    ids: list[str]
    missing: list[str] = field(default_factory=list)  # planned, without a finished record
    fingerprints: dict[str, list[str]] = field(default_factory=dict)  # dataset -> data fingerprints
    environments: list[str] = field(default_factory=list)
    seconds: float = 0.0
    epochs: int = 0


def environment_line(env: dict[str, Any]) -> str:
    """Python, torch, precision and hardware of a run, from its env.json."""
    return (f"python {env.get('python', '?')}, torch {env.get('torch', '?')}, precision {env.get('precision', '?')}, "
            f"{run_hardware(env)}")


def runs_facts(ids: Sequence[str], root: str | Path | None = None) -> RunsFacts:
    """Fingerprints, environments and compute (training and evaluation seconds of every epoch) of runs."""
    facts = RunsFacts(list(ids))
    for run_id in ids:
        record: RunRecord | None = load_record(runs_dir(root) / run_id)
        if record is None:
            facts.missing.append(run_id)
            continue
        prints = facts.fingerprints.setdefault(str(record.data.get("name", record.config.dataset)), [])
        fp = str(record.data.get("fingerprint") or "not recorded")
        prints += [fp] if fp not in prints else []
        env = environment_line(record.env) if record.env else "not recorded"
        facts.environments += [env] if env not in facts.environments else []
        facts.seconds += sum(float(h.get("seconds") or 0) + float(h.get("eval_seconds") or 0) for h in record.history)
        facts.epochs += len(record.history)
    return facts


def _duration(seconds: float) -> str:
    """Seconds, with minutes or hours beside them when long."""
    if seconds >= 3600:
        return f"{seconds:.0f} s ({seconds / 3600:.2f} h)"
    return f"{seconds:.0f} s ({seconds / 60:.1f} min)" if seconds >= 120 else f"{seconds:.0f} s"


def _items(values: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{v}</li>" for v in values) + "</ul>"


def rebuild_box(command: str, facts: RunsFacts | None, machine: str, note: str = "") -> str:
    """The "Rebuild this" box of a notebook page (HTML): command, runs, data checksums, environment, compute.
    ``facts`` None: the page's runs are unknown, and the box says so."""
    e = html.escape
    parts = ['<details class="rebuild"><summary>Rebuild this</summary>',
             f"<p>Command (from the project folder):</p><pre><code>{e(command)}</code></pre>",
             f"<p>Pages executed on: {e(machine)}</p>"]
    if facts is None:
        parts.append("<p>Runs: unknown (this page does not say which run records it read).</p>")
    elif not facts.ids:
        parts.append(f"<p>Runs: none; this page reads no run record{': ' + e(note) if note else ''}.</p>")
    else:
        found = len(facts.ids) - len(facts.missing)
        parts.append(f"<p>Runs ({len(facts.ids)}, folders under results/runs/):</p>"
                     + _items(f"<code>{e(i)}</code>" + (" (no finished record)" if i in facts.missing else "") for i in facts.ids))
        parts.append("<p>Data checksums (each run's recorded data fingerprint):</p>"
                     + _items(f"{e(d)}: <code>{e(', '.join(fps))}</code>" for d, fps in facts.fingerprints.items()))
        parts.append("<p>Environment of the runs:</p>" + _items(e(x) for x in facts.environments))
        parts.append(f"<p>Compute: {_duration(facts.seconds)} of training and evaluation over {facts.epochs} epochs "
                     f"of {found} run{'s' if found != 1 else ''} (sum of each epoch's seconds and eval_seconds in history.jsonl).</p>")
    parts.append("</details>")
    return "\n".join(parts)


PAGE_NOTES = {"08_fig9_efficiency": "it measures freshly built models on the machine that executes it"}


def page_box(stem: str, plan: ReportPlan, out_dir: Path, command: str, machine: str) -> str:
    """The rebuild box of one notebook page of a build."""
    ids = page_run_ids(stem, plan, out_dir)
    return rebuild_box(command, None if ids is None else runs_facts(ids), machine, PAGE_NOTES.get(stem, ""))
