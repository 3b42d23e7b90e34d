"""The checked inputs of a per-cell-type shift analysis.

Shared by :mod:`latentshift.readings.detectability` (Augur-style AUC) and :mod:`latentshift.readings.edistance`
(E-test): a representation aligned with its cells (:func:`as_latent`), the columns it needs
(:func:`check_obs`), the conditions and cell types to test (:func:`resolve_conditions`,
:func:`tested_cell_types`). Their units, pairs, folds and null come from
:mod:`latentshift.design.units`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from latentshift.errors import CellTypeShiftError


def as_latent(Z: Any, n_obs: int, name: str = "Z") -> np.ndarray:
    arr = np.asarray(Z, dtype=np.float64)
    if arr.ndim != 2:
        raise CellTypeShiftError(
            f"{name} must be a 2-d array (cells x dimensions), got shape {arr.shape}."
        )
    if arr.shape[0] != n_obs:
        raise CellTypeShiftError(
            f"{name} has {arr.shape[0]} rows but obs has {n_obs}; pass the representation of the "
            "same cells, in the same order (e.g. adata.obsm['X_ldvae'] with adata.obs)."
        )
    if not np.isfinite(arr).all():
        raise CellTypeShiftError(
            f"{name} holds NaN or infinite values; check the representation upstream."
        )
    return arr


def check_obs(obs: pd.DataFrame, columns: Sequence[str]) -> None:
    if not isinstance(obs, pd.DataFrame):
        raise CellTypeShiftError(f"obs must be a pandas DataFrame, got {type(obs).__name__}.")
    missing = [c for c in columns if c not in obs.columns]
    if missing:
        raise CellTypeShiftError(
            f"obs has no column(s) {missing}; they are written by 02_perturb (condition, "
            "source_cell, perturbed) and 01_data (cell_type). Rerun those steps or pass the key names."
        )


def resolve_conditions(
    obs: pd.DataFrame, conditions: Sequence[str] | None, reference: str, condition_key: str
) -> list[str]:
    values = obs[condition_key]
    present = [str(c) for c in pd.unique(values.astype(str))]
    if isinstance(values.dtype, pd.CategoricalDtype):
        present = [str(c) for c in values.cat.categories if str(c) in set(present)]
    if reference not in present:
        raise CellTypeShiftError(
            f"the reference condition '{reference}' is not in obs['{condition_key}'] "
            f"(present: {present}); pass reference=... naming the normal cells."
        )
    if conditions is None:
        out = [c for c in present if c != reference]
    else:
        out = [str(c) for c in conditions]
        unknown = [c for c in out if c not in present]
        if unknown:
            raise CellTypeShiftError(
                f"condition(s) {unknown} not in obs['{condition_key}'] (present: {present})."
            )
        if reference in out:
            raise CellTypeShiftError(
                f"the reference '{reference}' cannot also be a condition to test."
            )
    if not out:
        raise CellTypeShiftError(
            f"obs['{condition_key}'] holds only '{reference}'; there is no condition to test."
        )
    return out


def tested_cell_types(obs: pd.DataFrame, cell_type_key: str) -> list[str]:
    values = obs[cell_type_key]
    if isinstance(values.dtype, pd.CategoricalDtype):
        used = set(values.astype(str))
        return [str(c) for c in values.cat.categories if str(c) in used]
    return sorted(str(c) for c in pd.unique(values.astype(str)))
