"""The notebook runner: papermill executes the numbered notebooks of a profile, in order.

:func:`run` (what ``make report`` calls through :mod:`latentshift.run.cli`), step by step:

1. :func:`plan_run` — load and validate the profile, check files and hardware
   (:func:`preflight`), choose the notebooks (``--only`` / ``--from``) and the folders;
2. take the run folder's lock (:func:`~latentshift.run.bookkeeping.lock_run_folder`) and clear
   what a killed run left;
3. for each notebook: the parameters it declares (:func:`injected_parameters`), its input
   stamp (:func:`input_stamp`: its file, parameters, library code and everything upstream);
   skip it when it is up to date (:func:`is_up_to_date`), else execute it
   (:func:`execute_notebook`, timing and peak memory included) and render its page
   (:func:`latentshift.report.pages.render_html`);
4. :func:`finish_run` — provenance, the ``provenance`` section of ``metrics.json``, the index.

A notebook whose inputs did not change since it last succeeded is skipped, so a re-run after
a failure resumes at the failed notebook. ``force`` reruns everything.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from latentshift import config
from latentshift.data import artifacts
from latentshift.errors import LatentshiftError, PipelineError
from latentshift.record import results
from latentshift.record.provenance import provenance
from latentshift.report import index_page
from latentshift.report import pages as report
from latentshift.run.bookkeeping import (
    PeakMemory,
    inline_figures,
    lock_run_folder,
    remove_stale_temporaries,
)

log = logging.getLogger("latentshift")

KERNEL_NAME = "python3"  # the running interpreter's ipykernel (the project .venv under make)
STATE_FILE = artifacts.STATE_FILE
# keys the runner always offers to notebooks, besides the params sections
RUN_KEYS = ("profile", "run_dir", "seed")


# --- discovery and parameters ----------------------------------------------------------


notebooks = artifacts.notebooks  # the numbered notebooks of the project, in order


def declared_parameters(notebook: Path) -> set[str]:
    """Names declared in the notebook's papermill ``parameters`` cell."""
    import papermill as pm

    return set(pm.inspect_notebook(str(notebook)))


def resolve_paths(params: dict[str, Any], root: Path) -> dict[str, Any]:
    """Make the file paths in params absolute (relative paths are taken from the project root)."""
    params = json.loads(json.dumps(params))  # deep copy of plain data
    params["genesets"]["gmt"] = str(artifacts.resolve_path(params["genesets"]["gmt"], root))
    for section in ("data", "real_transfer"):
        if params[section]["path"]:
            params[section]["path"] = str(artifacts.resolve_path(params[section]["path"], root))
    return params


def preflight(params: dict[str, Any], params_path: Path) -> None:
    """Checks that need the file system or the hardware, made before any notebook starts.

    Raises
    ------
    PipelineError
        A missing data or gene-set file, an unknown gene-set name, a GPU asked for but absent.
    """
    data = params["data"]
    if data["source"] == "h5ad" and not Path(data["path"]).is_file():
        raise PipelineError(
            f"{params_path}: the data file {data['path']} does not exist. Download it with "
            f"`make data PARAMS={params_path}` (or `python -m latentshift fetch {params_path}`; "
            "fill in data.url first), or point data.path at your local copy of the .h5ad file. "
            "For a simulated file of the CELLxGENE shape: "
            f"`python -m latentshift simulate {data['path']}`."
        )
    real = params["real_transfer"]["path"]
    if real and not Path(real).is_file():
        raise PipelineError(
            f"{params_path}: the real cells' file {real} (real_transfer.path) does not exist. "
            "Point real_transfer.path at an .h5ad of real cells, or set it to null."
        )
    from latentshift.model import ldvae_setup
    from latentshift.perturb import genesets

    gmt = Path(params["genesets"]["gmt"])
    try:
        ldvae_setup.check_accelerator(params["ldvae"])
        if not gmt.is_file():
            raise PipelineError(
                f"the gene-set file {gmt} (genesets.gmt) does not exist. "
                "Point genesets.gmt at a GMT file, e.g. params/genesets/disease_genesets.gmt."
            )
        genesets.select_sets(
            genesets.read_gmt(gmt), [e["geneset"] for e in params["perturbations"]]
        )
    except LatentshiftError as exc:
        raise PipelineError(f"{params_path}: {exc}") from None


def injected_parameters(
    declared: set[str], params: dict[str, Any], profile: str, run_folder: Path
) -> dict[str, Any]:
    """The parameters to inject into one notebook: only those it declares."""
    offered: dict[str, Any] = {"profile": profile, "run_dir": str(run_folder), **params}
    return {k: v for k, v in offered.items() if k in declared}


def library_digest() -> str:
    """SHA-256 over the package's code and data files (a change reruns every notebook)."""
    h = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".gmt"}:
            h.update(path.relative_to(package).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def input_stamp(previous: str, notebook: Path, injected: dict[str, Any], lib: str) -> str:
    """A notebook's input stamp: the upstream stamp, its file, its parameters, the library."""
    h = hashlib.sha256()
    h.update(previous.encode())
    h.update(notebook.read_bytes())
    h.update(json.dumps(injected, sort_keys=True).encode())
    h.update(lib.encode())
    return h.hexdigest()


load_state = artifacts.load_state  # state.json: status and stamp per notebook


# --- one run, step by step ---------------------------------------------------------------


@dataclass
class RunPlan:
    """What :func:`run` will do: the profile, its params, the notebooks and the folders.

    Attributes
    ----------
    profile
        The profile name (the params file's stem).
    params
        The resolved params with absolute file paths (what notebooks receive).
    params_as_given
        The resolved params with paths as written in the profile (what reports show).
    notebooks
        The notebooks taking part, in order.
    first, last
        Positions in :attr:`notebooks` of the first and last notebook to run.
    start_from, only, force
        The options that decide whether an up-to-date notebook is rerun.
    run_folder, report_folder
        Where this run's files and its HTML pages go.
    """

    profile: str
    params: dict[str, Any]
    params_as_given: dict[str, Any]
    notebooks: list[Path]
    first: int
    last: int
    start_from: str | None
    only: str | None
    force: bool
    root: Path
    run_folder: Path
    report_folder: Path

    @property
    def names(self) -> list[str]:
        """The notebooks' names (``01_data`` ...)."""
        return [nb.stem for nb in self.notebooks]


def plan_run(
    params_path: str | Path,
    only: str | None = None,
    start_from: str | None = None,
    force: bool = False,
    root: str | Path | None = None,
    run_folder: str | Path | None = None,
    report_folder: str | Path | None = None,
    params: dict[str, Any] | None = None,
    select: Sequence[str] | None = None,
) -> RunPlan:
    """Validate a profile and decide what to run (arguments as in :func:`run`); writes nothing
    but the run and report folders.

    Raises
    ------
    ParamsError, PipelineError
        Invalid params, missing files, unknown notebooks.
    """
    root = artifacts.project_root(root)
    params_path = Path(params_path)
    if not params_path.is_absolute() and not params_path.exists():
        params_path = root / params_path
    resolved = config.validate(params) if params is not None else config.load_params(params_path)
    resolved_paths = resolve_paths(resolved, root)
    profile = config.profile_name(params_path)
    preflight(resolved_paths, params_path)

    chosen = notebooks(root)
    if select:
        chosen = [nb for nb in chosen if any(nb.stem == s or nb.stem.startswith(s) for s in select)]
    if not chosen:
        raise PipelineError(f"no notebooks found in {root / 'notebooks'}")
    names = [nb.stem for nb in chosen]

    def pick(prefix: str, option: str) -> int:
        hits = [i for i, n in enumerate(names) if n == prefix or n.startswith(prefix)]
        if len(hits) != 1:
            raise PipelineError(
                f"{option} {prefix!r} matches no single notebook; choose from {', '.join(names)}."
            )
        return hits[0]

    first = pick(only, "--only") if only else (pick(start_from, "--from") if start_from else 0)
    last = first if only else len(chosen) - 1
    run_path = artifacts.run_dir(profile, run_folder, root)
    report_path = Path(report_folder) if report_folder else root / "reports" / profile
    report_path.mkdir(parents=True, exist_ok=True)
    (run_path / "notebooks").mkdir(parents=True, exist_ok=True)
    return RunPlan(
        profile=profile,
        params=resolved_paths,
        params_as_given=resolved,  # paths as written in the profile: the same in every checkout
        notebooks=chosen,
        first=first,
        last=last,
        start_from=start_from,
        only=only,
        force=force,
        root=root,
        run_folder=run_path,
        report_folder=report_path,
    )


def is_up_to_date(
    plan: RunPlan, index: int, stamp: str, old: dict[str, Any], executed: Path, html_path: Path
) -> bool:
    """Whether notebook ``index`` can be skipped: same stamp, succeeded last time, its files
    still there, and not forced, started from or singled out."""
    return (
        not plan.force
        and not (plan.start_from and index == plan.first)
        and not plan.only
        and old.get("stamp") == stamp
        and old.get("status") in {"ok", "skipped"}
        and executed.exists()
        and html_path.exists()
    )


#: cell tags naming the one design a cell belongs to (untagged cells belong to both)
DESIGN_TAGS: tuple[str, ...] = ("synthetic", "case_control")


def notebook_for_design(notebook: Path, design: str) -> Any:
    """The notebook without the cells tagged for another design (:data:`DESIGN_TAGS`).

    A case-control run never executes the synthetic design's cells and the other way round;
    the executed notebook (and the page) hold only the run's own design.
    """
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    other = {t for t in DESIGN_TAGS if t != design}
    nb.cells = [c for c in nb.cells if not other & set(c.get("metadata", {}).get("tags", []))]
    return nb


def execute_notebook(
    notebook: Path, executed: Path, injected: dict[str, Any], design: str = "synthetic"
) -> dict[str, Any]:
    """Execute one notebook with papermill, watching its time and peak memory.

    Only the cells of ``design`` run (:func:`notebook_for_design`).

    Returns
    -------
    dict
        ``status`` (``ok`` / ``failed``), ``error`` when failed, ``seconds``, ``finished``,
        ``peak_rss_bytes``.
    """
    import papermill as pm

    start = time.time()
    entry: dict[str, Any] = {}
    memory = PeakMemory()
    try:
        with memory, inline_figures():
            pm.execute_notebook(
                notebook_for_design(notebook, design),
                str(executed),
                parameters=injected,
                kernel_name=KERNEL_NAME,
                progress_bar=sys.stderr.isatty() or bool(os.environ.get("LATENTSHIFT_PROGRESS")),
                log_output=False,
                cwd=str(notebook.parent),
            )
        entry["status"] = "ok"
    except pm.PapermillExecutionError as exc:
        entry["status"] = "failed"
        entry["error"] = f"{exc.ename}: {exc.evalue}"
    except Exception as exc:  # noqa: BLE001 - kernel died, notebook unreadable, ...
        entry["status"] = "failed"
        entry["error"] = f"{type(exc).__name__}: {exc}"
    entry["seconds"] = round(time.time() - start, 1)
    entry["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
    entry["peak_rss_bytes"] = memory.peak_bytes
    return entry


def render_page(
    plan: RunPlan, index: int, executed: Path, prov: dict[str, Any], entry: dict[str, Any]
) -> Path:
    """Render notebook ``index`` of the plan as its reader's page (its stderr to the run log)."""
    name = plan.notebooks[index].stem
    footer = report.provenance_markdown(prov, plan.params_as_given, plan.profile, entry)
    show_code = bool(plan.params.get("report", {}).get("show_code", False))
    nav = report.nav_html(name, plan.names, code_toggle=True, show_code=show_code)
    return report.render_html(
        executed,
        plan.report_folder / f"{name}.html",
        footer,
        nav=nav,
        show_code=show_code,
        log_path=plan.run_folder / "logs" / f"{name}.log",
        failed_error=entry.get("error"),
    )


def render_index_of(
    plan: RunPlan, state: dict[str, Any] | None = None, prov: dict[str, Any] | None = None
) -> Path:
    """(Re)write the plan's index page from its run folder (state, provenance, metrics,
    figures). The run of ``report.null_profile`` (the profile's null control, e.g. ``null`` for
    ``demo``) and of ``report.oracle_profile`` (a setting that knows which genes were shifted,
    e.g. ``demo_oracle``) are shown beside the headline when they exist, and so is the recorded
    seed-to-seed spread of the profile's headline (:func:`recorded_spread`)."""
    folder = plan.run_folder
    if state is None:
        state = load_state(folder)
    if prov is None:
        path = folder / "provenance.json"
        prov = json.loads(path.read_text()) if path.is_file() else {}

    def metrics_of(key: str) -> dict[str, Any] | None:
        other = plan.params.get("report", {}).get(key)
        if not other or other == plan.profile:
            return None
        return artifacts.read_metrics(plan.root / "runs" / other) or None

    null_metrics = metrics_of("null_profile")
    return index_page.render_index(
        plan.profile,
        plan.params_as_given,
        artifacts.read_metrics(folder),
        state,
        plan.names,
        plan.report_folder / "index.html",
        prov,
        null_metrics=null_metrics,
        oracle_metrics=metrics_of("oracle_profile"),
        figures=folder / "figures",
        seed_spread=recorded_spread(plan.root, plan.profile),
    )


def recorded_spread(root: Path, profile: str) -> dict[str, Any] | None:
    """The recorded seed-to-seed spread of a profile's headline (``results/<profile>_seeds.csv``,
    made by the seed study and ``python -m latentshift results``), or None."""
    path = root / results.RESULTS_DIR / f"{profile}_seeds.csv"
    if not path.is_file():
        return None
    try:
        return results.seed_spread(pd.read_csv(path))
    except (results.ResultsError, KeyError) as exc:
        log.warning(
            "the recorded seed spread %s is not usable (%s); the index leaves it out",
            path.name,
            exc,
        )
        return None


def finish_run(plan: RunPlan, state: dict[str, Any], prov: dict[str, Any]) -> None:
    """Close a run: ``provenance.json``, the ``provenance`` section of ``metrics.json`` (no
    times in it, so it stays byte-reproducible) and the index page."""
    prov["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
    prov["notebooks"] = {n: state.get(n, {}).get("status", "not run") for n in plan.names}
    artifacts.write_json(prov, plan.run_folder / "provenance.json")
    artifacts.update_metrics(
        plan.run_folder,
        "provenance",
        {
            "profile": plan.profile,
            "params": plan.params_as_given,
            **{
                k: prov[k] for k in ("python", "packages", "git_commit", "git_dirty", "data_sha256")
            },
        },
    )
    render_index_of(plan, state, prov)
    log.info("index: %s", plan.report_folder / "index.html")


def run(
    params_path: str | Path,
    only: str | None = None,
    start_from: str | None = None,
    force: bool = False,
    root: str | Path | None = None,
    run_folder: str | Path | None = None,
    report_folder: str | Path | None = None,
    params: dict[str, Any] | None = None,
    select: Sequence[str] | None = None,
) -> int:
    """Run the pipeline for one profile.

    Parameters
    ----------
    params_path
        The profile YAML.
    only
        Run just this notebook (name or number prefix, e.g. ``"03"``).
    start_from
        Run from this notebook on, rerunning it and everything after it.
    force
        Rerun every notebook even if it is up to date.
    root
        Project root (default: found from the current folder).
    run_folder, report_folder
        Where this run's files and HTML go (default ``runs/<profile>`` and ``reports/<profile>``).
    params
        Raw params to use instead of reading ``params_path`` (validated the same way); the
        profile name still comes from ``params_path``. Used by the dose-response sweep.
    select
        Only these notebooks (names or number prefixes) take part; the others are ignored.

    Returns
    -------
    int
        0 when every notebook succeeded, 1 when one failed.
    """
    plan = plan_run(
        params_path, only, start_from, force, root, run_folder, report_folder, params, select
    )
    folder = plan.run_folder
    artifacts.write_text(yaml.safe_dump(plan.params, sort_keys=False), folder / "params.yaml")
    lock = lock_run_folder(folder, plan.profile)
    remove_stale_temporaries(folder)
    started = _dt.datetime.now().isoformat(timespec="seconds")
    prov = {**provenance(plan.params, plan.root, folder), "started": started}
    state = load_state(folder)
    lib = library_digest()
    previous = ""
    failed = False
    n = len(plan.notebooks)
    os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")
    log.info(
        "profile %s: %d notebooks → %s",
        plan.profile,
        plan.last - plan.first + 1,
        plan.report_folder,
    )
    for i, nb in enumerate(plan.notebooks):
        name = nb.stem
        injected = injected_parameters(declared_parameters(nb), plan.params, plan.profile, folder)
        stamp = previous = input_stamp(previous, nb, injected, lib)
        if i < plan.first or i > plan.last:
            continue
        executed = folder / "notebooks" / nb.name
        html_path = plan.report_folder / f"{name}.html"
        old = state.get(name, {})
        if is_up_to_date(plan, i, stamp, old, executed, html_path):
            log.info("[%d/%d] %s is up to date (inputs unchanged) — skipped", i + 1, n, name)
            state[name] = {**old, "status": "skipped"}
            continue
        log.info("[%d/%d] %s: running (%d parameters injected)", i + 1, n, name, len(injected))
        entry: dict[str, Any] = {
            "stamp": stamp,
            "started": _dt.datetime.now().isoformat(timespec="seconds"),
        }
        state[name] = {"status": "running", **entry}
        artifacts.write_json(state, folder / STATE_FILE)
        entry.update(
            execute_notebook(nb, executed, injected, plan.params.get("design", "synthetic"))
        )
        artifacts.update_timings(folder, f"notebook_{name}_seconds", entry["seconds"])
        artifacts.update_timings(folder, f"notebook_{name}_peak_rss_bytes", entry["peak_rss_bytes"])
        state[name] = entry
        artifacts.write_json(state, folder / STATE_FILE)
        if executed.exists():
            render_page(plan, i, executed, prov, entry)
        if entry["status"] == "failed":
            failed = True
            log.error(
                "[%d/%d] %s FAILED after %.0f s: %s\n  executed notebook: %s\n  report: %s",
                i + 1,
                n,
                name,
                entry["seconds"],
                entry["error"],
                executed,
                html_path,
            )
            break
        log.info(
            "[%d/%d] %s: done in %.0f s, peak memory %.2f GB → %s",
            i + 1,
            n,
            name,
            entry["seconds"],
            entry["peak_rss_bytes"] / 1e9,
            html_path,
        )
    finish_run(plan, state, prov)
    lock.close()
    return 1 if failed else 0
