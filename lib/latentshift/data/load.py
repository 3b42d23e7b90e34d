"""Step 01's cells: load them (simulated or a local ``.h5ad``), QC, seeded subsampling, summary.

Two sources give the same shape of AnnData (the ``cells.h5ad`` contract), chosen by
:func:`load_cells` from the ``data`` params:

* :func:`latentshift.data.simulate.simulate_m1` — the deterministic simulated human M1 data set;
* :func:`latentshift.data.h5ad.read_h5ad_counts` / :func:`latentshift.data.h5ad.read_h5ad_sample` — a
  local ``.h5ad`` (CELLxGENE / HCA schema), whole or a seeded sample of its rows.

Both return integer CSR counts in ``layers["counts"]`` and in ``X``, ``obs["cell_type"]``
(categorical), ``obs["donor_id"]`` where known and ``uns["latentshift"]`` with the
``simulated`` flag and the source. :func:`qc_filter`, :func:`subsample` and :func:`summarize`
work on either.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from latentshift.data.counts import counts_matrix, row_sums, subset
from latentshift.data.h5ad import h5ad_n_obs, read_h5ad_counts, read_h5ad_sample
from latentshift.data.sampling import choose_cells
from latentshift.data.simulate import DONOR_GENE_SD, simulate_m1
from latentshift.errors import DataError

log = logging.getLogger(__name__)


def qc_filter(
    adata: AnnData, min_genes: int, min_cells: int, *, copy: bool = True
) -> tuple[AnnData, dict[str, int]]:
    """Drop cells with few detected genes, then genes detected in few cells.

    Uses scanpy's ``filter_cells`` / ``filter_genes`` on the counts (``layers["counts"]``, else
    ``X``). Adds ``obs["total_counts"]`` and ``obs["n_genes"]`` (after filtering).

    Parameters
    ----------
    adata
        Cells with integer counts.
    min_genes
        Minimum number of genes detected per cell.
    min_cells
        Minimum number of cells a gene is detected in (counted after the cell filter).
    copy
        ``False`` (01_data at atlas size): the result is built in ``adata``'s own counts
        (:func:`latentshift.data.counts.compact`), so they are never held twice; ``adata`` is
        consumed (its ``X`` and counts layer are removed). Only when ``X`` *is*
        ``layers["counts"]`` and there is nothing else to subset; otherwise a copy is made.

    Returns
    -------
    (AnnData, dict)
        The filtered cells, and ``cells_before``, ``cells_after``, ``genes_before``,
        ``genes_after``, ``min_genes``, ``min_cells``.
    """
    counts = counts_matrix(adata)
    cell_mask, gene_mask = _qc_masks(counts, min_genes, min_cells)
    if cell_mask.all() and gene_mask.all():
        out = subset(adata, copy_counts=copy)
    elif not copy and _only_counts(adata):
        out = _consume(adata, cell_mask, gene_mask)
    else:
        out = subset(
            adata, None if cell_mask.all() else cell_mask, None if gene_mask.all() else gene_mask
        )
    c = counts_matrix(out)
    out.obs["total_counts"] = row_sums(c).astype(np.int64)
    out.obs["n_genes"] = np.diff(c.indptr).astype(np.int64)
    stats = {
        "cells_before": int(adata.n_obs),
        "cells_after": int(out.n_obs),
        "genes_before": int(adata.n_vars),
        "genes_after": int(out.n_vars),
        "min_genes": int(min_genes),
        "min_cells": int(min_cells),
    }
    log.info(
        "QC: cells %d → %d (min_genes=%d), genes %d → %d (min_cells=%d)",
        stats["cells_before"],
        stats["cells_after"],
        min_genes,
        stats["genes_before"],
        stats["genes_after"],
        min_cells,
    )
    if out.n_obs == 0:
        raise DataError(
            f"QC removed every cell (min_genes={min_genes}); lower data.min_genes in the params file."
        )
    return out, stats


def _only_counts(adata: AnnData) -> bool:
    """Whether ``adata`` holds its counts once (``X`` is ``layers["counts"]``, CSR) and no other
    matrix that a subset would have to cut."""
    return (
        adata.layers.get("counts") is adata.X
        and len(adata.layers) == 1
        and sp.isspmatrix_csr(adata.X)
        and not len(adata.obsp)
        and not len(adata.varp)
        and not len(adata.varm)
        and adata.raw is None
    )


def _consume(adata: AnnData, rows: np.ndarray, cols: np.ndarray) -> AnnData:
    """``adata[rows, cols]`` made in ``adata``'s own counts (see :func:`qc_filter`)."""
    import copy as copying

    from latentshift.data.counts import compact

    X = compact(adata.X, rows, cols)
    obs, var = adata.obs.loc[rows].copy(), adata.var.loc[cols].copy()
    for frame in (obs, var):
        for c in frame.columns:
            if isinstance(frame[c].dtype, pd.CategoricalDtype):
                frame[c] = frame[c].cat.remove_unused_categories()
    out = AnnData(
        X=X,
        obs=obs,
        var=var,
        uns=copying.deepcopy(dict(adata.uns)),
        obsm={k: v[rows] for k, v in adata.obsm.items()},
    )
    out.layers["counts"] = out.X
    del adata.layers["counts"]
    adata.X = None  # consumed: its arrays now hold the result
    return out


def _qc_masks(
    counts: Any, min_genes: int, min_cells: int, chunk_rows: int = 20_000
) -> tuple[np.ndarray, np.ndarray]:
    """The cells and genes that pass QC: scanpy's ``filter_cells`` / ``filter_genes``, applied
    to blocks of ``chunk_rows`` cells.

    scanpy counts detected genes with a boolean copy of the whole matrix (``X > 0``, then an
    integer sum): at the 114.6k-nucleus atlas several GB above the counts. A cell's verdict
    depends on its own row only, and a gene's count of cells is a sum over rows, so the blocks
    give scanpy's answer exactly (``tests/test_data.py`` checks it against scanpy on the whole).
    """
    import scanpy as sc

    n_rows = counts.shape[0]
    cell_mask = np.zeros(n_rows, dtype=bool)
    cells_per_gene = np.zeros(counts.shape[1], dtype=np.int64)
    for lo in range(0, n_rows, chunk_rows):
        block = counts[lo : lo + chunk_rows]
        keep, _ = sc.pp.filter_cells(block, min_genes=min_genes, inplace=False)
        keep = np.asarray(keep, dtype=bool)
        cell_mask[lo : lo + chunk_rows] = keep
        if keep.any():
            _, per_gene = sc.pp.filter_genes(block[keep], min_cells=0, inplace=False)
            cells_per_gene += np.asarray(per_gene, dtype=np.int64).ravel()
    return cell_mask, cells_per_gene >= min_cells


#: Label values that mean "no label" whatever the profile says (compared case-insensitively,
#: after stripping spaces); ``data.unlabelled_values`` adds more (e.g. ``unknown``).
MISSING_LABELS: tuple[str, ...] = ("", "nan", "none", "na", "n/a")

#: The obs columns :func:`drop_unlabelled` checks, with the params key that names each.
LABEL_KEYS: dict[str, str] = {"cell_type": "data.cell_type_column", "donor_id": "data.donor_column"}


def drop_unlabelled(
    adata: AnnData,
    columns: Sequence[str],
    extra_missing: Sequence[str] = (),
    max_fraction: float = 0.05,
) -> tuple[AnnData, dict[str, int]]:
    """Leave out the cells whose label is missing, or refuse when too many are.

    A label is missing when it is NaN or one of :data:`MISSING_LABELS` or ``extra_missing``
    (case-insensitive). Such cells would otherwise become a class of their own (``"nan"``) in
    the stratification, the classifier and the per-cell-type tests.

    Parameters
    ----------
    adata
        The loaded cells.
    columns
        obs columns to check (``cell_type``; ``donor_id`` where donors are used).
    extra_missing
        More values that mean "no label" (``data.unlabelled_values``, e.g. ``["unknown"]``).
    max_fraction
        The largest share of cells without a label that is left out; above it the data are
        refused (``data.max_unlabelled_fraction``).

    Returns
    -------
    (AnnData, dict)
        The labelled cells (the input itself when every cell is labelled; unused categories
        removed) and the number of cells left out per column (0 where none).

    Raises
    ------
    DataError
        A column is missing, or more than ``max_fraction`` of the cells lack its label.
    """
    missing_values = {v.strip().lower() for v in (*MISSING_LABELS, *map(str, extra_missing))}
    keep = np.ones(adata.n_obs, dtype=bool)
    dropped: dict[str, int] = {}
    for column in columns:
        if column not in adata.obs:
            raise DataError(
                f"obs has no '{column}' column; set {LABEL_KEYS.get(column, 'the params key')} "
                "to the obs column that holds it."
            )
        values = adata.obs[column]
        text = values.astype(object).where(values.notna(), "").astype(str).str.strip().str.lower()
        missing = values.isna().to_numpy() | text.isin(missing_values).to_numpy()
        dropped[column] = int(missing.sum())
        if adata.n_obs and missing.mean() > max_fraction:
            raise DataError(
                f"{dropped[column]:,} of {adata.n_obs:,} cells ({missing.mean():.1%}) have no "
                f"'{column}' label (NaN, empty or one of {sorted(missing_values - {''})}), more "
                f"than data.max_unlabelled_fraction ({max_fraction:.0%}). Check "
                f"{LABEL_KEYS.get(column, 'the column')} names the right obs column, or raise "
                "data.max_unlabelled_fraction to leave these cells out."
            )
        keep &= ~missing
    if keep.all():
        return adata, dropped
    for column, n in dropped.items():
        if n:
            log.warning("%d cells without a '%s' label were left out", n, column)
    out = subset(adata, rows=keep)
    for column in columns:
        if isinstance(out.obs[column].dtype, pd.CategoricalDtype):
            out.obs[column] = out.obs[column].cat.remove_unused_categories()
    return out, dropped


def qc_table(stats: Mapping[str, int]) -> pd.DataFrame:
    """The QC numbers of :func:`qc_filter` as a small before/after table."""
    return pd.DataFrame(
        {
            "before QC": [stats["cells_before"], stats["genes_before"]],
            "after QC": [stats["cells_after"], stats["genes_after"]],
            "threshold": [f"min_genes = {stats['min_genes']}", f"min_cells = {stats['min_cells']}"],
        },
        index=["cells", "genes"],
    )


def subsample(
    adata: AnnData, n_cells: int | None, seed: int, stratify_by: str | None = "cell_type"
) -> AnnData:
    """A seeded subsample of cells, stratified by a column (proportional allocation).

    Parameters
    ----------
    adata
        Cells.
    n_cells
        Cells to keep. ``None`` keeps all.
    seed
        Seed of the draw.
    stratify_by
        ``obs`` column: each group gets its proportional whole-number share (largest
        remainder). ``None``: a plain random draw.

    Returns
    -------
    AnnData
        The chosen cells in their original order: a copy, or the input itself when every cell
        is kept (``n_cells`` None or equal to the number of cells).
    """
    if n_cells is None or n_cells == adata.n_obs:
        return adata  # nothing to drop: no copy (gigabytes at atlas scale)
    if n_cells > adata.n_obs:
        raise DataError(
            f"data.n_cells is {n_cells}, but only {adata.n_obs} cells are available (after QC). "
            f"Set data.n_cells to at most {adata.n_obs}, or to null to keep every cell."
        )
    if n_cells < 1:
        raise DataError(f"subsample: n_cells must be >= 1 or None (got {n_cells}).")
    if stratify_by is not None and stratify_by not in adata.obs.columns:
        raise DataError(
            f"subsample: obs column '{stratify_by}' is missing; obs columns: "
            f"{', '.join(map(str, adata.obs.columns))}."
        )
    labels = None if stratify_by is None else adata.obs[stratify_by].to_numpy()
    keep = choose_cells(adata.n_obs, n_cells, seed, labels)
    log.info(
        "subsample: %d → %d cells (seed %d, stratified by %s)",
        adata.n_obs,
        len(keep),
        seed,
        stratify_by,
    )
    return subset(adata, rows=keep)


def summarize(adata: AnnData) -> dict[str, Any]:
    """Headline numbers of a cell set (computed from the sparse counts, nothing densified).

    Returns
    -------
    dict
        ``n_cells``, ``n_genes``, ``median_counts_per_cell``, ``median_genes_per_cell``,
        ``fraction_zeros`` (from the number of stored nonzeros), ``cell_type_counts``
        (type → cells, in category order) and ``simulated``.
    """
    c = sp.csr_matrix(counts_matrix(adata))
    totals = row_sums(c)
    genes = np.diff(c.indptr)
    nnz = c.count_nonzero() if c.nnz else 0
    size = adata.n_obs * adata.n_vars
    if "cell_type" in adata.obs:
        vc = adata.obs["cell_type"].value_counts(sort=False)
        type_counts = {str(k): int(v) for k, v in vc.items()}
    else:
        type_counts = {}
    return {
        "n_cells": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
        "median_counts_per_cell": float(np.median(totals)) if len(totals) else 0.0,
        "median_genes_per_cell": float(np.median(genes)) if len(genes) else 0.0,
        "fraction_zeros": float(1 - nnz / size) if size else 1.0,
        "cell_type_counts": type_counts,
        "simulated": bool(adata.uns.get("latentshift", {}).get("simulated", False)),
    }


def load_cells(cfg: Mapping[str, Any], seed: int, required_genes: Sequence[str] = ()) -> AnnData:
    """Load the cells a profile names: simulated, or a local ``.h5ad``.

    For a file, when ``cfg["n_cells"]`` is smaller than the number of cells in it, only a
    seeded sample is read (:func:`read_h5ad_sample`: the cells passing ``min_genes``, then
    ``n_cells`` of them, stratified by cell type when ``cfg["stratify"]``) — the same cells
    the full read + QC + :func:`subsample` would keep, without holding the whole file in
    memory. Otherwise the whole file is read (:func:`read_h5ad_counts`).

    Parameters
    ----------
    cfg
        The resolved ``data`` params section (see ``config.DEFAULTS["data"]``).
    seed
        Seed of the simulation and of the sample.
    required_genes
        Genes the simulation must hold (the disease gene sets' genes); ignored for files.

    Returns
    -------
    AnnData
        Cells in the ``cells.h5ad`` shape (before QC; for a sampled file, after the cell filter).
    """
    source = cfg.get("source", "simulated")
    if source == "simulated":
        return simulate_m1(
            cfg["simulate_n_cells"],
            cfg["simulate_n_genes"],
            seed=seed,
            required_genes=required_genes,
            n_donors=cfg.get("simulate_n_donors", 4),
            composition=cfg.get("composition", "m1"),
            donor_gene_sd=cfg.get("simulate_donor_gene_sd", DONOR_GENE_SD),
        )
    if source == "h5ad":
        if not cfg.get("path"):
            raise DataError(
                "data.source is 'h5ad' but data.path is empty: give the .h5ad file's path."
            )
        columns = {
            "symbol_column": cfg.get("symbol_column"),
            "cell_type_column": cfg.get("cell_type_column", "cell_type"),
            "donor_column": cfg.get("donor_column", "donor_id"),
        }
        excluded = [str(d) for d in cfg.get("exclude_donors") or []]
        if excluded:  # the whole file, then the donors out; 01 samples what is left
            return exclude_donors(read_h5ad_counts(cfg["path"], **columns), excluded)
        n_cells = cfg.get("n_cells")
        if n_cells is not None and n_cells < h5ad_n_obs(cfg["path"]):
            return read_h5ad_sample(
                cfg["path"],
                n_cells,
                seed,
                stratify_by="cell_type" if cfg.get("stratify", True) else None,
                min_genes=cfg.get("min_genes", 0),
                **columns,
            )
        return read_h5ad_counts(cfg["path"], **columns)
    raise DataError(f"data.source must be 'simulated' or 'h5ad' (got {source!r}).")


def exclude_donors(adata: AnnData, donors: Sequence[str]) -> AnnData:
    """The cells of every donor but ``donors`` (``data.exclude_donors``).

    Raises
    ------
    DataError
        The data have no ``donor_id``, or a donor to leave out is not among them.
    """
    if "donor_id" not in adata.obs:
        raise DataError(
            "data.exclude_donors names donors, but the cells have no donor (obs['donor_id']); "
            "set data.donor_column to the obs column that holds it."
        )
    present = set(adata.obs["donor_id"].astype(str))
    unknown = [d for d in donors if d not in present]
    if unknown:
        raise DataError(
            f"data.exclude_donors: donor(s) {', '.join(unknown)} are not in the data (donors: "
            f"{', '.join(sorted(present))}). Fix the ids in data.exclude_donors."
        )
    keep = ~adata.obs["donor_id"].astype(str).isin(donors).to_numpy()
    log.info(
        "left out %d cells of donor(s) %s; %d cells stay",
        int((~keep).sum()),
        ", ".join(donors),
        int(keep.sum()),
    )
    out = subset(adata, rows=keep)
    out.uns["latentshift"] = {
        **dict(adata.uns.get("latentshift", {})),
        "excluded_donors": list(donors),
    }
    return out


def describe_loading(adata: AnnData) -> str:
    """One sentence on how the cells were read from a file (empty for simulated or fully read data)."""
    info = adata.uns.get("latentshift", {})
    text = ""
    if info.get("simulated") and info.get("simulated_by"):
        text += f"The file was written by the simulator ({info['simulated_by']}): these are **simulated** cells. "
    sample = info.get("sample")
    if sample:
        strat = f", stratified by {sample['stratify_by']}" if sample.get("stratify_by") else ""
        text += (
            f"Only a seeded sample was read from the file: it holds {sample['cells_in_file']:,} cells, "
            f"{sample['cells_passing_min_genes']:,} of which have at least {sample['min_genes']} "
            f"genes; {sample['n_cells']:,} of those were drawn (seed {sample['seed']}{strat}) and "
            f"only their rows of the counts ({info.get('counts_from', '?')}) were read."
        )
    return text.strip()


def data_metrics(
    before: Mapping[str, Any],
    summary: Mapping[str, Any],
    qc: Mapping[str, int],
    cells: AnnData,
    fidelity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``data`` section of ``metrics.json`` (written by ``01_data``).

    Parameters
    ----------
    before
        :func:`summarize` of the cells as loaded (before QC).
    summary
        :func:`summarize` of the cells kept.
    qc
        :func:`qc_filter`'s numbers.
    cells
        The cells kept (for their source and, for a sampled file, its size).
    fidelity
        :func:`latentshift.data.fidelity.fidelity_metrics` of the cells kept (the measured side of
        the fidelity table), stored under ``fidelity``.
    """
    from latentshift.data.artifacts import display_path

    info = cells.uns["latentshift"]
    source = display_path(info["source"]) if "counts_from" in info else info["source"]
    return {
        "simulated": summary["simulated"],
        "source": source,
        "cells_in_file": info.get("sample", {}).get("cells_in_file", before["n_cells"]),
        "cells_loaded": before["n_cells"],
        "genes_loaded": before["n_genes"],
        "cells_after_qc": qc["cells_after"],
        "genes_after_qc": qc["genes_after"],
        "n_cells": summary["n_cells"],
        "n_genes": summary["n_genes"],
        "median_counts_per_cell": summary["median_counts_per_cell"],
        "median_genes_per_cell": summary["median_genes_per_cell"],
        "fraction_zeros": round(summary["fraction_zeros"], 4),
        "cell_type_counts": summary["cell_type_counts"],
        **({"fidelity": dict(fidelity)} if fidelity is not None else {}),
    }
