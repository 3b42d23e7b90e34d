"""Folds that never split a unit: the one place a grouped k-fold is built.

Every reading's split comes from here, given the design's :class:`latentshift.design.units.Units`:

- :func:`group_kfold` — scikit-learn's :class:`~sklearn.model_selection.StratifiedGroupKFold`,
  constructed nowhere else: rows of one group (a unit) always share a fold;
- :func:`unit_folds` — whole units dealt into leave-units-out folds, stratified by condition
  when the conditions sit between units (each training side keeps every condition);
- :func:`held_out_fraction` — a training side of a fraction of the units, per stratum (02's
  split of the source cells);
- :func:`cell_folds` and :func:`held_out_cells` — cells dealt regardless of their unit:
  **the leak**, kept only to measure it;
- :class:`Folds` carries a split to the readings (which folds are scored) and deals it again
  for a relabelled design (:meth:`Folds.redeal`), so that a null draw is always a valid draw of
  the design; :func:`folds_of` reads the split 02 recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from latentshift.design.units import Units
from latentshift.errors import DesignError

log = logging.getLogger(__name__)

__all__ = [
    "Folds",
    "cell_folds",
    "folds_of",
    "group_kfold",
    "held_out_cells",
    "held_out_fraction",
    "unit_folds",
    "units_across",
]


def group_kfold(
    labels: Sequence[Any] | np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    n_folds: int,
    seed: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds that never split a group: the one place a grouped k-fold is built.

    Parameters
    ----------
    labels
        Label per row (the stratification target; a constant when there is none).
    groups
        Group per row: all rows of a group land in the same fold.
    n_folds
        Number of folds (2 … number of groups).
    seed
        Seed of scikit-learn's :class:`~sklearn.model_selection.StratifiedGroupKFold`
        (``shuffle=True``).

    Returns
    -------
    list of (train_index, test_index)
        Integer positions; every row is in exactly one test part.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    if labels.shape != groups.shape or labels.ndim != 1:
        raise DesignError("labels and groups must be 1-d and equally long.")
    n_groups = np.unique(groups).size
    if n_folds < 2 or n_groups < n_folds:
        raise DesignError(
            f"n_folds must be between 2 and the number of groups ({n_groups}), got {n_folds}."
        )
    cv = StratifiedGroupKFold(n_splits=int(n_folds), shuffle=True, random_state=int(seed))
    return list(cv.split(np.zeros(labels.size), labels, groups))


def unit_folds(units: Units, n_folds: int = 4, seed: int = 0) -> np.ndarray:
    """Leave-units-out folds: whole units dealt into folds, stratified by condition when unpaired.

    Parameters
    ----------
    units
        The design.
    n_folds
        Folds asked for; lowered (with a log line) to the number of units in the smallest
        condition (unpaired) or of units (paired), so that every fold holds out a unit of every
        condition and every training side keeps one.
    seed
        Seed of :func:`group_kfold`.

    Returns
    -------
    numpy.ndarray
        The fold (0 … k-1) in which each cell is held out; all cells of a unit share it.
    """
    # one row per unit, in order of first appearance: the folds are dealt over units
    first = pd.Series(units.unit).drop_duplicates()
    table = pd.DataFrame(
        {"unit": first.to_numpy(), "stratum": units.condition[first.index.to_numpy()]}
    )
    if units.paired:
        table["stratum"] = ""
        smallest = len(table)
    else:
        smallest = int(table["stratum"].value_counts().min())
    if smallest < 2:
        raise DesignError(
            f"leave-{units.name}s-out folds need at least 2 {units.name}s"
            + ("" if units.paired else " in every condition")
            + f"; one has {smallest}."
        )
    k = min(int(n_folds), smallest)
    if k < n_folds:
        log.info(
            "%s folds: %d asked, %d %ss %s: %d folds",
            units.name,
            n_folds,
            smallest,
            units.name,
            "in all" if units.paired else "in the smallest condition",
            k,
        )
    fold_of_unit = np.empty(len(table), dtype=np.int64)
    for fold, (_, test) in enumerate(group_kfold(table["stratum"], table["unit"], k, seed)):
        fold_of_unit[test] = fold
    if not units.paired:
        per_fold = pd.crosstab(fold_of_unit, table["stratum"].to_numpy())
        if (per_fold.nunique(axis=0) > 1).any():
            log.warning(
                "%s folds: the folds hold unequal numbers of a condition's %ss (%s). A fold that "
                "holds out more %ss of one condition leaves fewer of them to train on, which "
                "pulls held-out accuracy below chance when %ss differ strongly. When they divide "
                "evenly, choose case_control.n_folds so that every fold holds the same number of "
                "each condition's %ss (e.g. 6 folds of 1 + 1 for 6 against 6).",
                units.name,
                units.name,
                "; ".join(f"{c}: {', '.join(map(str, v))}" for c, v in per_fold.items()),
                units.name,
                units.name,
                units.name,
            )
    lookup = pd.Series(fold_of_unit, index=table["unit"].to_numpy())
    return lookup.loc[units.unit].to_numpy()


def cell_folds(
    conditions: Sequence[Any] | np.ndarray, n_folds: int = 4, seed: int = 0
) -> np.ndarray:
    """Cell-level folds stratified by condition — units cross the split: **the leak**, kept
    only to measure it.

    Returns
    -------
    numpy.ndarray
        The fold in which each cell is held out.
    """
    conditions = np.asarray(conditions).astype(str)
    cv = StratifiedKFold(n_splits=int(n_folds), shuffle=True, random_state=int(seed))
    folds = np.empty(conditions.size, dtype=np.int64)
    for fold, (_, test) in enumerate(cv.split(np.zeros(conditions.size), conditions)):
        folds[test] = fold
    return folds


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


def held_out_fraction(
    unit: Sequence[Any] | np.ndarray,
    strata: Sequence[Any] | np.ndarray | None,
    train_fraction: float,
    seed: int = 0,
) -> np.ndarray:
    """A training side of ``train_fraction`` of the units, chosen per stratum (e.g. cell type).

    Parameters
    ----------
    unit
        The unit of each cell.
    strata
        The stratum of each cell (a unit's first cell gives it); ``None``: one stratum.
        ``round(train_fraction × n)`` units of each stratum train.
    train_fraction
        Share of units on the training side.
    seed
        Seed.

    Returns
    -------
    numpy.ndarray
        True for the cells of training units.
    """
    groups = np.asarray(unit).astype(str)
    unique, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    if strata is None:
        per_unit = np.zeros(unique.size, dtype=int)
    else:
        per_unit = np.asarray(strata).astype(str)[first]
    chosen = _stratified_choice(per_unit, train_fraction, np.random.default_rng(seed))
    return chosen[inverse]  # (np.isin on strings took minutes at 343.8k cells)


def held_out_cells(
    conditions: Sequence[Any] | np.ndarray, train_fraction: float, seed: int = 0
) -> np.ndarray:
    """A training side of ``train_fraction`` of the cells, stratified by condition, regardless of
    their units — the original study's plain split, **the leak** (``split.grouped: false``).

    Returns
    -------
    numpy.ndarray
        True for the training cells.

    Raises
    ------
    ValueError
        scikit-learn's, when a condition has too few cells for the split.
    """
    labels = np.asarray(conditions).astype(str)
    train_idx, _ = train_test_split(
        np.arange(labels.size), train_size=train_fraction, stratify=labels, random_state=seed
    )
    is_train = np.zeros(labels.size, dtype=bool)
    is_train[train_idx] = True
    return is_train


def units_across(folds: np.ndarray, unit: Sequence[Any] | np.ndarray) -> int:
    """How many units have cells in more than one fold (0 for a split by unit)."""
    table = pd.crosstab(np.asarray(unit).astype(str), np.asarray(folds))
    return int(((table > 0).sum(axis=1) > 1).sum())


@dataclass(frozen=True)
class Folds:
    """A split of the cells, as the readings score it.

    Attributes
    ----------
    fold
        The fold of each cell.
    scored
        The folds whose cells are scored, each by a model trained on the other folds: every
        fold for k-fold splits, the test fold (0) for a held-out fraction.
    scheme
        ``"units"`` (leave-units-out folds), ``"held-out"`` (a held-out fraction of the units:
        fold 0 tests, fold 1 trains) or ``"cells"`` (cell-level folds: the leak).
    n_folds, seed
        How the folds were dealt (to deal them again for a relabelled design).
    """

    fold: np.ndarray
    scored: tuple[int, ...]
    scheme: str
    n_folds: int
    seed: int = 0

    @property
    def scored_mask(self) -> np.ndarray:
        return np.isin(self.fold, self.scored)

    def redeal(self, units: Units) -> Folds:
        """The folds the same scheme deals for ``units`` (a relabelled design).

        A paired design's folds do not depend on the labels, nor does a held-out fraction
        chosen by stratum; unit folds of an unpaired design are stratified by condition, and
        cell folds by the cells' conditions, so those are dealt again: a relabelling then never
        leaves a training side with a single condition.
        """
        if self.scheme == "cells":
            return replace(self, fold=cell_folds(units.condition, self.n_folds, self.seed))
        if self.scheme == "units" and not units.paired:
            return replace(self, fold=unit_folds(units, self.n_folds, self.seed))
        return self

    def problems(self, condition: np.ndarray) -> dict[int, str]:
        """Why a scored fold cannot be scored with ``condition`` (it holds no cells, or its
        training side lacks a condition, which its model could then never predict), by fold;
        empty when every fold can be."""
        out = {}
        every = set(np.unique(condition))
        for f in self.scored:
            test = self.fold == f
            missing = sorted(every - set(np.unique(condition[~test])))
            if not test.any():
                out[f] = f"fold {f} holds no cells"
            elif missing:
                out[f] = f"the training side of fold {f} holds no '{', '.join(missing)}' cell"
        return out

    def problem(self, condition: np.ndarray) -> str | None:
        """The first of :meth:`problems`, or ``None``."""
        found = self.problems(condition)
        return next(iter(found.values())) if found else None

    def without(self, folds: Sequence[int]) -> Folds:
        """The same split with some folds no longer scored."""
        return replace(self, scored=tuple(f for f in self.scored if f not in set(folds)))


def folds_of(obs: pd.DataFrame, design: dict[str, Any] | None = None) -> Folds:
    """The split 02_perturb made: ``obs["fold"]`` (k-fold) or ``obs["split"]`` (held out).

    Parameters
    ----------
    obs
        Cells with ``fold`` (leave-units-out or cell folds) or ``split`` (``train``/``test``).
    design
        ``uns["design"]`` (``split``: ``"units"``/``"cells"``, ``n_folds``, ``seed``).
    """
    design = dict(design or {})
    if "fold" in obs.columns:
        fold = obs["fold"].to_numpy(dtype=np.int64)
        scored = tuple(int(f) for f in np.unique(fold))
        scheme = "cells" if design.get("split") == "cells" else "units"
        n_folds = int(design.get("n_folds_asked", design.get("n_folds", len(scored))))
        return Folds(fold, scored, scheme, n_folds, int(design.get("seed", 0)))
    if "split" not in obs.columns:
        raise DesignError(
            "obs has neither 'fold' nor 'split'; 02_perturb writes the split — rerun it."
        )
    fold = np.where(obs["split"].astype(str).to_numpy() == "test", 0, 1)
    return Folds(fold, (0,), "held-out", 2, int(design.get("seed", 0)))
