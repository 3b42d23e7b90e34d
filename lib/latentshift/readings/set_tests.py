"""Set-level tests on a pseudobulk table (:func:`latentshift.readings.pseudobulk.deseq`): is a
named gene set shifted in its direction, with the correlation of its genes accounted for
(:func:`set_test`, camera's rank test; :func:`set_correlation`), and how does it rank among all
genes by the Wald statistic (:func:`set_rank`, an AUROC oriented by the set's expected
direction: the real response's top genes against the set the synthetic shift moves)?

Both read the Wald statistics themselves, so neither depends on the reference distribution of
the gene-level p-values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from anndata import AnnData

#: limma camera's default inter-gene correlation, the floor of :func:`set_correlation`'s.
DEFAULT_CORRELATION = 0.01


def set_rank(
    table: pd.DataFrame, genes: Sequence[str], direction: str = "up", top: int = 50
) -> dict[str, Any]:
    """How a gene set ranks among the tested genes by the Wald statistic, in its direction.

    Parameters
    ----------
    table
        :func:`~latentshift.readings.pseudobulk.deseq`'s table.
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


def set_test(
    table: pd.DataFrame,
    genes: Sequence[str],
    direction: str = "up",
    correlation: float = DEFAULT_CORRELATION,
) -> dict[str, Any]:
    """Is a gene set shifted in its direction? A rank test of its genes' Wald statistics against
    the rest, with the inter-gene correlation accounted for — camera's rank version.

    Genes of a set are correlated (they respond together), so a plain Wilcoxon–Mann–Whitney
    test, which takes them as independent, is anti-conservative. camera (Wu & Smyth 2012,
    *Nucleic Acids Res* 40:e133; limma's ``rankSumTestWithCorrelation``) inflates the variance
    of the rank-sum statistic for an inter-gene correlation ``correlation``. We use that test
    because it needs only the per-gene statistics and is the field's reference for a set-level
    call; the readings give it the set's own correlation across the donors
    (:func:`set_correlation`, never below limma's default 0.01).

    Parameters
    ----------
    table
        :func:`~latentshift.readings.pseudobulk.deseq`'s table (``stat`` per gene).
    genes
        The set's genes among the table's.
    direction
        ``up`` or ``down``: the alternative tested (one-sided).
    correlation
        The inter-gene correlation of the set.

    Returns
    -------
    dict
        ``pvalue`` (one-sided), ``z`` (positive: the set moves in ``direction``), ``n_set``
        (set genes tested), ``mean_stat`` (the set's
        mean Wald statistic), ``direction``, ``correlation``.
    """
    from scipy.stats import norm, rankdata

    stat = table["stat"].astype(float).dropna()
    in_set = stat.index.isin(list(genes))
    n1, n2 = int(in_set.sum()), int((~in_set).sum())
    out: dict[str, Any] = {"n_set": n1, "direction": direction, "correlation": correlation}
    if n1 == 0 or n2 == 0:
        return {**out, "pvalue": float("nan"), "z": float("nan"), "mean_stat": float("nan")}
    n = n1 + n2
    r = rankdata(stat.to_numpy())
    # U counts the (set, other) pairs where the set gene's statistic is the lower one
    u = n1 * n2 + n1 * (n1 + 1) / 2 - float(r[in_set].sum())
    mu = n1 * n2 / 2
    if correlation == 0 or n1 == 1:
        sigma2 = n1 * n2 * (n + 1) / 12
    else:
        sigma2 = (
            np.arcsin(1) * n1 * n2
            + np.arcsin(0.5) * n1 * n2 * (n2 - 1)
            + np.arcsin(correlation / 2) * n1 * (n1 - 1) * n2 * (n2 - 1)
            + np.arcsin((correlation + 1) / 2) * n1 * (n1 - 1) * n2
        ) / (2 * np.pi)
    ties = np.unique(r, return_counts=True)[1].astype(np.float64)
    if (ties > 1).any():  # limma's tie adjustment
        sigma2 *= 1 - float((ties * (ties + 1) * (ties - 1)).sum()) / (n * (n + 1) * (n - 1))
    sd = float(np.sqrt(sigma2))
    # z oriented to the set's direction: positive when the set moves the way it is named to
    if direction == "up":  # the set ranks high: few pairs with the set gene lower, U small
        z = -(u + 0.5 - mu) / sd
    else:
        z = (u - 0.5 - mu) / sd
    p = float(norm.sf(z))
    return {**out, "pvalue": p, "z": float(z), "mean_stat": float(stat[in_set].mean())}


def set_correlation(
    pb: AnnData,
    genes: Sequence[str],
    condition: str = "condition",
    donor: str | None = None,
    floor: float = DEFAULT_CORRELATION,
) -> float:
    """The set's inter-gene correlation across samples, as camera estimates it
    (``inter.gene.cor = NA``), floored at limma's default.

    The set's genes' log counts (``log2(count / size factor + 1)``, DESeq2's median-of-ratios
    size factors) are regressed on the design (intercept and condition, and the donor when
    given), each gene's residuals scaled to unit variance, and the variance inflation of their mean, ``vif = m · Σ mean² / df``, gives
    the average correlation ``(vif − 1) / (m − 1)``. Donors whose set moves together — an
    interferon programme that differs between people — make the genes' statistics move together
    too, which a rank test that takes them as independent would read as a shift.

    Parameters
    ----------
    pb
        Pseudobulk samples (:func:`~latentshift.readings.pseudobulk.aggregate`).
    genes
        The set's genes among ``pb.var_names``.
    condition, donor
        obs columns of the design.
    floor
        The smallest correlation returned (limma's default 0.01: few samples estimate it
        poorly, and a negative one would make the test anti-conservative).
    """
    idx = np.flatnonzero(pb.var_names.isin(list(genes)))
    counts = np.asarray(pb.X, dtype=np.float64)
    if idx.size < 2:
        return float(floor)
    # DESeq2's median-of-ratios size factors: robust to a programme that moves many genes
    positive = (counts > 0).all(axis=0)
    if positive.sum() >= 10:
        logs = np.log(counts[:, positive])
        factors = np.exp(np.median(logs - logs.mean(axis=0), axis=1))
    else:
        factors = counts.sum(axis=1) / max(counts.sum(axis=1).mean(), 1.0)
    y = np.log2(counts[:, idx] / factors[:, None] + 1)
    design = pd.get_dummies(
        pb.obs[[condition] + ([donor] if donor else [])].astype(str), drop_first=True
    )
    D = np.column_stack([np.ones(pb.n_obs), design.to_numpy(dtype=np.float64)])
    rank = np.linalg.matrix_rank(D)
    df = pb.n_obs - rank
    if df < 2:
        return float(floor)
    resid = y - D @ np.linalg.lstsq(D, y, rcond=None)[0]
    scale = np.sqrt((resid**2).sum(axis=0) / df)
    ok = scale > 1e-12
    m = int(ok.sum())
    if m < 2:
        return float(floor)
    z = resid[:, ok] / scale[ok]
    vif = m * float((z.mean(axis=1) ** 2).sum()) / df
    return float(max(floor, (vif - 1) / (m - 1)))
