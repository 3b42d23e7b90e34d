"""Checks on step 02's result: did the copies get the shift that was asked for?

- :func:`realised_fold_change`, :func:`realised_fold_changes` and :func:`fold_change_summary`
  compare each entry's realised fold change (touched cells against their source cells) with
  the requested one;
- :func:`library_sizes` and :func:`mean_expression` show what the shift did to the cells;
- :func:`perturb_metrics` writes the ``perturb`` section of ``metrics.json``.

The copies themselves are made by :func:`latentshift.perturb.shift.make_perturbed`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from latentshift.data.counts import counts_matrix, log_normalise_genes, row_sums
from latentshift.design.split import split_counts
from latentshift.errors import PerturbError


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
        From :func:`latentshift.perturb.shift.make_perturbed`.
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
        :func:`latentshift.perturb.shift.make_perturbed`'s result with ``obs["split"]``.
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
