"""Dose-response sweep: how small a shift can the classifier detect?

:func:`run_sweep` scales every perturbation entry of a profile to one fold-change level at a
time — entries with direction ``down`` get ``fold_change = 1 / level``, ``up`` entries get
``level`` — and runs notebooks 02–05 once per level into ``runs/<profile>/sweep/<level>/``
(reports in ``reports/<profile>/sweep/<level>/``), all starting from the profile's own
``runs/<profile>/cells.h5ad`` (made by running ``01_data`` first when it is missing). It then
reads each level's ``classifier`` metrics (:func:`collect`) and writes
``reports/<profile>/sweep.html``: accuracy with 95% intervals against fold change for the
LDVAE latent and the PCA baseline, the chance line and the detection threshold — the lowest
level whose interval's lower bound lies above chance (:func:`detection_threshold`). The table
also lands in ``runs/<profile>/sweep/sweep.csv``.

``python -m latentshift sweep PARAMS [--levels 1,1.5,2]`` (``make sweep``) calls
:func:`run_sweep`.
"""

from __future__ import annotations

import datetime as _dt
import html
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from latentshift import config
from latentshift.data import artifacts
from latentshift.errors import SweepError
from latentshift.record.provenance import provenance
from latentshift.run import runner
from latentshift.run.study import (
    LEVEL_KEY,
    ensure_cells,
    point_params,
    run_points,
    scaled_params,
    transfer_columns,
)

__all__ = [
    "DEFAULT_LEVELS",
    "collect",
    "collect_calls",
    "detection_threshold",
    "run_sweep",
    "scaled_params",
]

log = logging.getLogger(__name__)

#: Default fold-change levels of the sweep (1.0 is the null perturbation).
DEFAULT_LEVELS: tuple[float, ...] = (1.0, 1.1, 1.25, 1.5, 2.0, 3.0)

#: Notebooks run at each level (01_data runs once, for the profile itself). 04_latent_viz is
#: left out: the classifier does not read it, and its UMAP would only cost time per level.
SWEEP_NOTEBOOKS: tuple[str, ...] = ("02", "03", "05")


def level_name(level: float) -> str:
    """The folder name of a level: ``1.0`` → ``"1.0"``, ``1.25`` → ``"1.25"``."""
    return repr(float(level))


def collect(sweep_folder: str | Path, levels: Sequence[float]) -> pd.DataFrame:
    """The classifier numbers of each level of a sweep.

    Parameters
    ----------
    sweep_folder
        ``runs/<profile>/sweep``.
    levels
        The levels to read.

    Returns
    -------
    pandas.DataFrame
        One row per level: ``level``, ``ldvae_accuracy``/``_low``/``_high`` (MLP on the
        LDVAE latent), ``pca_accuracy``/``_low``/``_high`` (same MLP on the PCA baseline),
        ``disease_genes_accuracy``, ``permutation_accuracy``, ``chance``, the commit the
        level ran at (``git_commit``, ``git_dirty``), and synthetic-versus-real numbers when
        the profile has them (:func:`latentshift.run.study.transfer_columns`); ``NaN`` for a level
        without results.
    """
    rows = []
    for level in levels:
        m = artifacts.read_metrics(Path(sweep_folder) / level_name(level)).get("classifier") or {}
        base = m.get("baseline_accuracy", {})
        low, high = m.get("baseline_accuracy_low", {}), m.get("baseline_accuracy_high", {})
        chance = max(m["chance_uniform"], m["chance_majority"]) if m else float("nan")
        metrics = artifacts.read_metrics(Path(sweep_folder) / level_name(level))
        prov = metrics.get("provenance") or {}
        rows.append(
            {
                "level": float(level),
                "ldvae_accuracy": m.get("accuracy", float("nan")),
                "ldvae_low": m.get("accuracy_low", float("nan")),
                "ldvae_high": m.get("accuracy_high", float("nan")),
                "pca_accuracy": base.get("mlp_pca", float("nan")),
                "pca_low": low.get("mlp_pca", float("nan")),
                "pca_high": high.get("mlp_pca", float("nan")),
                "disease_genes_accuracy": base.get("logreg_disease_genes", float("nan")),
                "permutation_accuracy": m.get("permutation_accuracy", float("nan")),
                "chance": chance,
                "git_commit": (prov.get("git_commit") or "")[:12] or None,
                "git_dirty": prov.get("git_dirty"),
                **transfer_columns(metrics),
            }
        )
    return pd.DataFrame(rows)


def collect_calls(sweep_folder: str | Path, levels: Sequence[float]) -> pd.DataFrame:
    """Each level's call rates per cell type against real cells, one table.

    Parameters
    ----------
    sweep_folder
        ``runs/<profile>/sweep``.
    levels
        The levels to read.

    Returns
    -------
    pandas.DataFrame
        The ``transfer_calls.csv`` of every level that wrote one (a profile with a transfer
        test), with ``level`` and the commit the level ran at (``git_commit``) in front; empty
        when no level has one.
    """
    frames = []
    for level in levels:
        folder = Path(sweep_folder) / level_name(level)
        calls = folder / "transfer_calls.csv"
        if not calls.is_file():
            continue
        table = pd.read_csv(calls)
        prov = artifacts.read_metrics(folder).get("provenance") or {}
        table.insert(0, "level", float(level))
        table.insert(1, "git_commit", (prov.get("git_commit") or "")[:12] or None)
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def detection_threshold(
    table: pd.DataFrame, prefix: str = "ldvae", chance: float | None = None
) -> float | None:
    """The lowest level whose interval's lower bound lies above chance.

    Parameters
    ----------
    table
        From :func:`collect`.
    prefix
        ``"ldvae"`` or ``"pca"``.
    chance
        The chance level (default: each row's ``chance``).

    Returns
    -------
    float or None
        The level, or ``None`` when no level is detected.
    """
    t = table.dropna(subset=[f"{prefix}_low"]).sort_values("level")
    ref = t["chance"] if chance is None else chance
    hits = t[t[f"{prefix}_low"] > ref]
    return float(hits["level"].iloc[0]) if len(hits) else None


def render_sweep(
    table: pd.DataFrame,
    profile: str,
    simulated: bool,
    target: Path,
    status: Mapping[float, int],
    prov: Mapping[str, Any] | None = None,
    figure: Path | None = None,
) -> Path:
    """Write ``sweep.html`` in the report's look: its Findings, the accuracy-vs-fold-change
    figure, the threshold, the table and the provenance (``prov``: package versions, git
    commit, data checksum, start/end times). The figure is also saved to ``figure`` (the index
    page's thumbnail)."""
    from latentshift.figures import classifier_plots
    from latentshift.report import pages as report
    from latentshift.report.findings import SIMULATED_NOTE, Findings, findings_html

    chance = float(table["chance"].dropna().median()) if table["chance"].notna().any() else 1 / 3
    thr_ldvae = detection_threshold(table, "ldvae")
    thr_pca = detection_threshold(table, "pca")
    label = " (simulated data)" if simulated else ""
    fig = classifier_plots.dose_response(
        table, chance, thr_ldvae, title=f"dose response, profile {profile}{label}"
    )
    src = report.embedded_figure(fig, figure)

    def fmt(v: Any) -> str:
        return "–" if pd.isna(v) else f"{v:.3f}"

    rows = []
    for r in table.itertuples():
        name = level_name(r.level)
        ok = status.get(r.level, 0) == 0
        link = f'<a href="sweep/{name}/index.html">{name}</a>'
        rows.append(
            f"<tr class='{'ok' if ok else 'failed'}'><td>{link}</td>"
            f"<td>{fmt(r.ldvae_accuracy)} [{fmt(r.ldvae_low)}, {fmt(r.ldvae_high)}]</td>"
            f"<td>{fmt(r.pca_accuracy)} [{fmt(r.pca_low)}, {fmt(r.pca_high)}]</td>"
            f"<td>{fmt(r.disease_genes_accuracy)}</td><td>{fmt(r.permutation_accuracy)}</td>"
            f"<td>{fmt(r.chance)}</td><td>{'ok' if ok else 'FAILED'}</td></tr>"
        )

    def says(thr: float | None) -> str:
        return f"{thr:g}×" if thr is not None else "not reached at the levels tried"

    box = Findings(
        "sweep",
        f"The LDVAE classifier detects a shift from fold change {says(thr_ldvae)}; the PCA "
        f"baseline from {says(thr_pca)}.",
        [
            f"Detection threshold (lowest level whose 95% interval lies above chance, "
            f"{chance:.3f}): LDVAE latent **{says(thr_ldvae)}**, PCA baseline "
            f"**{says(thr_pca)}**.",
            f"Levels tried: {', '.join(level_name(v) for v in table['level'])} (1.0 is the "
            "null perturbation: every classifier must sit at chance there).",
        ],
        [],
        "",
        simulated,
    )
    body = f"""
<h1>Dose-response sweep — profile <code>{html.escape(profile)}</code></h1>
{findings_html(box)}
<p>Every perturbation entry is set to one fold-change level at a time (sets that go down are
multiplied by 1/level, sets that go up by level), and notebooks 02–05 run again on the same
cells. Each point is the test accuracy of the classifier with its 95% bootstrap interval over
test cells; level 1.0 is the null perturbation.</p>
<img alt="accuracy against fold change" src="{src}">
<table class="ls-table"><tr><th>level</th><th>LDVAE MLP accuracy [95%]</th>
<th>PCA MLP accuracy [95%]</th><th>disease genes (logreg)</th><th>label permutation</th>
<th>chance</th><th>run</th></tr>
{"".join(rows)}</table>
{f'<p class="ls-simulated">{html.escape(SIMULATED_NOTE)}</p>' if simulated else ""}
<h2>Provenance</h2>
<pre class="ls-pre">{html.escape(yaml.safe_dump(dict(prov or {}), sort_keys=False))}</pre>
"""
    nav = report.nav_html("sweep", [])
    return artifacts.write_text(report.page(f"latentshift — sweep — {profile}", body, nav), target)


def run_sweep(
    params_path: str | Path,
    levels: Sequence[float] = DEFAULT_LEVELS,
    root: str | Path | None = None,
) -> int:
    """Run the dose-response sweep for a profile and render ``reports/<profile>/sweep.html``.

    Parameters
    ----------
    params_path
        The profile YAML (e.g. ``params/demo.yaml``).
    levels
        Fold-change levels >= 1 (``up`` entries get ``level``, ``down`` entries ``1 / level``).
    root
        Project root (default: found from the current folder).

    Returns
    -------
    int
        0 when every level ran, 1 when a level (or 01_data) failed; the page is written with
        the levels that ran either way.
    """
    root = artifacts.project_root(root)
    params_path = Path(params_path)
    if not params_path.is_absolute() and not params_path.exists():
        params_path = root / params_path
    levels = sorted({float(lv) for lv in levels})
    if not levels:
        raise SweepError("no sweep levels given; pass fold-change levels such as 1,1.5,2.")
    for lv in levels:
        if not lv >= 1:
            raise SweepError(
                f"sweep level {lv} is below 1; give fold-change levels >= 1 (1.0 is the null perturbation)."
            )
    resolved = config.load_params(params_path)  # validate the profile before anything runs
    raw = yaml.safe_load(params_path.read_text()) or {}
    profile = config.profile_name(params_path)
    main_run = artifacts.run_dir(profile, None, root)
    cells = ensure_cells(params_path, root)
    if cells is None:
        return 1
    started = _dt.datetime.now().isoformat(timespec="seconds")
    sweep_runs = main_run / "sweep"
    # the sweep is the study whose points set every fold change to one level
    points = [(level_name(lv), point_params(raw, {LEVEL_KEY: lv})) for lv in levels]
    by_name = run_points(
        params_path,
        points,
        sweep_runs,
        root / "reports" / profile / "sweep",
        SWEEP_NOTEBOOKS,
        cells,
        root,
    )
    status = {lv: by_name[level_name(lv)] for lv in levels}
    table = collect(sweep_runs, levels)
    artifacts.write_csv(table, sweep_runs / "sweep.csv", index=False)
    prov = {
        **provenance(runner.resolve_paths(resolved, root), root, main_run),
        "levels": levels,
        "started": started,
        "finished": _dt.datetime.now().isoformat(timespec="seconds"),
        "params": resolved,
    }
    target = render_sweep(
        table,
        profile,
        resolved["data"]["source"] == "simulated",
        root / "reports" / profile / "sweep.html",
        status,
        prov,
        figure=main_run / "figures" / "dose_response.png",
    )
    runner.render_index_of(runner.plan_run(params_path, root=root))  # the thumbnail
    log.info(
        "sweep: %s (detection threshold: LDVAE %s, PCA %s)",
        target,
        detection_threshold(table, "ldvae"),
        detection_threshold(table, "pca"),
    )
    return 0 if all(v == 0 for v in status.values()) else 1
