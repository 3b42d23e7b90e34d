"""Are the pseudobulk gene-level p-values calibrated with few donors?

On a null (nothing shifted) a calibrated test gives uniform p-values: 5 % of the genes below
0.05. DESeq2 shrinks each gene's dispersion toward a trend with a prior whose width it estimates
from the residual degrees of freedom of the GLM; with few donors the estimate is poor (PyDESeq2
warns below 4 residual df) and the p-values drift. :func:`run_calibration` measures it: many
simulated case–control studies with no shift (:func:`latentshift.readings.power.simulate_study`
at fold change 1, new donors, effects and nuclei each time) per number of donors per arm, and in
each the PyDESeq2 test by donor in the profile's first targeted cell type
(:func:`gene_calibration`): the share of genes below p = 0.05 and the KS test of the p-values
against the uniform, over the genes with counts enough for a continuous p
(:data:`latentshift.readings.pseudobulk.MIN_BASEMEAN_UNIFORM`), and whether any gene passes FDR
0.05 (a false discovery: Benjamini–Hochberg keeps the share of null studies with one at 5 % or
fewer). :func:`calibration_table`
summarises them per donor count, beside whether
:func:`latentshift.readings.pseudobulk.by_cell_type` tests a type held by that many donors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

#: A replicate's gene-level p-values count as uniform when their KS test against the uniform
#: gives more than this (the issue's and the pseudobulk table's criterion).
KS_LEVEL = 0.01


def gene_calibration(adata: AnnData) -> dict[str, Any]:
    """The gene-level p-values of one simulated study's pseudobulk test, by donor, in its first
    targeted cell type (:func:`latentshift.readings.power.simulate_study`).

    Returns
    -------
    dict
        ``n_samples``, ``residual_df`` (samples less intercept and condition), ``wald_df`` (the
        median gene's df of the t reference, :func:`~latentshift.readings.pseudobulk.wald_df`),
        ``n_genes`` (genes with ``baseMean`` ≥
        :data:`~latentshift.readings.pseudobulk.MIN_BASEMEAN_UNIFORM`), ``share_p05`` (those
        below p = 0.05), ``ks_pvalue`` (their KS test against the uniform) and
        ``n_genes_fdr05`` (genes at BH-adjusted p < 0.05: on a null, a false discovery; BH
        keeps a study with any at 5 % or fewer); the same three with ``_normal`` for
        PyDESeq2's normal reference on the same fit.
    """
    from latentshift.readings import power, pseudobulk

    cell_type, _, part = power.target_nuclei(adata, power.study_units(adata))
    pb = pseudobulk.aggregate(part, ["donor_id", "condition"])
    table = pseudobulk.deseq(pb)
    found = pseudobulk.gene_level_calibration(table)
    normal = pseudobulk.gene_level_calibration(table, "pvalue_normal")
    return {
        "cell_type": cell_type,
        "n_samples": int(pb.n_obs),
        "residual_df": pseudobulk.residual_df(pb),
        "wald_df": float(table["df"].median()),
        "n_genes": found["n_genes_uniform"],
        "share_p05": found["share_p05"],
        "ks_pvalue": found["pvalue_uniform_ks"],
        "n_genes_fdr05": found["n_genes_fdr05"],
        "share_p05_normal": normal["share_p05"],
        "ks_pvalue_normal": normal["pvalue_uniform_ks"],
        "n_genes_fdr05_normal": normal["n_genes_fdr05"],
    }


def run_calibration(
    params: Mapping[str, Any],
    donors: Sequence[int],
    nuclei: int = 200,
    reps: int = 20,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Null studies per donor count and each one's gene-level calibration.

    Parameters
    ----------
    params
        A resolved simulated case–control profile (its first perturbation entry names the set
        and the targeted cell types; the fold change is set to 1: nothing shifts).
    donors
        Donors per arm.
    nuclei
        Nuclei per donor.
    reps
        Studies per donor count; study ``r`` has the same seed as replicate ``r`` of the power
        study's fold-1 point with the same donors and nuclei.
    seed
        The study's seed.
    progress
        Called with a line after each study (default: the log).

    Returns
    -------
    pandas.DataFrame
        One row per study: ``donors``, ``nuclei``, ``rep``, :func:`gene_calibration`'s columns
        and ``seconds``.
    """
    from latentshift.readings.power import Point, PowerError, simulate_study, time_left

    if not donors or min(donors) < 2 or reps < 1:
        raise PowerError(
            f"a calibration needs at least 2 donors per arm and 1 replicate (got donors "
            f"{list(donors)}, reps {reps}); e.g. --donors 2,3,4,6 --reps 20."
        )
    say = progress or log.info
    rows, start, total = [], time.monotonic(), len(donors) * reps
    for d in donors:
        for r in range(reps):
            t0 = time.monotonic()
            adata = simulate_study(params, Point(int(d), int(nuclei), 1.0), r, seed)
            row = {"donors": int(d), "nuclei": int(nuclei), "rep": r, **gene_calibration(adata)}
            row["seconds"] = round(time.monotonic() - t0, 2)
            rows.append(row)
            say(
                f"calibration {len(rows)}/{total}: {d} donors per arm, replicate {r + 1}: "
                f"{100 * row['share_p05']:.1f}% of {row['n_genes']} genes at p < 0.05 "
                f"({time_left(start, len(rows), total)})"
            )
    return pd.DataFrame(rows)


def calibration_table(replicates: pd.DataFrame) -> pd.DataFrame:
    """Per donor count: the studies, the residual df, the mean share of genes below p = 0.05
    (and the lowest and highest study's), the studies whose p-values pass the KS test
    (p > :data:`KS_LEVEL`), the studies with a gene at FDR 0.05, and whether :func:`latentshift.readings.pseudobulk.by_cell_type`
    tests an unpaired type held by that many donors per arm."""
    from latentshift.readings.pseudobulk import MIN_DONORS_UNPAIRED

    rows = []
    for (d, n), part in replicates.groupby(["donors", "nuclei"], sort=True):
        rows.append(
            {
                "donors": int(d),
                "nuclei": int(n),
                "replicates": len(part),
                "residual_df": int(part["residual_df"].median()),
                "genes": int(part["n_genes"].median()),
                "share_p05": float(part["share_p05"].mean()),
                "share_p05_low": float(part["share_p05"].min()),
                "share_p05_high": float(part["share_p05"].max()),
                "wald_df": float(part["wald_df"].median()),
                "uniform": int((part["ks_pvalue"] > KS_LEVEL).sum()),
                "with_fdr05": int((part["n_genes_fdr05"] > 0).sum()),
                "share_p05_normal": float(part["share_p05_normal"].mean()),
                "uniform_normal": int((part["ks_pvalue_normal"] > KS_LEVEL).sum()),
                "with_fdr05_normal": int((part["n_genes_fdr05_normal"] > 0).sum()),
                "tested_by_cell_type": bool(d >= MIN_DONORS_UNPAIRED),
                "seconds_per_replicate": round(float(part["seconds"].mean()), 2),
            }
        )
    return pd.DataFrame(rows)


def calibration_markdown(table: pd.DataFrame) -> str:
    """The calibration table as Markdown, a row per donor count."""
    head = [
        "donors per arm",
        "residual df (t df)",
        "genes at p < 0.05 (5% when calibrated): mean [lowest, highest study]",
        f"studies uniform (KS p > {KS_LEVEL})",
        "studies with a gene at FDR 0.05 (5% at most when calibrated)",
        "PyDESeq2's normal reference, same fits: genes at p < 0.05; uniform; with a gene at "
        "FDR 0.05",
        "tested per cell type",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table.sort_values("donors").to_dict("records"):
        n = int(r["replicates"])
        lines.append(
            "| "
            + " | ".join(
                [
                    str(int(r["donors"])),
                    f"{int(r['residual_df'])} ({r['wald_df']:.1f})",
                    f"{100 * r['share_p05']:.1f}% [{100 * r['share_p05_low']:.1f}, "
                    f"{100 * r['share_p05_high']:.1f}]",
                    f"{int(r['uniform'])} of {n}",
                    f"{int(r['with_fdr05'])} of {n}",
                    f"{100 * r['share_p05_normal']:.1f}%; {int(r['uniform_normal'])} of {n}; "
                    f"{int(r['with_fdr05_normal'])} of {n}",
                    "yes" if r["tested_by_cell_type"] else "no: untested",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def write_calibration(
    folder: Any, replicates: pd.DataFrame, prov: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """Write ``replicates.csv``, ``calibration.csv`` (each row with the commit it ran at and
    whether the tree was dirty) and ``machine.json`` into ``folder``; returns the table."""
    from pathlib import Path

    from latentshift.data import artifacts

    folder = Path(folder)
    prov = dict(prov or {})
    table = calibration_table(replicates)
    table = table.assign(**artifacts.commit_stamp(prov))
    artifacts.write_csv(replicates, folder / "replicates.csv", index=False)
    artifacts.write_csv(table, folder / "calibration.csv", index=False)
    if prov:
        artifacts.write_json(prov, folder / "machine.json")
    return table
