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

from latentshift.data.counts import RowStacker, counts_matrix
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
    _check_method(method)
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
    fc_gene = _per_gene_fold_changes(fold_change, gene_idx.size, lfc_sd, method, gen)

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
    new = _drawn_counts(X, pos, gene_idx, fc_gene, method, gen)
    return _with_new_counts(X, pos, rows, new)


def _check_method(method: str) -> None:
    """Refuse an unknown perturbation method (naming the closest known one)."""
    if method not in METHODS:
        close = difflib.get_close_matches(str(method), METHODS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise PerturbError(
            f"unknown perturbation method '{method}'.{hint} Use one of {', '.join(METHODS)}."
        )


def _per_gene_fold_changes(
    fold_change: float | Sequence[float] | np.ndarray,
    n_genes: int,
    lfc_sd: float,
    method: str,
    gen: np.random.Generator | None,
) -> np.ndarray:
    """The fold change of each gene: one spread by :func:`gene_fold_changes`, or one per gene
    (checked: one per gene, > 0, <= 1 for ``thin``, no ``lfc_sd`` beside them)."""
    fc_in = np.asarray(fold_change, dtype=np.float64)
    if method == "thin" and np.any(fc_in > 1):
        raise PerturbError(
            "method 'thin' can only lower counts: fold changes must be <= 1 (use 'poisson' to raise)."
        )
    if fc_in.ndim == 0:
        fc_gene = gene_fold_changes(float(fc_in), n_genes, lfc_sd, method, gen)
    else:
        if lfc_sd:
            raise PerturbError("give either per-gene fold changes or lfc_sd, not both.")
        fc_gene = fc_in.ravel()
        if fc_gene.size != n_genes:
            raise PerturbError(
                f"{fc_gene.size} fold changes for {n_genes} genes; give one per gene."
            )
        if np.any(fc_gene <= 0):
            raise PerturbError("fold changes must be > 0.")
    return fc_gene


def _drawn_counts(
    X: sp.csr_matrix,
    pos: np.ndarray,
    gene_idx: np.ndarray,
    fc_gene: np.ndarray,
    method: str,
    gen: np.random.Generator | None,
) -> np.ndarray:
    """The new values of the touched entries ``X.data[pos]``, in ``X``'s dtype (the counts
    checked: whole, non-negative, and not overflowing the dtype once shifted)."""
    old = X.data[pos]
    if X.dtype.kind == "f" and np.any(old != np.rint(old)):
        raise PerturbError(
            "the counts hold non-integer values; perturbations need raw integer counts "
            "(layers['counts']), not normalised data."
        )
    if np.any(old < 0):
        raise PerturbError("the counts hold negative values; perturbations need raw counts.")
    fc_col = np.ones(X.shape[1])
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
    return new.astype(X.dtype)


def _with_new_counts(
    X: sp.csr_matrix, pos: np.ndarray, rows: np.ndarray, new: np.ndarray
) -> sp.csr_matrix:
    """A copy of ``X`` with ``new`` at the touched entries ``pos`` (of rows ``rows``) and the
    touched entries that became zero removed; ``X``'s own explicit zeros are kept."""
    n_rows = X.shape[0]
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


def sparse_counts(adata: ad.AnnData) -> sp.csr_matrix:
    """The cells' counts (``layers["counts"]``, else ``X``) as a CSR matrix.

    Parameters
    ----------
    adata
        Cells whose counts 01_data stored sparse.

    Returns
    -------
    scipy.sparse.csr_matrix
        The counts.

    Raises
    ------
    PerturbError
        When the counts are dense.
    """
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


def _copy_obs(
    obs0: pd.DataFrame, source: pd.Index, condition: str, perturbed: bool | np.ndarray
) -> pd.DataFrame:
    """The obs of one condition's copy of the cells: ``source_cell``, ``perturbed``,
    ``condition``, named ``"<source>-<condition>"``."""
    part = obs0.copy()
    part["source_cell"] = source.to_numpy()
    part["perturbed"] = perturbed
    part["condition"] = condition
    part.index = source + f"-{condition}"
    return part


def _entry_genes(
    entry: Mapping[str, Any], genes_by_set: Mapping[str, Sequence[str]], var_pos: pd.Index
) -> tuple[list[str], np.ndarray]:
    """The genes of an entry's set and their columns (refusing an unmatched set or a gene
    the data lack)."""
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
    return genes, idx


def _stacked_obs(
    obs_parts: Sequence[pd.DataFrame], entries: Sequence[Mapping[str, Any]]
) -> pd.DataFrame:
    """The copies' obs stacked: ``condition`` categorical (``normal`` then the entries),
    ``perturbed`` bool, ``cell_type`` categorical; refuses repeated obs_names."""
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
    return obs


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
    counts = sparse_counts(adata)
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
    obs_parts = [_copy_obs(obs0, source, "normal", False)]
    genes_out: dict[str, list[str]] = {}
    fcs_out: dict[str, np.ndarray] = {}
    for entry, ss in zip(entries, seeds, strict=True):
        name = entry["name"]
        genes, idx = _entry_genes(entry, genes_by_set, var_pos)
        gene_rng, cell_rng, count_rng = (np.random.default_rng(s) for s in ss.spawn(3))
        fc = gene_fold_changes(
            entry["fold_change"], len(idx), entry["lfc_sd"], entry["method"], gene_rng
        )
        mask = cell_mask_for(
            adata, entry["target_cell_types"], entry["penetrance"], cell_rng, cell_type_column
        )
        stack.append(perturb_counts(counts, idx, fc, entry["method"], count_rng, cell_mask=mask))
        obs_parts.append(_copy_obs(obs0, source, name, mask & bool(np.any(fc != 1.0))))
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
    obs = _stacked_obs(obs_parts, entries)
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
