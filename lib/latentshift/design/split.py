"""The train/test split of the perturbed cells, grouped by source cell.

Each disease copy is made from a normal cell, so a copy and its source share everything but
the shifted genes. :func:`assign_split` draws the split over *source cells* (stratified by cell
type; :func:`latentshift.design.folds.held_out_fraction`), so all copies of a cell sit on the same side; ``grouped=False`` gives the original
study's plain split, stratified by condition, for comparison. :func:`split_counts` tabulates it.
"""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd

from latentshift.design.folds import held_out_cells, held_out_fraction
from latentshift.errors import PerturbError

log = logging.getLogger(__name__)


def assign_split(
    adata: ad.AnnData,
    train_fraction: float = 0.7,
    grouped: bool = True,
    seed: int = 0,
    condition_column: str = "condition",
    group_column: str = "source_cell",
    cell_type_column: str = "cell_type",
) -> pd.Series:
    """Train/test split of the perturbed data.

    Parameters
    ----------
    adata
        From :func:`make_perturbed`.
    train_fraction
        Fraction of cells for training.
    grouped
        ``True``: all copies of a source cell go to the same side, so a classifier is never
        tested on a copy of a cell it was trained on. Source cells are chosen stratified by
        cell type (``round(train_fraction × n)`` per type); since every source cell appears
        once in every condition, each condition gets the same fraction. ``False``: the
        original study's plain split, sklearn ``train_test_split`` stratified by condition.
    seed
        Seed.
    condition_column, group_column, cell_type_column
        The ``obs`` columns used.

    Returns
    -------
    pandas.Series
        ``"train"`` / ``"test"`` per cell (categorical), indexed like ``adata.obs``.
    """
    if not 0 < train_fraction < 1:
        raise PerturbError(
            f"split.train_fraction must be strictly between 0 and 1, got {train_fraction}."
        )
    obs = adata.obs
    if grouped:
        strata = obs[cell_type_column] if cell_type_column in obs.columns else None
        is_train = held_out_fraction(obs[group_column], strata, train_fraction, seed)
        n_units = obs[group_column].nunique()
        if is_train.all() or not is_train.any():
            side = "test" if is_train.all() else "training"
            raise PerturbError(
                f"split: a class has too few cells for the split — {n_units} source cell(s) with "
                f"split.train_fraction {train_fraction} leave the {side} side empty, so nothing could be "
                "trained or tested. Use more cells (raise data.n_cells; a few hundred at least) or a "
                "split.train_fraction nearer 0.5."
            )
        if strata is not None:
            per_type = (
                obs.drop_duplicates(group_column)[cell_type_column].astype(str).value_counts()
            )
            lonely = per_type.index[per_type < 2]
            if len(lonely):
                log.warning(
                    "split: cell type(s) %s have a single source cell, so they sit on one side of "
                    "the split only; raise data.n_cells to have them on both sides.",
                    ", ".join(map(str, lonely)),
                )
    else:
        labels = obs[condition_column].astype(str).to_numpy()
        try:
            is_train = held_out_cells(labels, train_fraction, seed)
        except ValueError as exc:
            counts = pd.Series(labels).value_counts()
            raise PerturbError(
                f"split: a class has too few cells for the split (smallest condition: "
                f"'{counts.index[-1]}' with {counts.iloc[-1]} cell(s); {exc}). Use more cells (raise "
                "data.n_cells) or a split.train_fraction nearer 0.5."
            ) from exc
    split = pd.Series(np.where(is_train, "train", "test"), index=obs.index, name="split")
    return split.astype(pd.CategoricalDtype(["train", "test"]))


def split_counts(
    adata: ad.AnnData, split_column: str = "split", condition_column: str = "condition"
) -> pd.DataFrame:
    """Cells per condition and split side (rows: conditions; columns: train, test, total)."""
    table = pd.crosstab(adata.obs[condition_column], adata.obs[split_column])
    table = table.reindex(columns=["train", "test"], fill_value=0)
    table["total"] = table.sum(axis=1)
    table.columns.name = None
    return table
