"""The simulated human M1 data set: a deterministic, sparse, chunked simulator.

:func:`simulate_m1` makes an AnnData of negative-binomial counts; :func:`write_simulated_h5ad`
writes the same cells to an ``.h5ad`` file chunk by chunk (by default shaped like a CELLxGENE
download), so a file far larger than memory can be made and read back through the real-data
path (:mod:`latentshift.h5ad`).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from latentshift.counts import log_normalise
from latentshift.errors import DataError
from latentshift.sampling import largest_remainder

log = logging.getLogger(__name__)


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
) -> AnnData:
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
        n_cells,
        plan.n_genes,
        plan.n_markers,
        plan.n_required,
        plan.n_filler,
        100 * (1 - counts.nnz / (n_cells * plan.n_genes)),
        time.time() - start,
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
                "simulate_m1: chunk %d/%d (cells %d-%d) done, %.1f s",
                c + 1,
                n_chunks,
                lo,
                hi - 1,
                time.time() - start,
            )
            yield block


def _plan_simulation(
    n_cells: int, n_genes: int, seed: int, required_genes: Sequence[str], n_donors: int, schema: str
) -> _SimulationPlan:
    """Validate the arguments and draw everything of the simulation but the counts."""
    if n_cells < 1 or n_genes < 1:
        raise DataError(
            f"simulate_m1 needs n_cells >= 1 and n_genes >= 1 (got {n_cells}, {n_genes})."
        )
    if n_donors < 1:
        raise DataError(f"simulate_m1 needs n_donors >= 1 (got {n_donors}).")
    if schema not in ("latentshift", "cellxgene"):
        raise DataError(
            f"simulate_m1: schema must be 'latentshift' or 'cellxgene' (got {schema!r})."
        )
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
    per_type = largest_remainder(np.array([t.proportion for t in types]), n_cells, minimum=1)
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
        obs=obs,
        var=var,
        source=source,
        n_markers=n_markers,
        n_required=n_required,
        n_filler=n_filler,
        rows=rows,
        theta=theta,
        library=library,
        combo=combo,
        seed=seed,
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
        skeleton.raw = ad.AnnData(
            X=sp.csr_matrix(shape, dtype=np.float32), obs=obs.copy(), var=var.copy()
        )
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
