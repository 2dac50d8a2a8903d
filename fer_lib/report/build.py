"""The build: make the plan, train every planned run, execute the notebooks, render the pages.

``python -m fer_lib.report --profile smoke`` (what ``run_all.sh`` calls) makes the
:class:`~fer_lib.report.plan.ReportPlan`, trains the runs that have no record (the only place
the report trains), writes ``plan.json`` into the output folder, executes ``notebooks/*.ipynb``
with papermill (each reads that plan) and renders an index page, one page per notebook and the
reproduction notes. The HTML needs no network: no script comes from a CDN, and every page links the
stylesheets written once beside it (:mod:`fer_lib.report.site`). A notebook that leaves stdout, stderr
or a bare value on its page, or a page over 1.5 MB, fails the build like a failing notebook.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from fer_lib import claims, paper
from fer_lib.data import DatasetError
from fer_lib.engine import PROFILES as ENGINE_PROFILES
from fer_lib.engine import ConfigError, get_run, load_model, rebuild_weights
from fer_lib.engine.records import machine_line
from fer_lib.engine.runs import validate
from fer_lib.report import parallel, site
from fer_lib.report import published as P
from fer_lib.report.html import render_index, render_notebook, render_notes, write_stylesheets
from fer_lib.report.plan import (
    NOTEBOOK_DIR,
    NOTEBOOKS,
    PROFILES,
    REPORT_DIR,
    TIMED_NOTEBOOKS,
    ReportPlan,
    UnknownDataset,
    check_datasets,
    make_plan,
    recipe_for,
    scope_note,
)
from fer_lib.report.results import fetch
from fer_lib.report.tables import summary_markdown

# ``./run_all.sh`` with no --profile: the built-in faces at a budget where DAF-MHSCA learns them (docs/report.md
# has its time and accuracy); the test suite builds the smaller smoke profile.
DEFAULT_PROFILE = "demo"
CELL_TIMEOUT_ENV = "FER_CELL_TIMEOUT"


def prepare_output(out_dir: Path, force: bool) -> Path | None:
    """Refuse to reuse a non-empty report folder unless ``force``; then move the old one aside (never deleted)."""
    if not out_dir.exists() or not any(out_dir.iterdir()):
        out_dir.mkdir(parents=True, exist_ok=True)
        return None
    if not force:
        raise FileExistsError(f"{out_dir} already holds a report: pass --force to move it aside (to {out_dir.name}.<date>) and rebuild")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(out_dir.stat().st_mtime))
    aside = out_dir.with_name(f"{out_dir.name}.{stamp}")
    k = 1
    while aside.exists():
        aside = out_dir.with_name(f"{out_dir.name}.{stamp}-{k}")
        k += 1
    out_dir.rename(aside)
    out_dir.mkdir(parents=True)
    return aside


def untrainable_reason(cfg: Any) -> str:
    """Why the engine would refuse ``cfg`` (unknown model, dataset, recipe...), or ""."""
    try:
        validate(cfg)
    except ConfigError as exc:
        return str(exc)
    return ""


def train_planned(plan: ReportPlan, device: str | None = None, say: Callable[[str], None] = print) -> dict[str, str]:
    """Train every planned run that has no record yet, one after another with a counter; returns the
    runs that could not be trained (id -> why), which the notebooks show as "not run"."""
    cfgs = plan.configs()
    say(f"[report] {len(cfgs)} runs needed")
    skipped: dict[str, str] = {}
    for k, cfg in enumerate(cfgs, start=1):
        head = f"[report] run {k}/{len(cfgs)} {cfg.id}"
        why = untrainable_reason(cfg)
        if why:
            say(f"{head}: not run ({why})")
            skipped[cfg.id] = why
            continue
        try:
            if get_run(cfg, train=False) is not None:
                say(f"{head}: cached")
                continue
            what = " ".join(str(x) for x in (cfg.model, cfg.model_options or "", cfg.loss_options or "", cfg.overrides or "") if x)
            say(f"{head}: training ({what}, seed {cfg.seed})")
            t0 = time.time()
            get_run(cfg, train=True, device=device or None)
            say(f"{head}: done in {time.time() - t0:.0f} s")
        except (ConfigError, DatasetError, FileNotFoundError) as exc:
            skipped[cfg.id] = f"{type(exc).__name__}: {exc}"
            say(f"{head}: not run ({skipped[cfg.id]})")
    return skipped


def rebuild_checkpoints(plan: ReportPlan, device: str | None = None, say: Callable[[str], None] = print) -> None:
    """The figure runs' checkpoints (not committed: absent in a fresh clone), retrained where missing."""
    for cfg in plan.configs(["figures"]):
        record = get_run(cfg, train=False) if cfg.id not in plan.skipped else None
        if record is None:
            continue
        try:
            load_model(record)
        except FileNotFoundError:
            say(f"[report] checkpoint of {record.id} missing: retraining it to rebuild the weights")
            rebuild_weights(record, device=device or None, strict=False)


def ledger_groups(plan: ReportPlan) -> dict[str, dict[Any, list[Any]]]:
    """The plan's run groups as records (None: no record; fetched, never trained), keyed as
    :func:`fer_lib.claims.ledger` reads them: Table 3 under each dataset's main recipe only (RAF-DB's
    working lr, not Table 2's printed one), theta by its value."""
    def records(cfgs: Sequence[Any]) -> list[Any]:
        return [o.record for o in fetch(cfgs, no_train=True, skipped=plan.skipped)]

    groups: dict[str, dict[Any, list[Any]]] = {}
    groups["table3"] = {k: records(cfgs) for k, cfgs in plan.groups.get("table3", {}).items()
                        if k[2] == recipe_for(k[1], plan.profile)}
    groups["table4"] = {k: records(cfgs) for k, cfgs in plan.groups.get("table4", {}).items()}
    groups["table5"] = {k: records(cfgs) for k, cfgs in plan.groups.get("table5", {}).items()}
    groups["theta"] = {(k[0] if isinstance(k, tuple) else k): records(cfgs) for k, cfgs in plan.groups.get("theta", {}).items()}
    return groups


def claims_ledger(plan: ReportPlan) -> list[claims.Row]:
    """The claims ledger of this build: one row per claim of the paper (and our control), judged from
    the records of the plan's run groups by the one rule of :mod:`fer_lib.engine.evidence`."""
    missing = {s.name: s.why for s in plan.statuses if not s.run and s.why}
    return claims.ledger(ledger_groups(plan), list(paper.DATASETS), smoke=ENGINE_PROFILES[plan.profile].synthetic,
                         budget=ENGINE_PROFILES[plan.profile].describe(), figure_dataset=plan.figure, missing=missing)


def ledger_json(rows: Sequence[claims.Row]) -> list[dict[str, Any]]:
    """The ledger as plain data for build.json: one object per row."""
    return [{"claim": r.claim, "source": r.source, "page": r.page, "ours": r.ours, "verdict": r.verdict,
             "why": r.why, "extra": r.extra} for r in rows]


class NotebookFailed(RuntimeError):
    """A notebook raised: its name and the error's last line (the executed .ipynb and its page keep the traceback)."""

    def __init__(self, stem: str, error: str):
        super().__init__(f"{stem}: {error}")
        self.stem, self.error = stem, error


def error_line(exc: BaseException) -> str:
    """``Name: message`` of an exception; for a papermill error, the notebook's own exception."""
    if getattr(exc, "ename", None):
        return f"{exc.ename}: {exc.evalue}"
    return f"{type(exc).__name__}: {exc}"


def execute(stem: str, params: dict[str, Any], out_dir: Path, notebook_dir: Path = NOTEBOOK_DIR,
            log_output: bool = True) -> Path:
    """Run one notebook with papermill into ``out_dir`` (cell output streams to the log if ``log_output``).

    A cell that runs longer than $FER_CELL_TIMEOUT seconds (default: none) fails the notebook
    instead of hanging the build.
    """
    import papermill as pm

    from fer_lib import PROJECT_ROOT

    out = out_dir / f"{stem}.ipynb"
    source = notebook_dir / f"{stem}.ipynb"
    if "interactive" in pm.inspect_notebook(str(source)):
        # No live widgets in a build: a page without a kernel cannot use them, and nbclient intermittently
        # never returns from a cell that creates them (jupyter/nbclient#312; about one build in two here).
        params = {**params, "interactive": False}
    timeout = int(os.environ[CELL_TIMEOUT_ENV]) if os.environ.get(CELL_TIMEOUT_ENV) else None
    # The kernel's working directory goes through nbclient's resources, not papermill's cwd=, which
    # changes the directory of the whole process (two notebooks run at once, fer_lib.report.parallel).
    pm.execute_notebook(str(source), str(out), parameters=params, kernel_name="python3",
                        log_output=log_output, progress_bar=False, execution_timeout=timeout,
                        start_timeout=120, resources={"metadata": {"path": str(PROJECT_ROOT)}})
    return out


def render_page(stem: str, out: Path, plan: ReportPlan, command: str,
                notebook_list: Sequence[tuple[str, str]] = NOTEBOOKS) -> Path:
    """The page of an executed notebook: navigation bar, "Rebuild this" box, then the notebook."""
    box = site.page_box(stem, plan, out, command, machine_line())
    return render_notebook(out / f"{stem}.ipynb", out / f"{stem}.html", nav=site.nav_html(stem, notebook_list), box=box)


def check_page(stem: str, out: Path) -> None:
    """The site's rules on an executed notebook and its page (:class:`site.PageCheckFailed` if broken)."""
    site.check_outputs(out / f"{stem}.ipynb", stem)
    site.check_page_size(out / f"{stem}.html")


def build(profile: str = "smoke", datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
          device: str | None = None, out_dir: str | os.PathLike | None = None, force: bool = False,
          notebooks: Sequence[str] | None = None, no_train: bool = False, pretrain: bool = True,
          say: Callable[[str], None] = print, notebook_list: Sequence[tuple[str, str]] = NOTEBOOKS,
          notebook_dir: Path = NOTEBOOK_DIR, jobs: int | None = None) -> Path:
    """The whole report: plan, train what is missing, execute every notebook, render the pages. Returns index.html.

    Notebooks run ``jobs`` at a time (default :func:`parallel.default_jobs`); pages that time code
    (``plan.TIMED_NOTEBOOKS``) run last, one at a time, with every core. A notebook that runs alone streams
    its cell output to the log. A failing notebook stops the build: no new page starts, pages already running
    finish, the index marks it failed and the pages never started "not reached". So does a
    notebook that breaks a rule of the site (:func:`check_page`), and an index or notes page over 1.5 MB
    raises :class:`site.PageCheckFailed` at the end.
    """
    plan = make_plan(profile, datasets, seeds, no_train=no_train)  # an unknown profile or dataset fails here, first
    out = (Path(out_dir) if out_dir else REPORT_DIR / profile).resolve()
    aside = prepare_output(out, force)
    if aside is not None:
        say(f"[report] previous report moved to {aside}")
    for s in plan.statuses:
        say(f"[report] {s.label}: {'run' if s.run else 'not run'}{' — ' + s.why if s.why else ''}")
    started = time.time()
    write_stylesheets(out)
    meta = {"profile": profile, "datasets requested": " ".join(plan.datasets), "seeds": " ".join(map(str, plan.seeds)),
            "started (UTC)": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "machine": machine_line(),
            "command": f"run_all.sh --profile {profile} --datasets {' '.join(plan.datasets)}",
            "scope": scope_note(profile) or "as in the paper"}
    if no_train:
        meta["command"] += " --no-train"
        say("[report] --no-train: only runs already recorded are shown; the others say 'not trained yet'")
    elif pretrain:
        plan.skipped = train_planned(plan, device, say)
        rebuild_checkpoints(plan, device, say)
    params = {"profile": profile, "datasets": plan.datasets, "seeds": plan.seeds, "device": device or "",
              "output_dir": str(out.resolve()), "plan": str(plan.save(out).resolve()), "no_train": no_train}
    command = site.rebuild_command(profile, plan.datasets, plan.seeds, device or "", no_train)
    pages: dict[str, str] = {}
    chosen = [s for s, _ in notebook_list if not notebooks or s in notebooks]
    jobs = parallel.default_jobs() if jobs is None else jobs
    number = {stem: k for k, stem in enumerate(chosen, start=1)}
    shared = [s for s in chosen if s not in TIMED_NOTEBOOKS]
    timed = [s for s in chosen if s in TIMED_NOTEBOOKS]
    alone = set(timed) | (set() if parallel.concurrent(shared, jobs) else set(shared))

    def run_page(stem: str) -> None:
        say(f"[report] notebook {number[stem]}/{len(chosen)} {stem}: executing")
        t0 = time.time()
        try:
            execute(stem, params, out, notebook_dir, log_output=stem in alone)
        except Exception as exc:
            pages[stem] = f"failed: {error_line(exc)}"
            if (out / f"{stem}.ipynb").exists():
                render_page(stem, out, plan, command, notebook_list)  # the page shows the traceback
            say(f"[report] FAILED {stem}: {error_line(exc)}")
            raise NotebookFailed(stem, error_line(exc)) from exc
        render_page(stem, out, plan, command, notebook_list)
        try:
            check_page(stem, out)
        except site.PageCheckFailed as exc:
            pages[stem] = f"failed: {exc}"
            say(f"[report] FAILED {stem}: {exc}")
            raise NotebookFailed(stem, str(exc)) from exc
        pages[stem] = "ok"
        say(f"[report] notebook {number[stem]}/{len(chosen)} {stem}: done in {time.time() - t0:.0f} s -> {out / (stem + '.html')}")

    try:
        parallel.run_all(shared, run_page, jobs)
        parallel.run_all(timed, run_page, 1)  # one at a time, every core
    finally:
        meta["duration"] = f"{time.time() - started:.0f} s"
        try:
            ledger, ledger_error = claims_ledger(plan), ""
        except Exception as exc:  # the index still renders, and says why the ledger is absent
            ledger, ledger_error = None, error_line(exc)
            say(f"[report] claims ledger failed: {ledger_error}")
        render_notes(out, profile, ledger)
        index = render_index(out, profile, pages, meta, notebook_list, ledger=ledger, ledger_error=ledger_error,
                             statuses=plan.statuses)
        pages = {stem: pages[stem] for stem in chosen if stem in pages}  # reading order, not finishing order
        (out / "build.json").write_text(json.dumps({**meta, "pages": pages, "claims": ledger_json(ledger or []),
                                                    **({"claims error": ledger_error} if ledger_error else {})}, indent=1) + "\n")
        t3 = P.load(out, P.Table3)
        if t3 is not None:
            (out / "summary.md").write_text(summary_markdown(t3.index))
    for page in (index, out / f"{site.NOTES_PAGE}.html"):
        site.check_page_size(page)
    say(f"[report] done in {time.time() - started:.0f} s: {index}")
    return index


def print_plan(plan: ReportPlan) -> None:
    """``--plan``: each dataset's status, then every run id the build needs and whether it is recorded."""
    for s in plan.statuses:
        print(f"{s.label}: {'run' if s.run else 'not run'}{' — ' + s.why if s.why else ''}")
    cfgs = plan.configs()
    for cfg in cfgs:
        why = untrainable_reason(cfg)
        state = f"not run ({why})" if why else ("cached" if get_run(cfg, train=False) else "to train")
        over = f" overrides={cfg.overrides}" if cfg.overrides else ""
        print(f"{cfg.id}  {state}  {cfg.model} {cfg.model_options} {cfg.loss_options} recipe={cfg.recipe} seed={cfg.seed}{over}")
    print(f"{len(cfgs)} runs")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fer_lib.report [--profile P] [--datasets ...] [--seeds ...] [--device D] [--out DIR] [--force]
    [--notebooks ...] [--plan] [--no-train] [--jobs N]``."""
    parser = argparse.ArgumentParser(prog="python -m fer_lib.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=PROFILES)
    parser.add_argument("--datasets", nargs="+", default=None, help="default: synthetic on smoke and demo, the paper's five otherwise")
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: the engine's choice)")
    parser.add_argument("--out", default=None, help="default results/report/<profile>")
    parser.add_argument("--force", action="store_true", help="move an existing report aside instead of refusing")
    parser.add_argument("--notebooks", nargs="+", default=None, help="only these notebook stems")
    parser.add_argument("--plan", action="store_true", help="list every run the build needs (and which are cached), train nothing")
    parser.add_argument("--no-train", action="store_true", help="render from the runs already recorded; train nothing")
    parser.add_argument("--jobs", type=int, default=None,
                        help="notebooks executed at once (default 2 on 2 or more cores; 1 also logs their cell output)")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs must be 1 or more (1: one notebook at a time), not {args.jobs}")
    try:
        check_datasets(args.datasets or [])
    except UnknownDataset as exc:
        print(f"[report] {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("papermill").setLevel(logging.INFO)
    if args.plan:
        print_plan(make_plan(args.profile, args.datasets, args.seeds))
        return 0
    try:
        build(args.profile, args.datasets, args.seeds, args.device, args.out, args.force, args.notebooks, no_train=args.no_train,
              jobs=args.jobs)
    except FileExistsError as exc:
        print(f"[report] {exc}", file=sys.stderr)
        return 2
    except NotebookFailed as exc:
        print(f"[report] stopped: notebook {exc.stem} failed: {exc.error}", file=sys.stderr)
        return 1
    except site.PageCheckFailed as exc:
        print(f"[report] stopped: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
