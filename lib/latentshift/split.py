"""The train/test split of the perturbed cells, grouped by source cell.

Each disease copy is made from a normal cell, so a copy and its source share everything but
the shifted genes. :func:`assign_split` draws the split over *source cells* (stratified by cell
type), so all copies of a cell sit on the same side; ``grouped=False`` gives the original
study's plain split, stratified by condition, for comparison. :func:`split_counts` tabulates it.
"""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd

from latentshift.errors import PerturbError

log = logging.getLogger(__name__)


def _stratified_choice(
    labels: np.ndarray, train_fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Boolean 'train' per item, ``round(train_fraction × n)`` items per label, at random."""
    train = np.zeros(labels.size, dtype=bool)
    for label in pd.unique(labels):
        members = np.flatnonzero(labels == label)
        k = int(round(train_fraction * members.size))
        train[rng.choice(members, size=k, replace=False)] = True
    return train


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
    rng = np.random.default_rng(seed)
    if grouped:
        groups = obs[group_column].astype(str).to_numpy()
        unique, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
        if cell_type_column in obs.columns:
            strata = obs[cell_type_column].astype(str).to_numpy()[first]
        else:
            strata = np.zeros(unique.size, dtype=int)
        chosen = _stratified_choice(strata, train_fraction, rng)
        if chosen.all() or not chosen.any():
            side = "test" if chosen.all() else "training"
            raise PerturbError(
                f"split: a class has too few cells for the split — {unique.size} source cell(s) with "
                f"split.train_fraction {train_fraction} leave the {side} side empty, so nothing could be "
                "trained or tested. Use more cells (raise data.n_cells; a few hundred at least) or a "
                "split.train_fraction nearer 0.5."
            )
        types, n_per_type = np.unique(strata, return_counts=True)
        lonely = types[n_per_type < 2]
        if lonely.size:
            log.warning(
                "split: cell type(s) %s have a single source cell, so they sit on one side of the split "
                "only; raise data.n_cells to have them on both sides.",
                ", ".join(map(str, lonely)),
            )
        is_train = chosen[inverse]  # (np.isin on strings took minutes at 343.8k cells)
    else:
        from sklearn.model_selection import train_test_split

        idx = np.arange(adata.n_obs)
        labels = obs[condition_column].astype(str).to_numpy()
        try:
            train_idx, _ = train_test_split(
                idx, train_size=train_fraction, stratify=labels, random_state=seed
            )
        except ValueError as exc:
            counts = pd.Series(labels).value_counts()
            raise PerturbError(
                f"split: a class has too few cells for the split (smallest condition: "
                f"'{counts.index[-1]}' with {counts.iloc[-1]} cell(s); {exc}). Use more cells (raise "
                "data.n_cells) or a split.train_fraction nearer 0.5."
            ) from exc
        is_train = np.zeros(adata.n_obs, dtype=bool)
        is_train[train_idx] = True
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
