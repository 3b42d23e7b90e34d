"""Power: how many donors and nuclei does a shift of a given size need, before anyone collects tissue?

scPower and hierarchicell answer that for generic per-gene DE; latentshift answers it for a named
gene set in named cell types, on the calibrated motor-cortex simulator, for each of its readings.
:func:`run_power` draws many simulated case–control data sets per design point — donors per arm,
nuclei per donor, fold change — each with new seeds for the donors, their effects and the nuclei
(:func:`simulate_study`), runs the readings on each (:func:`cheap_readings`, and on fewer
replicates :func:`ldvae_readings`), and reports per reading the fraction of data sets in which it
detects the shift at α = 0.05, with its exact binomial interval (:func:`power_table`), and the
donors per arm each reading needs for 80 % power (:func:`donors_needed`).

The readings, each detecting when its p-value < α:

- ``pseudobulk set test`` — PyDESeq2 by donor in the first targeted cell type, the named set's
  camera rank test (:func:`latentshift.readings.set_tests.set_test`);
- ``composition`` — the composition test (logit proportions by donor) of the cell type a profile names in
  ``data.simulate_disease_type_loss``, which keeps 1/fold of its nuclei in disease donors (the
  same fold change as the set's, downward; fold 1 loses none); with no type named, the smallest
  BH-adjusted p over the types (any type called is a false positive);
- ``E-test (PCA)``, ``per-type AUC (PCA)`` — the E-test and the Augur-style AUC's p in the first
  targeted cell type on a PCA (10 components) of that type's log-normalised counts, donors as
  the units of the permutations (3 donors per arm: 20 relabellings, so no p below 0.05);
- ``E-test (LDVAE)``, ``per-type AUC (LDVAE)`` — the same on an LDVAE latent (fewer replicates).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from latentshift.errors import LatentshiftError

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

#: The level a reading detects at.
ALPHA = 0.05
#: The power a design must reach in :func:`donors_needed`.
TARGET_POWER = 0.8


class PowerError(LatentshiftError):
    """The power study cannot run as asked; the message says why and how to fix it."""


@dataclass(frozen=True)
class Point:
    """One design point: donors per arm, nuclei per donor, fold change."""

    donors: int
    nuclei: int
    fold: float


def simulate_study(params: Mapping[str, Any], point: Point, rep: int, seed: int = 0) -> AnnData:
    """One simulated case–control data set of a design point (its own seed for everything).

    Parameters
    ----------
    params
        A resolved case–control profile (``data``, ``perturbations``, ``genesets``): its first
        perturbation entry, at fold change ``point.fold``, is the disease.
    point
        The design.
    rep
        The replicate: with ``seed``, the seed of the donors, their effects and the nuclei.
    seed
        The study's seed.
    """
    from latentshift.data.artifacts import resolve_path
    from latentshift.data.simulate import simulate_m1
    from latentshift.perturb import case_control as cc
    from latentshift.perturb import genesets as gs
    from latentshift.readings import composition

    data = params["data"]
    entry = {**params["perturbations"][0], "fold_change": float(point.fold)}
    sets = gs.read_gmt(resolve_path(params["genesets"]["gmt"]))
    genes = sorted(sets[entry["geneset"]].genes)
    rep_seed = int(np.random.default_rng([seed, 71, rep]).integers(2**31 - 1))
    adata = simulate_m1(
        2 * point.donors * point.nuclei,
        data["simulate_n_genes"],
        seed=rep_seed,
        required_genes=genes,
        n_donors=2 * point.donors,
        composition=data.get("composition", "m1"),
        donor_gene_sd=data.get("simulate_donor_gene_sd", 0.1),
    )
    _, by_set = gs.match_genesets(adata, sets, [entry["geneset"]], min_found_fraction=0.0)
    adata = cc.add_disease_donors(
        adata,
        [entry],
        by_set,
        point.donors,
        # fold 1 is the null profile (case_control_sim_null): no shift, so no donor spread of it
        data.get("simulate_donor_lfc_sd", 0.0) if point.fold != 1 else 0.0,
        rep_seed,
    )
    # the composition shift grows with the point's fold change: the named types keep 1/fold
    # of their nuclei (fold 1: none lost, the composition test's null)
    losses = {t: 1 - 1 / float(point.fold) for t in data.get("simulate_disease_type_loss") or {}}
    if any(v > 0 for v in losses.values()):
        adata = composition.lose_cells(adata, losses, rep_seed)
    adata.uns["power"] = {
        "entry": entry,
        "genes": list(by_set[entry["geneset"]]),
        "lost": sorted(losses),
    }
    return adata


def study_units(adata: AnnData) -> Any:
    """The donors of a simulated study (:func:`simulate_study`), unpaired; sets its
    ``obs["condition"]``."""
    from latentshift.design.units import units_of
    from latentshift.perturb import case_control as cc

    adata.obs["condition"] = cc.conditions_from_obs(adata.obs)
    return units_of(adata.obs, "donor_id", paired=False)


def first_target(adata: AnnData) -> str:
    """The cell type a simulated study's readings look at: its first targeted type (else the
    most abundant)."""
    targets = adata.uns["power"]["entry"].get("target_cell_types")
    if targets:
        return str(np.atleast_1d(targets)[0])
    return str(adata.obs["cell_type"].value_counts().index[0])


def target_nuclei(adata: AnnData, units: Any) -> tuple[str, np.ndarray, AnnData]:
    """The study's :func:`first_target` type, its mask and its nuclei (a copy, with the donor
    of each in ``obs["donor_id"]``)."""
    cell_type = first_target(adata)
    mask = (adata.obs["cell_type"].astype(str) == cell_type).to_numpy()
    part = adata[mask].copy()
    part.obs["donor_id"] = units.unit[mask]
    return cell_type, mask, part


#: Donor relabellings of the E-test and of the per-type AUC's null in each simulated study.
ETEST_PERMUTATIONS = 200
AUC_PERMUTATIONS = 50


def null_floor(reading: str, donors_per_arm: int) -> float:
    """The smallest p a reading's donor-relabelling null can give with ``donors_per_arm``
    donors in each of two unpaired arms (0 for a reading without one: pseudobulk, composition).

    With 3 against 3 donors there are 20 relabellings, two of which give the observed grouping
    back, so the E-test's p cannot fall below 0.1: it never passes α = 0.05 there, whatever the
    shift — untestable, not underpowered."""
    from latentshift.design.nulls import relabel
    from latentshift.design.units import Units

    if not reading.startswith(("E-test", "per-type AUC")):
        return 0.0
    n = ETEST_PERMUTATIONS if reading.startswith("E-test") else AUC_PERMUTATIONS
    d = int(donors_per_arm)
    units = Units(
        unit=np.array([f"d{i}" for i in range(2 * d)]),
        condition=np.array(["control"] * d + ["case"] * d),
        labels=("control", "case"),
        paired=False,
    )
    return float(relabel(units, n).min_pvalue)


def _latent_readings(
    Z: np.ndarray, adata: AnnData, units: Any, cell_type: str, seed: int
) -> dict[str, float]:
    """E-test and per-type AUC p-values of one representation in one cell type."""
    from latentshift.readings.detectability import celltype_auc_by_representation
    from latentshift.readings.edistance import edistance_table

    obs = adata.obs.assign(perturbed=(units.condition != units.reference))
    mask = (obs["cell_type"].astype(str) == cell_type).to_numpy()
    sub_units = units.take(mask)
    sub_obs, sub_Z = obs[mask], Z[mask]
    e = edistance_table(
        {"Z": sub_Z},
        sub_obs,
        units=sub_units,
        n_permutations=ETEST_PERMUTATIONS,
        n_bootstrap=0,
        min_cells=10,
        by_cell_type=False,
        seed=seed,
    )
    auc = celltype_auc_by_representation(
        {"Z": sub_Z},
        sub_obs,
        units=sub_units,
        subsample_size=15,
        n_subsamples=8,
        n_permutations=AUC_PERMUTATIONS,
        seed=seed,
    )
    return {
        "E-test": float(e["pvalue"].iloc[0]) if e["testable"].iloc[0] else np.nan,
        "per-type AUC": float(auc["auc_pvalue"].iloc[0]) if auc["testable"].iloc[0] else np.nan,
    }


#: The readings :func:`cheap_readings` can give.
CHEAP_READINGS = ("pseudobulk set test", "composition", "E-test (PCA)", "per-type AUC (PCA)")


def cheap_readings(
    adata: AnnData, seed: int = 0, readings: Sequence[str] | None = None
) -> dict[str, float]:
    """The readings without a trained model: each one's p-value (NaN when untestable).

    Parameters
    ----------
    adata
        A simulated study (:func:`simulate_study`).
    seed
        Seed of the PCA and the permutations.
    readings
        Which of :data:`CHEAP_READINGS` (default: all).
    """
    wanted = set(readings or CHEAP_READINGS)
    unknown = wanted - set(CHEAP_READINGS)
    if unknown:
        raise PowerError(
            f"unknown reading(s) {', '.join(sorted(unknown))}; choose from {', '.join(CHEAP_READINGS)}."
        )
    from latentshift.model.embedding import pca_of_counts
    from latentshift.readings import pseudobulk, set_tests

    units = study_units(adata)
    cell_type, mask, part = target_nuclei(adata, units)
    entry, genes = adata.uns["power"]["entry"], adata.uns["power"]["genes"]
    out: dict[str, float] = {}
    if "pseudobulk set test" in wanted:
        pb = pseudobulk.aggregate(part, ["donor_id", "condition"])
        try:
            table = pseudobulk.deseq(pb)
            tested = [g for g in genes if g in table.index]
            out["pseudobulk set test"] = set_tests.set_test(
                table, tested, entry["direction"], set_tests.set_correlation(pb, tested)
            )["pvalue"]
        except LatentshiftError:
            out["pseudobulk set test"] = np.nan
    if "composition" in wanted:
        out["composition"] = _composition_p(adata, units)
    if not wanted & {"E-test (PCA)", "per-type AUC (PCA)"}:
        return out
    # a PCA of the type's own nuclei: the shift is within the type
    Z = np.zeros((adata.n_obs, 10), dtype=np.float32)
    Z[mask], _ = pca_of_counts(part.layers["counts"], np.ones(part.n_obs, bool), 10, seed)
    for name, p in _latent_readings(Z, adata, units, cell_type, seed).items():
        if f"{name} (PCA)" in wanted:
            out[f"{name} (PCA)"] = p
    return out


def _composition_p(adata: AnnData, units: Any) -> float:
    from latentshift.readings import composition

    comp = composition.composition_by_condition(adata, units)
    table = next(iter(comp.values()))
    lost = list(adata.uns["power"]["lost"])
    if lost:  # the lost type's own p
        rows = table[table["cell_type"].isin(lost)]
        return float(rows["pvalue"].min()) if len(rows) else np.nan
    return float(table["pvalue_adj"].min())  # no type named: any type called is a false positive


def ldvae_readings(adata: AnnData, ldvae: Mapping[str, Any], seed: int = 0) -> dict[str, float]:
    """The latent readings on an LDVAE trained (label-blind) on the data set's nuclei."""
    from latentshift.model import ldvae as L

    units = study_units(adata)
    adata.obs["split"] = "train"
    adata.obs["source_cell"] = adata.obs_names.astype(str)
    cfg = {**dict(ldvae), "snapshot_every": None, "n_top_genes": None}
    fit = L.train_ldvae(adata, cfg, seed=seed)
    Z = L.latent_representation(fit.model, adata)
    return {
        f"{k} (LDVAE)": v
        for k, v in _latent_readings(Z, adata, units, first_target(adata), seed).items()
    }


def _replicate(
    params: Mapping[str, Any],
    point: Point,
    rep: int,
    seed: int,
    with_ldvae: bool,
    readings: Sequence[str] | None,
) -> tuple[list[dict[str, Any]], float]:
    """One simulated study and its readings: the rows of :func:`run_power` and the seconds."""
    t0 = time.monotonic()
    adata = simulate_study(params, point, rep, seed)
    found = (
        ldvae_readings(adata, params["ldvae"], seed)
        if with_ldvae
        else cheap_readings(adata, seed, readings)
    )
    secs = time.monotonic() - t0
    rows = [
        {
            "donors": point.donors,
            "nuclei": point.nuclei,
            "fold": point.fold,
            "rep": rep,
            "reading": reading,
            "pvalue": p,
            "detected": bool(np.isfinite(p) and p < ALPHA),
            "seconds": round(secs, 2),
        }
        for reading, p in found.items()
    ]
    return rows, secs


def run_power(
    params: Mapping[str, Any],
    points: Sequence[Point],
    reps: int = 50,
    ldvae_points: Sequence[Point] = (),
    ldvae_reps: int = 0,
    seed: int = 0,
    jobs: int = 1,
    readings: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Every replicate of every design point, and what each reading found.

    Parameters
    ----------
    params
        A resolved simulated case–control profile.
    points
        The design points of the cheap readings (:func:`cheap_readings`), ``reps`` replicates each.
    reps
        Replicates per point.
    ldvae_points, ldvae_reps
        The design points and replicates of the LDVAE readings (:func:`ldvae_readings`).
    seed
        The study's seed; replicate ``r`` of every point has its own seed from it.
    jobs
        Replicates run at once (processes; each replicate's own numbers do not depend on it).
    readings
        Which of :data:`CHEAP_READINGS` (default: all).
    progress
        Called with a line after each replicate (default: the log).

    Returns
    -------
    pandas.DataFrame
        One row per (point, replicate, reading): ``donors``, ``nuclei``, ``fold``, ``rep``,
        ``reading``, ``pvalue``, ``detected`` (``pvalue < ALPHA``), ``seconds`` (the
        replicate's time).
    """
    from joblib import Parallel, delayed

    unknown = set(readings or ()) - set(CHEAP_READINGS)
    if unknown:
        raise PowerError(
            f"unknown reading(s) {', '.join(sorted(unknown))}; choose from {', '.join(CHEAP_READINGS)}."
        )
    say = progress or log.info
    tasks = [(p, r, False) for p in points for r in range(reps)]
    tasks += [(p, r, True) for p in ldvae_points for r in range(ldvae_reps)]
    rows: list[dict[str, Any]] = []
    start = time.monotonic()
    results = Parallel(n_jobs=jobs, return_as="generator")(
        delayed(_replicate)(params, p, r, seed, ldvae, readings) for p, r, ldvae in tasks
    )
    for done, ((point, rep, with_ldvae), (found, secs)) in enumerate(
        zip(tasks, results, strict=True), start=1
    ):
        rows.extend(found)
        say(
            f"power {done}/{len(tasks)}: {point.donors} donors per arm, {point.nuclei} nuclei, "
            f"fold {point.fold:g}{' (LDVAE)' if with_ldvae else ''}, replicate {rep + 1} "
            f"({secs:.1f} s; {time_left(start, done, len(tasks))})"
        )
    return pd.DataFrame(rows)


def time_left(start: float, done: int, total: int) -> str:
    """The "about N min left" of ``total`` simulated studies, ``done`` of them since ``start``
    (:func:`time.monotonic`), at their mean pace so far."""
    left = (time.monotonic() - start) / max(done, 1) * (total - done)
    return f"about {left / 60:.0f} min left"


def power_table(replicates: pd.DataFrame) -> pd.DataFrame:
    """Detection fraction per design point and reading, with its exact 95 % interval."""
    from scipy.stats import binomtest

    rows = []
    keys = ["reading", "donors", "nuclei", "fold"]
    for key, part in replicates.groupby(keys, sort=True):
        tested = part[np.isfinite(part["pvalue"].astype(float))]
        k, n = int(tested["detected"].sum()), len(tested)
        ci = binomtest(k, n).proportion_ci(method="exact") if n else None
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "replicates": n,
                "detected": k,
                "power": k / n if n else np.nan,
                "power_low": float(ci.low) if ci else np.nan,
                "power_high": float(ci.high) if ci else np.nan,
                "seconds_per_replicate": round(float(part["seconds"].mean()), 2),
            }
        )
    return pd.DataFrame(rows)


def donors_needed(table: pd.DataFrame, target: float = TARGET_POWER) -> pd.DataFrame:
    """Per reading, nuclei and fold change: the fewest donors per arm reaching ``target`` power
    (NaN: none of the donor counts tried)."""
    rows = []
    for (reading, nuclei, fold), part in table.groupby(["reading", "nuclei", "fold"], sort=True):
        ok = part[part["power"] >= target].sort_values("donors")
        rows.append(
            {
                "reading": reading,
                "nuclei": nuclei,
                "fold": fold,
                "donors_per_arm": float(ok["donors"].iloc[0]) if len(ok) else np.nan,
                "tried": ", ".join(str(int(d)) for d in sorted(part["donors"])),
            }
        )
    return pd.DataFrame(rows)


def power_figure(table: pd.DataFrame, title: str = "") -> Any:
    """Power against donors per arm, one panel per reading, a line per fold change."""
    import matplotlib.pyplot as plt

    readings = list(dict.fromkeys(table["reading"]))
    cols = min(3, len(readings))
    rows = int(np.ceil(len(readings) / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False, sharey=True
    )
    for ax in axes.ravel()[len(readings) :]:
        ax.axis("off")
    for ax, reading in zip(axes.ravel(), readings, strict=False):
        part = table[table["reading"] == reading]
        for (fold, nuclei), line in part.groupby(["fold", "nuclei"], sort=True):
            line = line.sort_values("donors")
            err = np.vstack([line["power"] - line["power_low"], line["power_high"] - line["power"]])
            ax.errorbar(
                line["donors"],
                line["power"],
                yerr=err,
                marker="o",
                capsize=2,
                label=f"×{fold:g}, {nuclei} nuclei",
            )
        ax.axhline(TARGET_POWER, color="grey", ls="--", lw=1)
        ax.axhline(ALPHA, color="grey", ls=":", lw=1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(reading, fontsize=10)
        ax.set_xlabel("donors per arm")
        ax.set_ylabel(f"share detected (p < {ALPHA})")
        ax.legend(fontsize=7)
    fig.suptitle(
        title or "power: the share of simulated studies in which each reading detects the shift"
    )
    fig.tight_layout()
    return fig


def write_power(
    folder: Any, replicates: pd.DataFrame, prov: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """Write ``replicates.csv``, ``power.csv`` (each row with the commit it ran at and whether
    the tree was dirty), ``donors_needed.csv``, ``power.png`` and ``machine.json`` (the
    provenance: packages, machine) into ``folder``; returns the power table."""
    from pathlib import Path

    from latentshift.data import artifacts

    folder = Path(folder)
    prov = dict(prov or {})
    table = power_table(replicates)
    table = table.assign(**artifacts.commit_stamp(prov))
    artifacts.write_csv(replicates, folder / "replicates.csv", index=False)
    artifacts.write_csv(table, folder / "power.csv", index=False)
    artifacts.write_csv(donors_needed(table), folder / "donors_needed.csv", index=False)
    artifacts.save_figure(power_figure(table), folder / "power.png")
    if prov:
        artifacts.write_json(prov, folder / "machine.json")
    return table


def power_markdown(table: pd.DataFrame) -> str:
    """The power table as Markdown: a row per reading and fold change, a column per donor count
    (the share detected and its exact 95 % interval, over how many replicates), and the fewest
    donors per arm reaching 80 % (fold 1 is the null: its share is the false-positive rate)."""
    donors = sorted({int(d) for d in table["donors"]})
    head = ["reading", "fold change", *[f"{d} donors per arm" for d in donors], "80 % power from"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    needed = donors_needed(table).set_index(["reading", "nuclei", "fold"])
    for (reading, nuclei, fold), part in table.groupby(["reading", "nuclei", "fold"], sort=False):
        cells = []
        for d in donors:
            row = part[part["donors"] == d]
            if row.empty:
                cells.append("–")
                continue
            r = row.iloc[0]
            floor = null_floor(str(reading), d)
            if floor >= ALPHA:
                cells.append(f"untestable: p ≥ {floor:.2g} with {d} donors per arm")
                continue
            cells.append(
                f"{100 * r['power']:.0f}% [{100 * r['power_low']:.0f}, {100 * r['power_high']:.0f}]"
                f" (n={int(r['replicates'])})"
            )
        if fold == 1:
            need = "null: the false-positive rate"
        else:
            n = needed.loc[(reading, nuclei, fold), "donors_per_arm"]
            need = f"{int(n)} donors" if np.isfinite(n) else f"more than {max(donors)}"
        label = f"{fold:g}" + ("" if len(set(table["nuclei"])) == 1 else f", {int(nuclei)} nuclei")
        lines.append("| " + " | ".join([str(reading), label, *cells, need]) + " |")
    return "\n".join(lines)
