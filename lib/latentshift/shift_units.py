"""The units of a per-cell-type shift analysis: which cells are compared, and their seeds.

Shared by :mod:`latentshift.detectability` (Augur-style AUC) and :mod:`latentshift.edistance`
(E-test): the checked inputs (:func:`as_latent`, :func:`check_obs`), the conditions and cell
types to test (:func:`resolve_conditions`, :func:`tested_cell_types`), the (normal cell, copy) pairs of
each source cell (:func:`source_pairs`) and a random stream per (condition, cell type) that
depends on the seed and the names alone (:func:`unit_rng`), so several representations are
compared on the very same draws.
"""

from __future__ import annotations

import zlib
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


def unit_rng(seed: int, *names: str) -> np.random.Generator:
    """The random generator of one unit of analysis, e.g. one (condition, cell type).

    Derived from ``seed`` and a CRC-32 of the names (stable across runs and platforms,
    unlike :func:`hash`), so the draws of one unit do not depend on which other units are
    analysed, and every representation sees the same draws.

    Parameters
    ----------
    seed
        A non-negative integer.
    *names
        Strings naming the unit.

    Returns
    -------
    numpy.random.Generator
    """
    if int(seed) < 0:
        raise CellTypeShiftError(f"seed must be a non-negative integer, got {seed}.")
    key = zlib.crc32("\x1f".join(names).encode("utf-8"))
    return np.random.default_rng([int(seed), key])


def source_pairs(
    obs: pd.DataFrame,
    condition: str,
    *,
    reference: str = "normal",
    condition_key: str = "condition",
    cell_type_key: str = "cell_type",
    group_key: str = "source_cell",
    perturbed_key: str = "perturbed",
) -> pd.DataFrame:
    """The complete (normal cell, condition copy) pairs, one row per source cell.

    Parameters
    ----------
    obs
        Per-cell annotations (one row per row of the representation).
    condition
        The condition whose copies are paired with their normal source cells.
    reference
        The value of ``obs[condition_key]`` marking the normal cells.
    condition_key, cell_type_key, group_key, perturbed_key
        Column names.

    Returns
    -------
    pandas.DataFrame
        Columns ``source_cell`` (as string), ``cell_type`` (the normal cell's), ``normal``
        and ``copy`` (row positions into ``obs``) and ``perturbed`` (the copy's flag), sorted
        by the normal cell's position. A source cell with several normal cells or several
        copies of the condition contributes its first of each. Source cells lacking either
        member are left out (they cannot be paired).
    """
    check_obs(obs, [condition_key, cell_type_key, group_key, perturbed_key])
    cond = obs[condition_key].astype(str).to_numpy()
    groups = obs[group_key].astype(str).to_numpy()
    pos = np.arange(len(obs))
    is_ref, is_cond = cond == reference, cond == condition
    ref = pd.DataFrame(
        {
            "source_cell": groups[is_ref],
            "cell_type": obs[cell_type_key].astype(str).to_numpy()[is_ref],
            "normal": pos[is_ref],
        }
    ).drop_duplicates("source_cell", keep="first")
    cp = pd.DataFrame(
        {
            "source_cell": groups[is_cond],
            "copy": pos[is_cond],
            "perturbed": obs[perturbed_key].to_numpy(dtype=bool)[is_cond],
        }
    ).drop_duplicates("source_cell", keep="first")
    pairs = ref.merge(cp, on="source_cell", how="inner").sort_values("normal", kind="stable")
    return pairs.reset_index(drop=True)
