"""Seeded, proportional choices of cells: whole-number shares and stratified draws.

:func:`choose_cells` is the one draw behind both subsampling paths (in memory,
:func:`latentshift.data.load.subsample`, and reading only the sampled rows of a file,
:func:`latentshift.data.h5ad.read_h5ad_sample`), so both pick the same cells;
:func:`largest_remainder` also gives the simulator its cell-type counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from latentshift.errors import DataError


def largest_remainder(weights: np.ndarray, total: int, minimum: int = 0) -> np.ndarray:
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
        take = largest_remainder(sizes, n_cells)
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
