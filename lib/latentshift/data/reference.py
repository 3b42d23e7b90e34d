"""Reference resources: real gene levels of human cortex and the cell types of human M1.

Two compact tables ship in ``latentshift/resources`` so that the simulator can draw real genes
at their real relative level and give each cell type a realistic depth and share:

``cortex_gene_levels.tsv.gz``
    One row per gene of GEO GSE64810 (Labadorf *et al.* 2015): the unversioned Ensembl id, the
    symbol, ``Control.mean`` (mean DESeq2-normalised count in control human prefrontal cortex,
    bulk) and ``level`` = ``control_mean`` / its total, so levels sum to 1. Made by
    :func:`derive_gene_levels`, read by :func:`gene_levels`.
``m1_cell_types.tsv``
    One row per simulated cell type: its class, the Siletti *et al.* (2023) superclusters it is
    drawn from, the UMI depth per nucleus, and two compositions: ``m1_proportion`` (the HCA M1
    file: nuclei FACS-sorted to 90 % neurons) and ``tissue_proportion`` (Bakken *et al.* 2021
    tissue-like census, the simulator's former default). Made by
    :func:`derive_celltype_table`, read by :func:`celltype_table`.

Both are rewritten, byte for byte the same, from the public source tables by
:mod:`latentshift.data.derive_reference`::

    python -m latentshift.data.derive_reference --source ../shared/data \\
        --out lib/latentshift/resources

``resources/README.md`` gives the sources, the derivation step by step and the caveats.

Derivation rules for the cell-type table (also in the README):

* A *source* is a group of Siletti clusters: a supercluster, or for L5 ET the clusters named
  ``L5ET_*`` (the atlas files them under "Miscellaneous" and "Hippocampal CA1-3").
* Neuron depth: ``Total UMI`` averaged over the source's clusters, each weighted by its M1C
  nuclei (the M1C share in "Top three dissections" times "Number of cells"; clusters whose top
  three do not name M1C weigh 0). Glia depth: weighted by all the cluster's nuclei (glia are
  spread over many regions, so M1C rarely makes their top three).
* A source shared by several simulated types (Deep-layer IT: L4/5 IT and L6 IT; MGE: PVALB and
  SST; CGE: VIP and LAMP5) is divided among them in proportion to their tissue proportions;
  depth and composition use the same fractions.
* M1 composition: the neuron fraction (1 - the FACS-expected non-neuronal proportion of the
  retained M1C samples, 0.9) split by the types' M1C nuclei; the glia fraction (0.1) split in
  proportion to the glial tissue proportions.
"""

from __future__ import annotations

import functools
import gzip
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Literal

import numpy as np
import pandas as pd

from latentshift.errors import DataError

log = logging.getLogger(__name__)

__all__ = [
    "BAKKEN_2021",
    "CELL_TYPES",
    "CELL_TYPES_FILE",
    "CLUSTER_GROUPS",
    "COMPOSITIONS",
    "FIGURES_SOURCE",
    "GLIA_SUPERCLUSTERS",
    "GSE64810_FILE",
    "L5ET_113_UMI_DEPTH",
    "GENE_LEVELS_FILE",
    "LABADORF_2015",
    "M1_NEURON_FRACTION",
    "NEURON_CLASSES",
    "NEURON_UMI_DEPTH",
    "NON_NEURON_UMI_DEPTH",
    "PUBLISHED_SUPERCLUSTERS",
    "SILETTI_2023",
    "SILETTI_CLUSTERS_FILE",
    "SILETTI_SAMPLES_FILE",
    "CellTypeSpec",
    "ClusterGroup",
    "PublishedSupercluster",
    "celltype_depths",
    "celltype_proportions",
    "celltype_table",
    "gene_levels",
    "locate_genes",
    "select_genes",
]

# --- sources -------------------------------------------------------------------------------

#: Bulk RNA-seq of human prefrontal cortex; ``Control.mean`` gives the gene levels.
LABADORF_2015 = (
    "Labadorf A, Hoss AG, Lagomarsino V, et al. (2015) RNA sequence analysis of human "
    "Huntington disease brain reveals an extensive increase in inflammatory and developmental "
    "gene expression. PLoS One 10(12): e0143563. doi:10.1371/journal.pone.0143563. GEO GSE64810, "
    "file GSE64810_mlhd_DESeq2_diffexp_DESeq2_outlier_trimmed_adjust.txt, read from GitHub "
    "RuifeiZhu101/BU_BF591_RShinyApp data/GSE64810_mlhd_DESeq2_diffexp_DESeq2_outlier_trimmed_"
    "adjust.csv @ 8ea2d9317da58000144029ede7416d13bbee10f2"
)
#: The adult human brain atlas; its cluster table gives depths and the M1C composition.
SILETTI_2023 = (
    "Siletti K, Hodge R, Mossi Albiach A, et al. (2023) Transcriptomic diversity of cell types "
    "across the adult human brain. Science 382(6667): eadd7046. doi:10.1126/science.add7046. "
    "GitHub linnarsson-lab/adult-human-brain tables/cluster_annotation.xlsx and "
    "tables/samples.xlsx @ 7dd469b374469691665a72a3a59a43458bf03b19"
)
#: The tissue-like M1 census behind ``tissue_proportion``.
BAKKEN_2021 = (
    "Bakken TE, Jorstad NL, Hu Q, et al. (2021) Comparative cellular analysis of motor cortex "
    "in human, marmoset and mouse. Nature 598: 111-119. doi:10.1038/s41586-021-03465-8"
)

#: Source file names, as in the reference-data folder.
GSE64810_FILE = "GSE64810_deseq2_results.csv"
SILETTI_CLUSTERS_FILE = "siletti2023_cluster_annotation.csv"
SILETTI_SAMPLES_FILE = "siletti2023_m1c_samples.csv"

#: Shipped resource file names (in ``latentshift/resources``).
GENE_LEVELS_FILE = "cortex_gene_levels.tsv.gz"
CELL_TYPES_FILE = "m1_cell_types.tsv"

# --- published figures (the reference-data README's table, from Siletti et al. 2023) --------

_FIGURES_SOURCE = (
    "Siletti et al. 2023 cluster_annotation.xlsx ("
    + SILETTI_2023.rsplit("@", 1)[1].strip()
    + "): 'Total UMI' weighted by nuclei; M1C clusters weighted by their M1C nuclei "
    "('Top three dissections' share x 'Number of cells')"
)


@dataclass(frozen=True)
class PublishedSupercluster:
    """A Siletti supercluster's figures as given in the reference-data README.

    Parameters
    ----------
    name
        Supercluster name in the atlas.
    umi_m1c
        ``Total UMI`` over the clusters naming M1C in their top three dissections, weighted by
        M1C nuclei; ``None`` for glia (M1C is not in their top three).
    umi_all
        ``Total UMI`` over all the supercluster's clusters, weighted by nuclei; ``None`` where
        the README gives none.
    m1c_share
        Share of the M1C nuclei recovered from "Top three dissections"; ``None`` for glia.
    source
        Where the numbers come from.
    """

    name: str
    umi_m1c: float | None
    umi_all: float | None
    m1c_share: float | None
    source: str = _FIGURES_SOURCE


#: The README's per-supercluster table (rounded figures as published there).
PUBLISHED_SUPERCLUSTERS: dict[str, PublishedSupercluster] = {
    p.name: p
    for p in (
        PublishedSupercluster("Upper-layer intratelencephalic", 26_100, 25_452, 0.339),
        PublishedSupercluster("Deep-layer intratelencephalic", 30_500, 31_326, 0.220),
        PublishedSupercluster("MGE interneuron", 17_600, 17_627, 0.187),
        PublishedSupercluster("CGE interneuron", 14_000, 14_419, 0.131),
        PublishedSupercluster("Deep-layer corticothalamic and 6b", 25_000, 31_419, 0.066),
        PublishedSupercluster("Deep-layer near-projecting", 21_600, None, 0.024),
        PublishedSupercluster("LAMP5-LHX6 and Chandelier", 16_200, None, 0.022),
        PublishedSupercluster("Oligodendrocyte", None, 5_136, None),
        PublishedSupercluster("Astrocyte", None, 5_581, None),
        PublishedSupercluster("Oligodendrocyte precursor", None, 6_614, None),
        PublishedSupercluster("Microglia", None, 2_921, None),
    )
}
#: UMIs per nucleus, all neuronal superclusters together (README: "≈ 23,500").
NEURON_UMI_DEPTH = 23_500.0
#: UMIs per nucleus, all non-neuronal (glial) superclusters together (README: "≈ 5,200").
NON_NEURON_UMI_DEPTH = 5_200.0
#: ``L5ET_113`` (73 % M1C) UMIs per nucleus (README: "≈ 35,000").
L5ET_113_UMI_DEPTH = 35_000.0
#: Neuron fraction of the HCA M1 nuclei: FACS-sorted, expected non-neuronal 0.1 per sample.
M1_NEURON_FRACTION = 0.90
#: Source string for the scalar figures above.
FIGURES_SOURCE = (
    _FIGURES_SOURCE + "; neuron fraction: samples.xlsx 'Expected proportion of non-neuronal "
    "nuclei based on FACS' = 0.1 for every M1C sample"
)

# --- the simulated cell types and where each comes from -------------------------------------

NEURON_CLASSES: tuple[str, ...] = ("Glutamatergic", "GABAergic")
NON_NEURONAL_CLASS = "Non-neuronal"

#: The glial superclusters of the README's "all non-neuronal ≈ 5,200".
GLIA_SUPERCLUSTERS: tuple[str, ...] = (
    "Oligodendrocyte",
    "Astrocyte",
    "Oligodendrocyte precursor",
    "Microglia",
)


@dataclass(frozen=True)
class ClusterGroup:
    """A group of Siletti clusters: one supercluster, or the clusters whose name has a prefix.

    Parameters
    ----------
    supercluster
        Select the clusters of this supercluster.
    name_prefix
        Select the clusters whose ``Cluster name`` starts with this (any supercluster).
    """

    supercluster: str | None = None
    name_prefix: str | None = None

    def select(self, clusters: pd.DataFrame) -> pd.Series:
        """Boolean mask of the clusters in this group."""
        if self.supercluster is not None:
            return clusters["supercluster"] == self.supercluster
        if self.name_prefix is not None:
            return clusters["cluster_name"].str.startswith(self.name_prefix)
        raise TypeError("a ClusterGroup needs a supercluster or a name_prefix")


#: The cluster groups the simulated types are drawn from, by name.
CLUSTER_GROUPS: dict[str, ClusterGroup] = {
    "Upper-layer intratelencephalic": ClusterGroup("Upper-layer intratelencephalic"),
    "Deep-layer intratelencephalic": ClusterGroup("Deep-layer intratelencephalic"),
    "L5ET_* clusters": ClusterGroup(name_prefix="L5ET_"),
    "Deep-layer near-projecting": ClusterGroup("Deep-layer near-projecting"),
    "Deep-layer corticothalamic and 6b": ClusterGroup("Deep-layer corticothalamic and 6b"),
    "MGE interneuron": ClusterGroup("MGE interneuron"),
    "CGE interneuron": ClusterGroup("CGE interneuron"),
    "LAMP5-LHX6 and Chandelier": ClusterGroup("LAMP5-LHX6 and Chandelier"),
    "Astrocyte": ClusterGroup("Astrocyte"),
    "Oligodendrocyte": ClusterGroup("Oligodendrocyte"),
    "Oligodendrocyte precursor": ClusterGroup("Oligodendrocyte precursor"),
    "Microglia": ClusterGroup("Microglia"),
    "Vascular": ClusterGroup("Vascular"),
}


@dataclass(frozen=True)
class CellTypeSpec:
    """One simulated cell type and its sources.

    Parameters
    ----------
    cell_type, cell_class
        The simulator's names.
    sources
        Keys of :data:`CLUSTER_GROUPS`.
    tissue_proportion
        Share in the tissue-like (Bakken 2021) composition.
    """

    cell_type: str
    cell_class: str
    sources: tuple[str, ...]
    tissue_proportion: float

    @property
    def is_neuron(self) -> bool:
        """Whether the type is neuronal (weighted by M1C nuclei, part of the 0.9)."""
        return self.cell_class in NEURON_CLASSES


#: The simulator's 15 cell types in its order, with their sources and tissue proportions.
CELL_TYPES: tuple[CellTypeSpec, ...] = (
    CellTypeSpec("L2/3 IT", "Glutamatergic", ("Upper-layer intratelencephalic",), 0.180),
    CellTypeSpec("L4/5 IT", "Glutamatergic", ("Deep-layer intratelencephalic",), 0.110),
    CellTypeSpec("L5 ET", "Glutamatergic", ("L5ET_* clusters",), 0.007),
    CellTypeSpec("L5/6 NP", "Glutamatergic", ("Deep-layer near-projecting",), 0.015),
    CellTypeSpec("L6 IT", "Glutamatergic", ("Deep-layer intratelencephalic",), 0.050),
    CellTypeSpec("L6 CT", "Glutamatergic", ("Deep-layer corticothalamic and 6b",), 0.040),
    CellTypeSpec("PVALB", "GABAergic", ("MGE interneuron",), 0.065),
    CellTypeSpec("SST", "GABAergic", ("MGE interneuron",), 0.050),
    CellTypeSpec("VIP", "GABAergic", ("CGE interneuron",), 0.055),
    CellTypeSpec("LAMP5", "GABAergic", ("LAMP5-LHX6 and Chandelier", "CGE interneuron"), 0.050),
    CellTypeSpec("Astro", NON_NEURONAL_CLASS, ("Astrocyte",), 0.075),
    CellTypeSpec("Oligo", NON_NEURONAL_CLASS, ("Oligodendrocyte",), 0.200),
    CellTypeSpec("OPC", NON_NEURONAL_CLASS, ("Oligodendrocyte precursor",), 0.045),
    CellTypeSpec("Micro-PVM", NON_NEURONAL_CLASS, ("Microglia",), 0.040),
    CellTypeSpec("Endo", NON_NEURONAL_CLASS, ("Vascular",), 0.018),
)

#: Named compositions of :func:`celltype_proportions` and their table columns.
COMPOSITIONS: dict[str, str] = {"m1": "m1_proportion", "tissue": "tissue_proportion"}


def fsum(values: Iterable[float]) -> float:
    """Exactly rounded sum, independent of order and of numpy's summation strategy."""
    return math.fsum(float(v) for v in values)


# --- loaders of the shipped resources -------------------------------------------------------


def _resource(name: str) -> Traversable:
    return resources.files("latentshift").joinpath("resources", name)


@functools.cache
def _read_gene_levels() -> pd.DataFrame:
    with _resource(GENE_LEVELS_FILE).open("rb") as handle, gzip.open(handle, "rt") as text:
        return pd.read_csv(
            text,
            sep="\t",
            dtype={"gene_id": str, "symbol": str, "control_mean": float, "level": float},
            keep_default_na=False,
            na_filter=False,
        )


@functools.cache
def _read_celltype_table() -> pd.DataFrame:
    with _resource(CELL_TYPES_FILE).open("rb") as handle:
        return pd.read_csv(handle, sep="\t", keep_default_na=False, na_filter=False)


def gene_levels(mito_fraction: float | None = None) -> pd.DataFrame:
    """The shipped real gene levels of human cortex (GSE64810 control prefrontal cortex).

    Parameters
    ----------
    mito_fraction
        ``None`` (default): the bulk levels as derived; the mitochondrial genes (``MT-*``)
        then hold about 16 % of the total. A number in [0, 1): rescale so that the ``MT-``
        genes hold exactly this share and the other genes the rest, keeping the ratios within
        each part (nuclei hold about 0.5 % mitochondrial reads; 0 drops them to level 0).

    Returns
    -------
    pandas.DataFrame
        A fresh copy: ``gene_id``, ``symbol``, ``control_mean``, ``level`` (sums to 1),
        sorted by ``level`` descending then ``gene_id`` (the bulk order, also after
        rescaling).

    Raises
    ------
    DataError
        ``mito_fraction`` is outside [0, 1).
    """
    levels = _read_gene_levels().copy()
    if mito_fraction is None:
        return levels
    if not 0.0 <= mito_fraction < 1.0:
        raise DataError(f"mito_fraction must lie in [0, 1); got {mito_fraction}")
    mito = levels["symbol"].str.startswith("MT-").to_numpy()
    mito_total = fsum(levels.loc[mito, "level"])
    nuclear_total = fsum(levels.loc[~mito, "level"])
    scale = np.where(
        mito,
        mito_fraction / mito_total if mito_total > 0 else 0.0,
        (1.0 - mito_fraction) / nuclear_total,
    )
    levels["level"] = levels["level"].to_numpy() * scale
    return levels


def celltype_table() -> pd.DataFrame:
    """The shipped cell-type table (see :func:`derive_celltype_table` for the columns).

    Returns
    -------
    pandas.DataFrame
        A fresh copy, one row per simulated cell type in the simulator's order.
    """
    return _read_celltype_table().copy()


def celltype_proportions(composition: Literal["m1", "tissue"] = "m1") -> dict[str, float]:
    """Cell-type shares of a named composition, renormalised to sum to exactly 1.

    Parameters
    ----------
    composition
        ``"m1"`` (default): the HCA M1 file's, 90 % neurons (FACS-sorted nuclei).
        ``"tissue"``: the tissue-like census of Bakken et al. 2021 (about 62 % neurons).

    Returns
    -------
    dict of str to float
        Cell type -> share, in the simulator's order.

    Raises
    ------
    DataError
        ``composition`` is not one of :data:`COMPOSITIONS`.
    """
    if composition not in COMPOSITIONS:
        raise DataError(f"unknown composition {composition!r}; use one of {sorted(COMPOSITIONS)}")
    table = _read_celltype_table()
    shares = table[COMPOSITIONS[composition]].astype(float)
    total = fsum(shares)
    return {t: float(s) / total for t, s in zip(table["cell_type"], shares, strict=True)}


def celltype_depths() -> dict[str, float]:
    """UMI depth per nucleus of each simulated cell type (Siletti 2023, see the module doc).

    Returns
    -------
    dict of str to float
        Cell type -> UMIs per nucleus, in the simulator's order.
    """
    table = _read_celltype_table()
    return {t: float(d) for t, d in zip(table["cell_type"], table["umi_depth"], strict=True)}


def locate_genes(names: Iterable[str], table: pd.DataFrame) -> tuple[list[int], list[str]]:
    """Rows of a gene-level table for gene names, and the names that are not real genes there.

    Parameters
    ----------
    names
        Gene symbols (case-insensitive) or Ensembl ids. A symbol borne by several genes gives
        its most expressed one (the table is sorted by level).
    table
        A gene-level table (:func:`gene_levels`).

    Returns
    -------
    positions, absent
        Sorted distinct row positions of the names found; the names not found, in input order.
    """
    positions = np.arange(len(table))
    symbols = table["symbol"].astype(str).str.upper().to_numpy()
    by_symbol = pd.Series(positions, index=symbols)
    by_symbol = by_symbol[~by_symbol.index.duplicated(keep="first")]
    by_id = pd.Series(positions, index=table["gene_id"].astype(str).str.upper().to_numpy())
    keep: set[int] = set()
    absent: list[str] = []
    for name in dict.fromkeys(str(g).strip() for g in names):
        key = name.upper()
        if key in by_id.index:
            keep.add(int(by_id[key]))
        elif key in by_symbol.index:
            keep.add(int(by_symbol[key]))
        else:
            absent.append(name)
    return sorted(keep), absent


def select_genes(
    n_genes: int, required: Iterable[str] = (), levels: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Pick a gene panel: every required gene that is a real gene, then the most expressed.

    Parameters
    ----------
    n_genes
        Panel size. When it exceeds the table, the whole table is returned (the caller adds
        filler genes for the rest).
    required
        Gene symbols (case-insensitive) or Ensembl ids that must be in the panel: markers and
        gene-set genes. Names absent from the table are not real genes here and are left out
        (logged); a symbol borne by several genes brings its most expressed one.
    levels
        A gene-level table as returned by :func:`gene_levels`; default the shipped one.

    Returns
    -------
    pandas.DataFrame
        The chosen rows in the table's order (``level`` descending).

    Raises
    ------
    DataError
        ``n_genes`` is below 1 or below the number of required genes found.
    """
    if n_genes < 1:
        raise DataError(f"n_genes must be >= 1; got {n_genes}")
    table = gene_levels() if levels is None else levels
    if n_genes >= len(table):
        return table.copy()
    keep, absent = locate_genes(required, table)
    if absent:
        log.info("%d required gene(s) not in the reference table: %s", len(absent), absent[:10])
    if len(keep) > n_genes:
        raise DataError(
            f"{len(keep)} required genes are real genes but the panel holds only {n_genes}; "
            "raise the number of genes"
        )
    chosen = np.zeros(len(table), dtype=bool)
    chosen[keep] = True
    chosen[np.flatnonzero(~chosen)[: n_genes - len(keep)]] = True
    return table[chosen].copy()
