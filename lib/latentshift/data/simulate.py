"""The simulated human M1 data set: real genes at real levels, M1 depth and composition.

:func:`simulate_m1` makes a deterministic AnnData of negative-binomial counts calibrated to the
published human primary motor cortex (M1) data; :func:`plan_simulation` draws everything but
the counts, which its plan draws chunk by chunk. The same cells written to an ``.h5ad`` file
chunk by chunk, so a file far larger than memory can be made, are
:func:`latentshift.data.simulate_h5ad.write_simulated_h5ad`.

Its assumptions, each with its source, and its limits are :data:`ASSUMPTIONS` (Markdown,
shown in the 01_data report). The same arguments always give the same bytes.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from anndata import AnnData

from latentshift.data import reference
from latentshift.data.counts import log_normalise
from latentshift.data.sampling import largest_remainder
from latentshift.data.simulate_counts import SimulationPlan, stack_blocks
from latentshift.errors import DataError

log = logging.getLogger(__name__)

#: What the simulation assumes, each with its source, and its limits (Markdown).
ASSUMPTIONS = """\
* **Genes are real genes at their real relative level.** Every gene comes from the shipped
  table of human cortex levels (`Control.mean` of
  GEO GSE64810, Labadorf et al. 2015, 28,087 genes with Ensembl ids), with the mitochondrial
  genes rescaled to 0.5 % of a nucleus (bulk tissue holds ~16 %, M1 nuclei
  0.3–0.75 %). A name that is not a gene of that table is not in the data, as in a real file.
  A profile asking for fewer genes keeps every marker and every requested (gene-set) gene plus
  the most expressed genes; a nucleus's UMIs over those genes keep their realistic share of
  its transcriptome. Only a profile asking for more genes than the table holds gets filler
  genes (`SIMG…`), at levels drawn from the lower half of the real ones.
* **Cell-type structure sits on top of the real levels.** Each gene gets per-type log effects
  (small type noise; class effects for 30 % of genes; strong type effects for a few), marker
  genes are 50-fold higher in their own types than elsewhere, and every
  gene's effects are centred so that the *tissue* mixture of types (Bakken et al. 2021
  proportions) has exactly the gene's bulk level: a disease-set gene keeps its real level.
* **Depth and composition from the M1 atlas** (Siletti et al. 2023,
  `latentshift.data.reference.celltype_table`): each type's median UMIs per nucleus (neurons
  ≈ 23,500, glia ≈ 5,200), spread log-normally per nucleus (sd 0.45 on the log
  scale), with small donor and sample effects; composition `"m1"` (the HCA M1 file: nuclei
  FACS-sorted to 90 % neurons, the default) or `"tissue"` (Bakken 2021 census, 62 %).
* **Counts are negative binomial** with a per-gene inverse dispersion θ (log-normal around
  2), drawn exactly and sparsely, chunk by chunk.

**Limits.** One level per gene from bulk prefrontal cortex (not motor cortex, not nuclei; gene
length affects bulk counts), 15 cell types without subtypes, no ambient RNA, doublets or
batch structure beyond donor and sample library effects, and random (not real) type effects
for genes other than the markers. The same seed always gives the same bytes.
"""

#: Marker genes per simulated cell type (first = most specific), from the human M1 cell-type
#: taxonomy (Bakken et al. 2021; Hodge et al. 2019). Used for the enriched genes and dot plots.
M1_MARKERS: dict[str, list[str]] = {
    "L2/3 IT": ["CUX2", "SLC17A7", "SATB2"],
    "L4/5 IT": ["RORB", "SLC17A7", "SATB2"],
    "L5 ET": ["POU3F1", "FEZF2", "BCL11B", "SLC17A7"],
    "L5/6 NP": ["TSHZ2", "FEZF2", "SLC17A7"],
    "L6 IT": ["THEMIS", "SLC17A7", "SATB2"],
    "L6 CT": ["SYT6", "FOXP2", "FEZF2", "SLC17A7"],
    "PVALB": ["PVALB", "GAD1", "GAD2"],
    "SST": ["SST", "GAD1", "GAD2"],
    "VIP": ["VIP", "ADARB2", "GAD1", "GAD2"],
    "LAMP5": ["LAMP5", "ADARB2", "GAD1", "GAD2"],
    "Astro": ["GFAP", "AQP4", "SLC1A2"],
    "Oligo": ["MOG", "MBP", "PLP1"],
    "OPC": ["PDGFRA", "VCAN"],
    "Micro-PVM": ["CSF1R", "P2RY12", "CX3CR1"],
    "Endo": ["CLDN5", "FLT1"],
}

#: Pan-neuronal genes, enriched in every neuron type of the simulation.
PAN_NEURONAL: tuple[str, ...] = ("SNAP25", "RBFOX3", "SYT1")

#: The named compositions (:func:`latentshift.data.reference.celltype_proportions`).
COMPOSITIONS: tuple[str, ...] = tuple(reference.COMPOSITIONS)

#: Share of a nucleus's UMIs on mitochondrial genes (Siletti 2023 M1C clusters: 0.3-0.75 %).
MITO_FRACTION = 0.005
#: A marker's level in its own types over its level elsewhere.
MARKER_CONTRAST = 50.0
#: The pan-neuronal genes' level in neurons over their level in glia.
PAN_NEURONAL_CONTRAST = 10.0
#: Per-nucleus spread of UMIs: sd of the log library size around its type's median (10x v3
#: single-nucleus data span about an order of magnitude between the 5th and 95th percentile).
LIBRARY_SD = 0.45
#: Donor and sample effects on library size (sd of the log) and donor effects on genes.
DONOR_LIBRARY_SD, SAMPLE_LIBRARY_SD, DONOR_GENE_SD = 0.15, 0.1, 0.1
#: Samples per donor (the M1 atlas has 18 retained samples from 4 donors).
SAMPLES_PER_DONOR = 4
#: Median and log-scale sd of the per-gene NB inverse dispersion θ.
THETA_MEDIAN, THETA_LOG_SD = 2.0, 0.6
_CLASSES = ("Glutamatergic", "GABAergic", "Non-neuronal")


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
        Fraction of all nuclei (in the chosen composition).
    tissue_proportion
        Fraction in the tissue (Bakken 2021), which the bulk gene levels average over.
    depth
        Median transcriptome-wide UMIs per nucleus.
    supercluster
        The Siletti 2023 supercluster it is drawn from (``obs["supercluster_term"]``).
    markers
        Marker gene symbols enriched in this type; the first is the most specific.
    """

    name: str
    cell_class: str
    proportion: float
    tissue_proportion: float
    depth: float
    supercluster: str
    markers: tuple[str, ...]


def m1_cell_types(composition: str = "m1") -> tuple[CellTypeSpec, ...]:
    """The 15 simulated cell types with their depth and share in a named composition.

    Parameters
    ----------
    composition
        ``"m1"`` (default): the HCA M1 file's nuclei, FACS-sorted to 90 % neurons;
        ``"tissue"``: the tissue census of Bakken et al. 2021 (about 62 % neurons).

    Raises
    ------
    DataError
        An unknown composition.
    """
    if composition not in COMPOSITIONS:
        raise DataError(
            f"data.composition is {composition!r}; use one of {', '.join(COMPOSITIONS)} "
            "('m1': the HCA M1 file's FACS-sorted nuclei, 'tissue': the Bakken 2021 census)."
        )
    table = reference.celltype_table()
    shares = reference.celltype_proportions(composition)
    tissue = reference.celltype_proportions("tissue")
    return tuple(
        CellTypeSpec(
            name=row.cell_type,
            cell_class=row.cell_class,
            proportion=shares[row.cell_type],
            tissue_proportion=tissue[row.cell_type],
            depth=float(row.umi_depth),
            supercluster=str(row.superclusters).split(";")[0].strip(),
            markers=tuple(M1_MARKERS[row.cell_type]),
        )
        for row in table.itertuples()
    )


def simulate_m1(
    n_cells: int,
    n_genes: int,
    seed: int = 0,
    required_genes: Sequence[str] = (),
    n_donors: int = 4,
    schema: str = "latentshift",
    composition: str = "m1",
    donor_gene_sd: float = DONOR_GENE_SD,
) -> AnnData:
    """A deterministic simulated human M1 single-nucleus RNA-seq data set.

    Real genes at their real relative levels in human cortex, with cell-type structure on top,
    the M1 atlas's depth per cell type and its composition (see the module docstring for every
    assumption and its source). Cells are generated in chunks, so the full matrix is never
    dense.

    Parameters
    ----------
    n_cells
        Number of nuclei. Types get whole-number shares of it (largest remainder, at least
        one nucleus each when ``n_cells`` allows).
    n_genes
        Number of genes: every marker and every real gene of ``required_genes``, then the most
        expressed genes of the reference table; filler genes ``SIMG…`` only beyond the
        table's 28,087 genes. When smaller than the markers and required genes, all of those
        are kept (with a warning).
    seed
        Seed; the output is identical bit for bit for the same arguments.
    required_genes
        Gene symbols (case-insensitive) or Ensembl ids that must be present when they are
        real genes (e.g. the disease gene sets' genes). Names that are not genes of the
        reference table are left out, as they would be missing from a real file.
    n_donors
        Number of donors (``obs["donor_id"]``), each with a small library-size and gene effect
        and :data:`SAMPLES_PER_DONOR` samples (``obs["sample_id"]``).
    schema
        ``"latentshift"`` (default): var_names are gene symbols (made unique as anndata's
        ``var_names_make_unique`` does), ``X`` and ``layers["counts"]`` are int32 CSR counts.
        ``"cellxgene"``: shaped like the CELLxGENE download — var_names are the Ensembl ids,
        ``X`` is log1p(counts per 10k) float32 CSR and the whole-number counts are only in
        ``.raw.X`` (float32).
    composition
        ``"m1"`` (default, the HCA M1 file's 90 % neurons) or ``"tissue"`` (Bakken 2021).
    donor_gene_sd
        sd of each donor's log-scale effect on each gene (default :data:`DONOR_GENE_SD`).
        Larger values give donors more of an identity of their own, as genotype, age and
        post-mortem interval do in real tissue (a case–control data set's donor leak).

    Returns
    -------
    AnnData
        ``obs``: ``cell_type`` (categorical), ``cell_class``, ``supercluster_term``,
        ``donor_id``, ``sample_id``; ``var``: ``feature_name`` (symbol), ``gene_ids``
        (Ensembl id), ``feature_is_filtered`` (False), ``gene_group`` (marker / required /
        reference / filler), ``reference_level`` (relative level in cortex);
        ``uns["latentshift"]`` = ``{"simulated": True, "source": "simulate_m1(...)"}``.
    """
    import anndata as ad

    plan = plan_simulation(
        n_cells, n_genes, seed, required_genes, n_donors, schema, composition, donor_gene_sd
    )
    start = time.time()
    counts = stack_blocks(plan.blocks(), n_cells, plan.n_genes)

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
        "simulate_m1: %d cells × %d genes (%d markers, %d required, %d filler), "
        "%.1f%% zeros, %.1f s",
        n_cells,
        plan.n_genes,
        int((var["gene_group"] == "marker").sum()),
        int((var["gene_group"] == "required").sum()),
        int((var["gene_group"] == "filler").sum()),
        100 * (1 - counts.nnz / (n_cells * plan.n_genes)),
        time.time() - start,
    )
    return adata


def _gene_panel(
    n_genes: int, required_genes: Sequence[str], levels: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    """The simulated genes: rows of the reference (with their position ``ref``) plus fillers.

    Columns ``gene_id``, ``symbol``, ``level``, ``ref`` (row of ``levels``; -1 for fillers),
    ``gene_group``. Real genes keep the reference order (most expressed first).
    """
    markers = [g for genes in M1_MARKERS.values() for g in genes] + list(PAN_NEURONAL)
    marker_rows, absent_markers = reference.locate_genes(markers, levels)
    if absent_markers:
        log.warning("marker genes not in the reference table: %s", absent_markers)
    required_rows, absent = reference.locate_genes(required_genes, levels)
    if absent:
        log.info(
            "%d requested gene(s) are not genes of the reference table and are left out, as "
            "from a real file: %s",
            len(absent),
            ", ".join(absent[:20]) + (" …" if len(absent) > 20 else ""),
        )
    keep = sorted(set(marker_rows) | set(required_rows))
    n_real = min(n_genes, len(levels))
    if len(keep) > n_real:
        warnings.warn(
            f"simulate_m1: n_genes={n_genes} is smaller than the {len(keep)} marker and required "
            f"genes; keeping all {len(keep)} of them. Raise data.simulate_n_genes to silence "
            "this.",
            UserWarning,
            stacklevel=4,
        )
        n_real = len(keep)
    chosen = np.zeros(len(levels), dtype=bool)
    chosen[keep] = True
    chosen[np.flatnonzero(~chosen)[: n_real - len(keep)]] = True
    rows = np.flatnonzero(chosen)
    group = np.full(len(levels), "reference", dtype=object)
    group[required_rows] = "required"
    group[marker_rows] = "marker"
    panel = pd.DataFrame(
        {
            "gene_id": levels["gene_id"].to_numpy()[rows],
            "symbol": levels["symbol"].to_numpy()[rows],
            "level": levels["level"].to_numpy()[rows],
            "ref": rows,
            "gene_group": group[rows],
        }
    )
    n_filler = max(0, n_genes - len(levels))
    if n_filler:
        low = levels["level"].to_numpy()
        low = np.sort(low[low > 0])[: max(1, int(np.sum(low > 0)) // 2)]
        width = max(5, len(str(n_filler)))
        fillers = pd.DataFrame(
            {
                "gene_id": [f"ENSG9{i:010d}" for i in range(1, n_filler + 1)],
                "symbol": [f"SIMG{i:0{width}d}" for i in range(1, n_filler + 1)],
                "level": rng.choice(low, size=n_filler, replace=True),
                "ref": -1,
                "gene_group": "filler",
            }
        )
        panel = pd.concat([panel, fillers], ignore_index=True)
    return panel


def _type_effects(
    rng: np.random.Generator, levels: pd.DataFrame, types: Sequence[CellTypeSpec]
) -> np.ndarray:
    """Per-type log effects on every reference gene, shape (n_types, n_reference_genes).

    Drawn for the whole reference table whatever the panel, so a gene has the same effects in
    every profile. Centred per gene so that the tissue mixture of types keeps the gene's bulk
    level.
    """
    n_types, n_ref = len(types), len(levels)
    classes = np.array([_CLASSES.index(t.cell_class) for t in types])
    eff = rng.normal(0, 0.2, (n_types, n_ref))
    has_class = rng.random(n_ref) < 0.3
    eff += (rng.normal(0, 1.0, (len(_CLASSES), n_ref)) * has_class)[classes]
    has_type = rng.random(n_ref) < 0.15
    hits = rng.random((n_types, n_ref)) < 0.15
    eff += rng.normal(0, 1.5, (n_types, n_ref)) * (hits & has_type)
    neuron = classes != _CLASSES.index("Non-neuronal")
    own: dict[int, np.ndarray] = {}
    for i, t in enumerate(types):
        for row in reference.locate_genes(t.markers, levels)[0]:
            own.setdefault(row, np.zeros(n_types, dtype=bool))[i] = True
    for row in reference.locate_genes(PAN_NEURONAL, levels)[0]:
        own[row] = neuron.copy()
    for row, mask in own.items():
        contrast = PAN_NEURONAL_CONTRAST if mask.sum() == neuron.sum() else MARKER_CONTRAST
        eff[:, row] = np.where(mask, np.log(contrast), 0.0) + rng.normal(0, 0.2, n_types)
    tissue = np.array([t.tissue_proportion for t in types])[:, None]
    eff -= np.log((tissue * np.exp(eff)).sum(axis=0) / tissue.sum())
    return eff


def plan_simulation(
    n_cells: int,
    n_genes: int,
    seed: int,
    required_genes: Sequence[str],
    n_donors: int,
    schema: str,
    composition: str = "m1",
    donor_gene_sd: float = DONOR_GENE_SD,
) -> SimulationPlan:
    """Validate the arguments and draw everything of the simulation but the counts.

    Parameters
    ----------
    n_cells, n_genes, seed, required_genes, n_donors, schema, composition, donor_gene_sd
        As in :func:`simulate_m1`.

    Returns
    -------
    SimulationPlan
        obs, var and the per-cell means; its
        :meth:`~latentshift.data.simulate_counts.SimulationPlan.blocks` draws the counts.

    Raises
    ------
    DataError
        An argument out of range, an unknown schema or composition.
    """
    if n_cells < 1 or n_genes < 1:
        raise DataError(
            f"simulate_m1 needs n_cells >= 1 and n_genes >= 1 (got {n_cells}, {n_genes})."
        )
    if n_donors < 1:
        raise DataError(f"simulate_m1 needs n_donors >= 1 (got {n_donors}).")
    if not donor_gene_sd >= 0:
        raise DataError(f"simulate_m1 needs donor_gene_sd >= 0 (got {donor_gene_sd}).")
    if schema not in ("latentshift", "cellxgene"):
        raise DataError(
            f"simulate_m1: schema must be 'latentshift' or 'cellxgene' (got {schema!r})."
        )
    types = m1_cell_types(composition)
    levels = reference.gene_levels(mito_fraction=MITO_FRACTION)

    gene_rng = np.random.default_rng([seed, 1])
    eff = _type_effects(gene_rng, levels, types)
    ref_theta = gene_rng.lognormal(np.log(THETA_MEDIAN), THETA_LOG_SD, len(levels))
    ref_donor = gene_rng.normal(0, donor_gene_sd, (n_donors, len(levels)))
    donor_lib = gene_rng.lognormal(0, DONOR_LIBRARY_SD, n_donors)
    sample_lib = gene_rng.lognormal(0, SAMPLE_LIBRARY_SD, (n_donors, SAMPLES_PER_DONOR))
    # centred (geometric mean 1), so a type's median depth stays its published figure
    donor_lib /= np.exp(np.log(donor_lib).mean())
    sample_lib /= np.exp(np.log(sample_lib).mean(axis=1, keepdims=True))

    panel = _gene_panel(n_genes, required_genes, levels, np.random.default_rng([seed, 4]))
    real = panel["ref"].to_numpy() >= 0
    ref_rows = panel["ref"].to_numpy()[real]
    g_total = len(panel)
    # per-type fractions over the whole transcriptome (reference + fillers), then the panel
    type_frac = levels["level"].to_numpy()[None, :] * np.exp(eff)
    filler_levels = panel["level"].to_numpy()[~real]
    totals = type_frac.sum(axis=1) + filler_levels.sum()
    frac = np.empty((len(types), g_total))
    frac[:, real] = type_frac[:, ref_rows]
    frac[:, ~real] = filler_levels[None, :]
    frac /= totals[:, None]
    theta = np.empty(g_total)
    theta[real] = ref_theta[ref_rows]
    theta[~real] = gene_rng.lognormal(np.log(THETA_MEDIAN), THETA_LOG_SD, int((~real).sum()))
    donor_gene = np.zeros((n_donors, g_total))
    donor_gene[:, real] = ref_donor[:, ref_rows]
    # one fraction row per (type, donor)
    rows = (frac[:, None, :] * np.exp(donor_gene)[None, :, :]).reshape(-1, g_total)
    rows = rows.astype(np.float32)

    cell_rng = np.random.default_rng([seed, 2])
    per_type = largest_remainder(np.array([t.proportion for t in types]), n_cells, minimum=1)
    type_idx = cell_rng.permutation(np.repeat(np.arange(len(types)), per_type))
    donor_idx = cell_rng.integers(0, n_donors, n_cells)
    sample_idx = cell_rng.integers(0, SAMPLES_PER_DONOR, n_cells)
    depth = np.array([t.depth for t in types])[type_idx]
    library = (
        depth
        * donor_lib[donor_idx]
        * sample_lib[donor_idx, sample_idx]
        * cell_rng.lognormal(0, LIBRARY_SD, n_cells)
    )
    combo = type_idx * n_donors + donor_idx

    var, obs = _annotations(panel, types, type_idx, donor_idx, sample_idx, n_donors)
    source = (
        f"simulate_m1(n_cells={n_cells}, n_genes={n_genes}, seed={seed}, "
        f"composition={composition!r}"
        + (f", donor_gene_sd={donor_gene_sd}" if donor_gene_sd != DONOR_GENE_SD else "")
        + ")"
    )
    return SimulationPlan(
        obs=obs,
        var=var,
        source=source,
        rows=rows,
        theta=theta.astype(np.float32),
        library=library,
        combo=combo,
        seed=seed,
    )


def _annotations(
    panel: pd.DataFrame,
    types: Sequence[CellTypeSpec],
    type_idx: np.ndarray,
    donor_idx: np.ndarray,
    sample_idx: np.ndarray,
    n_donors: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """var (one row per gene of ``panel``) and obs (one row per cell) of the simulation."""
    from anndata.utils import make_index_unique

    g_total, n_cells = len(panel), len(type_idx)
    symbols = panel["symbol"].astype(str)
    names = make_index_unique(pd.Index(symbols.to_numpy()), join="-")
    var = pd.DataFrame(
        {
            "feature_name": symbols.to_numpy(),
            "gene_ids": panel["gene_id"].to_numpy(),
            "feature_is_filtered": np.zeros(g_total, dtype=bool),
            "gene_group": pd.Categorical(
                panel["gene_group"], categories=["marker", "required", "reference", "filler"]
            ),
            "reference_level": panel["level"].to_numpy(),
        },
        index=pd.Index(names, name=None),
    )
    donors = [f"donor{i + 1}" for i in range(n_donors)]
    samples = [f"{d}_sample{k + 1}" for d in donors for k in range(SAMPLES_PER_DONOR)]
    type_names = [t.name for t in types]
    superclusters = sorted({t.supercluster for t in types})
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical.from_codes(type_idx, categories=type_names),
            "cell_class": pd.Categorical(
                [types[i].cell_class for i in type_idx], categories=list(_CLASSES)
            ),
            "supercluster_term": pd.Categorical(
                [types[i].supercluster for i in type_idx], categories=superclusters
            ),
            "donor_id": pd.Categorical.from_codes(donor_idx, categories=donors),
            "sample_id": pd.Categorical.from_codes(
                donor_idx * SAMPLES_PER_DONOR + sample_idx, categories=samples
            ),
        },
        index=pd.Index([f"cell{i:07d}" for i in range(1, n_cells + 1)]),
    )
    return var, obs
