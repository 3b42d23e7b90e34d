"""Studies: one command runs a designed set of points over any params keys.

A *point* is the profile with a few keys changed (``ldvae.n_top_genes: 1000``,
``ldvae.keep_perturbed_genes: false``, ...). :func:`run_study` runs ``01_data`` once for the
profile, then notebooks 02–06 (04 on request) once per point, each in its own run folder
``runs/<profile>/<study>/<point>/`` (reports in ``reports/<profile>/<study>/<point>/``), all from
the profile's own ``cells.h5ad``; with ``nulls`` each point also gets its null control (the same
point with every fold change 1.0) in ``<point>__null``. Runs are resumable like ``make report``:
a point whose notebooks are up to date is not run again. It then writes ``study.csv`` (one row
per point: accuracy with its interval, label permutation, the null's accuracy, the PCA network,
the disease-gene regression, recovery, epochs, wall time, peak memory, the gene choice) and the
page ``reports/<profile>/<study>.html`` in the report's look.

Points come from ``--vary KEY=V1,V2`` options (every combination) or from a design YAML::

    name: gene_choice            # the study's folder and page name
    nulls: true                  # each point's null control (optional)
    viz: false                   # also run 04_latent_viz (optional)
    points:
      - name: all_genes
        set: {ldvae.n_top_genes: null}
      - name: hvg1000_blind
        set: {ldvae.n_top_genes: 1000, ldvae.keep_perturbed_genes: false}

The dose-response sweep (:mod:`latentshift.run.sweep`) is the study whose points set every fold
change to one level (the key ``perturbations.level``).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import itertools
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from latentshift import config
from latentshift.data import artifacts
from latentshift.errors import LatentshiftError, SweepError
from latentshift.record.provenance import THREAD_VARIABLES
from latentshift.run import runner

log = logging.getLogger(__name__)

#: The key that sets every perturbation entry to one fold-change level (up: level, down: 1/level).
LEVEL_KEY = "perturbations.level"

#: Suffix of a point's null-control folder.
NULL_SUFFIX = "__null"

#: Notebooks run per point (01_data runs once, for the profile itself).
POINT_NOTEBOOKS: tuple[str, ...] = ("02", "03", "05", "06")


@dataclass
class Point:
    """One point of a study: a name and the params keys it changes (dotted keys)."""

    name: str
    changes: dict[str, Any] = field(default_factory=dict)


# --- designing points ------------------------------------------------------------------------


def scaled_params(raw: Mapping[str, Any] | None, level: float) -> dict[str, Any]:
    """The raw params with every perturbation entry set to one fold-change level.

    Parameters
    ----------
    raw
        The profile as parsed from YAML (``None``: all defaults).
    level
        Fold change >= 1: ``up`` entries get ``level``, ``down`` entries ``1 / level``.

    Returns
    -------
    dict
        A deep copy of ``raw`` with ``perturbations`` replaced.
    """
    if not level >= 1:
        raise SweepError(
            f"sweep level {level} is below 1; give fold-change levels >= 1 (1.0 is the null perturbation)."
        )
    out = copy.deepcopy(dict(raw or {}))
    entries = out.get("perturbations") or copy.deepcopy(config.DEFAULT_PERTURBATIONS)
    out["perturbations"] = [
        {**e, "fold_change": float(level) if e.get("direction") == "up" else 1.0 / float(level)}
        for e in entries
    ]
    return out


def _split_values(text: str) -> list[str]:
    """``"a,[1, 2],b"`` → ``["a", "[1, 2]", "b"]``: commas inside brackets stay."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def parse_vary(options: Sequence[str]) -> list[Point]:
    """Points from ``--vary KEY=V1,V2`` options: every combination of the values.

    Values are read as YAML (``null``, ``false``, ``1000``, ``[7]``).

    Raises
    ------
    SweepError
        An option without ``=`` or without values, or a key given twice.
    """
    keys: list[str] = []
    values: list[list[Any]] = []
    for option in options:
        key, sep, text = option.partition("=")
        key = key.strip()
        if not sep or not key or not _split_values(text):
            raise SweepError(
                f"--vary {option!r}: write KEY=V1,V2,... (e.g. --vary ldvae.n_top_genes=null,1000)."
            )
        if key in keys:
            raise SweepError(f"--vary names '{key}' twice; give all its values in one option.")
        keys.append(key)
        values.append([yaml.safe_load(v) for v in _split_values(text)])
    points = []
    for combo in itertools.product(*values):
        changes = dict(zip(keys, combo, strict=True))
        name = "__".join(f"{k.split('.')[-1]}={_value_name(v)}" for k, v in changes.items())
        points.append(Point(name, changes))
    return points


def _value_name(value: Any) -> str:
    text = (
        "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in text)


def load_design(path: str | Path) -> tuple[str, list[Point], dict[str, Any]]:
    """A study design YAML: its name, points and options (``nulls``: true, false or the names of
    the points whose null control runs; ``viz``; ``threads``: the torch and BLAS threads of the
    points' kernels, default the machine's).

    Raises
    ------
    SweepError
        A missing file, no points, a point without a name or with a name used twice.
    """
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"study design '{path}' does not exist; give the path of a design YAML.")
    design = yaml.safe_load(path.read_text()) or {}
    entries = design.get("points") or []
    if not entries:
        raise SweepError(f"study design '{path}' lists no points (key 'points').")
    points, seen = [], set()
    for i, entry in enumerate(entries):
        name = str((entry or {}).get("name") or "").strip()
        if not name or name in seen:
            raise SweepError(
                f"study design '{path}': point {i} has {'no name' if not name else f'the name {name!r} twice'}; "
                "give every point a unique name."
            )
        seen.add(name)
        points.append(Point(name, dict(entry.get("set") or {})))
    nulls = design.get("nulls", False)
    if isinstance(nulls, list):
        unknown = sorted(set(map(str, nulls)) - seen)
        if unknown:
            raise SweepError(
                f"study design '{path}': 'nulls' names points it does not list: {unknown}; "
                "give true, false or a list of point names."
            )
        nulls = [str(n) for n in nulls]
    else:
        nulls = bool(nulls)
    threads = design.get("threads")
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise SweepError(
            f"study design '{path}': 'threads' is {threads!r}; give a whole number >= 1 (the "
            "torch and BLAS threads of every point's kernels) or leave it out."
        )
    options = {"nulls": nulls, "viz": bool(design.get("viz", False)), "threads": threads}
    return str(design.get("name") or path.stem), points, options


def point_params(raw: Mapping[str, Any] | None, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The raw params of a point: ``raw`` with its dotted keys set (``perturbations.level``
    scales every perturbation entry, see :func:`scaled_params`).

    Raises
    ------
    SweepError
        A key of the ``data`` section (01_data runs once for the whole study) or a key that
        is not a section's key.
    """
    out = copy.deepcopy(dict(raw or {}))
    for key, value in changes.items():
        if key == LEVEL_KEY:
            out = scaled_params(out, float(value))
            continue
        section, _, name = key.partition(".")
        if section == "data":
            raise SweepError(
                f"a study point cannot change '{key}': 01_data runs once for the whole study. "
                "Make a profile per data setting instead."
            )
        if key == "seed":
            out["seed"] = value
            continue
        if section not in config.SECTIONS or section == "perturbations" or not name:
            raise SweepError(
                f"a study point cannot set '{key}': give 'section.key' of a params section "
                f"({', '.join(s for s in config.SECTIONS if s != 'perturbations')}), 'seed' or "
                f"'{LEVEL_KEY}'."
            )
        out[section] = {**(out.get(section) or {}), name: value}
    return out


# --- running ---------------------------------------------------------------------------------


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        if dst.stat().st_size == src.stat().st_size and dst.stat().st_mtime >= src.stat().st_mtime:
            return
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        with artifacts.atomic_path(dst) as tmp:
            shutil.copy2(src, tmp)


def ensure_cells(
    params_path: Path,
    root: Path,
    run_folder: Path | None = None,
    report_folder: Path | None = None,
) -> Path | None:
    """The profile's ``cells.h5ad`` (in ``run_folder``, default ``runs/<profile>``), brought up
    to date by the runner's ``01_data`` (skipped when its inputs are unchanged, re-run when the
    profile's data section or the code changed) — ``None``: it failed."""
    profile = config.profile_name(params_path)
    cells = artifacts.run_dir(profile, run_folder, root) / "cells.h5ad"
    ran = runner.run(
        params_path,
        root=root,
        select=["01"],
        run_folder=run_folder,
        report_folder=report_folder,
    )
    if ran != 0 or not cells.exists():
        log.error("study: 01_data failed; see reports/%s/", profile)
        return None
    return cells


def run_points(
    params_path: Path,
    points: Sequence[tuple[str, dict[str, Any]]],
    run_base: Path,
    report_base: Path,
    select: Sequence[str],
    cells: Path,
    root: Path,
) -> dict[str, int]:
    """Run notebooks ``select`` once per ``(folder name, raw params)`` point.

    Each point runs in ``run_base/<name>`` from a link to ``cells`` and the ``data`` metrics
    (QC, composition) of their run; a failed point is logged and the others still run.

    Returns
    -------
    dict
        ``{name: 0 (ok) or 1 (failed)}``.
    """
    status: dict[str, int] = {}
    for i, (name, raw) in enumerate(points):
        log.info("point %s (%d/%d)", name, i + 1, len(points))
        folder = run_base / name
        _link_or_copy(cells, folder / "cells.h5ad")
        data = artifacts.read_metrics(cells.parent).get("data")  # 01 ran once, for them
        if data:
            artifacts.update_metrics(folder, "data", data)
        try:
            status[name] = runner.run(
                params_path,
                params=raw,
                run_folder=folder,
                report_folder=report_base / name,
                select=list(select),
                root=root,
            )
        except LatentshiftError as exc:
            log.error("point %s: %s", name, exc)
            status[name] = 1
    return status


@contextlib.contextmanager
def thread_limit(threads: int | None) -> Iterator[None]:
    """Kernels started inside get ``threads`` torch and BLAS threads (nothing changes for None)."""
    if threads is None:
        yield
        return
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _resolve(params_path: str | Path, root: Path) -> Path:
    params_path = Path(params_path)
    if not params_path.is_absolute() and not params_path.exists():
        params_path = root / params_path
    return params_path


def point_runs(
    params_path: Path,
    points: Sequence[Point],
    nulls: bool | Sequence[str],
    only: Sequence[str] | None,
) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """The study's runs, every point validated before anything runs (arguments as in
    :func:`run_study`).

    Returns
    -------
    resolved : dict
        The profile's resolved params.
    runs : list of (str, dict)
        ``(run name, raw params)`` per point to run, each followed by its null control when it
        gets one.

    Raises
    ------
    SweepError
        No points, two points of one name, ``only`` naming an unknown point, a point that
        changes the fold changes in the case-control design, or a point whose params are
        invalid.
    """
    if not points:
        raise SweepError("a study needs at least one point (--vary KEY=V1,V2 or --design FILE).")
    if len({p.name for p in points}) != len(points):
        raise SweepError("two study points share a name; give every point a unique name.")
    unknown = sorted(set(only or ()) - {p.name for p in points})
    if unknown:
        raise SweepError(
            f"--points names points the study does not have: {', '.join(unknown)}; "
            f"its points are {', '.join(p.name for p in points)}."
        )
    resolved = config.load_params(params_path)
    raw = yaml.safe_load(params_path.read_text()) or {}
    if resolved["design"] == "case_control" and (
        nulls or any(LEVEL_KEY in p.changes for p in points)
    ):
        raise SweepError(
            "in the case-control design the disease donors' shift is made in 01_data, which a "
            "study runs once, so a point cannot change the fold changes (no --nulls, no "
            f"{LEVEL_KEY}). Run the same study on the null profile (e.g. "
            "params/case_control_sim_null.yaml) instead."
        )
    runs: list[tuple[str, dict[str, Any]]] = []
    for p in points:  # every point validated before anything runs
        point_raw = point_params(raw, p.changes)
        try:
            config.validate(point_raw)
        except LatentshiftError as exc:
            raise SweepError(f"study point '{p.name}': {exc}") from None
        if only is not None and p.name not in only:
            continue
        runs.append((p.name, point_raw))
        if nulls is True or (not isinstance(nulls, bool) and p.name in nulls):
            runs.append((p.name + NULL_SUFFIX, scaled_params(point_raw, 1.0)))
    return resolved, runs


def run_study(
    params_path: str | Path,
    points: Sequence[Point],
    name: str = "study",
    nulls: bool | Sequence[str] = False,
    viz: bool = False,
    root: str | Path | None = None,
    run_folder: str | Path | None = None,
    report_folder: str | Path | None = None,
    only: Sequence[str] | None = None,
    threads: int | None = None,
) -> int:
    """Run a study for a profile and write ``study.csv`` and ``reports/<profile>/<name>.html``.

    Parameters
    ----------
    params_path
        The profile YAML.
    points
        The points (:func:`parse_vary`, :func:`load_design`).
    name
        The study's name (its folders and page).
    nulls
        Also run each point's null control (every fold change 1.0): ``True`` for every point,
        or the names of the points that get one.
    viz
        Also run ``04_latent_viz`` per point.
    root
        Project root (default: found from the current folder).
    run_folder, report_folder
        The profile's run and report folders (default ``runs/<profile>``, ``reports/<profile>``):
        the study's points go to ``<run_folder>/<name>/<point>/``, its page to
        ``<report_folder>/<name>.html``.
    only
        Run only these points (and their nulls); the others keep the results already in their
        folders (each row of ``study.csv`` records the commit it was run at). ``None``: all.
    threads
        Run every point's kernels with this many torch and BLAS threads (``OMP_NUM_THREADS``,
        ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``); each row records its kernels' count.
        ``None``: the machine's default.

    Returns
    -------
    int
        0 when every point ran, 1 when one (or 01_data) failed; the page is written either way.
    """
    from latentshift.record.provenance import provenance
    from latentshift.report import study_report

    root = artifacts.project_root(root)
    params_path = _resolve(params_path, root)
    resolved, runs = point_runs(params_path, points, nulls, only)
    profile = config.profile_name(params_path)
    main_run = artifacts.run_dir(profile, run_folder, root)
    main_report = Path(report_folder) if report_folder else root / "reports" / profile
    cells = ensure_cells(params_path, root, main_run, main_report)
    if cells is None:
        return 1
    started = _dt.datetime.now().isoformat(timespec="seconds")
    run_base = main_run / name
    report_base = main_report / name
    select = ("02", "03", "04", "05", "06") if viz else POINT_NOTEBOOKS
    with thread_limit(threads):
        status = run_points(params_path, runs, run_base, report_base, select, cells, root)
    table = collect(run_base, points)
    artifacts.write_csv(table, run_base / "study.csv", index=False)
    prov = {
        **provenance(runner.resolve_paths(resolved, root), root, cells.parent),
        "study": name,
        "points": {p.name: p.changes for p in points},
        "nulls": nulls,
        "started": started,
        "finished": _dt.datetime.now().isoformat(timespec="seconds"),
        "params": resolved,
    }
    target = study_report.render_study(
        table,
        profile,
        name,
        resolved["data"]["source"] == "simulated",
        main_report / f"{name}.html",
        status,
        prov,
        figure=run_base / "study.png",
    )
    plan = runner.plan_run(params_path, root=root, run_folder=main_run, report_folder=main_report)
    runner.render_index_of(plan)  # the profile's index links the study page
    log.info("study: %s", target)
    return 0 if all(v == 0 for v in status.values()) else 1


# --- results ---------------------------------------------------------------------------------


def point_row(folder: Path) -> dict[str, Any]:
    """The numbers of one point's run folder (NaN where a step has not run)."""
    nan = float("nan")
    metrics = artifacts.read_metrics(folder)
    clf = metrics.get("classifier") or {}
    base = clf.get("baseline_accuracy", {})
    ldvae = metrics.get("ldvae") or {}
    choice = ldvae.get("gene_choice") or {}
    state = runner.load_state(folder)
    steps = [v for v in state.values() if isinstance(v, Mapping)]
    row: dict[str, Any] = {
        "accuracy": clf.get("accuracy", nan),
        "accuracy_low": clf.get("accuracy_low", nan),
        "accuracy_high": clf.get("accuracy_high", nan),
        "permutation_accuracy": clf.get("permutation_accuracy", nan),
        "pca_accuracy": base.get("mlp_pca", nan),
        "logreg_latent_accuracy": base.get("logreg_ldvae", nan),
        "disease_genes_accuracy": base.get("logreg_disease_genes", nan),
        "chance": clf.get("chance_uniform", nan),
        "n_genes_used": ldvae.get("n_genes_used", nan),
        "oracle": choice.get("oracle", nan),
        "epochs": ldvae.get("epochs_run", nan),
        "early_stopped": ldvae.get("early_stopped", nan),
        # the per-donor columns: a case-control point's per-unit score (each donor's call, or
        # each donor's own accuracy when paired)
        **{
            f"{prefix}donor_{key}": clf.get(f"{prefix}unit_{key}", nan)
            if clf.get("unit") == "donor"
            else nan
            for prefix, key in (
                ("", "accuracy"),
                ("", "accuracy_low"),
                ("", "accuracy_high"),
                ("permutation_", "accuracy"),
            )
        },
        "wall_seconds": sum(float(v.get("seconds") or 0) for v in steps) if steps else nan,
        "peak_memory_gb": max((float(v.get("peak_rss_bytes") or 0) for v in steps), default=0) / 1e9
        if steps
        else nan,
    }
    row.update(artifacts.commit_stamp(metrics.get("provenance")))
    run_prov = folder / "provenance.json"  # the machine is in the run's provenance, not in metrics
    machine = json.loads(run_prov.read_text()).get("machine") if run_prov.is_file() else None
    row["torch_threads"] = (machine or {}).get("torch_threads", nan)
    for cond, m in (choice.get("set_genes") or {}).items():
        row[f"{cond}_genes_in_model"] = m.get("in_model")
    for cond, m in (metrics.get("loadings") or {}).items():
        if isinstance(m, Mapping) and "auroc_ldvae_projected" in m:
            row[f"{cond}_recovery"] = m.get("auroc_ldvae_projected")
    row.update(transfer_columns(metrics))
    return row


def transfer_columns(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A run's synthetic-versus-real numbers as flat columns: call rates
    ``<condition>_transfer_<rep>_<where>_<side>`` and, against real cells of another file,
    ``<condition>_direction_<rep>_<cosine|length_ratio|null_high>``."""
    out: dict[str, Any] = {}
    transfer = metrics.get("transfer") or {}
    for cond, rates in (transfer.get("by_condition") or {}).items():
        for key, value in rates.items():
            out[f"{cond}_transfer_{key}"] = value
    for key, d in (transfer.get("direction") or {}).items():
        cond, rep = key.rsplit(" / ", 1)
        for name in ("cosine", "length_ratio", "null_high"):
            out[f"{cond}_direction_{rep}_{name}"] = d.get(name)
    return out


def collect(run_base: str | Path, points: Sequence[Point]) -> pd.DataFrame:
    """``study.csv``: one row per point, its changed keys, its numbers and its null's accuracy.

    Parameters
    ----------
    run_base
        ``runs/<profile>/<study>``.
    points
        The study's points.
    """
    run_base = Path(run_base)
    rows = []
    for p in points:
        row: dict[str, Any] = {"point": p.name}
        row.update({k: _value_name(v) for k, v in p.changes.items()})
        row.update(point_row(run_base / p.name))
        null_folder = run_base / (p.name + NULL_SUFFIX)
        null = artifacts.read_metrics(null_folder).get("classifier") or {}
        row["null_accuracy"] = null.get("accuracy", float("nan"))
        row["null_permutation_accuracy"] = null.get("permutation_accuracy", float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)
