"""Cells in: a simulated human M1 data set, or a local ``.h5ad``; QC; seeded subsampling.

Two sources give the same shape of AnnData (the ``cells.h5ad`` contract):

* :func:`simulate_m1` — a deterministic simulated single-nucleus RNA-seq data set of human
  primary motor cortex (M1): fifteen cell types in census-like proportions, each with its
  real marker genes enriched, negative-binomial counts, and every disease gene-set gene present.
* :func:`read_h5ad_counts` — a local ``.h5ad`` (CELLxGENE / HCA schema): finds the integer
  counts in ``X``, a layer or ``.raw.X`` and refuses files that hold none.
* :func:`read_h5ad_sample` — the same for a seeded (stratified) sample of a file's cells,
  reading only the sampled rows with h5py, for files larger than comfortable memory.
  :func:`load_cells` uses it whenever ``data.n_cells`` is below the file's cell count.

:func:`write_simulated_h5ad` writes the simulation to a file chunk by chunk, by default shaped
like a CELLxGENE download (Ensembl-style IDs, symbols in ``var["feature_name"]``, normalised
``X``, counts only in ``raw/X``), so the file path is exercised without the real download.

Both return integer CSR counts in ``layers["counts"]`` and in ``X``, ``obs["cell_type"]``
(categorical), ``obs["donor_id"]`` where known and ``uns["latentshift"]`` with the
``simulated`` flag and the source. :func:`qc_filter`, :func:`subsample` and :func:`summarize`
work on either.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A data problem a user can fix: missing file, no integer counts, missing column."""


# --- the simulated M1 census -----------------------------------------------------------


@dataclass(frozen=True)
class CellTypeSpec:
    """One simulated cell type.

    Parameters
    ----------
    name
        The cell-type label written to ``obs["cell_type"]``.
    cell_class
        ``"Glutamatergic"``, ``"GABAergic"`` or ``"Non-neuronal"``.
    proportion
        Fraction of all nuclei.
    library_median
        Median transcriptome-wide UMIs per nucleus (before the gene subset is taken).
    markers
        Marker gene symbols enriched in this type; the first is the most specific.
    """

    name: str
    cell_class: str
    proportion: float
    library_median: float
    markers: tuple[str, ...]


# Proportions of nuclei per cell type in the simulated M1 data set.
#
# Source: the human M1 census of Bakken et al. 2021, "Comparative cellular analysis of motor
# cortex in human, marmoset and mouse", Nature 598:111-119 (BICCN). In its human M1 snRNA-seq
# (10x v3) data, neurons are roughly 60-65 % of nuclei, IT types are the most abundant
# excitatory types, L5 ET (the class holding the Betz cells) is rare (~0.5-1 %), and
# oligodendrocytes are the largest non-neuronal class. The numbers below are ROUNDED,
# APPROXIMATE values chosen to match those statements (subclasses merged to 15 types: L6 IT Car3
# into L6 IT, Sst Chodl into SST, Sncg into VIP, VLMC/L6b left out); they are not copied from a
# table of the paper. Neurons 62.2 %, glutamatergic 40.2 %, GABAergic 22 %, non-neuronal 37.8 %.
#
# Library medians: nuclei of neurons carry more UMIs than glia (large L5 ET cells the most);
# values are typical of 10x v3 single-nucleus data, also approximate.
#
#   type        class          proportion  library median  markers (first = most specific)
M1_CELL_TYPES: tuple[CellTypeSpec, ...] = (
    CellTypeSpec("L2/3 IT", "Glutamatergic", 0.180, 9000, ("CUX2", "SLC17A7", "SATB2")),
    CellTypeSpec("L4/5 IT", "Glutamatergic", 0.110, 9000, ("RORB", "SLC17A7", "SATB2")),
    CellTypeSpec("L5 ET", "Glutamatergic", 0.007, 14000, ("POU3F1", "FEZF2", "BCL11B", "SLC17A7")),
    CellTypeSpec("L5/6 NP", "Glutamatergic", 0.015, 8000, ("TSHZ2", "FEZF2", "SLC17A7")),
    CellTypeSpec("L6 IT", "Glutamatergic", 0.050, 8500, ("THEMIS", "SLC17A7", "SATB2")),
    CellTypeSpec("L6 CT", "Glutamatergic", 0.040, 8000, ("SYT6", "FOXP2", "FEZF2", "SLC17A7")),
    CellTypeSpec("PVALB", "GABAergic", 0.065, 8000, ("PVALB", "GAD1", "GAD2")),
    CellTypeSpec("SST", "GABAergic", 0.050, 7000, ("SST", "GAD1", "GAD2")),
    CellTypeSpec("VIP", "GABAergic", 0.055, 6500, ("VIP", "ADARB2", "GAD1", "GAD2")),
    CellTypeSpec("LAMP5", "GABAergic", 0.050, 6500, ("LAMP5", "ADARB2", "GAD1", "GAD2")),
    CellTypeSpec("Astro", "Non-neuronal", 0.075, 3000, ("GFAP", "AQP4", "SLC1A2")),
    CellTypeSpec("Oligo", "Non-neuronal", 0.200, 2500, ("MOG", "MBP", "PLP1")),
    CellTypeSpec("OPC", "Non-neuronal", 0.045, 3000, ("PDGFRA", "VCAN")),
    CellTypeSpec("Micro-PVM", "Non-neuronal", 0.040, 2000, ("CSF1R", "P2RY12", "CX3CR1")),
    CellTypeSpec("Endo", "Non-neuronal", 0.018, 1800, ("CLDN5", "FLT1")),
)

#: Marker genes per simulated cell type (type → symbols), for dot plots.
M1_MARKERS: dict[str, list[str]] = {t.name: list(t.markers) for t in M1_CELL_TYPES}

#: Pan-neuronal genes, enriched in every neuron type of the simulation.
PAN_NEURONAL: tuple[str, ...] = ("SNAP25", "RBFOX3", "SYT1")

# transcriptome fractions of the simulation (fraction of a nucleus's UMIs per gene)
_MARKER_FRACTION = 4e-4  # a marker in its own type: a few counts per nucleus
_MARKER_BACKGROUND = 1 / 40  # a marker elsewhere, relative to its own type
_REQUIRED_FRACTION = 1e-4  # a disease gene-set gene: ~1 count per neuron on average
_FILLER_LOG_MEAN = np.log(4e-6)  # filler genes: log-normal base fractions
_FILLER_LOG_SD = 1.6
_CELLS_PER_CHUNK_ENTRIES = 20_000_000  # cells × genes sampled per chunk


def _largest_remainder(weights: np.ndarray, total: int, minimum: int = 0) -> np.ndarray:
    """Whole numbers proportional to ``weights`` summing to ``total`` (at least ``minimum``)."""
    weights = np.asarray(weights, dtype=float)
    weights = weights / weights.sum()
    base = np.full(len(weights), minimum if total >= minimum * len(weights) else 0)
    rest = total - base.sum()
    exact = weights * rest
    counts = np.floor(exact).astype(int)
    short = rest - counts.sum()
    if short > 0:
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:short]] += 1
    return base + counts


def _gene_names(required_genes: Sequence[str], n_genes: int) -> tuple[list[str], int, int]:
    """Markers, then required genes, then ``SIMG`` fillers up to ``n_genes``."""
    names: list[str] = []
    seen: set[str] = set()
    for t in M1_CELL_TYPES:
        for g in t.markers:
            if g not in seen:
                seen.add(g)
                names.append(g)
    for g in PAN_NEURONAL:
        if g not in seen:
            seen.add(g)
            names.append(g)
    n_markers = len(names)
    for g in required_genes:
        g = str(g).strip().upper()
        if g and g not in seen:
            seen.add(g)
            names.append(g)
    n_required = len(names) - n_markers
    n_filler = n_genes - len(names)
    if n_filler < 0:
        warnings.warn(
            f"simulate_m1: n_genes={n_genes} is smaller than the {len(names)} marker and required "
            f"genes; keeping all {len(names)} of them and adding no filler genes. Raise "
            "data.simulate_n_genes to silence this.",
            UserWarning,
            stacklevel=3,
        )
        n_filler = 0
    width = max(5, len(str(n_filler)))
    names.extend(f"SIMG{i:0{width}d}" for i in range(1, n_filler + 1))
    return names, n_markers, n_required


def _type_fractions(
    rng: np.random.Generator, n_markers: int, n_required: int, n_filler: int, names: list[str]
) -> np.ndarray:
    """Per-type transcriptome fractions, shape (n_types, n_genes)."""
    types = M1_CELL_TYPES
    n_types = len(types)
    classes = np.array([t.cell_class for t in types])
    neuron = classes != "Non-neuronal"
    n_genes = len(names)
    logf = np.empty((n_types, n_genes))

    # markers: high in their own types, low elsewhere
    marker_types: dict[str, list[int]] = {}
    for i, t in enumerate(types):
        for g in t.markers:
            marker_types.setdefault(g, []).append(i)
    for g in PAN_NEURONAL:
        marker_types.setdefault(g, list(np.flatnonzero(neuron)))
    library = np.array([t.library_median for t in types], dtype=float)
    for j in range(n_markers):
        hits = marker_types[names[j]]
        # smaller nuclei (glia) get relatively higher marker fractions, as MBP/PLP1 in oligos
        boost = 0.5 * np.log(library.max() / library[hits].min())
        own = rng.normal(np.log(_MARKER_FRACTION), 0.4) + boost
        logf[:, j] = own + np.log(_MARKER_BACKGROUND) + rng.normal(0, 0.3, n_types)
        logf[hits, j] = own + rng.normal(0, 0.2, len(hits))

    # required (disease gene-set) genes: moderate-to-high, varying by type
    sl = slice(n_markers, n_markers + n_required)
    base = rng.normal(np.log(_REQUIRED_FRACTION), 0.5, n_required)
    pattern = rng.choice(3, size=n_required, p=[0.55, 0.2, 0.25])  # neuron / glia / broad
    shift = np.zeros((n_types, n_required))
    shift[np.ix_(~neuron, pattern == 0)] = -1.5
    shift[np.ix_(neuron, pattern == 1)] = -1.2
    logf[:, sl] = base + shift + rng.normal(0, 0.35, (n_types, n_required))

    # fillers: log-normal base, class-level and type-level structure for part of them
    sl = slice(n_markers + n_required, n_genes)
    base = rng.normal(_FILLER_LOG_MEAN, _FILLER_LOG_SD, n_filler)
    eff = rng.normal(0, 0.2, (n_types, n_filler))
    class_idx = np.unique(classes, return_inverse=True)[1]
    has_class = rng.random(n_filler) < 0.3
    class_eff = rng.normal(0, 1.0, (3, n_filler)) * has_class
    eff += class_eff[class_idx]
    has_type = rng.random(n_filler) < 0.15
    type_eff = rng.normal(0, 1.5, (n_types, n_filler)) * (rng.random((n_types, n_filler)) < 0.15)
    eff += type_eff * has_type
    logf[:, sl] = base + eff
    return np.exp(logf)


def _sample_nb(rng: np.random.Generator, mu: np.ndarray, theta: np.ndarray) -> sp.csr_matrix:
    """Negative-binomial counts (mean ``mu``, inverse dispersion ``theta`` per gene) as CSR.

    Exact inversion sampling that touches only the nonzero draws after the first pass: one
    uniform per entry decides zero / nonzero against P(0) = (θ/(θ+μ))^θ; for the few nonzero
    entries the CDF is walked up with the pmf recursion p(k) = p(k-1)·(k-1+θ)/k·μ/(μ+θ).
    """
    n, g = mu.shape
    u = rng.random((n, g), dtype=np.float32)
    p0 = (theta / (theta + mu)) ** theta
    flat = np.flatnonzero(u > p0)
    del p0
    m = mu.ravel()[flat].astype(np.float64)
    th = theta[flat % g].astype(np.float64)
    uu = u.ravel()[flat].astype(np.float64)
    del u
    q = m / (m + th)
    pk = np.exp(th * np.log1p(-q))  # P(0) in float64
    cdf = pk.copy()
    out = np.zeros(len(flat), dtype=np.int32)
    active = np.arange(len(flat))
    k = 0
    while len(active):
        k += 1
        pk *= (k - 1 + th) / k * q
        cdf += pk
        done = (cdf >= uu) | (k >= 100_000)
        out[active[done]] = k
        keep = ~done
        if not keep.all():
            active, pk, cdf, th, q, uu = (a[keep] for a in (active, pk, cdf, th, q, uu))
    rows = flat // g
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return sp.csr_matrix((out, (flat % g).astype(np.int32), indptr), shape=(n, g))


def simulate_m1(
    n_cells: int,
    n_genes: int,
    seed: int = 0,
    required_genes: Sequence[str] = (),
    n_donors: int = 4,
    schema: str = "latentshift",
) -> Any:
    """A deterministic simulated human M1 single-nucleus RNA-seq data set.

    Cell types and proportions follow :data:`M1_CELL_TYPES` (human M1 census-like). Each gene
    has a log-normal base expression, type-specific effects (real marker genes strongly
    enriched in their types; filler genes with class- and type-level structure), a small donor
    effect and a gene-specific negative-binomial dispersion. Each nucleus has a log-normal
    library size whose median depends on its type (neurons larger than glia). Cells are
    generated in chunks, so the full matrix is never dense.

    Parameters
    ----------
    n_cells
        Number of nuclei. Types get whole-number shares of it (largest remainder, at least
        one nucleus each when ``n_cells`` allows).
    n_genes
        Number of genes: markers, then ``required_genes``, then filler genes ``SIMG00001`` ...
        When smaller than markers + required genes, all of those are kept (with a warning).
    seed
        Seed; the output is identical bit for bit for the same arguments.
    required_genes
        Gene symbols that must be present and expressed (e.g. disease gene-set genes);
        upper-cased.
    n_donors
        Number of donors (``obs["donor_id"]``), each with a small library-size and gene effect.
    schema
        ``"latentshift"`` (default): var_names are symbols, ``X`` and ``layers["counts"]`` are
        int32 CSR counts. ``"cellxgene"``: CELLxGENE-shaped — var_names are the Ensembl-style
        IDs, ``X`` is log1p(counts per 10k) float32 CSR and the integer-valued counts are only
        in ``.raw.X`` (float32, as in CELLxGENE files). Use it to exercise
        :func:`read_h5ad_counts`.

    Returns
    -------
    AnnData
        ``obs``: ``cell_type`` (categorical), ``cell_class``, ``donor_id``; ``var``:
        ``feature_name`` (symbol), ``gene_ids`` (``ENSG9…``), ``gene_group`` (marker / required
        / filler); ``uns["latentshift"]`` = ``{"simulated": True, "source": "simulate_m1(...)"}``.
    """
    import anndata as ad

    plan = _plan_simulation(n_cells, n_genes, seed, required_genes, n_donors, schema)
    start = time.time()
    blocks = list(plan.blocks())
    counts = sp.vstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]
    del blocks
    counts.data = counts.data.astype(np.int32, copy=False)
    if counts.nnz < np.iinfo(np.int32).max:
        counts.indptr = counts.indptr.astype(np.int32)
    counts.indices = counts.indices.astype(np.int32, copy=False)

    obs, var = plan.obs, plan.var
    uns = {"latentshift": {"simulated": True, "source": plan.source}}
    if schema == "cellxgene":
        var.index = pd.Index(var["gene_ids"].to_numpy(), name=None)
        raw = ad.AnnData(X=counts.astype(np.float32), obs=obs.copy(), var=var.copy())
        adata = ad.AnnData(X=log_normalise(counts), obs=obs, var=var, uns=uns)
        adata.raw = raw
    else:
        adata = ad.AnnData(X=counts, obs=obs, var=var, uns=uns)
        adata.layers["counts"] = counts  # the same matrix: one copy of the counts in memory
    log.info(
        "simulate_m1: %d cells × %d genes (%d markers, %d required, %d filler), %.1f%% zeros, %.1f s",
        n_cells, plan.n_genes, plan.n_markers, plan.n_required, plan.n_filler,
        100 * (1 - counts.nnz / (n_cells * plan.n_genes)), time.time() - start,
    )
    return adata


@dataclass
class _SimulationPlan:
    """Everything of a simulation but the counts, which :meth:`blocks` draws chunk by chunk."""

    obs: pd.DataFrame
    var: pd.DataFrame
    source: str
    n_markers: int
    n_required: int
    n_filler: int
    rows: np.ndarray  # per (type, donor) transcriptome fractions, float32
    theta: np.ndarray
    library: np.ndarray
    combo: np.ndarray
    seed: int

    @property
    def n_genes(self) -> int:
        return len(self.var)

    def blocks(self) -> Iterator[sp.csr_matrix]:
        """int32 CSR counts of consecutive chunks of cells (the same draws as :func:`simulate_m1`)."""
        n_cells, g_total = len(self.obs), self.n_genes
        chunk = max(1, _CELLS_PER_CHUNK_ENTRIES // g_total)
        n_chunks = -(-n_cells // chunk)
        start = time.time()
        for c in range(n_chunks):
            lo, hi = c * chunk, min(n_cells, (c + 1) * chunk)
            mu = self.rows[self.combo[lo:hi]]
            mu *= self.library[lo:hi, None].astype(np.float32)
            block = _sample_nb(np.random.default_rng([self.seed, 3, c]), mu, self.theta)
            del mu
            block.indices = block.indices.astype(np.int32, copy=False)
            block.data = block.data.astype(np.int32, copy=False)  # int32 in, int32 out of vstack
            log.info(
                "simulate_m1: chunk %d/%d (cells %d-%d) done, %.1f s", c + 1, n_chunks, lo, hi - 1,
                time.time() - start,
            )
            yield block


def _plan_simulation(
    n_cells: int, n_genes: int, seed: int, required_genes: Sequence[str], n_donors: int, schema: str
) -> _SimulationPlan:
    """Validate the arguments and draw everything of the simulation but the counts."""
    if n_cells < 1 or n_genes < 1:
        raise DataError(f"simulate_m1 needs n_cells >= 1 and n_genes >= 1 (got {n_cells}, {n_genes}).")
    if n_donors < 1:
        raise DataError(f"simulate_m1 needs n_donors >= 1 (got {n_donors}).")
    if schema not in ("latentshift", "cellxgene"):
        raise DataError(f"simulate_m1: schema must be 'latentshift' or 'cellxgene' (got {schema!r}).")
    names, n_markers, n_required = _gene_names(required_genes, n_genes)
    g_total = len(names)
    n_filler = g_total - n_markers - n_required
    types = M1_CELL_TYPES

    gene_rng = np.random.default_rng([seed, 1])
    frac = _type_fractions(gene_rng, n_markers, n_required, n_filler, names)
    theta = gene_rng.lognormal(np.log(1.5), 0.6, g_total).astype(np.float32)
    donor_gene = gene_rng.normal(0, 0.1, (n_donors, g_total))
    donor_lib = gene_rng.lognormal(0, 0.15, n_donors)
    # one fraction row per (type, donor)
    rows = (frac[:, None, :] * np.exp(donor_gene)[None, :, :]).reshape(-1, g_total)
    rows = rows.astype(np.float32)

    cell_rng = np.random.default_rng([seed, 2])
    per_type = _largest_remainder(np.array([t.proportion for t in types]), n_cells, minimum=1)
    type_idx = cell_rng.permutation(np.repeat(np.arange(len(types)), per_type))
    donor_idx = cell_rng.integers(0, n_donors, n_cells)
    lib_median = np.array([t.library_median for t in types])[type_idx]
    library = lib_median * donor_lib[donor_idx] * cell_rng.lognormal(0, 0.35, n_cells)
    combo = type_idx * n_donors + donor_idx

    groups = ["marker"] * n_markers + ["required"] * n_required + ["filler"] * n_filler
    var = pd.DataFrame(
        {
            "feature_name": names,
            "gene_ids": [f"ENSG9{i:010d}" for i in range(1, g_total + 1)],
            "gene_group": pd.Categorical(groups, categories=["marker", "required", "filler"]),
        },
        index=pd.Index(names, name=None),
    )
    type_names = [t.name for t in types]
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical.from_codes(type_idx, categories=type_names),
            "cell_class": pd.Categorical(
                [types[i].cell_class for i in type_idx],
                categories=["Glutamatergic", "GABAergic", "Non-neuronal"],
            ),
            "donor_id": pd.Categorical.from_codes(
                donor_idx, categories=[f"donor{i + 1}" for i in range(n_donors)]
            ),
        },
        index=pd.Index([f"cell{i:07d}" for i in range(1, n_cells + 1)]),
    )
    source = f"simulate_m1(n_cells={n_cells}, n_genes={n_genes}, seed={seed})"
    return _SimulationPlan(
        obs=obs, var=var, source=source, n_markers=n_markers, n_required=n_required,
        n_filler=n_filler, rows=rows, theta=theta, library=library, combo=combo, seed=seed,
    )


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
) -> Path:
    """Write a simulated M1 data set to an ``.h5ad`` file, chunk by chunk (never all in memory).

    The file holds exactly what :func:`simulate_m1` returns for the same arguments, but the
    counts are drawn and appended to the file one chunk of cells at a time, so a file far
    larger than memory (e.g. 114.6k cells × 30k genes, the size of the real M1 file) can be
    written. The file is written under a temporary name and renamed into place when complete.

    Parameters
    ----------
    path
        The ``.h5ad`` file to write (its folder is created).
    n_cells, n_genes, seed, required_genes, n_donors
        As in :func:`simulate_m1`.
    schema
        ``"cellxgene"`` (default): Ensembl-style var_names with symbols in
        ``var["feature_name"]``, log-normalised ``X`` and the counts (float32) only in
        ``raw/X``. ``"latentshift"``: symbols as var_names, int32 counts in ``X`` and
        ``layers["counts"]``.
    compression
        HDF5 compression of the sparse arrays (``None``, ``"gzip"``, ``"lzf"``).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    import anndata as ad
    import h5py

    from latentshift.artifacts import atomic_path

    plan = _plan_simulation(n_cells, n_genes, seed, required_genes, n_donors, schema)
    obs, var = plan.obs, plan.var
    uns = {"latentshift": {"simulated": True, "source": plan.source}}
    shape = (n_cells, plan.n_genes)
    start = time.time()
    if schema == "cellxgene":
        var.index = pd.Index(var["gene_ids"].to_numpy(), name=None)
        skeleton = ad.AnnData(X=sp.csr_matrix(shape, dtype=np.float32), obs=obs, var=var, uns=uns)
        skeleton.raw = ad.AnnData(X=sp.csr_matrix(shape, dtype=np.float32), obs=obs.copy(), var=var.copy())
        targets = {"X": np.float32, "raw/X": np.float32}
    else:
        skeleton = ad.AnnData(X=sp.csr_matrix(shape, dtype=np.int32), obs=obs, var=var, uns=uns)
        skeleton.layers["counts"] = sp.csr_matrix(shape, dtype=np.int32)
        targets = {"X": np.int32, "layers/counts": np.int32}
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
                        name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(_WRITE_CHUNK,),
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
        path, n_cells, plan.n_genes, schema, nnz, time.time() - start,
    )
    return Path(path)


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


# --- reading a local .h5ad ---------------------------------------------------------------

_COUNT_LAYERS = ("counts", "raw_counts", "count", "umi_counts", "umis")
_SAMPLE_VALUES = 100_000


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
    """Read a stored matrix as int CSR, checking every value; dense is read in row blocks."""
    import h5py
    from anndata.io import read_elem

    if isinstance(elem, h5py.Group):
        mat = read_elem(elem)
    else:
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
        [np.count_nonzero(np.asarray(elem[s : s + step]), axis=1) for s in range(0, elem.shape[0], step)]
    )


def read_rows(elem: Any, rows: np.ndarray, where: str = "X", path: str | Path = "") -> sp.csr_matrix:
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
            log.warning("%s of %s is stored column-wise (CSC): reading it whole to take rows", where, path)
            return _as_int_counts(sp.csr_matrix(read_elem(elem))[rows], where, Path(path))
        indptr = elem["indptr"][:].astype(np.int64)
        lengths = indptr[rows + 1] - indptr[rows]
        out_indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=out_indptr[1:])
        data_ds, index_ds = elem["data"], elem["indices"]
        data = np.empty(int(out_indptr[-1]), dtype=data_ds.dtype)
        indices = np.empty(int(out_indptr[-1]), dtype=index_ds.dtype)
        pos = 0
        for start, stop in zip(*_runs(rows), strict=True):
            a, b = int(indptr[start]), int(indptr[stop])
            if b > a:
                data_ds.read_direct(data, np.s_[a:b], np.s_[pos : pos + b - a])
                index_ds.read_direct(indices, np.s_[a:b], np.s_[pos : pos + b - a])
                pos += b - a
        mat = sp.csr_matrix((data, indices, out_indptr), shape=(len(rows), n_cols))
    else:
        step = max(1, 5_000_000 // max(1, n_cols))
        parts = [sp.csr_matrix(np.asarray(elem[rows[s : s + step]])) for s in range(0, len(rows), step)]
        mat = sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, n_cols), dtype=elem.dtype)
    return _as_int_counts(mat, where, Path(path))


_ENSEMBL = r"^ENS[A-Z]*G\d{6,}(\.\d+)?$"


def _open_h5ad(path: Path) -> Any:
    """Open an .h5ad with h5py; clear errors for a missing, non-HDF5 or non-AnnData file."""
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


def _find_counts(f: Any, path: Path) -> tuple[str, Any]:
    """The first stored matrix whose sampled values are counts: layers, X, raw.X, other layers."""
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


def _read_annotations(
    f: Any,
    where: str,
    elem: Any,
    path: Path,
    symbol_column: str | None,
    cell_type_column: str,
    donor_column: str | None,
) -> tuple[pd.DataFrame, pd.DataFrame, str | None, dict[str, Any]]:
    """obs and var of the counts' matrix, checked and mapped; the file's own latentshift flags.

    Returns obs (with ``cell_type`` and, where known, ``donor_id``), var (with
    ``feature_name`` when a symbol column is known), the symbol column used, and the
    ``uns["latentshift"]`` the file carries (``{}`` for files not written by latentshift).
    """
    from anndata.io import read_elem

    obs = read_elem(f["obs"])
    if where == "raw.X":
        var = read_elem(f["raw"]["var"])
        main_var = read_elem(f["var"])
        extra = [c for c in main_var.columns if c not in var.columns]
        if extra:
            joined = main_var[extra].reindex(var.index)
            for c in extra:
                col = joined[c]
                if c == "feature_name" and col.isna().any():
                    col = col.astype(object).where(col.notna(), pd.Series(var.index, index=var.index))
                var[c] = col
    else:
        var = read_elem(f["var"])
    if _stored_shape(elem) != (len(obs), len(var)):
        raise DataError(
            f"{path}: the counts in {where} have shape {_stored_shape(elem)} but obs/var give "
            f"{(len(obs), len(var))}; the file looks damaged."
        )

    var_columns = ", ".join(map(str, var.columns)) or "none"
    if symbol_column is not None and symbol_column not in var.columns:
        raise DataError(
            f"data.symbol_column '{symbol_column}' is not a var column of {path}; available "
            f"var columns: {var_columns}. Set data.symbol_column to one of them, or null to use "
            "feature_name / the var_names."
        )
    if symbol_column is None and "feature_name" in var.columns:
        symbol_column = "feature_name"
    if symbol_column is None:
        ensembl = pd.Index(var.index.astype(str)).str.match(_ENSEMBL)
        if len(var) and ensembl.mean() > 0.5:
            raise DataError(
                f"{path}: the genes are Ensembl IDs (e.g. {var.index[0]}) and var has no "
                f"'feature_name' column with gene symbols, so no gene set can be matched. var "
                f"columns: {var_columns}. Set data.symbol_column to the column holding gene "
                "symbols (e.g. gene_symbols, gene_name)."
            )
    if symbol_column is not None and symbol_column != "feature_name" and "feature_name" not in var:
        var["feature_name"] = var[symbol_column].astype(str)

    if cell_type_column not in obs.columns:
        hint = [str(c) for c in obs.columns if any(w in str(c).lower() for w in ("type", "class", "cluster", "label", "annot"))]
        raise DataError(
            f"data.cell_type_column '{cell_type_column}' is not an obs column of {path}; "
            f"obs columns present: {', '.join(map(str, obs.columns)) or 'none'}. Set "
            "data.cell_type_column to the column holding cell-type labels"
            + (f" (candidates: {', '.join(hint)})." if hint else ".")
        )
    obs["cell_type"] = pd.Categorical(obs[cell_type_column].astype(str))
    if donor_column:
        if donor_column in obs.columns:
            obs["donor_id"] = pd.Categorical(obs[donor_column].astype(str))
        else:
            log.warning(
                "obs column %r (data.donor_column) not in %s (obs columns: %s); no donor_id",
                donor_column, path, ", ".join(map(str, obs.columns)),
            )
    flags: dict[str, Any] = {}
    if "uns" in f and "latentshift" in f["uns"]:
        try:
            flags = dict(read_elem(f["uns"]["latentshift"]))
        except Exception:  # noqa: BLE001 - a foreign uns entry: ignore it
            flags = {}
    return obs, var, symbol_column, flags


def _build(
    counts: sp.csr_matrix, obs: pd.DataFrame, var: pd.DataFrame, path: Path, where: str,
    symbol_column: str | None, flags: Mapping[str, Any], sample: Mapping[str, Any] | None,
) -> Any:
    import anndata as ad

    adata = ad.AnnData(X=counts.copy(), obs=obs, var=var)
    adata.layers["counts"] = counts
    info: dict[str, Any] = {
        "simulated": bool(flags.get("simulated", False)),
        "source": str(path),
        "counts_from": where,
        "symbol_column": symbol_column,
    }
    if flags.get("simulated"):
        info["simulated_by"] = str(flags.get("source", ""))
    if sample is not None:
        info["sample"] = dict(sample)
    adata.uns["latentshift"] = info
    return adata


def read_h5ad_counts(
    path: str | Path,
    symbol_column: str | None = None,
    cell_type_column: str = "cell_type",
    donor_column: str | None = "donor_id",
) -> Any:
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
    with _open_h5ad(path) as f:
        where, elem = _find_counts(f, path)
        obs, var, symbol_column, flags = _read_annotations(
            f, where, elem, path, symbol_column, cell_type_column, donor_column
        )
        log.info("reading counts from %s of %s", where, path)
        counts = _read_counts(elem, where, path)
    adata = _build(counts, obs, var, path, where, symbol_column, flags, None)
    log.info("read %s: %d cells × %d genes (counts from %s)", path, adata.n_obs, adata.n_vars, where)
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
) -> Any:
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
    with _open_h5ad(path) as f:
        where, elem = _find_counts(f, path)
        obs, var, symbol_column, flags = _read_annotations(
            f, where, elem, path, symbol_column, cell_type_column, donor_column
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
            labels = None if stratify_by is None else obs[stratify_by].to_numpy()[passing]
            chosen = passing[choose_cells(len(passing), n_cells, seed, labels)]
        log.info(
            "sampling %d of %d cells of %s (%d pass min_genes=%d; stratified by %s); reading only "
            "those rows of %s", len(chosen), n_file, path, len(passing), min_genes, stratify_by, where,
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
    adata = _build(counts, sub_obs, var, path, where, symbol_column, flags, sample)
    log.info("read a sample of %s: %d cells × %d genes in %.1f s", path, adata.n_obs, adata.n_vars, time.time() - start)
    return adata


# --- QC, subsampling, summary ------------------------------------------------------------


def counts_matrix(adata: Any, layer: str | None = "counts") -> Any:
    """The raw counts of an AnnData: ``layers[layer]`` when present, else ``X``.

    The one place the project decides where counts live (our files keep them in
    ``layers["counts"]``; a bare AnnData of counts has them in ``X``). The matrix itself, not a
    copy.
    """
    return adata.layers[layer] if layer and layer in adata.layers else adata.X


def qc_filter(adata: Any, min_genes: int, min_cells: int) -> tuple[Any, dict[str, int]]:
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

    Returns
    -------
    (AnnData, dict)
        The filtered copy, and ``cells_before``, ``cells_after``, ``genes_before``,
        ``genes_after``, ``min_genes``, ``min_cells``.
    """
    import scanpy as sc

    counts = counts_matrix(adata)
    cell_mask, _ = sc.pp.filter_cells(counts, min_genes=min_genes, inplace=False)
    cell_mask = np.asarray(cell_mask, dtype=bool)
    gene_mask, _ = sc.pp.filter_genes(counts[cell_mask] if not cell_mask.all() else counts, min_cells=min_cells, inplace=False)
    gene_mask = np.asarray(gene_mask, dtype=bool)
    out = subset(adata, None if cell_mask.all() else cell_mask, None if gene_mask.all() else gene_mask)
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
        stats["cells_before"], stats["cells_after"], min_genes,
        stats["genes_before"], stats["genes_after"], min_cells,
    )
    if out.n_obs == 0:
        raise DataError(
            f"QC removed every cell (min_genes={min_genes}); lower data.min_genes in the params file."
        )
    return out, stats


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


def choose_cells(
    n_total: int, n_cells: int, seed: int, labels: Sequence[Any] | np.ndarray | None = None
) -> np.ndarray:
    """Seeded choice of ``n_cells`` of ``n_total`` cells, stratified by ``labels`` if given.

    Each label group gets its proportional whole-number share (largest remainder); ``None``:
    a plain random draw. :func:`subsample` and :func:`read_h5ad_sample` both use it, so the
    in-memory and the read-only-the-sample paths pick the same cells.

    Returns
    -------
    numpy.ndarray
        Sorted, distinct indices in ``[0, n_total)``.
    """
    if not 1 <= n_cells <= n_total:
        raise DataError(f"choose_cells: n_cells must be from 1 to {n_total} (got {n_cells}).")
    rng = np.random.default_rng(seed)
    if labels is None:
        keep = rng.choice(n_total, size=n_cells, replace=False)
    else:
        cats = pd.Categorical(np.asarray(labels).astype(str))
        if len(cats) != n_total:
            raise DataError(f"choose_cells: {len(cats)} labels for {n_total} cells.")
        codes = cats.codes
        sizes = np.bincount(codes, minlength=len(cats.categories))
        take = _largest_remainder(sizes, n_cells)
        take = np.minimum(take, sizes)
        short = n_cells - take.sum()  # rounding can never exceed a group's size, but be safe
        keep_parts = []
        for k in range(len(sizes)):
            members = np.flatnonzero(codes == k)
            if take[k]:
                keep_parts.append(rng.choice(members, size=take[k], replace=False))
        keep = np.concatenate(keep_parts) if keep_parts else np.array([], dtype=int)
        if short > 0:
            rest = np.setdiff1d(np.arange(n_total), keep)
            keep = np.concatenate([keep, rng.choice(rest, size=short, replace=False)])
    return np.sort(keep)


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
        block = sp.csr_matrix((X.data[a:b], X.indices[a:b], indptr[lo : hi + 1] - a), shape=(hi - lo, X.shape[1]))
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


def subset(adata: Any, rows: Any = None, cols: Any = None) -> Any:
    """``adata[rows, cols].copy()`` that keeps ``X`` and ``layers["counts"]`` one matrix.

    When ``layers["counts"]`` is the very object ``X`` (as :func:`simulate_m1` and
    :func:`latentshift.perturb.make_perturbed` make them), anndata's copy would copy the counts
    twice; this copies them once and shares the result again. Otherwise it is anndata's own
    ``adata[rows, cols].copy()``.

    Parameters
    ----------
    adata
        Cells × genes.
    rows, cols
        Boolean masks or integer positions; ``None`` keeps all.
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
    if X is adata.X:
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


def subsample(
    adata: Any, n_cells: int | None, seed: int, stratify_by: str | None = "cell_type"
) -> Any:
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
    log.info("subsample: %d → %d cells (seed %d, stratified by %s)", adata.n_obs, len(keep), seed, stratify_by)
    return subset(adata, rows=keep)


def summarize(adata: Any) -> dict[str, Any]:
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


def load_cells(cfg: Mapping[str, Any], seed: int, required_genes: Sequence[str] = ()) -> Any:
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
            cfg["simulate_n_cells"], cfg["simulate_n_genes"], seed=seed, required_genes=required_genes
        )
    if source == "h5ad":
        if not cfg.get("path"):
            raise DataError("data.source is 'h5ad' but data.path is empty: give the .h5ad file's path.")
        columns = {
            "symbol_column": cfg.get("symbol_column"),
            "cell_type_column": cfg.get("cell_type_column", "cell_type"),
            "donor_column": cfg.get("donor_column", "donor_id"),
        }
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


def h5ad_n_obs(path: str | Path) -> int:
    """Number of cells of an ``.h5ad`` file, from its obs index alone."""
    path = Path(path)
    import h5py

    with _open_h5ad(path) as f:
        obs = f["obs"]
        if isinstance(obs, h5py.Dataset):  # pre-0.7 files: obs is one compound dataset
            return int(obs.shape[0])
        index = obs.attrs.get("_index", "_index")
        index = index.decode() if isinstance(index, bytes) else str(index)
        if index in obs:
            return int(obs[index].shape[0])
        return _stored_shape(_find_counts(f, path)[1])[0]


def describe_loading(adata: Any) -> str:
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
