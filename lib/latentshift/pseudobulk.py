"""Pseudobulk differential expression by donor: counts summed per donor (and condition), a
negative-binomial GLM per gene (PyDESeq2).

Nuclei of one donor are not independent replicates: methods that test nuclei "discover hundreds
of differentially expressed genes in the absence of biological differences" (Squair et al.
2021, *Nat Commun* 12:5692), and pseudobulk methods came out best among those compared
(Junttila et al. 2022). So the counts of each donor × condition (× cell type) are summed with
scanpy's :func:`scanpy.get.aggregate` (:func:`aggregate`), and each gene gets DESeq2's
negative-binomial GLM (PyDESeq2, Muzellec et al. 2023; :func:`deseq`) — with the donor in the
design when every donor holds both conditions (paired), so each donor is its own control.

:func:`set_rank` asks how a named gene set ranks among all genes by the Wald statistic (an
AUROC, oriented by the set's expected direction): the real response's top genes against the
set the synthetic shift moves.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from latentshift.errors import DataError

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

#: Fewest cells a donor × condition group needs to be a pseudobulk sample.
MIN_CELLS = 10


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
        (Wald), ``pvalue``, ``padj`` (Benjamini–Hochberg); genes of all-zero counts are
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
    stats.summary()
    table = stats.results_df.copy()
    table.index.name = "gene"
    return table


def set_rank(
    table: pd.DataFrame, genes: Sequence[str], direction: str = "up", top: int = 50
) -> dict[str, Any]:
    """How a gene set ranks among the tested genes by the Wald statistic, in its direction.

    Parameters
    ----------
    table
        :func:`deseq`'s table.
    genes
        The set's genes (the table's gene names).
    direction
        ``"up"`` or ``"down"``: the set's expected direction.
    top
        The size of the top list compared with the set.

    Returns
    -------
    dict
        ``auroc`` (a set gene's oriented statistic above a non-set gene's: 0.5 chance),
        ``n_set_tested``, ``in_top`` (set genes among the ``top`` genes by oriented statistic)
        and ``top`` (that list's size), ``expected_in_top`` (by chance), ``top_genes`` (the
        first 10).
    """
    from sklearn.metrics import roc_auc_score

    sign = 1.0 if direction == "up" else -1.0
    stat = sign * table["stat"].astype(float).fillna(0.0)
    in_set = stat.index.isin(list(genes))
    n_set = int(in_set.sum())
    if n_set == 0 or n_set == len(stat):
        return {"auroc": float("nan"), "n_set_tested": n_set, "in_top": 0, "top": top}
    ranked = stat.sort_values(ascending=False)
    head = ranked.index[:top]
    return {
        "auroc": float(roc_auc_score(in_set, stat.to_numpy())),
        "n_set_tested": n_set,
        "in_top": int(head.isin(list(genes)).sum()),
        "top": int(len(head)),
        "expected_in_top": float(len(head) * n_set / len(stat)),
        "top_genes": [str(g) for g in ranked.index[:10]],
    }
