"""Count-preserving in-silico perturbation of sparse count matrices.

A perturbation entry makes a "disease" copy of every cell in which the genes of one gene set
are shifted by a fold change. The result must stay honest single-cell counts — integers,
sparse — so that the LDVAE's negative-binomial likelihood can model them. Three methods:

``thin`` (default for ``down``)
    Binomial thinning: each count ``c`` becomes ``Binomial(c, fc)``. The expected count is
    ``fc × c`` and the result is again a count (the seqgendiff approach, Gerard 2020, *Genome
    Biology* 21:296). Needs ``fc <= 1``.
``poisson`` (default for ``up``)
    Each count ``c`` becomes ``Poisson(fc × c)``: expected count ``fc × c``, integer, with
    Poisson noise on top. **By design only expressed counts are shifted**: a zero stays zero
    (its Poisson mean is 0), so the gene's detection rate does not change and the realised
    mean fold change over all cells is ≈ ``fc``.
``scale``
    The original study's multiply-and-round, ``round(fc × c)`` (round half to even), kept for
    comparison. Deterministic; biased for small counts (``round(0.5 × 1) = 0``).

Every method works on the CSR arrays directly: one vectorised pass over the column-index
array finds the stored entries of the gene set, the random draws touch only those entries
(and only those of the chosen cells), and entries that became zero are removed from the
structure. No matrix is ever densified; the cost is one pass over the index array plus work
linear in the touched nonzeros.

A per-gene fold change is ``fc_g = exp(log(fc) + N(0, lfc_sd))`` when ``lfc_sd > 0``
(clipped to ``<= 1`` for ``thin``). A gene whose fold change is exactly 1 is left untouched,
so ``fold_change: 1.0`` (with ``lfc_sd: 0``) gives copies identical to the originals — the
null control.
"""

from __future__ import annotations

import difflib
import gc
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from latentshift.data.counts import RowStacker, counts_matrix, log_normalise_genes, row_sums
from latentshift.design.split import split_counts
from latentshift.errors import PerturbError

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("thin", "poisson", "scale")

#: entries of the index array scanned per block when looking for the gene set's entries
#: (small blocks stay in cache; the scan then needs no memory proportional to nnz)
_SCAN_BLOCK = 1 << 18


# --- the numerical core -------------------------------------------------------------------


def _as_rng(rng: np.random.Generator | int | np.random.SeedSequence) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def gene_fold_changes(
    fold_change: float,
    n_genes: int,
    lfc_sd: float = 0.0,
    method: str = "thin",
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Per-gene fold changes spread around ``fold_change`` on the log scale.

    Parameters
    ----------
    fold_change
        The requested fold change (> 0).
    n_genes
        How many genes.
    lfc_sd
        Standard deviation of the natural-log fold change around ``log(fold_change)``;
        0 gives every gene exactly ``fold_change``.
    method
        For ``"thin"`` the fold changes are clipped to ``<= 1`` (thinning cannot raise counts).
    rng
        Generator or seed (needed only when ``lfc_sd > 0``).

    Returns
    -------
    numpy.ndarray
        ``n_genes`` float64 fold changes.
    """
    if fold_change <= 0:
        raise PerturbError(f"fold_change must be > 0, got {fold_change}.")
    if lfc_sd < 0:
        raise PerturbError(f"lfc_sd must be >= 0, got {lfc_sd}.")
    if lfc_sd == 0:
        fc = np.full(n_genes, float(fold_change))
    else:
        if rng is None:
            raise PerturbError("lfc_sd > 0 needs a random generator or seed (rng).")
        fc = np.exp(np.log(fold_change) + _as_rng(rng).normal(0.0, lfc_sd, size=n_genes))
    if method == "thin":
        fc = np.minimum(fc, 1.0)
    return fc


def _touched_positions(
    X: sp.csr_matrix, gene_idx: np.ndarray, cell_mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into ``X.data``) and rows of the stored entries of the genes and cells."""
    n_rows, n_cols = X.shape
    in_set = np.zeros(n_cols, dtype=bool)
    in_set[gene_idx] = True
    indices = X.indices
    if cell_mask is not None and 8 * cell_mask.sum() < n_rows:
        # few cells (under 1/8): scan only their rows
        rows = np.flatnonzero(cell_mask)
        starts, stops = X.indptr[rows], X.indptr[rows + 1]
        lengths = (stops - starts).astype(np.int64)
        if lengths.sum() == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        pos = np.arange(lengths.sum(), dtype=np.int64) + offsets
        keep = in_set[indices[pos]]
        return pos[keep], np.repeat(rows, lengths)[keep]
    parts = []
    buffer = np.empty(min(_SCAN_BLOCK, indices.size), dtype=bool)
    for start in range(0, indices.size, _SCAN_BLOCK):
        block = indices[start : start + _SCAN_BLOCK]
        hit = buffer[: block.size]
        np.take(in_set, block, out=hit)
        parts.append(np.flatnonzero(hit) + start)
    pos = np.concatenate(parts) if parts else np.empty(0, np.int64)
    pos = pos.astype(np.int64, copy=False)
    rows = np.searchsorted(X.indptr, pos, side="right") - 1
    if cell_mask is not None:
        keep = cell_mask[rows]
        pos, rows = pos[keep], rows[keep]
    return pos, rows


def perturb_counts(
    X: sp.spmatrix | sp.sparray,
    gene_idx: Sequence[int] | np.ndarray,
    fold_change: float | Sequence[float] | np.ndarray,
    method: str = "thin",
    rng: np.random.Generator | int | None = None,
    cell_mask: Sequence[bool] | np.ndarray | None = None,
    lfc_sd: float = 0.0,
) -> sp.csr_matrix:
    """Shift the counts of some genes in some cells by a fold change, keeping integer counts.

    Parameters
    ----------
    X
        Cells × genes counts, sparse (converted to CSR if needed). Integer dtype, or float
        holding whole numbers. Not modified.
    gene_idx
        Column indices of the genes to shift (distinct).
    fold_change
        One fold change for all genes, or one per gene (aligned with ``gene_idx``).
    method
        ``"thin"``, ``"poisson"`` or ``"scale"`` (see the module docstring).
    rng
        Generator or seed. Required for ``thin`` and ``poisson``.
    cell_mask
        Boolean per cell: which rows to perturb (default: all).
    lfc_sd
        Per-gene spread of the log fold change (see :func:`gene_fold_changes`); only with a
        single ``fold_change``.

    Returns
    -------
    scipy.sparse.csr_matrix
        A new matrix of the same shape and dtype. Entries outside the touched genes × cells
        are bit-identical to ``X``; touched entries that became zero are removed.

    Raises
    ------
    PerturbError
        On an unknown method, a fold change above 1 for ``thin``, non-integer counts, or
        out-of-range indices.
    """
    if method not in METHODS:
        close = difflib.get_close_matches(str(method), METHODS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise PerturbError(
            f"unknown perturbation method '{method}'.{hint} Use one of {', '.join(METHODS)}."
        )
    if not sp.issparse(X):
        raise PerturbError(
            "perturb_counts needs a scipy sparse matrix of counts (CSR); got a dense array."
        )
    X = sp.csr_matrix(X)
    n_rows, n_cols = X.shape
    gene_idx = np.asarray(gene_idx, dtype=np.int64).ravel()
    if gene_idx.size and (gene_idx.min() < 0 or gene_idx.max() >= n_cols):
        raise PerturbError(
            f"gene indices must lie in [0, {n_cols}); got {gene_idx.min()}..{gene_idx.max()}."
        )
    if np.unique(gene_idx).size != gene_idx.size:
        raise PerturbError("gene_idx holds a gene twice; give each gene once.")
    if method != "scale" and rng is None:
        raise PerturbError(
            f"method '{method}' draws random counts: pass rng (a numpy Generator or a seed)."
        )
    gen = _as_rng(rng) if rng is not None else None

    fc_in = np.asarray(fold_change, dtype=np.float64)
    if method == "thin" and np.any(fc_in > 1):
        raise PerturbError(
            "method 'thin' can only lower counts: fold changes must be <= 1 (use 'poisson' to raise)."
        )
    if fc_in.ndim == 0:
        fc_gene = gene_fold_changes(float(fc_in), gene_idx.size, lfc_sd, method, gen)
    else:
        if lfc_sd:
            raise PerturbError("give either per-gene fold changes or lfc_sd, not both.")
        fc_gene = fc_in.ravel()
        if fc_gene.size != gene_idx.size:
            raise PerturbError(
                f"{fc_gene.size} fold changes for {gene_idx.size} genes; give one per gene."
            )
        if np.any(fc_gene <= 0):
            raise PerturbError("fold changes must be > 0.")

    if cell_mask is not None:
        cell_mask = np.asarray(cell_mask, dtype=bool).ravel()
        if cell_mask.size != n_rows:
            raise PerturbError(f"cell_mask has {cell_mask.size} entries for {n_rows} cells.")

    # genes with fold change exactly 1 are left alone (the null control stays bit-identical)
    active = fc_gene != 1.0
    gene_idx, fc_gene = gene_idx[active], fc_gene[active]
    if gene_idx.size == 0 or (cell_mask is not None and not cell_mask.any()):
        return X.copy()

    pos, rows = _touched_positions(X, gene_idx, cell_mask)
    if pos.size == 0:
        return X.copy()
    old = X.data[pos]
    if X.dtype.kind == "f" and np.any(old != np.rint(old)):
        raise PerturbError(
            "the counts hold non-integer values; perturbations need raw integer counts "
            "(layers['counts']), not normalised data."
        )
    if np.any(old < 0):
        raise PerturbError("the counts hold negative values; perturbations need raw counts.")
    fc_col = np.ones(n_cols)
    fc_col[gene_idx] = fc_gene
    f = fc_col[X.indices[pos]]
    if method == "thin":
        new = gen.binomial(old.astype(np.int64), f)
    elif method == "poisson":
        new = gen.poisson(f * old)
    else:
        new = np.rint(f * old)
    if X.dtype.kind in "iu":
        info = np.iinfo(X.dtype)
        if new.size and new.max() > info.max:
            raise PerturbError(
                f"a perturbed count ({int(new.max())}) overflows the counts' dtype {X.dtype}; "
                "store the counts as int64."
            )
    new = new.astype(X.dtype)

    zero = new == 0
    if not zero.any() or np.count_nonzero(X.data) == X.nnz:
        # the usual case: copy, write the new values, and compact the entries that became
        # zero in place (scipy's eliminate_zeros: one pass, no extra memory); it touches no
        # other entry because the input stores no explicit zeros
        out = X.copy()
        out.data[pos] = new
        if zero.any():
            out.eliminate_zeros()
        return out
    # the input stores explicit zeros, which must stay as they are: drop only the entries
    # that became zero (build data/indices without them, shift indptr)
    keep = np.ones(X.data.size, dtype=bool)
    keep[pos[zero]] = False
    data = X.data[keep]
    indices = X.indices[keep]
    removed_before = np.cumsum(zero)  # zeros at or before each touched entry (pos is sorted)
    nz = ~zero
    data[pos[nz] - removed_before[nz]] = new[nz]
    removed_per_row = np.bincount(rows[zero], minlength=n_rows)
    indptr = X.indptr.astype(np.int64) - np.concatenate([[0], np.cumsum(removed_per_row)])
    indptr = indptr.astype(X.indptr.dtype)
    return sp.csr_matrix((data, indices, indptr), shape=X.shape)


# --- building the perturbed data set --------------------------------------------------------


def _counts_of(adata: ad.AnnData) -> sp.csr_matrix:
    counts = counts_matrix(adata)
    if not sp.issparse(counts):
        raise PerturbError(
            "the cells' counts are dense; 01_data stores them as a sparse CSR matrix in "
            "layers['counts']. Re-run 01_data."
        )
    return sp.csr_matrix(counts)


def cell_mask_for(
    adata: ad.AnnData,
    target_cell_types: Sequence[str] | None,
    penetrance: float,
    rng: np.random.Generator,
    cell_type_column: str = "cell_type",
) -> np.ndarray:
    """Which cells of one copy are perturbed.

    Parameters
    ----------
    adata
        The normal cells.
    target_cell_types
        Cell types to perturb (``None``: all cells).
    penetrance
        Fraction of the targeted cells that are perturbed, chosen at random
        (``round(penetrance × n_targeted)`` cells, at least one).
    rng
        Generator for the choice.
    cell_type_column
        The ``obs`` column with cell types.

    Raises
    ------
    PerturbError
        On a cell type the data do not have (the message lists the available ones).
    """
    n = adata.n_obs
    if target_cell_types is None:
        mask = np.ones(n, dtype=bool)
    else:
        if cell_type_column not in adata.obs.columns:
            raise PerturbError(
                f"target_cell_types needs obs['{cell_type_column}'], which the data lack."
            )
        types = adata.obs[cell_type_column].astype(str)
        available = sorted(types.unique())
        for t in target_cell_types:
            if t not in available:
                close = difflib.get_close_matches(t, available, n=1, cutoff=0.5)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                raise PerturbError(
                    f"target cell type '{t}' is not in the data.{hint} Cell types: "
                    f"{', '.join(available)}. Fix target_cell_types in the perturbation entry."
                )
        mask = types.isin(list(target_cell_types)).to_numpy()
    if penetrance < 1:
        targeted = np.flatnonzero(mask)
        k = max(1, int(round(penetrance * targeted.size))) if targeted.size else 0
        chosen = rng.choice(targeted, size=k, replace=False)
        mask = np.zeros(n, dtype=bool)
        mask[chosen] = True
    return mask


def _uns_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An entry as h5ad can store it (no None: a missing key means the default)."""
    return {
        k: (list(v) if isinstance(v, list | tuple) else v)
        for k, v in entry.items()
        if v is not None
    }


def make_perturbed(
    adata: ad.AnnData,
    entries: Sequence[Mapping[str, Any]],
    genes_by_set: Mapping[str, Sequence[str]],
    seed: int,
    cell_type_column: str = "cell_type",
) -> ad.AnnData:
    """The normal cells plus one perturbed copy per entry.

    Parameters
    ----------
    adata
        The cells (``layers["counts"]`` integer CSR, or ``X``).
    entries
        Perturbation entries (``name``, ``geneset``, ``direction``, ``fold_change`` and the
        optional ``method``, ``target_cell_types``, ``penetrance``, ``lfc_sd``); completed and
        checked with :func:`latentshift.config.validate_perturbations`.
    genes_by_set
        The ``var_names`` of each set's genes (from
        :func:`latentshift.perturb.genesets.match_genesets`).
    seed
        Seed; entry *i* draws from its own stream, so adding an entry never changes the others.
    cell_type_column
        The ``obs`` column with cell types (copied to ``obs["cell_type"]``).

    Returns
    -------
    anndata.AnnData
        ``layers["counts"]`` and ``X``: integer CSR counts. ``obs``: the input's columns plus
        ``condition`` (categorical: ``normal`` then the entry names), ``source_cell``,
        ``perturbed``. ``obs_names``: ``"<source>-<condition>"``. ``uns``:
        ``perturbation_genes`` (entry → genes), ``perturbation_fold_changes`` (entry →
        per-gene fold changes), ``perturbations`` (entry name → resolved entry, None values
        left out), and ``latentshift`` carried over. No ``split`` yet: see
        :func:`assign_split`.
    """
    from latentshift import config

    entries = config.validate_perturbations(list(entries))
    # an AnnData view is a reference cycle that holds its parent, so an AnnData the caller has
    # replaced after views were taken of it (02's whole-gene cells, ranked for variability
    # through views, then replaced by keep_model_genes: 5.7 GB at M1 size) lives until
    # Python's cyclic collector runs, which need not be before the copies' buffer below is
    # filled; at M1 size that was 02's memory peak. Collect it first.
    gc.collect()
    counts = _counts_of(adata)
    var_pos = pd.Index(adata.var_names)
    seeds = np.random.SeedSequence(seed).spawn(len(entries))
    obs0 = adata.obs.copy()
    if cell_type_column != "cell_type" and cell_type_column in obs0.columns:
        obs0["cell_type"] = obs0[cell_type_column]
    source = adata.obs_names.astype(str)
    # room for the copies plus 10 %: an upward shift turns zeros into counts, and a stack that
    # outgrows its buffer copies it (at atlas size that copy was 02's memory peak); the unused
    # reserve is never touched, so it costs address space, not memory, and is given back
    stack = RowStacker(
        counts.shape[1], int(counts.nnz * (1 + len(entries)) * 1.1) + 1, counts.dtype
    )
    stack.append(counts)
    obs_parts = []
    normal = obs0.copy()
    normal["source_cell"] = source.to_numpy()
    normal["perturbed"] = False
    normal["condition"] = "normal"
    normal.index = source + "-normal"
    obs_parts.append(normal)
    genes_out: dict[str, list[str]] = {}
    fcs_out: dict[str, np.ndarray] = {}
    for entry, ss in zip(entries, seeds, strict=True):
        name = entry["name"]
        if entry["geneset"] not in genes_by_set:
            raise PerturbError(
                f"perturbation '{name}' uses gene set '{entry['geneset']}', which was not matched "
                f"(matched sets: {', '.join(genes_by_set)}). Match it with genesets.match_genesets first."
            )
        genes = list(genes_by_set[entry["geneset"]])
        idx = var_pos.get_indexer(genes)
        if np.any(idx < 0):
            bad = [g for g, i in zip(genes, idx, strict=True) if i < 0][:5]
            raise PerturbError(
                f"perturbation '{name}': genes not in the data's var_names: {', '.join(bad)}."
            )
        gene_rng, cell_rng, count_rng = (np.random.default_rng(s) for s in ss.spawn(3))
        fc = gene_fold_changes(
            entry["fold_change"], len(idx), entry["lfc_sd"], entry["method"], gene_rng
        )
        mask = cell_mask_for(
            adata, entry["target_cell_types"], entry["penetrance"], cell_rng, cell_type_column
        )
        stack.append(perturb_counts(counts, idx, fc, entry["method"], count_rng, cell_mask=mask))
        part = obs0.copy()
        part["source_cell"] = source.to_numpy()
        part["perturbed"] = mask & bool(np.any(fc != 1.0))
        part["condition"] = name
        part.index = source + f"-{name}"
        obs_parts.append(part)
        genes_out[name] = genes
        fcs_out[name] = fc
        log.info(
            "perturbation %s: %s × %s (%s) on %d genes, %d of %d cells",
            name,
            entry["direction"],
            entry["fold_change"],
            entry["method"],
            len(idx),
            mask.sum(),
            adata.n_obs,
        )
    obs = pd.concat(obs_parts)
    obs["condition"] = pd.Categorical(
        obs["condition"], categories=["normal", *[e["name"] for e in entries]]
    )
    obs["perturbed"] = obs["perturbed"].astype(bool)
    if "cell_type" in obs.columns:
        obs["cell_type"] = obs["cell_type"].astype("category")
    if not obs.index.is_unique:
        raise PerturbError(
            "obs_names of the perturbed data are not unique; make the input's obs_names unique."
        )
    X = stack.tocsr()
    out = ad.AnnData(X=X, obs=obs, var=adata.var.copy())
    out.layers["counts"] = (
        X  # the same matrix: no second copy (gigabytes at atlas scale); never normalise X in place
    )
    out.uns["latentshift"] = dict(adata.uns.get("latentshift", {}))
    out.uns["perturbation_genes"] = genes_out
    out.uns["perturbation_fold_changes"] = fcs_out
    out.uns["perturbations"] = {e["name"]: _uns_entry(e) for e in entries}
    # the unit that never crosses a split: a source cell, holding every condition (paired)
    out.uns["design"] = {"kind": "synthetic", "unit_key": "source_cell", "paired": True}
    return out


def perturbed_genes(adata: ad.AnnData) -> list[str]:
    """Every gene some perturbation entry shifted: the union of ``uns["perturbation_genes"]``,
    in the data's gene order (empty when nothing was perturbed).

    The one place the union is built: the LDVAE keeps these genes whatever the gene selection,
    the disease-gene baseline of 05 reads them, 02 shows them.
    """
    sets = adata.uns.get("perturbation_genes", {}) or {}
    wanted: set[str] = set()
    for genes in sets.values():
        wanted.update(str(g) for g in np.atleast_1d(genes))
    return [g for g in adata.var_names if g in wanted]


# --- checks on the result ---------------------------------------------------------------------


def realised_fold_change(
    perturbed: ad.AnnData,
    entry_name: str,
    genes: Sequence[str] | None = None,
    layer: str | None = "counts",
) -> pd.DataFrame:
    """Realised vs requested fold change per gene of one entry.

    Compares the touched cells of the entry's copy (``perturbed == True``) with their source
    cells in the normal condition, gene by gene, on the gene subset only.

    Parameters
    ----------
    perturbed
        From :func:`make_perturbed`.
    entry_name
        The condition to look at.
    genes
        Genes (``var_names``); default: ``uns["perturbation_genes"][entry_name]``.
    layer
        Counts layer (``None``: ``X``).

    Returns
    -------
    pandas.DataFrame
        Index: gene. Columns: ``entry``, ``requested`` (the gene's fold change),
        ``mean_normal``, ``mean_perturbed``, ``realised`` (ratio of the means; NaN when the
        gene is never expressed in those cells), ``n_cells``.
    """
    obs = perturbed.obs
    if entry_name not in obs["condition"].cat.categories:
        raise PerturbError(
            f"condition '{entry_name}' is not in the data (conditions: {', '.join(obs['condition'].cat.categories)})."
        )
    all_genes = list(perturbed.uns["perturbation_genes"][entry_name])
    fcs = np.asarray(
        perturbed.uns.get("perturbation_fold_changes", {}).get(entry_name, []), dtype=float
    )
    requested = dict(zip(all_genes, fcs, strict=False)) if fcs.size == len(all_genes) else {}
    if not requested:
        fc = float(perturbed.uns["perturbations"][entry_name]["fold_change"])
        requested = dict.fromkeys(all_genes, fc)
    genes = all_genes if genes is None else list(genes)
    counts = sp.csr_matrix(counts_matrix(perturbed, layer))
    touched = np.flatnonzero(((obs["condition"] == entry_name) & obs["perturbed"]).to_numpy())
    name_pos = pd.Index(obs.index)
    normal_names = obs.index[obs["condition"] == "normal"]
    by_source = pd.Series(
        np.asarray(normal_names), index=obs.loc[normal_names, "source_cell"].astype(str).to_numpy()
    )
    src_rows = name_pos.get_indexer(
        by_source.loc[obs["source_cell"].iloc[touched].astype(str)].to_numpy()
    )
    cols = perturbed.var_names.get_indexer(genes)
    sub = counts[:, cols]
    mean_p = (
        np.asarray(sub[touched].mean(axis=0)).ravel()
        if touched.size
        else np.full(len(genes), np.nan)
    )
    mean_n = (
        np.asarray(sub[src_rows].mean(axis=0)).ravel()
        if touched.size
        else np.full(len(genes), np.nan)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mean_n > 0, mean_p / mean_n, np.nan)
    return pd.DataFrame(
        {
            "entry": entry_name,
            "requested": [requested.get(g, np.nan) for g in genes],
            "mean_normal": mean_n,
            "mean_perturbed": mean_p,
            "realised": ratio,
            "n_cells": touched.size,
        },
        index=pd.Index(genes, name="gene"),
    )


def realised_fold_changes(perturbed: ad.AnnData) -> pd.DataFrame:
    """:func:`realised_fold_change` for every entry, stacked (one row per entry × gene)."""
    frames = [
        realised_fold_change(perturbed, name).reset_index()
        for name in perturbed.obs["condition"].cat.categories
        if name != "normal"
    ]
    return pd.concat(frames, ignore_index=True)


def library_sizes(adata: ad.AnnData, layer: str | None = "counts") -> pd.Series:
    """Total counts per cell (sparse row sums), indexed like ``obs``."""
    return pd.Series(
        row_sums(counts_matrix(adata, layer)), index=adata.obs_names, name="library_size"
    )


def mean_expression(
    adata: ad.AnnData,
    genes: Sequence[str],
    groupby: Sequence[str] = ("cell_type", "condition"),
    layer: str | None = "counts",
    target_sum: float = 1e4,
) -> pd.DataFrame:
    """Mean log1p-normalised expression of some genes per group.

    Each cell is scaled to ``target_sum`` total counts (library size from the whole row,
    computed sparse), then ``log1p``; only the chosen genes' columns are ever made dense.

    Parameters
    ----------
    adata
        Cells with counts.
    genes
        ``var_names`` to show.
    groupby
        ``obs`` columns to group by.
    layer
        Counts layer (``None``: ``X``).
    target_sum
        Counts per cell after scaling.

    Returns
    -------
    pandas.DataFrame
        Rows: genes; columns: a MultiIndex of the groups (empty groups dropped).
    """
    cols = adata.var_names.get_indexer(list(genes))
    if np.any(cols < 0):
        raise PerturbError("some genes are not in the data's var_names.")
    sub = log_normalise_genes(
        counts_matrix(adata, layer), cols, target_sum
    )  # cells × (a few genes)
    frame = pd.DataFrame(sub, columns=list(genes))
    keys = [adata.obs[c].to_numpy() for c in groupby]
    means = frame.groupby(keys, observed=True).mean()
    means.index.names = list(groupby)
    return means.T


def fold_change_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per entry: genes, requested and realised (median, min, max) fold change, cells touched.

    Parameters
    ----------
    table
        :func:`realised_fold_changes`.

    Returns
    -------
    pandas.DataFrame
        Index: entry names, in the table's order.
    """
    return table.groupby("entry", sort=False).agg(
        genes=("gene", "size"),
        requested=("requested", "median"),
        realised_median=("realised", "median"),
        realised_min=("realised", "min"),
        realised_max=("realised", "max"),
        touched_cells=("n_cells", "first"),
    )


def perturb_metrics(
    perturbed: ad.AnnData,
    entries: Sequence[Mapping[str, Any]],
    match_summary: Mapping[str, Any],
    fc_summary: pd.DataFrame,
    split: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``perturb`` section of ``metrics.json`` (written by ``02_perturb``).

    Parameters
    ----------
    perturbed
        :func:`make_perturbed`'s result with ``obs["split"]``.
    entries
        The resolved perturbation entries.
    match_summary
        :func:`latentshift.perturb.genesets.match_summary` of the gene-set match.
    fc_summary
        :func:`fold_change_summary`.
    split
        The resolved ``split`` params section.
    """
    n_per_condition = perturbed.obs["condition"].value_counts(sort=False)
    split_table = split_counts(perturbed)
    touched = perturbed.obs["perturbed"]
    return {
        "genesets": dict(match_summary),
        "entries": {
            e["name"]: {
                "geneset": e["geneset"],
                "direction": e["direction"],
                "method": e["method"],
                "fold_change": e["fold_change"],
                "n_genes_perturbed": len(perturbed.uns["perturbation_genes"][e["name"]]),
                "n_cells_perturbed": int(
                    ((perturbed.obs["condition"] == e["name"]) & touched).sum()
                ),
                "realised_median_fold_change": round(
                    float(fc_summary.loc[e["name"], "realised_median"]), 4
                ),
            }
            for e in entries
        },
        "n_cells_per_condition": {str(k): int(v) for k, v in n_per_condition.items()},
        "split_counts": {
            str(c): {"train": int(r["train"]), "test": int(r["test"])}
            for c, r in split_table.iterrows()
        },
        "train_fraction": split["train_fraction"],
        "grouped": split["grouped"],
    }
