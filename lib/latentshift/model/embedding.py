"""Embeddings of the cells: PCA baseline, neighbours, UMAP, Leiden, and what they keep.

- :func:`pca_baseline` — the comparison embedding: log-normalised counts, PCA fit on the
  training cells only, same number of dimensions as the LDVAE latent (sparse throughout);
- :func:`embed` — scanpy neighbours → UMAP → Leiden on one representation, stored under
  that representation's name (``obsm["X_umap_<name>"]``, ``obs["leiden_<name>"]``);
- :func:`cluster_agreement` — ARI and NMI of clusters vs cell types;
- :func:`condition_separation` — per cell type, how far disease copies sit from their normal
  cells in an embedding (silhouette by condition; copy distance / neighbour distance).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin

from latentshift.data.counts import counts_matrix, log_normalise, log_normalise_rows
from latentshift.errors import DataError

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)


def log_normalised(
    adata: AnnData = None,
    *,
    layer: str | None = "counts",
    target_sum: float = 1e4,
    counts: Any = None,
) -> sp.csr_matrix:
    """Counts → ``log1p(counts / total × target_sum)`` as a new float32 CSR matrix.

    :func:`latentshift.data.counts.log_normalise` (scanpy's ``normalize_total`` + ``log1p`` on a sparse
    copy); the counts are left untouched. Give an AnnData (``layers[layer]``, or ``X`` when ``layer`` is
    None or absent) or the ``counts`` matrix itself.
    """
    if counts is None:
        counts = counts_matrix(adata, layer)
    return log_normalise(counts, target_sum)


def pca_of_counts(
    counts: Any, train_mask: np.ndarray, n_comps: int, seed: int = 0, chunk_rows: int = 20_000
) -> tuple[np.ndarray, np.ndarray]:
    """PCA of log-normalised counts fit on the training rows, every row projected.

    The one PCA baseline of the project: 03_ldvae stores it, and the classifier and loadings
    fall back to it when it was not stored. The matrix stays sparse (ARPACK, implicit centring).

    Parameters
    ----------
    counts
        Cells × genes counts (sparse or dense).
    train_mask
        Boolean per cell: the rows the PCA is fit on.
    n_comps
        Dimensions; must be below ``min(training cells, genes)``.
    seed
        ``random_state`` of the ARPACK solver.
    chunk_rows
        Cells per block when projecting (memory: one float32 copy of the training cells'
        counts for the fit, then one block at a time).

    Returns
    -------
    coordinates, components
        Cells × ``n_comps`` and genes × ``n_comps`` (float32); coordinates are
        ``(x - mean_train) @ components``.
    """
    pca = fit_pca(counts, train_mask, n_comps, seed)
    return project_pca(pca, counts, chunk_rows), pca.components_.T.astype(np.float32)


def fit_pca(counts: Any, train_mask: np.ndarray, n_comps: int, seed: int = 0) -> Any:
    """The PCA baseline's fit (scikit-learn ``PCA``, ARPACK) on the log-normalised training rows.

    Only the training rows are log-normalised whole (the fit needs them); see
    :func:`pca_of_counts`.
    """
    from sklearn.decomposition import PCA

    train = np.asarray(train_mask, dtype=bool)
    limit = min(int(train.sum()), counts.shape[1]) - 1
    if n_comps > limit:
        raise DataError(
            f"the PCA baseline needs n_comps < min(training cells, genes) = {limit + 1}, got "
            f"{n_comps}; lower ldvae.n_latent or use more cells/genes."
        )
    pca = PCA(n_components=n_comps, svd_solver="arpack", random_state=seed)
    pca.fit(log_normalise_rows(counts, train))
    log.info(
        "PCA baseline: %d dims fit on %d training cells explain %.1f%% of variance",
        n_comps,
        int(train.sum()),
        100 * float(pca.explained_variance_ratio_.sum()),
    )
    return pca


def project_pca(pca: Any, counts: Any, chunk_rows: int = 20_000) -> np.ndarray:
    """Every row of ``counts`` (the fit's genes, in its order) on a fitted PCA baseline, block by
    block, so no float copy of all the counts is ever held."""
    z = np.empty((counts.shape[0], pca.n_components_), dtype=np.float32)
    for lo in range(0, counts.shape[0], chunk_rows):
        block = np.arange(lo, min(lo + chunk_rows, counts.shape[0]))
        z[block] = pca.transform(log_normalise_rows(counts, block))
    return z


def pca_baseline(
    adata: AnnData,
    n_comps: int,
    *,
    layer: str = "counts",
    split_key: str = "split",
    train_value: str = "train",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """PCA of log-normalised counts, fit on the training cells, for every cell.

    Parameters
    ----------
    adata
        Cells × genes with counts in ``layers[layer]`` and ``obs[split_key]``.
    n_comps
        Dimensions (use the LDVAE's ``n_latent`` for a fair comparison).
    layer
        Counts layer.
    split_key, train_value
        The fit sees only cells with ``obs[split_key] == train_value``; every cell is projected.
    seed
        ``random_state`` of the ARPACK solver.

    Returns
    -------
    coordinates, components
        Cells × ``n_comps`` (float32) and genes × ``n_comps`` (the principal axes; coordinates
        are ``(x - mean_train) @ components``). The matrix stays sparse: centring is implicit.
    """
    train = (adata.obs[split_key].astype(str) == train_value).to_numpy()
    counts = counts_matrix(adata, layer)
    return pca_of_counts(counts, train, n_comps, seed)


#: Above this many cells scanpy leaves exact neighbours for pynndescent's approximate ones.
EXACT_NEIGHBOURS_BELOW = 8192


class CSRMatrixKNN(TransformerMixin, BaseEstimator):
    """A kNN transformer (scikit-learn API) that hands scanpy a ``scipy.sparse.csr_matrix``.

    Runs the approximate-neighbour search scanpy itself picks for large data
    (:class:`pynndescent.PyNNDescentTransformer` with UMAP's ``n_trees``/``n_iters``). Needed
    because pynndescent 0.7 returns a ``csr_array`` and scanpy 1.11.5 calls ``getnnz`` on it,
    which scipy >= 1.17 removed from sparse arrays: without this, ``sc.pp.neighbors`` fails on
    every data set above 8,192 cells (``AttributeError: 'csr_array' object has no attribute
    'getnnz'``). Drop it once scanpy handles sparse arrays there.

    Parameters
    ----------
    n_neighbors
        Neighbours per cell, the cell itself included (scanpy's convention).
    n_obs
        Number of cells (sets the search effort as UMAP does).
    random_state
        Seed.
    n_jobs
        Threads (``None``: pynndescent's default).
    """

    def __init__(
        self,
        n_neighbors: int = 15,
        n_obs: int = 10_000,
        random_state: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.n_obs = n_obs
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _inner(self) -> Any:
        from pynndescent import PyNNDescentTransformer

        return PyNNDescentTransformer(
            n_neighbors=self.n_neighbors,
            metric="euclidean",
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            n_trees=min(64, 5 + round(self.n_obs**0.5 / 20.0)),
            n_iters=max(5, round(np.log2(self.n_obs))),
        )

    def fit(self, X: Any, y: Any = None) -> CSRMatrixKNN:
        self.inner_ = self._inner().fit(X)
        return self

    def transform(self, X: Any) -> sp.csr_matrix:
        return sp.csr_matrix(self.inner_.transform(X))

    def fit_transform(self, X: Any, y: Any = None) -> sp.csr_matrix:
        self.inner_ = self._inner()
        return sp.csr_matrix(self.inner_.fit_transform(X))


def embed(
    adata: AnnData,
    use_rep: str,
    name: str,
    *,
    n_neighbors: int = 15,
    resolution: float = 1.0,
    seed: int = 0,
) -> None:
    """Neighbours, UMAP and Leiden on ``obsm[use_rep]``, in place.

    Writes ``obsp["<name>_connectivities"]``/``["<name>_distances"]``, ``obsm["X_umap_<name>"]``
    and ``obs["leiden_<name>"]`` (categorical), so several embeddings live side by side.
    """
    import scanpy as sc

    transformer = (
        CSRMatrixKNN(n_neighbors, adata.n_obs, random_state=seed, n_jobs=sc.settings.n_jobs)
        if adata.n_obs >= EXACT_NEIGHBOURS_BELOW
        else None  # scanpy's exact neighbours
    )
    sc.pp.neighbors(
        adata,
        use_rep=use_rep,
        n_neighbors=n_neighbors,
        random_state=seed,
        key_added=name,
        transformer=transformer,
    )
    sc.tl.umap(adata, neighbors_key=name, random_state=seed, key_added=f"X_umap_{name}")
    sc.tl.leiden(
        adata,
        resolution=resolution,
        flavor="igraph",
        n_iterations=2,
        directed=False,
        random_state=seed,
        neighbors_key=name,
        key_added=f"leiden_{name}",
    )
    log.info("%s: %d Leiden clusters", name, adata.obs[f"leiden_{name}"].nunique())


def cluster_agreement(clusters: Sequence[Any], labels: Sequence[Any]) -> dict[str, float]:
    """Adjusted Rand index and normalised mutual information of ``clusters`` vs ``labels``."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    c = np.asarray(clusters).astype(str)
    t = np.asarray(labels).astype(str)
    return {
        "ari": float(adjusted_rand_score(t, c)),
        "nmi": float(normalized_mutual_info_score(t, c)),
        "n_clusters": int(len(np.unique(c))),
    }


def within_group_ari(
    clusters: Sequence[Any], labels: Sequence[Any], groups: Sequence[Any]
) -> float:
    """Cell-weighted mean over ``groups`` (e.g. donors) of the ARI of ``clusters`` vs ``labels``.

    The clusters come from all cells together; only the comparison is made within each group.
    An embedding that splits every cell type by donor scores low on :func:`cluster_agreement`
    but not here; one that mixes cell types scores low on both. Groups with a single cell
    type or a single cluster count with ARI as scikit-learn defines it.
    """
    from sklearn.metrics import adjusted_rand_score

    c = np.asarray(clusters).astype(str)
    t = np.asarray(labels).astype(str)
    g = np.asarray(groups).astype(str)
    total, weight = 0.0, 0
    for value in np.unique(g):
        rows = g == value
        total += float(adjusted_rand_score(t[rows], c[rows])) * int(rows.sum())
        weight += int(rows.sum())
    return total / weight if weight else float("nan")


def _mean_knn_distance(z: np.ndarray, k: int) -> float:
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(z) - 1)
    if k < 1:
        return float("nan")
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z)
    return float(dist[:, 1:].mean())


def condition_separation(
    adata: AnnData,
    use_rep: str,
    *,
    condition_key: str = "condition",
    cell_type_key: str = "cell_type",
    source_key: str = "source_cell",
    normal: str = "normal",
    n_neighbors: int = 15,
    max_cells: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per cell type and disease condition: how far the copies sit from their normal cells.

    Parameters
    ----------
    adata
        Cells with ``obsm[use_rep]`` and the obs columns named by the keys.
    use_rep
        The embedding, e.g. ``"X_ldvae"``.
    n_neighbors
        ``k`` of the neighbour distance that scales copy distances.
    max_cells
        Silhouettes use at most this many cells per (cell type, condition pair) (seeded sample).

    Returns
    -------
    pandas.DataFrame
        One row per (cell_type, condition): ``silhouette`` — silhouette of the labels
        {normal, condition} among the normal cells and the copies of that cell type (≈ 0: mixed,
        → 1: apart); ``copy_distance_ratio`` — median distance from a normal cell to its own
        copy, divided by the mean distance of normal cells to their ``k`` nearest normal
        neighbours (< 1: the copy stays within the cell's neighbourhood); ``n_pairs``.
    """
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    z = np.asarray(adata.obsm[use_rep], dtype=np.float64)
    obs = adata.obs
    cond = obs[condition_key].astype(str).to_numpy()
    ctype = obs[cell_type_key].astype(str).to_numpy()
    source = obs[source_key].astype(str).to_numpy()
    conditions = [c for c in pd.unique(obs[condition_key].astype(str)) if c != normal]
    if hasattr(obs[condition_key], "cat"):
        conditions = [
            c
            for c in obs[condition_key].cat.categories.astype(str)
            if c != normal and c in set(cond)
        ]
    rows = []
    for t in sorted(pd.unique(ctype)):
        in_type = ctype == t
        normal_idx = np.flatnonzero(in_type & (cond == normal))
        if len(normal_idx) < 2:
            continue
        knn = _mean_knn_distance(z[normal_idx], n_neighbors)
        by_source = pd.Series(normal_idx, index=source[normal_idx])
        by_source = by_source[~by_source.index.duplicated()]
        for c in conditions:
            copy_idx = np.flatnonzero(in_type & (cond == c))
            if len(copy_idx) < 2:
                continue
            pair_src = by_source.reindex(source[copy_idx])
            ok = pair_src.notna().to_numpy()
            d = np.linalg.norm(z[copy_idx[ok]] - z[pair_src.to_numpy()[ok].astype(int)], axis=1)
            both = np.concatenate([normal_idx, copy_idx])
            labels = np.concatenate([np.zeros(len(normal_idx)), np.ones(len(copy_idx))])
            if len(both) > max_cells:
                pick = rng.choice(len(both), max_cells, replace=False)
                both, labels = both[pick], labels[pick]
            sil = (
                float(silhouette_score(z[both], labels)) if len(np.unique(labels)) == 2 else np.nan
            )
            rows.append(
                {
                    "cell_type": t,
                    "condition": c,
                    "silhouette": sil,
                    "copy_distance_ratio": float(np.median(d) / knn)
                    if ok.any() and knn > 0
                    else np.nan,
                    "n_pairs": int(ok.sum()),
                }
            )
    return pd.DataFrame(
        rows, columns=["cell_type", "condition", "silhouette", "copy_distance_ratio", "n_pairs"]
    )


def embedding_metrics(
    adata: AnnData,
    names: Mapping[str, str],
    separation: Mapping[str, pd.DataFrame],
    *,
    cell_type_key: str = "cell_type",
    donor_key: str = "donor_id",
) -> dict[str, Any]:
    """The ``embedding`` section of ``metrics.json``.

    Parameters
    ----------
    adata
        Cells with ``obs["leiden_<name>"]`` for each embedding (see :func:`embed`).
    names
        ``{name: label}``, e.g. ``{"ldvae": "LDVAE", "pca": "PCA"}``.
    separation
        ``{name: condition_separation(...) table}``.
    donor_key
        obs column of donors; when present (more than one donor), ``leiden_ari_within_donor``
        (:func:`within_group_ari`) is added, else it is ``None``.
    """
    out: dict[str, Any] = {}
    donors = adata.obs.get(donor_key)
    if donors is not None and donors.nunique() < 2:
        donors = None
    for name in names:
        agree = cluster_agreement(adata.obs[f"leiden_{name}"], adata.obs[cell_type_key])
        table = separation[name]
        out[name] = {
            "leiden_ari": agree["ari"],
            "leiden_ari_within_donor": None
            if donors is None
            else within_group_ari(adata.obs[f"leiden_{name}"], adata.obs[cell_type_key], donors),
            "leiden_nmi": agree["nmi"],
            "n_clusters": agree["n_clusters"],
            "mean_condition_silhouette": float(table["silhouette"].mean()) if len(table) else None,
            "mean_copy_distance_ratio": float(table["copy_distance_ratio"].mean())
            if len(table)
            else None,
            "per_cell_type": {
                f"{r.cell_type}|{r.condition}": {
                    "silhouette": r.silhouette,
                    "copy_distance_ratio": r.copy_distance_ratio,
                }
                for r in table.itertuples()
            },
        }
    return out


def side_by_side(separation: Mapping[str, pd.DataFrame], labels: Mapping[str, str]) -> pd.DataFrame:
    """The separation tables of several embeddings as one long table with an ``embedding`` column."""
    return pd.concat(
        [t.assign(embedding=labels.get(n, n)) for n, t in separation.items()], ignore_index=True
    )
