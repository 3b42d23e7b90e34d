"""Pseudobulk differential expression by donor: counts summed per donor (and condition), a
negative-binomial GLM per gene (PyDESeq2).

Nuclei of one donor are not independent replicates: methods that test nuclei "discover hundreds
of differentially expressed genes in the absence of biological differences" (Squair et al.
2021, *Nat Commun* 12:5692), and pseudobulk methods came out best among those compared
(Junttila et al. 2022). So the counts of each donor × condition (× cell type) are summed with
scanpy's :func:`scanpy.get.aggregate` (:func:`aggregate`), and each gene gets DESeq2's
negative-binomial GLM (PyDESeq2, Muzellec et al. 2023; :func:`deseq`) — with the donor in the
design when every donor holds both conditions (paired), so each donor is its own control.

The set-level tests on its tables (camera's rank test, the rank of a set) live in
:mod:`latentshift.readings.set_tests`.

The gene-level p-values read each Wald statistic against a t distribution, not PyDESeq2's
normal (:func:`wald_df`): a gene's standard error rests on a dispersion estimated from a few
residual degrees of freedom and shrunk toward the trend, and the normal reference ignores that
uncertainty. On simulated nulls (``python -m latentshift calibration``) the normal reference
leaves the bulk of the p-values near uniform but its tail too light: a type called some gene
at FDR 0.05 in several times the 5 % of null studies Benjamini–Hochberg allows. R's DESeq2 offers
a t with the residual df (``useT``), which leaves out the prior and so is more cautious still
with few donors; the df here add the prior's, as limma's moderated t does
(Smyth 2004): the residual df plus the df whose log-variance spread equals DESeq2's own prior
variance of the log dispersions. PyDESeq2's normal p-value stays in the table
(``pvalue_normal``) for comparison.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from latentshift.errors import DataError
from latentshift.readings.set_tests import set_correlation, set_test

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

#: Fewest cells a donor × condition group needs to be a pseudobulk sample.
MIN_CELLS = 10
#: Fewest donors in each condition for an unpaired per-type test. With 2 against 2 or 3 donors
#: the GLM keeps 2 or 3 residual degrees of freedom, too few for DESeq2's dispersion prior
#: (PyDESeq2 warns that it is poorly estimated) and the gene-level p-values of a null fall far
#: from uniform (``python -m latentshift calibration``, recorded in
#: results/case_control_power_calibration.csv; docs/donor-level.md). Such a type is untested.
MIN_DONORS_UNPAIRED = 3
#: Fewest donors holding both conditions for a paired per-type test: each donor is its own
#: control (the donor in the design), and 2 is all a paired design such as Kang et al.'s may
#: have. Its residual df are few (1 with 2 pairs): expect its gene-level p-values to be as
#: conservative as the calibration's 2-donor studies; the set test ranks the genes' statistics.
MIN_PAIRS = 2
#: Fewest mean normalised counts per sample (DESeq2's ``baseMean``) for a gene to enter the
#: uniformity check of the gene-level p-values. A count test's p-values for genes of a few
#: counts are discrete and pile up near 1 even when nothing changed (the DESeq2 vignette's
#: p-value histograms leave them out), so a KS test over them rejects uniformity for a reason
#: that is not miscalibration; both are reported.
MIN_BASEMEAN_UNIFORM = 10.0


def aggregate(
    adata: AnnData, by: Sequence[str], layer: str | None = "counts", min_cells: int = MIN_CELLS
) -> AnnData:
    """Counts summed per group of cells (scanpy's :func:`scanpy.get.aggregate`), integer.

    Parameters
    ----------
    adata
        Cells with integer counts (``layers[layer]``, else ``X``) and the ``by`` obs columns.
    by
        obs columns whose combinations are the samples (e.g. ``donor_id``, ``condition``).
    layer
        The counts' layer (``None``: ``X``).
    min_cells
        Groups with fewer cells are left out (``obs["n_cells"]`` counts them).

    Returns
    -------
    AnnData
        One row per group: ``X`` the summed counts (int64), obs the ``by`` columns and
        ``n_cells``.
    """
    import scanpy as sc

    layer = layer if layer is not None and layer in adata.layers else None
    summed = sc.get.aggregate(adata, by=list(by), func=["sum", "count_nonzero"], layer=layer)
    sizes = adata.obs.groupby(list(by), observed=True).size()
    obs = summed.obs.copy()
    obs["n_cells"] = [
        int(sizes.loc[tuple(r)] if len(by) > 1 else sizes.loc[r[0]])
        for r in obs[list(by)].itertuples(index=False)
    ]
    counts = np.rint(np.asarray(summed.layers["sum"])).astype(np.int64)
    import anndata as ad

    out = ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=adata.var_names.copy()))
    keep = (out.obs["n_cells"] >= min_cells).to_numpy()
    if not keep.all():
        log.info(
            "pseudobulk: %d of %d groups have fewer than %d cells; left out",
            (~keep).sum(),
            len(keep),
            min_cells,
        )
    return out[keep].copy()


def deseq(
    pb: AnnData,
    condition: str = "condition",
    reference: str | None = None,
    test: str | None = None,
    donor: str | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """DESeq2's negative-binomial GLM per gene (PyDESeq2): ``test`` against ``reference``.

    Parameters
    ----------
    pb
        Pseudobulk samples (:func:`aggregate`), integer counts.
    condition
        The obs column of the condition.
    reference, test
        The two conditions (default: the column's first category, and the second).
    donor
        An obs column of the donor, put in the design (``~ donor + condition``) when given:
        for paired samples, each donor is its own control.
    seed
        Unused by the fit (deterministic); kept for the readings' common signature.

    Returns
    -------
    pandas.DataFrame
        One row per gene tested: ``baseMean``, ``log2FoldChange``, ``lfcSE``, ``stat``
        (Wald), ``pvalue`` (the statistic against a t with ``df``, :func:`wald_df`), ``padj``
        (Benjamini–Hochberg after PyDESeq2's Cook's and independent filtering), ``df`` and
        ``pvalue_normal`` (PyDESeq2's own, against the normal); genes of all-zero counts are
        left out.

    Raises
    ------
    DataError
        Fewer than 2 samples of a condition (no dispersion can be estimated).
    """
    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.ds import DeseqStats

    values = pb.obs[condition].astype(str)
    levels = [str(c) for c in pd.unique(values)]
    if isinstance(pb.obs[condition].dtype, pd.CategoricalDtype):
        levels = [str(c) for c in pb.obs[condition].cat.categories if str(c) in set(values)]
    reference = reference or levels[0]
    test = test or [c for c in levels if c != reference][0]
    per = values.value_counts()
    if per.get(reference, 0) < 2 or per.get(test, 0) < 2:
        raise DataError(
            f"pseudobulk DE needs at least 2 samples of each condition; {reference}: "
            f"{per.get(reference, 0)}, {test}: {per.get(test, 0)} (donors with at least "
            f"{MIN_CELLS} cells)."
        )
    keep = values.isin([reference, test]).to_numpy()
    counts = pd.DataFrame(
        np.asarray(pb.X)[keep], index=pb.obs_names[keep].astype(str), columns=pb.var_names
    )
    counts = counts.loc[:, counts.sum(axis=0) > 0]
    meta = pd.DataFrame({"condition": values[keep].to_numpy()}, index=counts.index)
    factors = "~condition"
    if donor is not None:
        meta["donor"] = pb.obs[donor].astype(str).to_numpy()[keep]
        factors = "~donor + condition"
    dds = DeseqDataSet(
        counts=counts, metadata=meta, design=factors, refit_cooks=True, quiet=True, n_cpus=1
    )
    dds.deseq2()
    stats = DeseqStats(dds, contrast=["condition", test, reference], quiet=True, n_cpus=1)
    stats.run_wald_test()
    normal = stats.p_values.copy()
    df = pd.Series(wald_df(dds), index=dds.var_names)
    stats.p_values = _t_pvalues(stats.statistics, df, normal)
    # summary() keeps the p-values above and runs PyDESeq2's Cook's and independent filtering
    # and Benjamini–Hochberg on them
    stats.summary()
    table = stats.results_df.copy()
    table["df"] = df
    table["pvalue_normal"] = normal
    table.loc[table["pvalue"].isna(), "pvalue_normal"] = np.nan
    table.index.name = "gene"
    return table


def wald_df(dds: Any) -> np.ndarray:
    """The degrees of freedom of each gene's t reference for its Wald statistic.

    A gene's dispersion is a maximum a posteriori estimate: its own residual degrees of
    freedom (samples less coefficients) plus DESeq2's prior on the log dispersion around the
    trend. That prior weighs as many degrees of freedom as a variance estimate whose log has the
    same spread (the variance of a log chi-square over ``d`` df is ``trigamma(d / 2)``; limma's
    moderated t adds prior df to residual df the same way, Smyth 2004). Genes DESeq2 leaves
    unshrunk (gene-wise dispersion more than two spreads above the trend) keep their residual
    df only.

    Parameters
    ----------
    dds
        A fitted ``pydeseq2.dds.DeseqDataSet``.

    Returns
    -------
    numpy.ndarray
        One df per gene (``dds.var_names``).
    """
    from scipy.optimize import brentq
    from scipy.special import polygamma

    n_samples, n_coef = dds.obsm["design_matrix"].shape
    residual = max(int(n_samples - n_coef), 1)
    prior_var = float(np.asarray(dds.uns["prior_disp_var"]).item())
    prior = brentq(lambda d: float(polygamma(1, d / 2)) - prior_var, 1e-6, 1e8)
    unshrunk = dds.var["_outlier_genes"].fillna(False).to_numpy(dtype=bool)
    return np.where(unshrunk, residual, residual + prior).astype(float)


def _t_pvalues(stat: pd.Series, df: pd.Series, normal: pd.Series) -> pd.Series:
    """Two-sided p-values of Wald statistics against a t with ``df``; missing where the normal
    p-value is (genes PyDESeq2 does not test)."""
    from scipy.stats import t

    p = pd.Series(2 * t.sf(np.abs(stat.to_numpy(dtype=float)), df.to_numpy()), index=stat.index)
    return p.where(normal.notna())


def by_cell_type(
    adata: AnnData,
    units: Any,
    sets: dict[str, Sequence[str]],
    directions: dict[str, str],
    *,
    cell_type_key: str = "cell_type",
    min_cells: int = MIN_CELLS,
    min_units: int | None = None,
) -> tuple[dict[tuple[str, str], pd.DataFrame], pd.DataFrame]:
    """Pseudobulk DE of every condition against the reference in every cell type, by donor,
    and the set test of each named set there.

    Parameters
    ----------
    adata
        Cells with integer counts (``layers["counts"]``), every gene.
    units
        The design (:class:`latentshift.design.units.Units`: donors, conditions, pairing): the donor is
        put in the design when paired.
    sets
        Condition → its named set's genes (var names).
    directions
        Condition → ``up``/``down``.
    cell_type_key
        The obs column of the cell type.
    min_cells, min_units
        A (donor, condition) sample needs ``min_cells`` cells of the type; a type is tested when
        each condition has ``min_units`` such samples. Default: :data:`MIN_PAIRS` donors
        holding both conditions where the type's test is paired, else
        :data:`MIN_DONORS_UNPAIRED` in each condition.

    Returns
    -------
    tables : dict
        ``(condition, cell type)`` → :func:`deseq`'s table.
    summary : pandas.DataFrame
        One row per (condition, cell type): ``testable``, ``reason``, ``n_samples``,
        ``paired``, ``residual_df`` (samples less the GLM's coefficients), ``n_genes_fdr05``
        (genes at BH 0.05), ``n_genes``, ``pvalue_uniform_ks`` (the KS test of the gene-level
        p-values against the uniform, over the ``n_genes_uniform`` genes with
        ``baseMean`` ≥ :data:`MIN_BASEMEAN_UNIFORM`; ``pvalue_uniform_ks_all`` over every
        gene), ``share_p05`` (those genes at p < 0.05),
        ``set_pvalue``, ``set_z``, ``set_mean_stat``, ``n_set``, ``set_correlation``
        (:func:`set_correlation`) and ``set_pvalue_adj`` (BH over the cell types of each
        condition).
    """
    obs = pd.DataFrame(
        {
            "donor_id": units.unit,
            "condition": pd.Categorical(units.condition, categories=list(units.labels)),
            "cell_type": adata.obs[cell_type_key].astype(str).to_numpy(),
        },
        index=adata.obs_names,
    )
    tables: dict[tuple[str, str], pd.DataFrame] = {}
    rows = []
    for cond in units.labels[1:]:
        for ct in sorted(set(obs["cell_type"])):
            mask = (obs["cell_type"] == ct).to_numpy() & obs["condition"].isin(
                [units.reference, cond]
            ).to_numpy()
            row: dict[str, Any] = {
                "condition": cond,
                "cell_type": ct,
                "testable": False,
                "reason": "",
            }
            part = adata[mask]
            part.obs = obs[mask]
            pb = (
                aggregate(part, ["donor_id", "condition"], min_cells=min_cells)
                if mask.any()
                else None
            )
            per = (
                pb.obs["condition"].astype(str).value_counts()
                if pb is not None
                else pd.Series(dtype=int)
            )
            row["n_samples"] = int(pb.n_obs) if pb is not None else 0
            paired = pb is not None and _paired(pb, units)
            need = (
                min_units if min_units is not None else MIN_PAIRS if paired else MIN_DONORS_UNPAIRED
            )
            n_ref, n_cond = per.get(units.reference, 0), per.get(cond, 0)
            if n_ref < need or n_cond < need:
                row["reason"] = (
                    f"fewer than {need} {'pairs of ' if paired else ''}donors with {min_cells} "
                    f"cells of the type in a condition ({units.reference}: {n_ref}, {cond}: {n_cond})"
                )
                rows.append(row)
                continue
            table, stats = _test_cell_type(pb, units, cond, sets, directions, paired)
            tables[(cond, ct)] = table
            row.update(testable=True, **stats)
            rows.append(row)
            log.info(
                "pseudobulk %s / %s: %d samples, set p = %.3g",
                cond,
                ct,
                pb.n_obs,
                row["set_pvalue"],
            )
    return tables, _with_set_fdr(pd.DataFrame(rows))


def _test_cell_type(
    pb: AnnData,
    units: Any,
    cond: str,
    sets: dict[str, Sequence[str]],
    directions: dict[str, str],
    paired: bool,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`deseq` of one testable cell type's pseudobulk ``pb`` (by donor when ``paired``,
    :func:`_paired`) and its summary columns (:func:`by_cell_type`)."""
    table = deseq(pb, reference=units.reference, test=cond, donor="donor_id" if paired else None)
    genes = [g for g in sets.get(cond, []) if g in table.index]
    pair = pb[pb.obs["condition"].astype(str).isin([units.reference, cond]).to_numpy()]
    res = (
        set_test(
            table,
            genes,
            directions.get(cond, "up"),
            set_correlation(pair, genes, donor="donor_id" if paired else None),
        )
        if cond in sets
        else {}
    )
    stats = dict(
        paired=paired,
        residual_df=residual_df(pb, paired),
        **gene_level_calibration(table),
        n_genes=int(len(table)),
        set_pvalue=res.get("pvalue", np.nan),
        set_z=res.get("z", np.nan),
        set_mean_stat=res.get("mean_stat", np.nan),
        n_set=res.get("n_set", 0),
        set_correlation=res.get("correlation", np.nan),
    )
    return table, stats


def gene_level_calibration(table: pd.DataFrame, column: str = "pvalue") -> dict[str, Any]:
    """Are a :func:`deseq` table's gene-level p-values uniform, as they must be where nothing
    changed?

    Parameters
    ----------
    table
        A :func:`deseq` table.
    column
        The p-values to judge: ``pvalue`` (the t reference, adjusted in ``padj``) or
        ``pvalue_normal`` (PyDESeq2's normal reference, adjusted here by Benjamini–Hochberg
        over the same genes as ``padj``).

    Returns
    -------
    dict
        ``n_genes_fdr05`` (genes at BH 0.05), ``pvalue_uniform_ks`` (KS test against the
        uniform over the ``n_genes_uniform`` genes with ``baseMean`` ≥
        :data:`MIN_BASEMEAN_UNIFORM`, whose p is continuous enough), ``share_p05`` (those below
        0.05) and ``pvalue_uniform_ks_all`` (the KS test over every gene).
    """
    from scipy.stats import false_discovery_control, kstest

    all_p = table[column].dropna()
    gene_p = all_p[table.loc[all_p.index, "baseMean"] >= MIN_BASEMEAN_UNIFORM].to_numpy()
    padj = table["padj"]
    if column != "pvalue":
        kept = padj.notna() & table[column].notna()
        padj = pd.Series(np.nan, index=table.index)
        if kept.any():
            padj[kept] = false_discovery_control(table.loc[kept, column].to_numpy())
    return {
        "n_genes_fdr05": int((padj < 0.05).sum()),
        "pvalue_uniform_ks": float(kstest(gene_p, "uniform").pvalue) if gene_p.size else np.nan,
        "share_p05": float((gene_p < 0.05).mean()) if gene_p.size else np.nan,
        "n_genes_uniform": int(gene_p.size),
        "pvalue_uniform_ks_all": float(kstest(all_p, "uniform").pvalue) if all_p.size else np.nan,
    }


def residual_df(pb: AnnData, paired: bool = False) -> int:
    """The residual degrees of freedom of :func:`deseq` on ``pb``: its samples less the
    intercept and the condition, and a coefficient per donor but one when ``paired``."""
    n_donors = pb.obs["donor_id"].nunique()
    return int(pb.n_obs - 2 - (n_donors - 1 if paired else 0))


def _paired(pb: AnnData, units: Any) -> bool:
    """Is one cell type's test paired: a paired design whose every donor holds the type in both
    conditions (then the donor goes into the GLM and each donor is its own control)?"""
    held = pd.crosstab(pb.obs["donor_id"].astype(str), pb.obs["condition"].astype(str)) > 0
    return bool(units.paired and held.shape[1] > 1 and held.all(axis=None))


def _with_set_fdr(summary: pd.DataFrame) -> pd.DataFrame:
    """``set_pvalue_adj``: the set p-values BH-adjusted over the cell types of each condition."""
    summary["set_pvalue_adj"] = np.nan
    if len(summary) and "set_pvalue" in summary:
        from scipy.stats import false_discovery_control

        for _, part in summary.groupby("condition"):
            ok = part["set_pvalue"].notna()
            if ok.any():
                summary.loc[part.index[ok], "set_pvalue_adj"] = false_discovery_control(
                    part.loc[ok, "set_pvalue"].to_numpy()
                )
    return summary


#: The summary columns :func:`summary_metrics` writes as whole numbers.
_COUNTS = ("n_samples", "residual_df", "n_genes_fdr05", "n_genes_uniform")


def summary_metrics(summary: pd.DataFrame) -> dict[str, Any]:
    """The ``pseudobulk`` section of ``metrics.json``: per condition and cell type the samples
    and residual degrees of freedom, the set test and the genes at FDR 0.05; the untested types
    with their reasons."""

    def clean(v: Any) -> Any:
        return None if isinstance(v, float) and not np.isfinite(v) else v

    out: dict[str, Any] = {"by_type": {}, "untested": {}}
    for r in summary.to_dict("records"):
        cond, ct = str(r["condition"]), str(r["cell_type"])
        if not r["testable"]:
            out["untested"].setdefault(cond, {})[ct] = r["reason"]
            continue
        out["by_type"].setdefault(cond, {})[ct] = {
            k: clean(float(r[k])) if k not in _COUNTS else int(r[k])
            for k in (
                "n_samples",
                "residual_df",
                "set_pvalue",
                "set_pvalue_adj",
                "set_z",
                "set_correlation",
                "n_genes_fdr05",
                "n_genes",
                "pvalue_uniform_ks",
                "share_p05",
                "n_genes_uniform",
                "pvalue_uniform_ks_all",
            )
        }
    return out
