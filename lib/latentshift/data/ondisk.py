"""Counts on disk: the LDVAE trained from an ``.h5ad`` without the counts in memory.

scvi-tools reads minibatches straight from a *backed* AnnData (``anndata.read_h5ad(path,
backed="r")``): its ``AnnTorchDataset`` takes the rows of each minibatch from the file's CSR
``X``. Training memory then holds the model, one minibatch and the cell annotations, not the
counts — it does not grow with the number of nuclei (``benchmarks/bench_ondisk.py`` measures it
at 114.6k and 343.8k simulated nuclei).

Two things make a file fit for it, and this module does both:

* the counts must be ``X`` (anndata's backed mode keeps only ``X`` on disk; ``layers`` and
  ``raw`` are read into memory) and only the model's genes (scvi-tools registers the matrix
  whole) — :func:`write_counts_h5ad` writes such a file block by block, and
  :func:`model_counts_file` makes one from any ``.h5ad`` latentshift reads (a CELLxGENE download
  keeps its counts in ``raw.X``);
* :func:`open_counts` opens it backed and checks, block by block, that ``X`` holds counts.

Then :func:`latentshift.model.ldvae.train_ldvae` takes the backed AnnData as it takes one in memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from latentshift.errors import DataError

__all__ = ["check_backed_counts", "model_counts_file", "open_counts", "write_counts_h5ad"]

log = logging.getLogger(__name__)

_CHECK_CHUNK = 1 << 24  # stored values checked per read (64 MB of float32)


def write_counts_h5ad(
    path: str | Path,
    blocks: Iterable[sp.spmatrix],
    obs: pd.DataFrame,
    var: pd.DataFrame,
    *,
    uns: Mapping[str, Any] | None = None,
) -> Path:
    """Write counts given as consecutive row blocks to ``X`` of a new ``.h5ad`` (CSR).

    The blocks are appended to the file one at a time with anndata's
    :meth:`~anndata.abc.CSRDataset.append`, so only one block is in memory; the file is written
    under a temporary name and renamed into place when complete.

    Parameters
    ----------
    path
        The ``.h5ad`` to write.
    blocks
        Sparse counts (any integer or whole-number dtype), rows in the order of ``obs``.
    obs, var
        Cell and gene annotations (``len(obs)`` rows in all blocks, ``len(var)`` columns each).
    uns
        Unstructured annotations to store.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    DataError
        The blocks do not add up to ``len(obs)`` rows of ``len(var)`` columns.
    """
    import anndata as ad
    import h5py
    from anndata.io import sparse_dataset, write_elem

    from latentshift.data.artifacts import atomic_path

    n_rows, n_cols = len(obs), len(var)
    rows = 0
    with atomic_path(path) as tmp:
        ad.AnnData(obs=obs, var=var, uns=dict(uns or {})).write_h5ad(tmp)
        with h5py.File(tmp, "r+") as f:
            if "X" in f:  # an empty placeholder, in some anndata versions
                del f["X"]
            stored = None
            for block in blocks:
                block = sp.csr_matrix(block)
                if block.shape[1] != n_cols:
                    raise DataError(
                        f"write_counts_h5ad: a block has {block.shape[1]} columns, var has "
                        f"{n_cols} genes; give blocks of the same genes as var."
                    )
                rows += block.shape[0]
                if stored is None:
                    # a 64-bit indptr from the start: appending may pass 2**31 nonzeros
                    block.indptr = block.indptr.astype(np.int64)
                    write_elem(f, "X", block)
                    stored = sparse_dataset(f["X"])
                else:
                    stored.append(block)
            if rows != n_rows:
                raise DataError(
                    f"write_counts_h5ad: the blocks hold {rows} rows, obs has {n_rows} cells."
                )
            if stored is None:
                write_elem(f, "X", sp.csr_matrix((n_rows, n_cols), dtype=np.int32))
    log.info("wrote %s: %d cells × %d genes, counts in X", path, n_rows, n_cols)
    return Path(path)


def model_counts_file(
    source: str | Path,
    path: str | Path,
    genes: Sequence[str],
    rows: np.ndarray | None = None,
    *,
    chunk_rows: int = 20_000,
) -> Path:
    """An ``.h5ad`` for on-disk training: ``genes`` of ``source``'s counts, in ``X``.

    The counts are found where :func:`latentshift.data.h5ad.read_h5ad_counts` finds them
    (``layers['counts']``, ``X`` or ``raw.X``) and read ``chunk_rows`` cells at a time.

    Parameters
    ----------
    source
        Any ``.h5ad`` with integer counts (e.g. the CELLxGENE M1 file).
    path
        The file to write.
    genes
        The model's genes, as ``source``'s var_names (in the order the model should have).
    rows
        Cells to keep (positions; default all), written in increasing order.
    chunk_rows
        Cells read per block.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    DataError
        ``source`` has no counts, or lacks some of ``genes``.
    """
    from anndata.io import read_elem

    from latentshift.data import h5ad

    source = Path(source)
    f = h5ad.open_h5ad(source)
    try:
        where, elem = h5ad.find_counts(f, source)
        var = read_elem(f["raw/var"] if where == "raw.X" else f["var"])
        missing = pd.Index(genes).difference(var.index)
        if len(missing):
            raise DataError(
                f"{len(missing)} of the {len(genes)} genes are not var_names of {source} "
                f"(e.g. {', '.join(map(str, missing[:5]))}); give the genes as that file's "
                "var_names."
            )
        columns = var.index.get_indexer(pd.Index(genes))
        obs = read_elem(f["obs"])
        chosen = np.arange(len(obs)) if rows is None else np.unique(np.asarray(rows))

        def blocks() -> Iterable[sp.csr_matrix]:
            start = time.time()
            for lo in range(0, len(chosen), chunk_rows):
                part = chosen[lo : lo + chunk_rows]
                yield h5ad.read_rows(elem, part, where, source)[:, columns]
                log.info(
                    "model_counts_file: %d/%d cells, %.0f s",
                    min(lo + chunk_rows, len(chosen)),
                    len(chosen),
                    time.time() - start,
                )

        return write_counts_h5ad(
            path, blocks(), obs.iloc[chosen], var.iloc[columns], uns={"counts_from": where}
        )
    finally:
        f.close()


def check_backed_counts(adata: AnnData, source: str = "") -> None:
    """Check, block by block, that a backed AnnData's ``X`` is CSR and holds counts.

    Raises
    ------
    DataError
        ``X`` is not a CSR matrix on disk, or a value is negative, not whole or not finite.
    """
    from anndata.abc import CSRDataset

    where = source or str(adata.filename)
    x = adata.X
    if not isinstance(x, CSRDataset):
        raise DataError(
            f"X of {where} is stored as {type(x).__name__}, not CSR: on-disk training reads "
            "rows of a CSR matrix. Write the file with latentshift.data.ondisk.model_counts_file."
        )
    data = x.group["data"]
    for lo in range(0, data.shape[0], _CHECK_CHUNK):
        values = data[lo : lo + _CHECK_CHUNK]
        if not np.isfinite(values).all() or (values < 0).any() or (values % 1 != 0).any():
            raise DataError(
                f"X of {where} holds values that are not counts (negative, fractional or "
                "not finite): the LDVAE models raw integer counts. Write the file with "
                "latentshift.data.ondisk.model_counts_file from the raw counts."
            )


def open_counts(path: str | Path, *, check: bool = True) -> AnnData:
    """Open an ``.h5ad`` whose ``X`` holds the counts, backed (the counts stay on disk).

    Parameters
    ----------
    path
        A file written by :func:`write_counts_h5ad` or :func:`model_counts_file`.
    check
        Read the stored values once, block by block, to check they are counts.

    Returns
    -------
    AnnData
        Backed (read-only); obs and var in memory. Give it to
        :func:`latentshift.model.ldvae.train_ldvae`; close it with ``adata.file.close()``.

    Raises
    ------
    DataError
        The file is missing, not an AnnData, stores other matrices that backed mode would load
        into memory, or ``X`` is not counts.
    """
    import anndata as ad

    from latentshift.data import h5ad

    path = Path(path)
    f = h5ad.open_h5ad(path)  # clear errors for a missing or foreign file
    heavy = [k for k in ("layers", "raw") if k in f and len(f[k].keys())]
    f.close()
    if heavy:
        raise DataError(
            f"{path} also stores {' and '.join(heavy)}, which anndata's backed mode reads into "
            "memory: on-disk training needs a file with the counts in X only. Make one with "
            "latentshift.data.ondisk.model_counts_file."
        )
    adata = ad.read_h5ad(path, backed="r")
    if check:
        try:
            check_backed_counts(adata, str(path))
        except DataError:
            adata.file.close()
            raise
    return adata
