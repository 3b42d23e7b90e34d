"""The pipeline runner: papermill executes the numbered notebooks, nbconvert renders them.

``python -m latentshift run params/demo.yaml`` (what ``make report`` calls):

1. loads and validates the profile before any notebook starts;
2. runs ``notebooks/NN_*.ipynb`` in order with papermill, injecting into each only the
   parameters its ``parameters`` cell declares, writing executed notebooks to
   ``runs/<profile>/notebooks/``;
3. renders each to ``reports/<profile>/NN_name.html`` (images embedded) and writes
   ``reports/<profile>/index.html`` with the headline numbers from ``metrics.json``.

A notebook whose inputs (its own file, its parameters, the library code and everything
upstream) did not change since it last succeeded is skipped, so a re-run after a failure
resumes at the failed notebook. ``--force`` reruns everything.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import html
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from latentshift import artifacts, config, fetch

log = logging.getLogger("latentshift")

KERNEL_NAME = "python3"  # the running interpreter's ipykernel (the project .venv under make)
STATE_FILE = "state.json"
# keys the runner always offers to notebooks, besides the params sections
RUN_KEYS = ("profile", "run_dir", "seed")


class PipelineError(RuntimeError):
    """The pipeline cannot start or a notebook failed; the message says which and why."""


# --- discovery and parameters ----------------------------------------------------------


def notebooks(root: Path) -> list[Path]:
    """The numbered notebooks ``notebooks/NN_*.ipynb`` of the project, in order."""
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def declared_parameters(notebook: Path) -> set[str]:
    """Names declared in the notebook's papermill ``parameters`` cell."""
    import papermill as pm

    return set(pm.inspect_notebook(str(notebook)))


def resolve_paths(params: dict[str, Any], root: Path) -> dict[str, Any]:
    """Make the file paths in params absolute (relative paths are taken from the project root)."""
    params = json.loads(json.dumps(params))  # deep copy of plain data
    params["genesets"]["gmt"] = str(artifacts.resolve_path(params["genesets"]["gmt"], root))
    if params["data"]["path"]:
        params["data"]["path"] = str(artifacts.resolve_path(params["data"]["path"], root))
    return params


def preflight(params: dict[str, Any], params_path: Path) -> None:
    """Checks that need the file system, made before any notebook starts."""
    data = params["data"]
    if data["source"] == "h5ad" and not Path(data["path"]).is_file():
        raise PipelineError(
            f"{params_path}: the data file {data['path']} does not exist. Download it with "
            f"`make data PARAMS={params_path}` (or `python -m latentshift fetch {params_path}`; "
            "fill in data.url first), or point data.path at your local copy of the .h5ad file. "
            f"For a simulated file of the CELLxGENE shape: `python -m latentshift simulate {data['path']}`."
        )
    from latentshift import ldvae

    try:
        ldvae.check_accelerator(params["ldvae"])
    except ldvae.AcceleratorError as exc:
        raise PipelineError(f"{params_path}: {exc}") from None
    gmt = Path(params["genesets"]["gmt"])
    if not gmt.is_file():
        raise PipelineError(
            f"{params_path}: the gene-set file {gmt} (genesets.gmt) does not exist. "
            "Point genesets.gmt at a GMT file, e.g. params/genesets/disease_genesets.gmt."
        )
    from latentshift import genesets

    try:
        genesets.select_sets(genesets.read_gmt(gmt), [e["geneset"] for e in params["perturbations"]])
    except genesets.GeneSetError as exc:
        raise PipelineError(f"{params_path}: {exc}") from None


def injected_parameters(declared: set[str], params: dict[str, Any], profile: str, run_folder: Path) -> dict[str, Any]:
    """The parameters to inject into one notebook: only those it declares."""
    offered: dict[str, Any] = {"profile": profile, "run_dir": str(run_folder), **params}
    return {k: v for k, v in offered.items() if k in declared}


def _lib_digest() -> str:
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".gmt"}:
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _stamp(previous: str, notebook: Path, injected: dict[str, Any], lib: str) -> str:
    h = hashlib.sha256()
    h.update(previous.encode())
    h.update(notebook.read_bytes())
    h.update(json.dumps(injected, sort_keys=True).encode())
    h.update(lib.encode())
    return h.hexdigest()


def _load_state(run_folder: Path) -> dict[str, Any]:
    path = run_folder / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


# --- provenance ------------------------------------------------------------------------

PROVENANCE_PACKAGES = (
    "latentshift", "anndata", "scanpy", "scvi-tools", "torch", "lightning", "numpy", "scipy",
    "scikit-learn", "leidenalg", "papermill", "nbconvert",
)


def _git(root: Path, *args: str) -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def data_checksum(params: dict[str, Any], run_folder: Path) -> str:
    """SHA-256 of the data file (cached by size and modification time), or ``"simulated"``."""
    if params["data"]["source"] == "simulated":
        return "simulated"
    from latentshift.fetch import sha256_file

    path = Path(params["data"]["path"])
    st = path.stat()
    key = f"{path}:{st.st_size}:{st.st_mtime_ns}"
    cache = run_folder / ".data_sha256.json"
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return cached["sha256"]
    log.info("computing the SHA-256 of %s for the provenance record", path)
    digest = sha256_file(path)
    artifacts.write_json({"key": key, "sha256": digest}, cache)
    return digest


def provenance(params: dict[str, Any], root: Path, run_folder: Path) -> dict[str, Any]:
    """What made this run: package versions, git commit (and whether the tree was dirty),
    the data file's checksum, the Python version."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    status = _git(root, "status", "--porcelain")
    return {
        "python": sys.version.split()[0],
        "packages": versions,
        "git_commit": _git(root, "rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "data_sha256": data_checksum(params, run_folder),
    }


# --- rendering -------------------------------------------------------------------------


def provenance_markdown(prov: dict[str, Any], params: dict[str, Any], profile: str, entry: dict[str, Any]) -> str:
    """The provenance block closing every notebook's HTML page (Markdown).

    Parameters
    ----------
    prov
        The run's provenance (:func:`provenance` plus ``started``).
    params
        The params as resolved (defaults filled in).
    profile
        The profile name.
    entry
        This notebook's state entry (``started``, ``finished``, ``seconds``, ``status``).
    """
    packages = ", ".join(f"{k} {v}" for k, v in prov.get("packages", {}).items() if v)
    dirty = prov.get("git_dirty")
    commit = prov.get("git_commit") or "unknown (not a git checkout)"
    if dirty:
        commit += " (working tree had uncommitted changes)"
    lines = [
        "---",
        "## Provenance",
        "",
        f"- **profile**: `{profile}`; data: "
        + ("**simulated** (built-in simulator)" if params["data"]["source"] == "simulated" else f"`{params['data']['path']}`"),
        f"- **data SHA-256**: `{prov.get('data_sha256')}`",
        f"- **git commit**: `{commit}`",
        f"- **this notebook**: started {entry.get('started', '?')}, finished {entry.get('finished', '?')} "
        f"({entry.get('seconds', '?')} s, {entry.get('status', '?')}); run started {prov.get('started', '?')}",
        f"- **Python** {prov.get('python')}; {packages}",
        "",
        "<details><summary>Parameters (resolved)</summary>",
        "",
        "```yaml",
        yaml.safe_dump(params, sort_keys=False).rstrip(),
        "```",
        "",
        "</details>",
    ]
    return "\n".join(lines)


def render_html(executed: Path, target: Path, footer: str | None = None) -> Path:
    """Render an executed notebook to one self-contained HTML file with nbconvert.

    ``footer`` (Markdown) is appended as a last cell of the rendered page only; the executed
    notebook is not changed.
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    if footer:
        nb.cells.append(nbformat.v4.new_markdown_cell(footer))
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    body, _ = exporter.from_notebook_node(nb)
    return artifacts.write_text(body, target)


def _flatten(prefix: str, value: Any, out: list[tuple[str, Any]], depth: int = 0) -> None:
    if isinstance(value, dict) and depth < 3:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out, depth + 1)
    elif isinstance(value, int | float | str | bool) or value is None:
        out.append((prefix, value))


def headline_rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """The few numbers a reader looks for first, each beside its control, as (label, value) rows."""
    rows: list[tuple[str, str]] = []

    def pct(x: Any) -> str:
        return "n/a" if x is None else f"{100 * x:.1f}%"

    data = metrics.get("data", {})
    if data:
        rows.append(("cells × genes after QC", f"{data.get('n_cells')} × {data.get('n_genes')}"))
    for name, m in metrics.get("perturb", {}).get("genesets", {}).items():
        rows.append((f"gene set {name}: genes found", f"{m.get('n_found')} of {m.get('n_genes')} ({m.get('matched_on', '')})"))
    ldvae = metrics.get("ldvae", {})
    if ldvae:
        rows.append(("LDVAE held-out negative ELBO per cell", f"{ldvae.get('test_elbo', float('nan')):.1f} ({ldvae.get('epochs_run')} epochs)"))
    emb = metrics.get("embedding", {})
    if emb:
        rows.append((
            "Leiden vs cell type, ARI (LDVAE / PCA)",
            f"{emb.get('ldvae', {}).get('leiden_ari', float('nan')):.3f} / {emb.get('pca', {}).get('leiden_ari', float('nan')):.3f}",
        ))
    clf = metrics.get("classifier", {})
    if clf:
        rows.append((
            "classifier accuracy on the LDVAE latent [95% CI]",
            f"{pct(clf.get('accuracy'))} [{pct(clf.get('accuracy_low'))}, {pct(clf.get('accuracy_high'))}]",
        ))
        rows.append(("chance (uniform) / label-permutation control", f"{pct(clf.get('chance_uniform'))} / {pct(clf.get('permutation_accuracy'))}"))
        for model, acc in clf.get("baseline_accuracy", {}).items():
            rows.append((f"baseline: {model}", pct(acc)))
        rows.append(("split grouped by source cell; source cells on both sides", f"{clf.get('split_grouped')}; {clf.get('n_leaked_source_cells')}"))
    for name, m in metrics.get("loadings", {}).items():
        if isinstance(m, dict) and "auroc_ldvae_projected" in m:
            rows.append((
                f"{name}: gene-set recovery AUROC (LDVAE projected / best factor / PCA)",
                f"{m['auroc_ldvae_projected']:.3f} / {m.get('auroc_ldvae_factor', float('nan')):.3f} ({m.get('best_factor')}) / "
                f"{m.get('auroc_pca_projected', float('nan')):.3f}",
            ))
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def render_index(
    profile: str,
    params: dict[str, Any],
    metrics: dict[str, Any],
    state: dict[str, Any],
    names: Sequence[str],
    target: Path,
    prov: dict[str, Any] | None = None,
) -> Path:
    """Write the report's index page: profile, params, headline numbers, provenance and links."""
    simulated = params["data"]["source"] == "simulated"
    rows = []
    for name in names:
        entry = state.get(name, {})
        status = entry.get("status", "not run")
        secs = entry.get("seconds")
        peak = entry.get("peak_rss_bytes")
        link = f'<a href="{name}.html">{name}</a>' if (target.parent / f"{name}.html").exists() else name
        mark = {"ok": "✔ ok", "failed": "✘ FAILED", "skipped": "✔ up to date"}.get(status, status)
        error = html.escape(entry.get("error", ""))
        rows.append(
            f"<tr class='{status}'><td>{link}</td><td>{mark}</td>"
            f"<td>{'' if secs is None else f'{secs:.0f} s'}</td>"
            f"<td>{'' if not peak else f'{peak / 1e9:.2f} GB'}</td><td><code>{error}</code></td></tr>"
        )
    flat: list[tuple[str, Any]] = []
    _flatten("", {k: v for k, v in metrics.items() if k != "provenance"}, flat)
    metric_rows = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td>{_fmt(v)}</td></tr>" for k, v in flat)
    headlines = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in headline_rows(metrics)
    ) or "<tr><td colspan=2>no numbers yet</td></tr>"
    banner = (
        "<div class='banner'>SIMULATED DATA — this report is made from the built-in simulated "
        "M1-like data set, not from real cells. Numbers show what the method does, not biology.</div>"
        if simulated
        else f"<div class='real'>Data: {html.escape(str(params['data']['path']))}</div>"
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>latentshift — {html.escape(profile)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; vertical-align: top; }}
tr.failed td {{ background: #fde2e2; }}
.banner {{ background: #fff3cd; border: 2px solid #e0a800; padding: 0.8em; font-weight: bold; }}
.real {{ background: #e2f0d9; padding: 0.8em; }}
pre {{ background: #f6f6f6; padding: 1em; overflow: auto; }}
</style></head><body>
<h1>latentshift report — profile <code>{html.escape(profile)}</code></h1>
{banner}
<p>Does an interpretable generative model (LDVAE) of motor-cortex cells see a simulated disease
shift, how well can it be detected, and which latent factors carry it?</p>
<h2>Notebooks</h2>
<table><tr><th>notebook</th><th>status</th><th>time</th><th>peak memory</th><th>error</th></tr>{"".join(rows)}</table>
<p>Time: wall time of the notebook; peak memory: the high-water mark of its kernel's resident memory.</p>
{'<p><a href="sweep.html">Dose-response sweep</a></p>' if (target.parent / "sweep.html").exists() else ""}
<h2>Headline numbers</h2>
<table><tr><th>what</th><th>value</th></tr>{headlines}</table>
<details><summary>Every number in <code>metrics.json</code></summary>
<table><tr><th>metric</th><th>value</th></tr>{metric_rows}</table></details>
<h2>Provenance</h2>
<pre>{html.escape(yaml.safe_dump(prov or {}, sort_keys=False))}</pre>
<h2>Parameters (resolved)</h2>
<pre>{html.escape(yaml.safe_dump(params, sort_keys=False))}</pre>
<p>Generated {_dt.datetime.now().isoformat(timespec="seconds")}.</p>
</body></html>
"""
    return artifacts.write_text(page, target)


# --- running ---------------------------------------------------------------------------


class PeakMemory:
    """Peak resident memory of the processes a notebook runs in, watched from the runner.

    A thread reads, every ``interval`` seconds, the kernel's (and its children's) high-water
    mark of resident memory (``VmHWM`` from ``/proc``, exact, not sampled; on other systems the
    current RSS from psutil, sampled). :attr:`peak_bytes` is the largest of them.

    Use as a context manager around one notebook's execution.
    """

    def __init__(self, interval: float = 0.5) -> None:
        import threading

        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="peak-memory")

    @staticmethod
    def _high_water(proc: Any) -> int:
        try:
            with open(f"/proc/{proc.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return int(proc.memory_info().rss)

    def _sample(self) -> None:
        import psutil

        try:
            children = psutil.Process().children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            try:
                self.peak_bytes = max(self.peak_bytes, self._high_water(child))
            except psutil.Error:
                continue

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._sample()
        self._stop.set()
        self._thread.join()



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
    import papermill as pm

    root = artifacts.project_root(root)
    params_path = Path(params_path)
    if not params_path.is_absolute() and not params_path.exists():
        params_path = root / params_path
    resolved = config.validate(params) if params is not None else config.load_params(params_path)
    params_as_given = resolved  # paths as written in the profile: the same in every checkout
    params = resolve_paths(resolved, root)
    profile = config.profile_name(params_path)
    preflight(params, params_path)

    all_nbs = notebooks(root)
    if select:
        all_nbs = [nb for nb in all_nbs if any(nb.stem == s or nb.stem.startswith(s) for s in select)]
    if not all_nbs:
        raise PipelineError(f"no notebooks found in {root / 'notebooks'}")
    names = [nb.stem for nb in all_nbs]

    def pick(prefix: str, option: str) -> int:
        hits = [i for i, n in enumerate(names) if n == prefix or n.startswith(prefix)]
        if len(hits) != 1:
            raise PipelineError(f"{option} {prefix!r} matches no single notebook; choose from {', '.join(names)}.")
        return hits[0]

    first = pick(only, "--only") if only else (pick(start_from, "--from") if start_from else 0)
    last = first if only else len(all_nbs) - 1

    run_folder = artifacts.run_dir(profile, run_folder, root)
    report_folder = Path(report_folder) if report_folder else root / "reports" / profile
    report_folder.mkdir(parents=True, exist_ok=True)
    executed_folder = run_folder / "notebooks"
    executed_folder.mkdir(parents=True, exist_ok=True)
    artifacts.write_text(yaml.safe_dump(params, sort_keys=False), run_folder / "params.yaml")

    lock = _lock(run_folder, profile)
    _remove_stale_temporaries(run_folder)
    started = _dt.datetime.now().isoformat(timespec="seconds")
    prov = {**provenance(params, root, run_folder), "started": started}
    state = _load_state(run_folder)
    lib = _lib_digest()
    previous = ""
    failed: str | None = None
    os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")
    log.info("profile %s: %d notebooks → %s", profile, last - first + 1, report_folder)
    for i, nb in enumerate(all_nbs):
        name = nb.stem
        injected = injected_parameters(declared_parameters(nb), params, profile, run_folder)
        stamp = _stamp(previous, nb, injected, lib)
        previous = stamp
        if i < first or i > last:
            continue
        executed = executed_folder / nb.name
        html_path = report_folder / f"{name}.html"
        old = state.get(name, {})
        up_to_date = (
            not force
            and not (start_from and i == first)
            and not only
            and old.get("stamp") == stamp
            and old.get("status") in {"ok", "skipped"}
            and executed.exists()
            and html_path.exists()
        )
        if up_to_date:
            log.info("[%d/%d] %s is up to date (inputs unchanged) — skipped", i + 1, len(all_nbs), name)
            state[name] = {**old, "status": "skipped"}
            continue
        log.info("[%d/%d] %s: running (%d parameters injected)", i + 1, len(all_nbs), name, len(injected))
        start = time.time()
        entry: dict[str, Any] = {"stamp": stamp, "started": _dt.datetime.now().isoformat(timespec="seconds")}
        state[name] = {"status": "running", **entry}
        artifacts.write_json(state, run_folder / STATE_FILE)
        memory = PeakMemory()
        try:
            with memory:
                pm.execute_notebook(
                    str(nb),
                    str(executed),
                    parameters=injected,
                    kernel_name=KERNEL_NAME,
                    progress_bar=sys.stderr.isatty() or bool(os.environ.get("LATENTSHIFT_PROGRESS")),
                    log_output=False,
                    cwd=str(nb.parent),
                )
            entry["status"] = "ok"
        except pm.PapermillExecutionError as exc:
            entry["status"] = "failed"
            entry["error"] = f"{exc.ename}: {exc.evalue}"
        except Exception as exc:  # kernel died, notebook unreadable, ...
            entry["status"] = "failed"
            entry["error"] = f"{type(exc).__name__}: {exc}"
        entry["seconds"] = round(time.time() - start, 1)
        entry["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
        entry["peak_rss_bytes"] = memory.peak_bytes
        artifacts.update_timings(run_folder, f"notebook_{name}_seconds", entry["seconds"])
        artifacts.update_timings(run_folder, f"notebook_{name}_peak_rss_bytes", memory.peak_bytes)
        state[name] = entry
        artifacts.write_json(state, run_folder / STATE_FILE)
        if executed.exists():
            render_html(executed, html_path, provenance_markdown(prov, params_as_given, profile, entry))
        if entry["status"] == "failed":
            failed = name
            log.error(
                "[%d/%d] %s FAILED after %.0f s: %s\n  executed notebook: %s\n  report: %s",
                i + 1, len(all_nbs), name, entry["seconds"], entry["error"], executed, html_path,
            )
            break
        log.info(
            "[%d/%d] %s: done in %.0f s, peak memory %.2f GB → %s",
            i + 1, len(all_nbs), name, entry["seconds"], memory.peak_bytes / 1e9, html_path,
        )
    prov["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
    prov["notebooks"] = {n: state.get(n, {}).get("status", "not run") for n in names}
    artifacts.write_json(prov, run_folder / "provenance.json")
    # the reproducible part of the provenance also goes into metrics.json (times stay out of it)
    artifacts.update_metrics(run_folder, "provenance", {
        "profile": profile,
        "params": params_as_given,
        **{k: prov[k] for k in ("python", "packages", "git_commit", "git_dirty", "data_sha256")},
    })
    render_index(
        profile, params, artifacts.read_metrics(run_folder), state, names, report_folder / "index.html", prov
    )
    log.info("index: %s", report_folder / "index.html")
    lock.close()
    return 1 if failed else 0


def _remove_stale_temporaries(run_folder: Path) -> None:
    """Delete temporary files a killed run left behind (under the lock, nobody else writes)."""
    import shutil

    for tmp in run_folder.glob(".*.tmp"):
        log.info("removing %s, left behind by an interrupted run", tmp.name)
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def _lock(run_folder: Path, profile: str) -> Any:
    """Hold an exclusive lock on the run folder so two runs never write the same files."""
    import fcntl

    handle = open(run_folder / ".lock", "w")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise PipelineError(
            f"another run is already using {run_folder} (profile {profile}); wait for it to finish, "
            "or give this run its own folder with --run-dir."
        ) from None
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors a user causes in `simulate` (bad sizes, bad GMT): shown as one message, not a traceback."""
    from latentshift.data import DataError
    from latentshift.genesets import GeneSetError

    return (DataError, GeneSetError)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m latentshift run PARAMS [--only NB | --from NB] [--force]``."""
    parser = argparse.ArgumentParser(prog="python -m latentshift", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run the notebooks for a profile and render the report")
    p_run.add_argument("params", help="profile YAML, e.g. params/demo.yaml")
    group = p_run.add_mutually_exclusive_group()
    group.add_argument("--only", metavar="NB", help="run only this notebook (e.g. 03 or 03_ldvae)")
    group.add_argument("--from", dest="start_from", metavar="NB", help="run from this notebook on")
    p_run.add_argument("--force", action="store_true", help="rerun notebooks that are up to date")
    p_run.add_argument("--run-dir", help="folder for this run's files (default runs/<profile>)")
    p_run.add_argument("--report-dir", help="folder for the HTML report (default reports/<profile>)")
    p_sweep = sub.add_parser("sweep", help="dose-response sweep: notebooks 02-05 once per fold-change level")
    p_sweep.add_argument("params", help="profile YAML, e.g. params/demo.yaml")
    p_sweep.add_argument(
        "--levels",
        help="comma-separated fold-change levels (up entries get the level, down entries 1/level), "
        "e.g. 1,1.25,1.5,2,3",
    )
    p_fetch = sub.add_parser(
        "fetch", help="download the profile's data file (data.url → data.path, checked against data.sha256)"
    )
    p_fetch.add_argument("params", help="profile YAML, e.g. params/m1_seed.yaml")
    p_fetch.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p_sim = sub.add_parser("simulate", help="write a simulated M1 .h5ad (CELLxGENE-shaped by default)")
    p_sim.add_argument("out", help="the .h5ad file to write, e.g. data/sim_cellxgene.h5ad")
    p_sim.add_argument("--cells", type=int, default=4000)
    p_sim.add_argument("--genes", type=int, default=3000)
    p_sim.add_argument("--seed", type=int, default=0)
    p_sim.add_argument("--schema", choices=["cellxgene", "latentshift"], default="cellxgene")
    p_sim.add_argument("--gmt", default="params/genesets/disease_genesets.gmt", help="gene sets whose genes must be present")
    p_check = sub.add_parser("check", help="validate a profile without running anything")
    p_check.add_argument("params")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        if args.command == "check":
            config.load_params(args.params)
            log.info("%s is valid", args.params)
            return 0
        if args.command == "fetch":
            fetch.fetch_profile(
                config.load_params(args.params), artifacts.project_root(), progress=not args.no_progress
            )
            return 0
        if args.command == "simulate":
            from latentshift import data, genesets

            sets = genesets.read_gmt(artifacts.resolve_path(args.gmt))
            required = sorted({g for gs in sets.values() for g in gs.genes})
            data.write_simulated_h5ad(
                Path(args.out), args.cells, args.genes, seed=args.seed, schema=args.schema, required_genes=required
            )
            log.info("wrote %s (simulated, %s schema)", args.out, args.schema)
            return 0
        if args.command == "sweep":
            from latentshift import sweep

            kwargs: dict[str, Any] = {}
            if args.levels:
                try:
                    kwargs["levels"] = tuple(float(x) for x in args.levels.split(","))
                except ValueError:
                    raise PipelineError(f"--levels must be numbers separated by commas, got {args.levels!r}") from None
            return sweep.run_sweep(args.params, **kwargs)
        return run(
            args.params,
            only=args.only,
            start_from=args.start_from,
            force=args.force,
            run_folder=args.run_dir,
            report_folder=args.report_dir,
        )
    except (config.ParamsError, PipelineError, fetch.DownloadError, *_user_errors()) as exc:
        log.error("error: %s", exc)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
