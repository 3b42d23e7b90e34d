"""What the classifiers read besides the latent: the disease-set genes and a PCA of the counts.

- :func:`disease_gene_features` — log-normalised expression of the disease-set genes only
  (library size from the full sparse row sums; only the selected gene columns are densified);
  03 stores it as ``obsm["X_disease_genes"]`` (:data:`DISEASE_GENES_KEY`) for 05's baseline that
  is told where to look;
- :func:`pca_features` — the PCA baseline of the same size as the latent, fit on training cells.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from latentshift.data.counts import counts_matrix, log_normalise_genes
from latentshift.errors import ClassifierError
from latentshift.model.embedding import pca_of_counts
from latentshift.perturb.shift import perturbed_genes

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)


def disease_gene_features(
    adata: AnnData,
    genes: Sequence[str],
    layer: str = "counts",
    target_sum: float = 1e4,
) -> np.ndarray:
    """Log-normalised expression of a few genes: ``log1p(counts / library_size * target_sum)``.

    The library size is each cell's total over *all* genes (sparse row sums), so a shift
    that moves every selected gene the same way stays visible. Only the selected gene
    columns are densified.

    Parameters
    ----------
    adata
        Cells with integer counts in ``layers[layer]`` (or ``X`` when the layer is absent).
    genes
        var_names to keep (e.g. the union of ``uns["perturbation_genes"]``).
    layer
        The counts layer.
    target_sum
        Counts per cell after normalisation.

    Returns
    -------
    numpy.ndarray
        ``(n_cells, n_genes)`` float array.
    """
    missing = [g for g in genes if g not in adata.var_names]
    if missing:
        raise ClassifierError(
            f"{len(missing)} disease-set genes are not in var_names (e.g. {missing[:3]}); "
            "pass the var_names recorded in uns['perturbation_genes']."
        )
    if not len(genes):
        raise ClassifierError(
            "no disease-set genes given; uns['perturbation_genes'] is empty — check 02_perturb's output."
        )
    columns = adata.var_names.get_indexer(list(genes))
    return log_normalise_genes(counts_matrix(adata, layer), columns, target_sum)


#: obsm key of the disease-gene baseline's features in ``latent.h5ad`` (written by 03 from
#: every gene of ``perturbed.h5ad``, whatever genes the LDVAE reads).
DISEASE_GENES_KEY = "X_disease_genes"


def disease_gene_baseline_features(adata: AnnData) -> np.ndarray | None:
    """The disease-gene baseline's features: ``obsm["X_disease_genes"]`` when 03 stored them.

    03 computes them from ``perturbed.h5ad`` before restricting the cells to the LDVAE's genes
    (:func:`disease_gene_features` over every gene: each cell's library size is its total over
    all genes), so the baseline does not move with the gene choice under study. Without the
    stored matrix (an AnnData not written by 03) they are computed from ``adata``'s own counts.

    Returns
    -------
    numpy.ndarray or None
        Cells × disease genes (float64), or ``None`` when nothing was perturbed.
    """
    if DISEASE_GENES_KEY in adata.obsm:
        return np.asarray(adata.obsm[DISEASE_GENES_KEY], dtype=np.float64)
    genes = perturbed_genes(adata)
    if not genes:
        log.warning("uns['perturbation_genes'] is empty: no disease-gene baseline")
        return None
    log.warning(
        "obsm['%s'] is missing: the disease-gene baseline is normalised by the totals over "
        "these cells' %d genes (03_ldvae stores it over every gene)",
        DISEASE_GENES_KEY,
        adata.n_vars,
    )
    return disease_gene_features(adata, genes)


def pca_features(
    adata: AnnData, n_comps: int, train_mask: np.ndarray, seed: int = 0, layer: str = "counts"
) -> np.ndarray:
    """PCA of log-normalised counts fit on training cells (fallback when ``obsm["X_pca_baseline"]`` is absent).

    The same baseline 03_ldvae stores (:func:`latentshift.model.embedding.pca_of_counts`).
    """
    counts = counts_matrix(adata, layer)
    return pca_of_counts(counts, train_mask, min(n_comps, counts.shape[1] - 1), seed)[0]
