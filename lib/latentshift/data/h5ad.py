"""Reading raw counts from a local ``.h5ad`` (CELLxGENE / HCA schema) with h5py.

* :func:`read_h5ad_counts` — finds the integer counts in ``X``, a layer or ``.raw.X`` and
  refuses files that hold none; returns them in the ``cells.h5ad`` shape.
* :func:`read_h5ad_sample` — the same for a seeded (stratified) sample of a file's cells,
  reading only the sampled rows, for files larger than comfortable memory.
* :func:`read_rows`, :func:`h5ad_n_obs` — the pieces: chosen rows of a stored matrix, the
  number of cells of a file.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from latentshift.data.h5ad_annotations import build_anndata, read_annotations
from latentshift.data.sampling import choose_cells
from latentshift.errors import DataError

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)


_COUNT_LAYERS = ("counts", "raw_counts", "count", "umi_counts", "umis")
_SAMPLE_VALUES = 100_000
_READ_CHUNK = 16_000_000  # stored values read, checked and converted at a time


def _sample_values(elem: Any) -> tuple[np.ndarray, str]:
    """A sample of a stored matrix's values (nonzeros of sparse, a few row blocks of dense)."""
    import h5py

    if isinstance(elem, h5py.Group):
        if "data" not in elem:
            return np.array([]), "unknown"
        data = elem["data"]
        n = data.shape[0]
        if n <= _SAMPLE_VALUES:
            return data[:], "sparse"
        block = _SAMPLE_VALUES // 8
        starts = np.linspace(0, n - block, 8).astype(int)
        return np.concatenate([data[s : s + block] for s in starts]), "sparse"
    if elem.ndim != 2:
        return np.array([]), "unknown"
    n = elem.shape[0]
    rows_per = max(1, _SAMPLE_VALUES // max(1, elem.shape[1]) // 4)
    starts = np.unique(np.linspace(0, max(0, n - rows_per), 4).astype(int))
    vals = np.concatenate([np.asarray(elem[s : s + rows_per]).ravel() for s in starts])
    return vals[vals != 0], "dense"


def _classify(values: np.ndarray) -> str:
    """'counts' when the values are non-negative whole numbers, else what is wrong."""
    if values.dtype.kind in "iub":
        return "counts" if values.size == 0 or values.min() >= 0 else "negative values"
    if values.dtype.kind != "f":
        return f"values of type {values.dtype}"
    if not np.isfinite(values).all():
        return "NaN or infinite values"
    if values.size and values.min() < 0:
        return "negative values (scaled data?)"
    if values.size and not np.array_equal(values, np.round(values)):
        return "non-integer values (normalized or log-transformed?)"
    return "counts"


def _check_all(data: np.ndarray, where: str, path: Path) -> None:
    """Check every stored value (in blocks) for NaN, negatives and non-integers."""
    step = 10_000_000
    for s in range(0, data.shape[0], step):
        verdict = _classify(data[s : s + step])
        if verdict != "counts":
            raise DataError(
                f"{path}: the counts in {where} hold {verdict} beyond the sampled values; raw "
                "counts must be non-negative whole numbers. Point data.path at the raw-count file."
            )


def _as_int_counts(mat: sp.spmatrix, where: str, path: Path) -> sp.csr_matrix:
    """Check every stored value and return the matrix as integer CSR (int32 when it fits)."""
    mat = sp.csr_matrix(mat) if not sp.isspmatrix_csr(mat) else mat
    _check_all(mat.data, where, path)
    top = mat.data.max() if mat.nnz else 0
    dtype = np.int32 if top < np.iinfo(np.int32).max else np.int64
    mat.data = mat.data.astype(dtype, copy=False)
    # one index dtype for indices and indptr (files often mix int32 indices and int64 indptr,
    # which scipy's in-place routines refuse)
    big = max(mat.nnz, *mat.shape) >= np.iinfo(np.int32).max
    index_dtype = np.int64 if big else np.int32
    mat.indices = mat.indices.astype(index_dtype, copy=False)
    mat.indptr = mat.indptr.astype(index_dtype, copy=False)
    mat.sum_duplicates()
    mat.eliminate_zeros()
    return mat


def _read_counts(elem: Any, where: str, path: Path) -> sp.csr_matrix:
    """Read a stored matrix as int CSR, checking every value.

    CSR is read in blocks of rows straight into integer arrays (:func:`read_rows`), never as
    the stored float matrix first: at atlas size (114.6k nuclei at real depth, 0.7 billion
    stored values) the float copy alone is gigabytes. Dense is read in row blocks; CSC whole.
    """
    import h5py
    from anndata.io import read_elem

    if isinstance(elem, h5py.Group):
        if "csc" in _encoding(elem):
            return _as_int_counts(read_elem(elem), where, path)
        return read_rows(elem, np.arange(_stored_shape(elem)[0]), where, path)
    step = max(1, 5_000_000 // max(1, elem.shape[1]))
    mat = sp.vstack(
        [sp.csr_matrix(np.asarray(elem[s : s + step])) for s in range(0, elem.shape[0], step)],
        format="csr",
    )
    return _as_int_counts(mat, where, path)


def _encoding(elem: Any) -> str:
    """``csr_matrix`` / ``csc_matrix`` (also from the pre-0.7 ``h5sparse_format`` attribute)."""
    value = elem.attrs.get("encoding-type", elem.attrs.get("h5sparse_format", ""))
    return value.decode() if isinstance(value, bytes) else str(value)


def _stored_shape(elem: Any) -> tuple[int, int]:
    import h5py

    if isinstance(elem, h5py.Group):
        shape = elem.attrs.get("shape", elem.attrs.get("h5sparse_shape"))
        return (int(shape[0]), int(shape[1]))
    return (int(elem.shape[0]), int(elem.shape[1]))


def _runs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop (exclusive) of the runs of consecutive values in sorted ``rows``."""
    if len(rows) == 0:
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = rows[np.r_[0, breaks]]
    stops = rows[np.r_[breaks - 1, len(rows) - 1]] + 1
    return starts.astype(np.int64), stops.astype(np.int64)


def _stored_per_row(elem: Any) -> np.ndarray | None:
    """Stored values per row of a CSR group (from ``indptr`` alone) or of a dense dataset
    (scanned in row blocks); ``None`` for a CSC group (rows are not cheap to read there)."""
    import h5py

    if isinstance(elem, h5py.Group):
        if "csc" in _encoding(elem):
            return None
        return np.diff(elem["indptr"][:].astype(np.int64))
    step = max(1, 5_000_000 // max(1, elem.shape[1]))
    return np.concatenate(
        [
            np.count_nonzero(np.asarray(elem[s : s + step]), axis=1)
            for s in range(0, elem.shape[0], step)
        ]
    )


def read_rows(
    elem: Any, rows: np.ndarray, where: str = "X", path: str | Path = ""
) -> sp.csr_matrix:
    """Read only the given rows of a stored matrix (an open h5py group or dataset).

    For CSR (the CELLxGENE layout) only ``indptr`` and the ``data`` / ``indices`` slices of
    the chosen rows are read, one read per run of consecutive rows, straight into the output
    arrays; memory is that of the result. Dense datasets are read in blocks of chosen rows.
    A CSC group is read whole, then sliced (logged: such files do not benefit).

    Parameters
    ----------
    elem
        ``f["raw/X"]``, ``f["X"]`` or ``f["layers/<name>"]`` of an open ``h5py.File``.
    rows
        Row indices; sorted and de-duplicated here (the result is in increasing row order).
    where, path
        Used in error messages.

    Returns
    -------
    scipy.sparse.csr_matrix
        Integer counts of the chosen rows (every value checked).

    Raises
    ------
    DataError
        A chosen value is not a non-negative whole number.
    """
    import h5py
    from anndata.io import read_elem

    rows = np.unique(np.asarray(rows, dtype=np.int64))
    n_rows, n_cols = _stored_shape(elem)
    if len(rows) and (rows[0] < 0 or rows[-1] >= n_rows):
        raise DataError(f"read_rows: row indices must lie in [0, {n_rows}) for {where} of {path}.")
    if isinstance(elem, h5py.Group):
        if "csc" in _encoding(elem):
            log.warning(
                "%s of %s is stored column-wise (CSC): reading it whole to take rows", where, path
            )
            return _as_int_counts(sp.csr_matrix(read_elem(elem))[rows], where, Path(path))
        indptr = elem["indptr"][:].astype(np.int64)
        lengths = indptr[rows + 1] - indptr[rows]
        out_indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=out_indptr[1:])
        data_ds, index_ds = elem["data"], elem["indices"]
        nnz = int(out_indptr[-1])
        small = max(nnz, n_cols) < np.iinfo(np.int32).max
        # integer output arrays filled chunk by chunk: the stored values (often float32) are
        # checked and converted one chunk at a time, so no float copy of the whole matrix exists
        data = np.empty(nnz, dtype=np.int32)
        indices = np.empty(nnz, dtype=np.int32 if small else np.int64)
        pos = 0
        for start, stop in zip(*_runs(rows), strict=True):
            a, b = int(indptr[start]), int(indptr[stop])
            for c in range(a, b, _READ_CHUNK):
                d = min(b, c + _READ_CHUNK)
                values = data_ds[c:d]
                _check_all(values, where, Path(path))
                if len(values) and values.max() >= np.iinfo(data.dtype).max:
                    data = data.astype(np.int64)
                data[pos : pos + d - c] = values
                indices[pos : pos + d - c] = index_ds[c:d]
                pos += d - c
        out_indptr = out_indptr.astype(indices.dtype)
        mat = sp.csr_matrix((data, indices, out_indptr), shape=(len(rows), n_cols))
    else:
        step = max(1, 5_000_000 // max(1, n_cols))
        parts = [
            sp.csr_matrix(np.asarray(elem[rows[s : s + step]])) for s in range(0, len(rows), step)
        ]
        mat = (
            sp.vstack(parts, format="csr")
            if parts
            else sp.csr_matrix((0, n_cols), dtype=elem.dtype)
        )
    return _as_int_counts(mat, where, Path(path))


def open_h5ad(path: Path) -> Any:
    """Open an .h5ad with h5py; clear errors for a missing, non-HDF5 or non-AnnData file.

    Parameters
    ----------
    path
        The ``.h5ad`` file.

    Returns
    -------
    h5py.File
        Open for reading (use it as a context manager, or close it).

    Raises
    ------
    DataError
        A missing file, a file that is not HDF5, an HDF5 file with no obs/var/X.
    """
    import h5py

    if not path.is_file():
        raise DataError(
            f"data file {path} does not exist. Check data.path in the params file, or run "
            "`make data` to download it (data.url)."
        )
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(
            f"{path} is not an HDF5/.h5ad file ({exc}). data.path must point at an AnnData .h5ad "
            "file (CELLxGENE: download the .h5ad, not the .rds)."
        ) from None
    if "obs" not in f or "var" not in f or "X" not in f:
        keys = ", ".join(f.keys()) or "none"
        f.close()
        raise DataError(
            f"{path} is an HDF5 file but not an AnnData .h5ad (it has no obs/var/X; top-level "
            f"keys: {keys}). Point data.path at an .h5ad file."
        )
    return f


def find_counts(f: Any, path: Path) -> tuple[str, Any]:
    """The first stored matrix whose sampled values are counts: layers, X, raw.X, other layers.

    The usual count-layer names come first, then ``X``, ``.raw.X`` and the other layers.

    Parameters
    ----------
    f
        An open ``h5py.File`` (:func:`open_h5ad`).
    path
        The file, for messages.

    Returns
    -------
    where : str
        Where the counts are: ``"layers['counts']"``, ``"X"``, ``"raw.X"``, ...
    elem : h5py.Group or h5py.Dataset
        The stored matrix.

    Raises
    ------
    DataError
        No stored matrix holds non-negative whole numbers.
    """
    candidates: list[tuple[str, Any]] = []
    layers = f["layers"] if "layers" in f else {}
    for name in _COUNT_LAYERS:
        if name in layers:
            candidates.append((f"layers['{name}']", layers[name]))
    candidates.append(("X", f["X"]))
    if "raw" in f and "X" in f["raw"]:
        candidates.append(("raw.X", f["raw"]["X"]))
    for name in sorted(layers):
        if name not in _COUNT_LAYERS:
            candidates.append((f"layers['{name}']", layers[name]))
    found: list[str] = []
    for where, elem in candidates:
        values, _ = _sample_values(elem)
        verdict = _classify(values)
        found.append(f"{where}: {verdict}")
        if verdict == "counts":
            log.info("counts of %s are in %s", path, where)
            return where, elem
    raise DataError(
        f"{path} holds no integer counts: looked in {'; '.join(found)}. latentshift "
        "needs raw UMI counts (the LDVAE models counts). Point data.path at the raw-count "
        "file, or at a file that keeps the counts in layers['counts'] or .raw.X."
    )


def read_h5ad_counts(
    path: str | Path,
    symbol_column: str | None = None,
    cell_type_column: str = "cell_type",
    donor_column: str | None = "donor_id",
) -> AnnData:
    """Read a local ``.h5ad`` and return its integer counts in the ``cells.h5ad`` shape.

    The counts are looked for, in this order, in ``layers["counts"]`` (and the other usual
    count-layer names), ``X``, ``.raw.X`` and any other layer; the first whose sampled nonzero
    values are non-negative whole numbers is used (then every value is checked). Only that
    matrix is read from the file — nothing is densified. For a file larger than memory, read
    a sample instead: :func:`read_h5ad_sample`.

    Parameters
    ----------
    path
        The ``.h5ad`` file.
    symbol_column
        ``var`` column holding gene symbols. ``None``: ``feature_name`` when present, else the
        var_names are the symbols (refused when they are Ensembl IDs). When given and not
        ``feature_name``, it is copied to ``var["feature_name"]`` (unless that exists).
    cell_type_column
        ``obs`` column with cell-type labels; copied to ``obs["cell_type"]`` (categorical).
    donor_column
        ``obs`` column with donor IDs; copied to ``obs["donor_id"]`` when present.

    Returns
    -------
    AnnData
        ``X`` and ``layers["counts"]``: integer CSR counts; ``obs`` and ``var`` as in the file
        (var_names unchanged, e.g. Ensembl IDs); ``uns["latentshift"]`` =
        ``{"simulated": ..., "source": str(path), "counts_from": ..., "symbol_column": ...}``
        (``simulated`` is True only for files written by :func:`write_simulated_h5ad`).

    Raises
    ------
    DataError
        Missing or unreadable file, no integer counts anywhere, NaN/negative counts, a missing
        symbol or cell-type column, Ensembl-ID genes with no symbol column.
    """
    path = Path(path)
    with open_h5ad(path) as f:
        where, elem = find_counts(f, path)
        obs, var, symbol_column, flags = read_annotations(
            f, where, _stored_shape(elem), path, symbol_column, cell_type_column, donor_column
        )
        log.info("reading counts from %s of %s", where, path)
        counts = _read_counts(elem, where, path)
    adata = build_anndata(counts, obs, var, path, where, symbol_column, flags, None)
    log.info(
        "read %s: %d cells × %d genes (counts from %s)", path, adata.n_obs, adata.n_vars, where
    )
    return adata


def read_h5ad_sample(
    path: str | Path,
    n_cells: int | None,
    seed: int,
    stratify_by: str | None = "cell_type",
    min_genes: int = 0,
    symbol_column: str | None = None,
    cell_type_column: str = "cell_type",
    donor_column: str | None = "donor_id",
) -> AnnData:
    """Read a seeded sample of a local ``.h5ad``'s cells, reading only the sampled rows.

    The file is opened with h5py; ``obs``, ``var`` and the counts' row pointers are read, the
    cells with at least ``min_genes`` stored genes are found from the row pointers alone, and
    ``n_cells`` of them are drawn with :func:`choose_cells` (seeded, stratified by
    ``stratify_by``). Then only those rows of the counts are read (:func:`read_rows`). Peak
    memory is that of obs, var and the sample — not of the file.

    The cells drawn are exactly those of the full path ``read_h5ad_counts`` → cell filter
    (``min_genes``) → :func:`subsample` with the same seed. What differs: the gene filter of
    :func:`qc_filter` (``min_cells``), which runs afterwards, then counts cells within the
    sample rather than the whole file — a gene must be seen in the cells that are analysed.
    (Files storing explicit zeros may lose a few sampled cells to the later cell filter, as
    the row pointers count stored values.)

    Parameters
    ----------
    path
        The ``.h5ad`` file.
    n_cells
        Cells to draw. ``None``, or at least the cells passing ``min_genes``: all of those.
    seed
        Seed of the draw.
    stratify_by
        ``obs`` column of the result to stratify by (``"cell_type"``, ``"donor_id"`` or any
        column of the file); ``None``: a plain random draw.
    min_genes
        Cells with fewer stored (nonzero) genes are never drawn (the cell filter of QC).
    symbol_column, cell_type_column, donor_column
        As in :func:`read_h5ad_counts`.

    Returns
    -------
    AnnData
        As :func:`read_h5ad_counts`, for the drawn cells in file order;
        ``uns["latentshift"]["sample"]`` = ``{"cells_in_file", "cells_passing_min_genes",
        "min_genes", "n_cells", "seed", "stratify_by"}``.

    Raises
    ------
    DataError
        As :func:`read_h5ad_counts`; also a missing ``stratify_by`` column, or no cell passing
        ``min_genes``.
    """
    path = Path(path)
    start = time.time()
    with open_h5ad(path) as f:
        where, elem = find_counts(f, path)
        obs, var, symbol_column, flags = read_annotations(
            f, where, _stored_shape(elem), path, symbol_column, cell_type_column, donor_column
        )
        per_row = _stored_per_row(elem)
        n_file = len(obs)
        passing = np.arange(n_file) if per_row is None else np.flatnonzero(per_row >= min_genes)
        if len(passing) == 0:
            raise DataError(
                f"{path}: no cell has at least {min_genes} genes detected (data.min_genes); "
                "lower data.min_genes in the params file."
            )
        if stratify_by is not None and stratify_by not in obs.columns:
            raise DataError(
                f"cannot stratify the sample by obs column '{stratify_by}': {path} has obs "
                f"columns {', '.join(map(str, obs.columns))}. Choose one of them, or no "
                "stratification."
            )
        if n_cells is None or n_cells >= len(passing):
            chosen = passing
        else:
            # a missing label stratifies as a class of its own ("nan"); 01 leaves it out after
            labels = (
                None if stratify_by is None else obs[stratify_by].astype(str).to_numpy()[passing]
            )
            chosen = passing[choose_cells(len(passing), n_cells, seed, labels)]
        log.info(
            "sampling %d of %d cells of %s (%d pass min_genes=%d; stratified by %s); reading only "
            "those rows of %s",
            len(chosen),
            n_file,
            path,
            len(passing),
            min_genes,
            stratify_by,
            where,
        )
        counts = read_rows(elem, chosen, where, path)
    sub_obs = obs.iloc[chosen].copy()
    for c in sub_obs.columns:
        if isinstance(sub_obs[c].dtype, pd.CategoricalDtype):
            sub_obs[c] = sub_obs[c].cat.remove_unused_categories()
    sample = {
        "cells_in_file": int(n_file),
        "cells_passing_min_genes": int(len(passing)),
        "min_genes": int(min_genes),
        "n_cells": int(len(chosen)),
        "seed": int(seed),
        "stratify_by": stratify_by,
    }
    adata = build_anndata(counts, sub_obs, var, path, where, symbol_column, flags, sample)
    log.info(
        "read a sample of %s: %d cells × %d genes in %.1f s",
        path,
        adata.n_obs,
        adata.n_vars,
        time.time() - start,
    )
    return adata


def h5ad_n_obs(path: str | Path) -> int:
    """Number of cells of an ``.h5ad`` file, from its obs index alone."""
    path = Path(path)
    import h5py

    with open_h5ad(path) as f:
        obs = f["obs"]
        if isinstance(obs, h5py.Dataset):  # pre-0.7 files: obs is one compound dataset
            return int(obs.shape[0])
        index = obs.attrs.get("_index", "_index")
        index = index.decode() if isinstance(index, bytes) else str(index)
        if index in obs:
            return int(obs[index].shape[0])
        return _stored_shape(find_counts(f, path)[1])[0]
