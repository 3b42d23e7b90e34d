"""How a data set compares with the published human M1 nuclei: the fidelity table of 01_data.

:func:`fidelity_table` measures a data set — simulated or a user's file — the way the published
figures were measured and puts both side by side with their sources: UMIs per nucleus per
class, the neuron fraction, genes detected per nucleus, the fraction of zeros and the
mean–variance relation (:func:`dispersion_trend`: the negative-binomial inverse dispersion θ
fitted per gene within one cell type, as scvi-tools' ``dispersion="gene"`` assumes one θ per
gene). Rows without a published figure in the shipped reference tables say so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from latentshift.data import reference
from latentshift.data.counts import counts_matrix, row_sums

if TYPE_CHECKING:
    from anndata import AnnData

#: Non-neuronal superclusters of the Siletti 2023 atlas (the ``supercluster_term`` of a real
#: CELLxGENE file): a cell in any other supercluster counts as a neuron.
NON_NEURONAL_SUPERCLUSTERS: frozenset[str] = frozenset(
    {
        "Astrocyte",
        "Oligodendrocyte",
        "Oligodendrocyte precursor",
        "Committed oligodendrocyte precursor",
        "Microglia",
        "Vascular",
        "Fibroblast",
        "Ependymal",
        "Choroid plexus",
        "Bergmann glia",
        "Miscellaneous non-neuronal",
    }
)
#: Genes with at least this mean count in the cell type enter the dispersion fit.
MIN_MEAN_FOR_DISPERSION = 0.1
#: At most this many cells of the cell type enter the dispersion fit.
MAX_CELLS_FOR_DISPERSION = 2000
NOT_PUBLISHED = "not in the shipped reference tables"


#: Cell Ontology labels (CELLxGENE's ``cell_type``) of non-neuronal brain cells, lower case.
NON_NEURONAL_LABELS: frozenset[str] = frozenset(
    {
        "astrocyte",
        "oligodendrocyte",
        "oligodendrocyte precursor cell",
        "microglial cell",
        "macrophage",
        "endothelial cell",
        "capillary endothelial cell",
        "pericyte",
        "smooth muscle cell",
        "vascular leptomeningeal cell",
        "fibroblast",
        "ependymal cell",
        "choroid plexus epithelial cell",
        "bergmann glial cell",
        "leukocyte",
        "t cell",
    }
)


def classify_neurons(obs: pd.DataFrame) -> tuple[np.ndarray | None, list[str]]:
    """Which cells are neurons, only where the data say so.

    From ``cell_class`` (the simulator), else ``supercluster_term`` (the M1 atlas files), else
    ``cell_type`` when **every** label names its class: an M1 type of the shipped reference
    table (``L2/3 IT``, ``Astro``, …), a label naming a neuron (``… neuron``, ``… interneuron``)
    or a non-neuronal Cell Ontology label (:data:`NON_NEURONAL_LABELS`).

    Returns
    -------
    mask, unclassified
        The neuron mask, or ``None`` when the data cannot tell (no such column, or labels that
        name no class); and the labels that could not be classified (sorted).
    """
    if "cell_class" in obs:
        return (obs["cell_class"].astype(str) != "Non-neuronal").to_numpy(), []
    if "supercluster_term" in obs:
        terms = obs["supercluster_term"].astype(str)
        return (~terms.isin(NON_NEURONAL_SUPERCLUSTERS)).to_numpy(), []
    if "cell_type" not in obs:
        return None, []
    table = reference.celltype_table()
    known = dict(zip(table["cell_type"].str.lower(), table["cell_class"], strict=True))
    classes: dict[str, bool] = {}
    unclassified = []
    for label in pd.unique(obs["cell_type"].astype(str)):
        low = label.strip().lower()
        if low in known:
            classes[label] = known[low] != "Non-neuronal"
        elif "neuron" in low:
            classes[label] = True
        elif low in NON_NEURONAL_LABELS:
            classes[label] = False
        else:
            unclassified.append(label)
    if unclassified:
        return None, sorted(unclassified)
    return obs["cell_type"].astype(str).map(classes).to_numpy(dtype=bool), []


def describes_m1(obs: pd.DataFrame) -> bool:
    """Whether the published M1 reference describes these cells: simulated M1 cells, an M1 atlas
    file, or cell types that are the reference table's M1 types or neurons. Blood cells, say,
    are not compared with motor-cortex nuclei (01 then shows no fidelity table or M1 markers)."""
    if "cell_class" in obs or "supercluster_term" in obs:
        return True
    if "cell_type" not in obs:
        return False
    table = reference.celltype_table()
    m1 = set(table["cell_type"].str.lower())
    labels = {str(v).strip().lower() for v in pd.unique(obs["cell_type"].astype(str))}
    return bool(labels & m1) or any("neuron" in v for v in labels)


def _published_class_depths() -> dict[str, float]:
    """Cell-weighted UMI depth per class in the M1 composition, from the shipped table."""
    table = reference.celltype_table()
    out = {}
    for cls in ("Glutamatergic", "GABAergic"):
        part = table[table["cell_class"] == cls]
        w = part["m1_proportion"].astype(float)
        out[cls] = float((part["umi_depth"].astype(float) * w).sum() / w.sum())
    return out


def dispersion_trend(
    adata: AnnData,
    cell_type_key: str = "cell_type",
    layer: str | None = "counts",
    max_cells: int = MAX_CELLS_FOR_DISPERSION,
) -> dict[str, Any]:
    """The NB inverse dispersion θ per gene, fitted by moments within the largest cell type.

    Within one cell type the counts of a gene are close to negative binomial: variance
    ``μ + μ²/θ``, so ``θ = μ² / (variance − μ)`` for genes whose variance exceeds the mean.
    Mixing types would inflate the variance, so the fit uses the most abundant type only, and
    at most ``max_cells`` of its cells (evenly spaced, so the result is deterministic and the
    memory bounded at atlas scale).

    Returns
    -------
    dict
        ``cell_type``, ``n_genes`` (genes fitted), ``theta_median``, ``theta_q25``,
        ``theta_q75``, and the per-gene ``mean`` / ``variance`` arrays (for the figure).
    """
    counts = sp.csr_matrix(counts_matrix(adata, layer))
    labels = adata.obs[cell_type_key].astype(str)
    largest = labels.value_counts().index[0]
    rows = np.flatnonzero((labels == largest).to_numpy())
    if len(rows) > max_cells:
        rows = rows[np.linspace(0, len(rows) - 1, max_cells).astype(int)]
    sub = counts[rows].astype(np.float64)
    mean = np.asarray(sub.mean(axis=0)).ravel()
    sq = sub.multiply(sub)
    var = np.asarray(sq.mean(axis=0)).ravel() - mean**2
    var *= len(rows) / max(1, len(rows) - 1)
    use = (mean >= MIN_MEAN_FOR_DISPERSION) & (var > mean)
    theta = mean[use] ** 2 / (var[use] - mean[use])
    q25, q50, q75 = np.quantile(theta, [0.25, 0.5, 0.75]) if theta.size else (np.nan,) * 3
    return {
        "cell_type": largest,
        "n_cells": int(len(rows)),
        "n_genes": int(use.sum()),
        "theta_median": float(q50),
        "theta_q25": float(q25),
        "theta_q75": float(q75),
        "mean": mean,
        "variance": var,
    }


def fidelity_metrics(adata: AnnData, layer: str | None = "counts") -> dict[str, Any]:
    """The measured side of the fidelity table (plain numbers for ``metrics.json``).

    Returns
    -------
    dict
        ``median_umis_neurons``, ``median_umis_glutamatergic``, ``median_umis_gabaergic``,
        ``median_umis_non_neurons``, ``neuron_fraction``, ``median_genes_neurons``,
        ``median_genes_non_neurons``, ``fraction_zeros``, ``theta_median`` (and its quartiles
        and cell type); ``None`` where the data cannot tell (no neuron annotation, or
        labels that name no class: listed in ``unclassified_labels``).
    """
    counts = sp.csr_matrix(counts_matrix(adata, layer))
    totals = row_sums(counts)
    genes = np.diff(counts.indptr)
    neuron, unclassified = classify_neurons(adata.obs)

    def med(values: np.ndarray, mask: np.ndarray | None) -> float | None:
        if mask is None or not mask.any():
            return None
        return float(np.median(values[mask]))

    cls = adata.obs["cell_class"].astype(str).to_numpy() if "cell_class" in adata.obs else None
    trend = dispersion_trend(adata, layer=layer)
    size = counts.shape[0] * counts.shape[1]
    return {
        "median_umis_neurons": med(totals, neuron),
        "median_umis_glutamatergic": med(totals, None if cls is None else cls == "Glutamatergic"),
        "median_umis_gabaergic": med(totals, None if cls is None else cls == "GABAergic"),
        "median_umis_non_neurons": med(totals, None if neuron is None else ~neuron),
        "neuron_fraction": None if neuron is None else float(neuron.mean()),
        "median_genes_neurons": med(genes.astype(float), neuron),
        "median_genes_non_neurons": med(genes.astype(float), None if neuron is None else ~neuron),
        "fraction_zeros": float(1 - counts.nnz / size) if size else None,
        "theta_median": trend["theta_median"],
        "theta_q25": trend["theta_q25"],
        "theta_q75": trend["theta_q75"],
        "theta_cell_type": trend["cell_type"],
        "unclassified_labels": unclassified,
    }


def fidelity_table(measured: dict[str, Any], n_genes: int) -> pd.DataFrame:
    """Measured vs published, side by side, with the sources.

    Parameters
    ----------
    measured
        :func:`fidelity_metrics`.
    n_genes
        Genes in the data (UMIs per nucleus are over these genes; the published figures are
        transcriptome-wide).

    Returns
    -------
    pandas.DataFrame
        Index: the measure; columns ``this data``, ``published``, ``ratio`` (this / published)
        and ``source``.
    """
    depth = _published_class_depths()
    siletti = "Siletti et al. 2023, cluster table ('Total UMI', cell-weighted)"
    facs = "Siletti et al. 2023, M1C samples (FACS: expected non-neuronal 0.1)"
    rows = [
        (
            "UMIs per nucleus, neurons (median)",
            measured["median_umis_neurons"],
            reference.NEURON_UMI_DEPTH,
            siletti,
        ),
        (
            "UMIs per nucleus, glutamatergic (median)",
            measured["median_umis_glutamatergic"],
            depth["Glutamatergic"],
            siletti + ", M1 composition",
        ),
        (
            "UMIs per nucleus, GABAergic (median)",
            measured["median_umis_gabaergic"],
            depth["GABAergic"],
            siletti + ", M1 composition",
        ),
        (
            "UMIs per nucleus, non-neurons (median)",
            measured["median_umis_non_neurons"],
            reference.NON_NEURON_UMI_DEPTH,
            siletti,
        ),
        ("neuron fraction", measured["neuron_fraction"], reference.M1_NEURON_FRACTION, facs),
        (
            "genes detected per nucleus, neurons (median)",
            measured["median_genes_neurons"],
            None,
            NOT_PUBLISHED,
        ),
        (
            "genes detected per nucleus, non-neurons (median)",
            measured["median_genes_non_neurons"],
            None,
            NOT_PUBLISHED,
        ),
        (f"fraction of zeros ({n_genes:,} genes)", measured["fraction_zeros"], None, NOT_PUBLISHED),
        (
            f"NB inverse dispersion θ, median over genes ({measured['theta_cell_type']})",
            measured["theta_median"],
            None,
            NOT_PUBLISHED,
        ),
    ]
    unclassified = measured.get("unclassified_labels") or []
    if unclassified:  # the rows that need the neuron split say why they are empty
        shown = ", ".join(unclassified[:8]) + (", …" if len(unclassified) > 8 else "")
        why = f"unknown: labels that name no class ({shown})"
        rows = [(r[0], r[1], r[2], why) if r[1] is None and "neuron" in r[0] else r for r in rows]
    table = pd.DataFrame(rows, columns=["measure", "this data", "published", "source"])
    ratio = [
        m / p if m is not None and p else np.nan
        for m, p in zip(table["this data"], table["published"], strict=True)
    ]
    table.insert(3, "ratio", ratio)
    return table.set_index("measure")
