"""Factor loadings of the LDVAE, condition effects per factor, and gene-set recovery.

The reason to use a *linearly decoded* VAE is that each latent factor maps to genes through a
loading matrix ``W`` (genes × factors): the decoder's log expression rate of gene ``g`` is
``W_g · z`` plus a per-cell constant (softmax normalisation and library size). A shift ``Δz`` of
a cell's latent therefore changes gene ``g``'s log expression by ``W_g · Δz`` (up to a constant
shared by all genes). This module closes that loop:

1. :func:`ldvae_loadings` — ``W`` from ``LinearSCVI.get_loadings()``;
2. the condition shifts per factor (:func:`latentshift.readings.factor_shifts.factor_shifts`: per unit,
   within units when paired, between them when not), factors ranked by ``|effect|``;
3. :func:`recovery` / :func:`recovery_table` — how well the perturbed genes stand out among all
   genes when genes are scored in the expected direction, as an AUROC and a one-sided
   Mann–Whitney p-value, for

   * the most shifted factor ``k``: score ``W_gk · sign(Δz_k)``;
   * the projected score ``W_g · Δz`` (no factor chosen by hand);
   * the same projection with PCA components and the PCA-space shift (baseline).

   The score is oriented by the perturbation's direction (× −1 for ``down``), so in every case
   an AUROC near 1 means the set's genes are the ones the observed shift moves, in the direction
   the perturbation moved them; 0.5 means no recovery.

   Two controls sit beside them: the same AUROCs against only the genes whose mean expression
   lies in the set's range (:func:`expression_matched`; disease-set genes are often more highly
   expressed than the average gene), and the AUROC of mean expression alone — what a score that
   knows nothing of the shift would reach.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

from latentshift.design.units import Units
from latentshift.errors import LoadingsError
from latentshift.readings.factor_shifts import factor_shifts

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)


# --- loadings --------------------------------------------------------------------------


def ldvae_loadings(model: Any) -> pd.DataFrame:
    """The gene × factor loading matrix of a trained ``scvi.model.LinearSCVI``.

    Parameters
    ----------
    model
        A trained (or loaded) ``LinearSCVI``.

    Returns
    -------
    pandas.DataFrame
        Genes (the model's ``var_names``) × factors (columns ``Z_0 … Z_{n_latent-1}``). With the
        decoder's batch norm on (the scvi-tools default), scvi-tools folds its scaling in.
    """
    loadings = model.get_loadings()
    loadings.index.name = "gene"
    return loadings


def load_ldvae_loadings(model_dir: str | Path, adata: AnnData) -> pd.DataFrame:
    """Load a saved ``LinearSCVI`` (scvi-tools' own format) and return its loadings.

    Parameters
    ----------
    model_dir
        The folder written by ``model.save`` (``runs/<profile>/model/``).
    adata
        The AnnData the model was set up on (``latent.h5ad``); its genes must match the model's.
    """
    import scvi

    model_dir = Path(model_dir)
    if not (model_dir / "model.pt").is_file():
        raise LoadingsError(
            f"{model_dir} holds no scvi-tools model (model.pt missing): run notebook 03_ldvae first."
        )
    from latentshift.model.ldvae import quiet_scvi

    try:
        with quiet_scvi():
            model = scvi.model.LinearSCVI.load(str(model_dir), adata=adata, accelerator="cpu")
    except ValueError as exc:
        raise LoadingsError(
            f"the model in {model_dir} does not fit the cells given ({exc}); rerun 03_ldvae so "
            "that latent.h5ad and the model come from the same run."
        ) from None
    return ldvae_loadings(model)


def gene_labels(adata: AnnData) -> pd.Series:
    """Readable gene names indexed by ``var_names``: ``var["feature_name"]`` if present
    (CELLxGENE files keyed by Ensembl ID), else the ``var_names`` themselves."""
    if "feature_name" in adata.var.columns:
        labels = adata.var["feature_name"].astype(str)
        return pd.Series(labels.to_numpy(), index=adata.var_names, name="label")
    return pd.Series(np.asarray(adata.var_names), index=adata.var_names, name="label")


def top_genes(loadings: pd.DataFrame, n: int = 15, labels: pd.Series | None = None) -> pd.DataFrame:
    """The top positive and negative genes of each factor.

    Parameters
    ----------
    loadings
        Genes × factors.
    n
        Genes per side and factor.
    labels
        Optional readable names indexed like ``loadings`` (see :func:`gene_labels`).

    Returns
    -------
    pandas.DataFrame
        One row per factor and rank: ``factor``, ``rank`` (1 = strongest), ``positive_gene``,
        ``positive_loading``, ``negative_gene``, ``negative_loading``.
    """
    if n < 1:
        raise LoadingsError(
            f"n = {n}: ask for at least 1 top gene per factor (loadings.n_top_genes)."
        )
    n = min(n, loadings.shape[0])
    names = (
        loadings.index
        if labels is None
        else labels.reindex(loadings.index).fillna(pd.Series(loadings.index, index=loadings.index))
    )
    names = np.asarray(names)
    rows = []
    for factor in loadings.columns:
        w = loadings[factor].to_numpy()
        order = np.argsort(w, kind="stable")
        neg, pos = order[:n], order[::-1][:n]
        for r in range(n):
            rows.append(
                {
                    "factor": factor,
                    "rank": r + 1,
                    "positive_gene": names[pos[r]],
                    "positive_loading": float(w[pos[r]]),
                    "negative_gene": names[neg[r]],
                    "negative_loading": float(w[neg[r]]),
                }
            )
    return pd.DataFrame(rows)


def top_genes_summary(top: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """A compact view of :func:`top_genes`: per factor, its ``n`` strongest genes each way."""
    sub = top[top["rank"] <= n]
    return sub.groupby("factor", sort=False).agg(
        positive=("positive_gene", lambda g: ", ".join(map(str, g))),
        negative=("negative_gene", lambda g: ", ".join(map(str, g))),
    )


def mean_latent_by_group(
    latent: np.ndarray, groups: Sequence[Any], factor_names: Sequence[str] | None = None
) -> pd.DataFrame:
    """Mean latent value of each factor per group (e.g. cell type).

    Parameters
    ----------
    latent
        Cells × factors.
    groups
        One label per cell.
    factor_names
        Column names (default ``Z_0 …``).
    """
    latent = np.asarray(latent, dtype=float)
    cols = (
        list(factor_names)
        if factor_names is not None
        else [f"Z_{i}" for i in range(latent.shape[1])]
    )
    frame = pd.DataFrame(latent, columns=cols)
    frame["_group"] = np.asarray(groups)
    return frame.groupby("_group", observed=True, sort=True).mean().rename_axis(None)


# --- recovery --------------------------------------------------------------------------


def best_factors(shifts: pd.DataFrame) -> dict[str, str]:
    """The most shifted factor of each condition (rank 1 of :func:`factor_shifts`)."""
    top = shifts[shifts["rank"] == 1]
    return {str(c): str(f) for c, f in zip(top["condition"], top["factor"], strict=True)}


def top_shifts(shifts: pd.DataFrame, n: int = 3) -> pd.DataFrame:
    """The ``n`` most shifted factors of each condition, sorted by condition and rank."""
    return shifts[shifts["rank"] <= n].sort_values(["condition", "rank"])


def direction_sign(direction: str) -> int:
    """+1 for ``"up"``, −1 for ``"down"``."""
    if direction not in ("up", "down"):
        raise LoadingsError(
            f"direction {direction!r}: a perturbation's direction is 'up' or 'down'."
        )
    return 1 if direction == "up" else -1


def projected_scores(loadings: pd.DataFrame, shift: Sequence[float] | np.ndarray) -> pd.Series:
    """Each gene's predicted log-expression change under a latent shift: ``W · Δz``.

    Parameters
    ----------
    loadings
        Genes × dims.
    shift
        One value per dim (the mean paired shift).
    """
    shift = np.asarray(shift, dtype=float)
    if shift.shape != (loadings.shape[1],):
        raise LoadingsError(
            f"shift has shape {shift.shape}; expected ({loadings.shape[1]},), one value per factor."
        )
    return pd.Series(loadings.to_numpy(dtype=float) @ shift, index=loadings.index, name="projected")


def factor_scores(loadings: pd.DataFrame, factor: str, shift: float) -> pd.Series:
    """Gene scores on one factor, signed by the factor's observed shift: ``W_gk · sign(Δz_k)``."""
    return pd.Series(
        loadings[factor].to_numpy(dtype=float) * np.sign(shift), index=loadings.index, name=factor
    )


def recovery(scores: pd.Series, genes: Sequence[str], direction: str) -> dict[str, float]:
    """How well a gene set stands out among all genes by a score, in the expected direction.

    Parameters
    ----------
    scores
        One score per gene (index = gene names); positive = expression predicted to rise.
    genes
        The set's genes; those missing from ``scores`` are ignored.
    direction
        ``"up"`` or ``"down"``: the perturbation's direction (``down`` flips the score).

    Returns
    -------
    dict
        ``auroc`` (set genes vs. other genes; 0.5 = chance, 1 = every set gene above every
        other), ``p`` (one-sided Mann–Whitney U, set genes greater), ``n_set``, ``n_other``.
        With none of the set's genes scored (a label-blind gene choice can drop them all),
        ``auroc`` and ``p`` are NaN: recovery is not measurable there.
    """
    oriented = scores.to_numpy(dtype=float) * direction_sign(direction)
    in_set = scores.index.isin(list(genes))
    n_set = int(in_set.sum())
    if n_set == 0:  # a label-blind gene choice may keep none of a set's genes
        log.warning("recovery: none of the set's genes are among the %d scored genes", len(in_set))
        return {"auroc": float("nan"), "p": float("nan"), "n_set": 0, "n_other": len(in_set)}
    if n_set == len(in_set):
        raise LoadingsError(
            f"the gene set has {n_set} of {len(in_set)} scored genes; recovery needs set genes and "
            "other genes. Check that the perturbed genes (uns['perturbation_genes']) are in the model."
        )
    auroc = float(roc_auc_score(in_set, oriented))
    p = float(stats.mannwhitneyu(oriented[in_set], oriented[~in_set], alternative="greater").pvalue)
    return {"auroc": auroc, "p": p, "n_set": n_set, "n_other": int(len(in_set) - n_set)}


def expression_matched(
    mean_expression: pd.Series, genes: Sequence[str], quantiles: tuple[float, float] = (0.1, 0.9)
) -> list[str]:
    """Genes outside a set whose mean expression lies within the set's own range.

    A background for recovery that a score favouring highly expressed genes cannot beat: the
    set's genes are compared only with genes expressed like them.

    Parameters
    ----------
    mean_expression
        One mean per gene (index = gene names), e.g. :func:`latentshift.data.counts.gene_means` over the
        normal cells.
    genes
        The set's genes; those missing from ``mean_expression`` are ignored.
    quantiles
        The range: these quantiles of the set genes' means (inclusive).

    Returns
    -------
    list of str
        Non-set genes within the range, in ``mean_expression`` order.
    """
    lo_q, hi_q = quantiles
    if not 0 <= lo_q < hi_q <= 1:
        raise LoadingsError(f"quantiles {quantiles}: use two numbers 0 <= low < high <= 1.")
    in_set = mean_expression.index.isin(list(genes))
    if not in_set.any():
        raise LoadingsError(
            "no gene of the set has a mean expression; pass means of the model's genes."
        )
    lo, hi = np.quantile(mean_expression.to_numpy()[in_set], [lo_q, hi_q])
    values = mean_expression.to_numpy()
    keep = ~in_set & (values >= lo) & (values <= hi)
    return list(mean_expression.index[keep])


#: Fewer expression-matched background genes than this: the matched AUROC is not reported.
MIN_MATCHED_BACKGROUND = 20


def _matched_recovery(
    scores: pd.Series, genes: Sequence[str], direction: str, background: Sequence[str]
) -> float:
    """AUROC of the set's genes against only ``background`` genes (NaN when too few)."""
    if len(background) < MIN_MATCHED_BACKGROUND:
        return float("nan")
    keep = scores.index.isin(list(genes)) | scores.index.isin(list(background))
    return recovery(scores[keep], genes, direction)["auroc"]


def recovery_table(
    ldvae_loadings: pd.DataFrame,
    ldvae_shifts: pd.DataFrame,
    gene_sets: Mapping[str, Sequence[str]],
    directions: Mapping[str, str],
    pca_loadings: pd.DataFrame | None = None,
    pca_shifts: pd.DataFrame | None = None,
    mean_expression: pd.Series | None = None,
) -> pd.DataFrame:
    """Gene-set recovery for every perturbation entry, LDVAE and PCA side by side.

    Parameters
    ----------
    ldvae_loadings
        Genes × factors (:func:`ldvae_loadings`).
    ldvae_shifts
        :func:`factor_shifts` on the LDVAE latent.
    gene_sets
        ``{condition: [genes perturbed]}`` (``uns["perturbation_genes"]``).
    directions
        ``{condition: "up" | "down"}``.
    pca_loadings, pca_shifts
        The same for the PCA baseline (components genes × dims, :func:`factor_shifts` on the
        PCA coordinates); omitted → no PCA columns.
    mean_expression
        Mean expression per gene (:func:`latentshift.data.counts.gene_means`, index = gene names); given → the controls
        ``auroc_expression`` (AUROC of mean expression alone), ``n_matched_background``
        (:func:`expression_matched` genes), ``auroc_ldvae_matched`` (projected score against
        those genes only) and, with PCA, ``auroc_pca_matched``. A matched AUROC is NaN when fewer
        than :data:`MIN_MATCHED_BACKGROUND` genes match.

    Returns
    -------
    pandas.DataFrame
        One row per condition: ``direction``, ``n_genes``, ``best_factor`` (largest paired
        ``|effect_size|``; None when no factor moves), ``effect_size``, ``mean_shift``, ``auroc_ldvae_factor``,
        ``enrichment_p`` (its one-sided Mann–Whitney p), ``auroc_ldvae_projected``,
        ``enrichment_p_projected``, and with PCA ``auroc_pca_projected``,
        ``enrichment_p_pca``.
    """
    expr = None
    if mean_expression is not None:
        expr = mean_expression.reindex(ldvae_loadings.index)
        if expr.isna().any():
            raise LoadingsError(
                f"mean_expression lacks {int(expr.isna().sum())} of the model's genes; "
                "pass data.gene_means() over the same genes as the loadings."
            )
    rows = []
    for condition, genes in gene_sets.items():
        direction = directions[condition]
        sh = ldvae_shifts[ldvae_shifts["condition"] == condition].set_index("factor")
        if sh.empty:
            raise LoadingsError(
                f"no factor shifts for '{condition}': pass factor_shifts() over every condition."
            )
        sh = sh.reindex(ldvae_loadings.columns)
        if sh["effect_size"].abs().max() > 0:
            best: str | None = str(sh["effect_size"].abs().idxmax())
            fac = recovery(
                factor_scores(ldvae_loadings, best, sh.loc[best, "mean_shift"]), genes, direction
            )
        else:  # no factor moves at all (e.g. fold change 1: copies identical to their cells)
            best = None
            fac = {**recovery(pd.Series(0.0, index=ldvae_loadings.index), genes, direction)}
        proj_scores = projected_scores(ldvae_loadings, sh["mean_shift"].to_numpy())
        proj = recovery(proj_scores, genes, direction)
        row: dict[str, Any] = {
            "condition": condition,
            "direction": direction,
            "n_genes": fac["n_set"],
            "best_factor": best,
            "effect_size": float(sh.loc[best, "effect_size"]) if best else 0.0,
            "mean_shift": float(sh.loc[best, "mean_shift"]) if best else 0.0,
            "auroc_ldvae_factor": fac["auroc"],
            "enrichment_p": fac["p"],
            "auroc_ldvae_projected": proj["auroc"],
            "enrichment_p_projected": proj["p"],
        }
        if pca_loadings is not None and pca_shifts is not None:
            psh = (
                pca_shifts[pca_shifts["condition"] == condition]
                .set_index("factor")
                .reindex(pca_loadings.columns)
            )
            pca_scores = projected_scores(pca_loadings, psh["mean_shift"].to_numpy())
            pca = recovery(pca_scores, genes, direction)
            row["auroc_pca_projected"] = pca["auroc"]
            row["enrichment_p_pca"] = pca["p"]
        if expr is not None and fac["n_set"] == 0:
            row.update(auroc_expression=np.nan, n_matched_background=0, auroc_ldvae_matched=np.nan)
            if pca_loadings is not None and pca_shifts is not None:
                row["auroc_pca_matched"] = np.nan
        elif expr is not None:
            background = expression_matched(expr, genes)
            row["auroc_expression"] = recovery(expr, genes, "up")["auroc"]
            row["n_matched_background"] = len(background)
            row["auroc_ldvae_matched"] = _matched_recovery(
                proj_scores, genes, direction, background
            )
            if pca_loadings is not None and pca_shifts is not None:
                row["auroc_pca_matched"] = _matched_recovery(
                    pca_scores, genes, direction, background
                )
        rows.append(row)
    return pd.DataFrame(rows).set_index("condition")


def recovery_by_epoch(
    adata: AnnData,
    final_loadings: pd.DataFrame,
    gene_sets: Mapping[str, Sequence[str]],
    directions: Mapping[str, str],
    cells: str = "test",
    units: Units | None = None,
) -> pd.DataFrame:
    """Projected recovery AUROC (:func:`recovery_table`'s ``auroc_ldvae_projected``) at each
    latent snapshot of one training run (``obsm["X_ldvae_epoch<N>"]``, ``varm["loadings_epoch<N>"]``,
    :func:`latentshift.model.ldvae.store_snapshots`) and at the end (``obsm["X_ldvae"]``), the shifts
    measured by :func:`latentshift.readings.factor_shifts.factor_shifts` on ``cells`` with ``units``.

    Returns
    -------
    pandas.DataFrame
        One row per epoch: ``epoch``, one AUROC column per condition; empty without snapshots.
    """
    info = adata.uns.get("ldvae_snapshots") or {}
    epochs = [int(e) for e in np.atleast_1d(info.get("epochs", []))]
    if not epochs:
        return pd.DataFrame(columns=["epoch", *gene_sets])
    points = [(e, f"X_ldvae_epoch{e}", adata.varm[f"loadings_epoch{e}"]) for e in epochs]
    points.append((int(info.get("final_epoch", epochs[-1] + 1)), "X_ldvae", final_loadings))
    rows = []
    for epoch, key, w in points:
        W = pd.DataFrame(np.asarray(w), index=final_loadings.index, columns=final_loadings.columns)
        shifts = factor_shifts(
            adata.obsm[key], adata.obs, list(gene_sets), W.columns, cells=cells, units=units
        )
        row: dict[str, Any] = {"epoch": epoch}
        for cond, genes in gene_sets.items():
            sh = shifts[shifts["condition"] == cond].set_index("factor").reindex(W.columns)
            row[cond] = recovery(
                projected_scores(W, sh["mean_shift"].to_numpy()), genes, directions[cond]
            )["auroc"]
        rows.append(row)
    return pd.DataFrame(rows)


def oriented_scores(
    loadings: pd.DataFrame,
    shifts: pd.DataFrame,
    condition: str,
    direction: str,
    factor: str | None = None,
) -> pd.Series:
    """The scores :func:`recovery` ranks, oriented so that high = moved in the expected direction.

    ``factor=None`` gives the projected score ``W · Δz``; a factor name gives
    ``W_gk · sign(Δz_k)``. Used by the ranked-loading figure.
    """
    sh = shifts[shifts["condition"] == condition].set_index("factor").reindex(loadings.columns)
    if factor is None:
        scores = projected_scores(loadings, sh["mean_shift"].to_numpy())
    else:
        scores = factor_scores(loadings, factor, sh.loc[factor, "mean_shift"])
    return scores * direction_sign(direction)


# --- PCA baseline ----------------------------------------------------------------------


def pca_baseline(
    adata: AnnData, n_comps: int | None = None, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray, str]:
    """PCA components (genes × dims) and coordinates (cells × dims) of the baseline.

    Uses ``varm["PCs_baseline"]`` and ``obsm["X_pca_baseline"]`` when 03_ldvae stored both;
    otherwise fits PCA of log-normalised counts on the training cells (sparse, implicitly
    centred) and projects every cell.

    Parameters
    ----------
    adata
        ``latent.h5ad`` (``layers["counts"]``, ``obs["split"]``).
    n_comps
        Dims when fitting (default: those of ``obsm["X_pca_baseline"]``, else 10).
    seed
        Seed of the PCA solver.

    Returns
    -------
    components, coordinates, source
        ``source`` is ``"stored"`` or ``"refit"``.
    """
    if "PCs_baseline" in adata.varm and "X_pca_baseline" in adata.obsm:
        pcs = np.asarray(adata.varm["PCs_baseline"], dtype=float)
        coords = np.asarray(adata.obsm["X_pca_baseline"], dtype=float)
        if pcs.shape[1] == coords.shape[1]:
            cols = [f"PC_{i}" for i in range(pcs.shape[1])]
            return pd.DataFrame(pcs, index=adata.var_names, columns=cols), coords, "stored"
        log.warning(
            "varm['PCs_baseline'] and obsm['X_pca_baseline'] disagree in dims; refitting PCA"
        )
    from latentshift.data.counts import counts_matrix
    from latentshift.model.embedding import pca_of_counts

    if n_comps is None:
        n_comps = adata.obsm["X_pca_baseline"].shape[1] if "X_pca_baseline" in adata.obsm else 10
    counts = counts_matrix(adata)
    if "split" in adata.obs.columns and (adata.obs["split"].astype(str) == "train").any():
        train = (adata.obs["split"].astype(str) == "train").to_numpy()
    else:
        train = np.ones(adata.n_obs, dtype=bool)
    n_comps = int(min(n_comps, train.sum() - 1, adata.n_vars - 1))
    if n_comps < 1:
        raise LoadingsError("too few training cells or genes for a PCA baseline; use more cells.")
    coords, pcs = pca_of_counts(counts, train, n_comps, seed)
    coords, pcs = coords.astype(float), pcs.astype(float)
    cols = [f"PC_{i}" for i in range(n_comps)]
    log.info("fitted a %d-component PCA baseline on %d training cells", n_comps, int(train.sum()))
    return pd.DataFrame(pcs, index=adata.var_names, columns=cols), coords, "refit"


def metrics_from_table(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The ``metrics.json`` ``loadings`` section: per condition, the recovery numbers."""
    keys = [
        "best_factor",
        "effect_size",
        "auroc_ldvae_factor",
        "auroc_ldvae_projected",
        "auroc_pca_projected",
        "auroc_ldvae_matched",
        "auroc_pca_matched",
        "auroc_expression",
        "n_matched_background",
        "enrichment_p",
        "enrichment_p_projected",
        "n_genes",
    ]

    def clean(value: Any) -> Any:  # NaN (a matched AUROC with too few genes) → null in JSON
        return None if isinstance(value, float) and np.isnan(value) else value

    return {
        str(c): {k: clean(row[k]) for k in keys if k in row.index} for c, row in table.iterrows()
    }
