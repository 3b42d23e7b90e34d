"""A simulated M1 data set written to an ``.h5ad`` file, chunk by chunk.

:func:`write_simulated_h5ad` writes the cells of :func:`latentshift.data.simulate.simulate_m1`
(by default shaped like the CELLxGENE download) one chunk at a time, so a file far larger than
memory can be made and read back through the real-data path (:mod:`latentshift.data.h5ad`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from latentshift.data.counts import log_normalise
from latentshift.data.simulate import plan_simulation

# the simulation's log lines, under the name of the module that plans it
log = logging.getLogger("latentshift.data.simulate")

_WRITE_CHUNK = 32_768  # HDF5 chunk length (elements) of the written sparse arrays


def write_simulated_h5ad(
    path: str | Path,
    n_cells: int,
    n_genes: int,
    seed: int = 0,
    schema: str = "cellxgene",
    required_genes: Sequence[str] = (),
    n_donors: int = 4,
    compression: str | None = None,
    composition: str = "m1",
    counts_layer: bool = True,
) -> Path:
    """Write a simulated M1 data set to an ``.h5ad`` file, chunk by chunk (never all in memory).

    The file holds exactly what :func:`~latentshift.data.simulate.simulate_m1` returns for the
    same arguments, but the counts are drawn and appended to the file one chunk of cells at a
    time, so a file far larger than memory (e.g. 114.6k cells × 30k genes, the size of the real
    M1 file) can be written. The file is written under a temporary name and renamed into place
    when complete.

    Parameters
    ----------
    path
        The ``.h5ad`` file to write (its folder is created).
    n_cells, n_genes, seed, required_genes, n_donors, composition
        As in :func:`latentshift.data.simulate.simulate_m1`.
    schema
        ``"cellxgene"`` (default): Ensembl-style var_names with symbols in
        ``var["feature_name"]``, log-normalised ``X`` and the counts (float32) only in
        ``raw/X``. ``"latentshift"``: symbols as var_names, int32 counts in ``X`` and
        ``layers["counts"]``.
    compression
        HDF5 compression of the sparse arrays (``None``, ``"gzip"``, ``"lzf"``).
    counts_layer
        ``"latentshift"`` schema: also write ``layers["counts"]`` (default). ``False`` gives a
        file with the counts in ``X`` only, to train from on disk
        (:func:`latentshift.data.ondisk.open_counts`; anndata's backed mode reads layers into memory).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    import anndata as ad
    import h5py

    from latentshift.data.artifacts import atomic_path

    plan = plan_simulation(n_cells, n_genes, seed, required_genes, n_donors, schema, composition)
    obs, var = plan.obs, plan.var
    uns = {"latentshift": {"simulated": True, "source": plan.source}}
    shape = (n_cells, plan.n_genes)
    start = time.time()
    if schema == "cellxgene":
        var.index = pd.Index(var["gene_ids"].to_numpy(), name=None)
        skeleton = ad.AnnData(X=sp.csr_matrix(shape, dtype=np.float32), obs=obs, var=var, uns=uns)
        skeleton.raw = ad.AnnData(
            X=sp.csr_matrix(shape, dtype=np.float32), obs=obs.copy(), var=var.copy()
        )
        targets = {"X": np.float32, "raw/X": np.float32}
    else:
        skeleton = ad.AnnData(X=sp.csr_matrix(shape, dtype=np.int32), obs=obs, var=var, uns=uns)
        targets = {"X": np.int32}
        if counts_layer:
            skeleton.layers["counts"] = sp.csr_matrix(shape, dtype=np.int32)
            targets["layers/counts"] = np.int32
    nnz = 0
    with atomic_path(path) as tmp:
        skeleton.write_h5ad(tmp)
        del skeleton
        with h5py.File(tmp, "r+") as f:
            for key, dtype in targets.items():
                group = f[key]
                for name, dt in (("data", dtype), ("indices", np.int32)):
                    del group[name]
                    group.create_dataset(
                        name,
                        shape=(0,),
                        maxshape=(None,),
                        dtype=dt,
                        chunks=(_WRITE_CHUNK,),
                        compression=compression,
                    )
            indptr = np.zeros(n_cells + 1, dtype=np.int64)
            row = 0
            for block in plan.blocks():
                values = {
                    "raw/X": block.data.astype(np.float32),
                    "X": log_normalise(block).data if schema == "cellxgene" else block.data,
                    "layers/counts": block.data,
                }
                for key in targets:
                    for name, arr in (("data", values[key]), ("indices", block.indices)):
                        ds = f[key][name]
                        ds.resize((nnz + block.nnz,))
                        ds[nnz:] = arr
                indptr[row + 1 : row + block.shape[0] + 1] = nnz + block.indptr[1:]
                nnz += block.nnz
                row += block.shape[0]
            for key in targets:
                del f[key]["indptr"]
                f[key].create_dataset("indptr", data=indptr)
    log.info(
        "write_simulated_h5ad: %s, %d cells × %d genes (%s schema), %d nonzeros, %.1f s",
        path,
        n_cells,
        plan.n_genes,
        schema,
        nnz,
        time.time() - start,
    )
    return Path(path)
