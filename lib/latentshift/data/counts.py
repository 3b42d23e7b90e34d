"""Count-matrix helpers: where the counts live, totals and means in bounded memory, the one
log-normalisation, subsets that keep one copy of the counts, the perturbed-gene union.

Every function takes an AnnData or a matrix and returns a new result; nothing densifies a whole
matrix.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from latentshift.errors import DataError

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)


def counts_matrix(adata: AnnData, layer: str | None = "counts") -> Any:
    """The raw counts of an AnnData: ``layers[layer]`` when present, else ``X``.

    The one place the project decides where counts live (our files keep them in
    ``layers["counts"]``; a bare AnnData of counts has them in ``X``). The matrix itself, not a
    copy.
    """
    return adata.layers[layer] if layer and layer in adata.layers else adata.X


def one_index_dtype(X: Any) -> Any:
    """``X`` with its CSR/CSC index arrays of one integer type (the same data, no copy of it).

    anndata reads a matrix written block by block with 64-bit ``indptr`` and 32-bit
    ``indices``. scipy indexes such a matrix by first casting ``indices`` to the wider type, on
    every call: each minibatch scvi-tools draws then copies the whole ``indices`` array (at
    114.6k nuclei × 5,000 genes, 3 GB per minibatch, 7× slower training and a transient copy
    of that size). While every position fits 32 bits, ``indptr`` (one entry per row) is
    narrowed instead; otherwise ``indices`` is widened once. Anything else is returned as is.
    """
    if not sp.issparse(X) or X.format not in ("csr", "csc") or X.indptr.dtype == X.indices.dtype:
        return X
    wide = X.nnz > np.iinfo(np.int32).max or max(X.shape) > np.iinfo(np.int32).max
    dtype = np.int64 if wide else np.int32
    kind = sp.csr_matrix if X.format == "csr" else sp.csc_matrix
    return kind(
        (X.data, X.indices.astype(dtype, copy=False), X.indptr.astype(dtype, copy=False)),
        shape=X.shape,
        copy=False,
    )


def row_sums(X: Any, chunk_nnz: int = 1 << 22) -> np.ndarray:
    """Per-row totals of a count matrix (library sizes), in bounded memory.

    ``scipy``'s ``X.sum(axis=1)`` on an int32 CSR matrix converts all its values to int64
    first: a copy twice the size of the counts (about 5 GB for the 343.8k-cell atlas). This
    sums blocks of rows of at most ``chunk_nnz`` stored values instead.

    Parameters
    ----------
    X
        Cells × genes, scipy sparse (any format; CSR is used as is) or dense.
    chunk_nnz
        Stored values per block.

    Returns
    -------
    numpy.ndarray
        One total per row: int64 for integer matrices, float64 otherwise.
    """
    kind = np.int64 if np.dtype(X.dtype).kind in "iub" else np.float64
    if not sp.issparse(X):
        return np.asarray(X).sum(axis=1, dtype=kind).ravel()
    X = X if sp.isspmatrix_csr(X) or X.format == "csr" else sp.csr_matrix(X)
    n_rows = X.shape[0]
    out = np.zeros(n_rows, dtype=kind)
    indptr = X.indptr
    lo = 0
    while lo < n_rows:
        hi = int(np.searchsorted(indptr, indptr[lo] + chunk_nnz, side="right")) - 1
        hi = min(max(hi, lo + 1), n_rows)
        a, b = int(indptr[lo]), int(indptr[hi])
        block = sp.csr_matrix(
            (X.data[a:b], X.indices[a:b], indptr[lo : hi + 1] - a), shape=(hi - lo, X.shape[1])
        )
        out[lo:hi] = np.asarray(block.sum(axis=1, dtype=kind)).ravel()
        lo = hi
    return out


def gene_means(counts: Any, rows: np.ndarray | None = None, chunk_rows: int = 20_000) -> np.ndarray:
    """Mean count per cell of every gene over ``rows``, in bounded memory (the column twin of
    :func:`row_sums`).

    Parameters
    ----------
    counts
        Cells × genes, scipy sparse or dense.
    rows
        Boolean mask or indices of the cells to average over (default: all).
    chunk_rows
        Cells per block (sparse input): only one block's values are ever converted to float.

    Returns
    -------
    numpy.ndarray
        One float64 mean per gene.
    """
    idx = np.arange(counts.shape[0]) if rows is None else np.asarray(rows)
    if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    if len(idx) == 0:
        raise DataError("no cells to average gene expression over; pass a non-empty rows mask.")
    if not sp.issparse(counts):
        return np.asarray(counts)[idx].mean(axis=0, dtype=np.float64).ravel()
    counts = counts if counts.format == "csr" else sp.csr_matrix(counts)
    total = np.zeros(counts.shape[1], dtype=np.float64)
    for lo in range(0, len(idx), chunk_rows):
        block = counts[idx[lo : lo + chunk_rows]]
        total += np.bincount(block.indices, weights=block.data, minlength=counts.shape[1])
    return total / len(idx)


def subset(
    adata: AnnData, rows: Any = None, cols: Any = None, *, copy_counts: bool = True
) -> AnnData:
    """``adata[rows, cols].copy()`` that keeps ``X`` and ``layers["counts"]`` one matrix.

    When ``layers["counts"]`` is the very object ``X`` (as :func:`simulate_m1` and
    :func:`latentshift.perturb.shift.make_perturbed` make them), anndata's copy would copy the counts
    twice; this copies them once and shares the result again. Otherwise it is anndata's own
    ``adata[rows, cols].copy()``.

    Parameters
    ----------
    adata
        Cells × genes.
    rows, cols
        Boolean masks or integer positions; ``None`` keeps all.
    copy_counts
        ``False``: when neither rows nor columns are cut (both ``None``) and the counts are
        shared as above, the result's counts are ``adata``'s own matrix, not a copy (obs, var,
        uns and obsm are still copies). Saves a whole copy at atlas size.
    """
    import copy

    import anndata as ad

    shared = (
        "counts" in adata.layers
        and adata.layers["counts"] is adata.X
        and len(adata.layers) == 1
        and not len(adata.obsp)
        and not len(adata.varp)
        and adata.raw is None
    )
    if not shared:
        view = adata
        if rows is not None:
            view = view[rows]
        if cols is not None:
            view = view[:, cols]
        return view.copy()
    rows_ix = slice(None) if rows is None else np.asarray(rows)
    cols_ix = slice(None) if cols is None else np.asarray(cols)
    X = adata.X
    if rows is not None:
        X = X[rows_ix]
    if cols is not None:
        X = X[:, cols_ix]
    if X is adata.X and copy_counts:
        X = X.copy()
    obs = adata.obs.iloc[rows_ix].copy()
    var = adata.var.iloc[cols_ix].copy()
    for frame in (obs, var):
        for c in frame.columns:
            if isinstance(frame[c].dtype, pd.CategoricalDtype):
                frame[c] = frame[c].cat.remove_unused_categories()
    out = ad.AnnData(
        X=X,
        obs=obs,
        var=var,
        uns=copy.deepcopy(dict(adata.uns)),
        obsm={k: v[rows_ix] for k, v in adata.obsm.items()},
        varm={k: v[cols_ix] for k, v in adata.varm.items()},
    )
    out.layers["counts"] = out.X
    return out


def compact(
    X: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray, chunk_nnz: int = 1 << 24
) -> sp.csr_matrix:
    """``X[rows][:, cols]`` built in ``X``'s own arrays: **X is consumed** (its values are
    overwritten; use only the result afterwards).

    Dropping a few genes (QC) from the atlas's 700 M stored counts with a copy would hold the
    counts twice; here the kept values are moved forward within ``data`` and ``indices``, one
    block of at most ``chunk_nnz`` stored values at a time, so the peak is the counts plus one
    block.

    Parameters
    ----------
    X
        Cells × genes, CSR.
    rows, cols
        Boolean masks of the rows and columns to keep.
    chunk_nnz
        Stored values per block.

    Returns
    -------
    scipy.sparse.csr_matrix
        The kept rows and columns (its arrays are views into ``X``'s).
    """
    rows, cols = np.asarray(rows, dtype=bool), np.asarray(cols, dtype=bool)
    new_col = np.cumsum(cols) - 1
    indptr, data, indices = X.indptr, X.data, X.indices
    n_rows = X.shape[0]
    kept_per_row = np.zeros(n_rows, dtype=np.int64)
    write = 0
    lo = 0
    while lo < n_rows:
        hi = int(np.searchsorted(indptr, indptr[lo] + chunk_nnz, side="right")) - 1
        hi = min(max(hi, lo + 1), n_rows)
        a, b = int(indptr[lo]), int(indptr[hi])
        row_of = np.repeat(np.arange(lo, hi), np.diff(indptr[lo : hi + 1]))
        keep = rows[row_of] & cols[indices[a:b]]
        values, where = data[a:b][keep], indices[a:b][keep]  # copies of the block, then moved
        k = len(values)
        data[write : write + k] = values
        indices[write : write + k] = new_col[where]
        kept_per_row[lo:hi] = np.bincount(row_of[keep] - lo, minlength=hi - lo)
        write += k
        lo = hi
    out_indptr = np.zeros(int(rows.sum()) + 1, dtype=indptr.dtype)
    np.cumsum(kept_per_row[rows], out=out_indptr[1:])
    return sp.csr_matrix(
        (data[:write], indices[:write], out_indptr), shape=(int(rows.sum()), int(cols.sum()))
    )


def log_normalise(counts: Any, target_sum: float = 1e4) -> sp.csr_matrix:
    """``log1p(counts / total × target_sum)`` as a new float32 CSR matrix (no densifying).

    scanpy's :func:`~scanpy.pp.normalize_total` and :func:`~scanpy.pp.log1p` on a sparse
    float32 copy; ``counts`` is left untouched. The one log-normalisation of the project (the
    simulator's CELLxGENE-shaped ``X``, the PCA baseline).
    """
    import anndata as ad
    import scanpy as sc

    tmp = ad.AnnData(X=sp.csr_matrix(counts, dtype=np.float32))
    sc.pp.normalize_total(tmp, target_sum=target_sum)
    sc.pp.log1p(tmp)
    return sp.csr_matrix(tmp.X)


def log_normalise_rows(counts: Any, rows: Any = None, chunk_rows: int = 20_000) -> sp.csr_matrix:
    """:func:`log_normalise` of some rows of ``counts``, built block by block.

    The result (float32 CSR, ``rows`` in their order) is allocated once, at its final size, and
    filled from blocks of ``chunk_rows`` rows: no integer copy of the selected rows and no
    whole-matrix float temporary is made (at the 343.8k-cell atlas, the difference between one
    float32 copy of the training cells and three matrices of that size).

    Parameters
    ----------
    counts
        Cells × genes, scipy sparse (CSR used as is) or dense.
    rows
        Boolean mask or positions of the rows to keep (default: all).
    chunk_rows
        Rows per block.
    """
    if not sp.issparse(counts):
        counts = sp.csr_matrix(counts)
    counts = counts if counts.format == "csr" else sp.csr_matrix(counts)
    idx = np.arange(counts.shape[0]) if rows is None else np.asarray(rows)
    if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    per_row = np.diff(counts.indptr)[idx]
    indptr = np.zeros(len(idx) + 1, dtype=np.int64)
    np.cumsum(per_row, out=indptr[1:])
    data = np.empty(int(indptr[-1]), dtype=np.float32)
    indices = np.empty(int(indptr[-1]), dtype=counts.indices.dtype)
    for lo in range(0, len(idx), chunk_rows):
        block = log_normalise(counts[idx[lo : lo + chunk_rows]])
        a, b = int(indptr[lo]), int(indptr[min(lo + chunk_rows, len(idx))])
        if block.nnz != b - a:  # scanpy keeps the sparsity structure; anything else is a bug
            raise RuntimeError(f"log-normalised block has {block.nnz} values, expected {b - a}")
        data[a:b] = block.data
        indices[a:b] = block.indices
    if indptr[-1] <= np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    return sp.csr_matrix((data, indices, indptr), shape=(len(idx), counts.shape[1]))


def log_normalise_genes(counts: Any, columns: Any, target_sum: float = 1e4) -> np.ndarray:
    """``log1p(counts / total × target_sum)`` of a few gene columns, as a dense float64 array.

    The same transform as :func:`log_normalise`, for when only a few genes are wanted (a
    classifier on the disease-set genes, a heatmap, a dot plot): each cell's total is taken over
    *all* its genes (sparse row sums), so a shift that moves every chosen gene the same way stays
    visible, and only the chosen columns are made dense. Cells with no counts get zeros.

    Parameters
    ----------
    counts
        Cells × genes, scipy sparse or dense counts.
    columns
        Column positions of the genes to keep.
    target_sum
        Counts per cell after normalisation.

    Returns
    -------
    numpy.ndarray
        ``(n_cells, len(columns))`` float64.
    """
    lib = row_sums(counts).astype(np.float64)
    lib[lib == 0] = 1.0
    sub = counts[:, np.asarray(columns)]
    sub = sub.toarray() if sp.issparse(sub) else np.asarray(sub)
    return np.log1p(sub.astype(np.float64) * (target_sum / lib)[:, None])


def describe_counts(counts: Any) -> dict[str, Any]:
    """Whether a matrix holds sparse integer counts, its dtype and its share of nonzeros.

    Returns
    -------
    dict
        ``integer_sparse`` (bool), ``dtype`` (str), ``density`` (stored values / entries).
    """
    size = counts.shape[0] * counts.shape[1]
    nnz = counts.nnz if sp.issparse(counts) else int(np.count_nonzero(counts))
    return {
        "integer_sparse": bool(sp.issparse(counts) and np.dtype(counts.dtype).kind in "iu"),
        "dtype": str(counts.dtype),
        "density": nnz / size if size else 0.0,
    }


class RowStacker:
    """Stacks CSR blocks row-wise into one preallocated CSR matrix, block by block.

    ``scipy.sparse.vstack`` needs every block in memory next to its output; here each block can
    be freed as soon as it is copied in, so stacking the normal cells with two disease copies
    peaks at the output plus one block instead of the output plus all blocks (at atlas scale,
    about 8 GB instead of 12). The result is identical to ``vstack``. ``capacity`` is the
    expected number of nonzeros: a block beyond it grows the buffer (a copy), a buffer larger
    than needed is shrunk in place by :meth:`tocsr`.
    """

    def __init__(self, n_cols: int, capacity: int, dtype: np.dtype) -> None:
        self.n_cols = n_cols
        self.index_dtype = np.int32 if capacity < np.iinfo(np.int32).max else np.int64
        self.data = np.empty(capacity, dtype=dtype)
        self.indices = np.empty(capacity, dtype=self.index_dtype)
        self.indptr = [np.zeros(1, dtype=np.int64)]
        self.nnz = 0

    def append(self, block: sp.csr_matrix) -> None:
        block = sp.csr_matrix(block)
        if block.shape[1] != self.n_cols:
            raise DataError(f"block has {block.shape[1]} columns, expected {self.n_cols}.")
        end = self.nnz + block.nnz
        if end > len(self.data):  # more nonzeros than planned: grow (a copy, rare)
            size = max(end, int(1.5 * len(self.data)))
            self.data = self._grown(self.data, size)
            self.indices = self._grown(self.indices, size)
        self.data[self.nnz : end] = block.data
        self.indices[self.nnz : end] = block.indices
        self.indptr.append(block.indptr[1:].astype(np.int64) + self.nnz)
        self.nnz = end

    def _grown(self, arr: np.ndarray, size: int) -> np.ndarray:
        out = np.empty(size, dtype=arr.dtype)
        out[: self.nnz] = arr[: self.nnz]
        return out

    def tocsr(self) -> sp.csr_matrix:
        """The stacked matrix (the buffers are handed over; the stacker is empty afterwards)."""
        indptr = np.concatenate(self.indptr)
        if self.nnz < len(self.data):  # give back what was reserved but not used
            self.data.resize(self.nnz, refcheck=False)
            self.indices.resize(self.nnz, refcheck=False)
        index_dtype = self.index_dtype if self.nnz < np.iinfo(np.int32).max else np.int64
        out = sp.csr_matrix(
            (
                self.data[: self.nnz],
                self.indices[: self.nnz].astype(index_dtype, copy=False),
                indptr.astype(index_dtype),
            ),
            shape=(len(indptr) - 1, self.n_cols),
            copy=False,
        )
        self.data = self.indices = None  # type: ignore[assignment]
        return out
