"""The unit that never crosses a split, and whether the conditions sit within it.

Every design latentshift runs asks the same questions with the same readings; what differs is
the **unit** — the group of cells that must stay on one side of every split — and whether the
conditions sit **within** each unit (*paired*) or **between** units (*unpaired*):

=========================  ===========  ==========  ======================================
design                     unit         conditions  the label null
=========================  ===========  ==========  ======================================
synthetic (02 copies)      source cell  within      labels permuted within each unit
case–control, unpaired     donor        between     whole units relabelled
case–control, paired       donor        within      labels permuted within each unit
=========================  ===========  ==========  ======================================

This module defines the design (:class:`Units`, built from the params and the data by
:func:`units_of` and :func:`from_adata`; :func:`resolve_paired` reads ``case_control.paired``),
and what a reading needs of it besides its folds and its null: the **bootstrap** over units
(:func:`bootstrap_samples`) and **per-unit scores** (:func:`unit_scores`: a held-out unit's
accuracy when paired, its call when unpaired). From the same :class:`Units`,
:mod:`latentshift.design.folds` deals the folds — whole units on one side, stratified by condition where
the conditions sit between units — and :mod:`latentshift.design.nulls` draws the label null, within
units or of whole units, enumerated exactly when it is small. One code path, every design.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from latentshift.errors import DesignError

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

__all__ = [
    "UNIT_KEYS",
    "UNIT_NAMES",
    "Units",
    "bootstrap_samples",
    "from_adata",
    "resolve_paired",
    "unit_scores",
    "unit_summary",
    "units_of",
]

#: The obs column holding each design's unit.
UNIT_KEYS: dict[str, str] = {"synthetic": "source_cell", "case_control": "donor_id"}
#: How a unit is named in sentences, by its obs column.
UNIT_NAMES: dict[str, str] = {"source_cell": "source cell", "donor_id": "donor"}

Pairing = bool | Literal["auto"]

#: Up to this many units are shown one by one on a page (figure and table); more are summarised.
UNITS_SHOWN = 40


# --- the units ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Units:
    """Each cell's unit and condition, and whether the conditions sit within the units.

    Attributes
    ----------
    unit
        The unit of each cell (strings): the cells of one unit never sit on both sides of a split.
    condition
        The condition of each cell (strings).
    labels
        The conditions, the reference (normal, control) first.
    paired
        True: every unit holds every condition (a cell and its copies; a donor before and
        after a stimulation). False: every unit holds one condition (a donor is a case or a
        control).
    name
        The unit in words (``"source cell"``, ``"donor"``).
    """

    unit: np.ndarray
    condition: np.ndarray
    labels: tuple[str, ...]
    paired: bool
    name: str = "unit"

    def __post_init__(self) -> None:
        if self.unit.shape != self.condition.shape or self.unit.ndim != 1:
            raise DesignError("units and conditions must be 1-d and equally long.")
        unknown = set(np.unique(self.condition)) - set(self.labels)
        if unknown:
            raise DesignError(f"condition(s) {sorted(unknown)} are not among {list(self.labels)}.")

    @property
    def reference(self) -> str:
        """The reference condition (normal, control)."""
        return self.labels[0]

    @property
    def n_units(self) -> int:
        return int(np.unique(self.unit).size)

    def __len__(self) -> int:
        return int(self.unit.size)

    def take(self, index: np.ndarray, drop_absent: bool = False) -> Units:
        """The units of some cells (positions or a boolean mask); ``drop_absent``: keep only
        the labels they hold (in order), e.g. a reference and one condition for a null."""
        unit, condition = self.unit[index], self.condition[index]
        labels = self.labels
        if drop_absent:
            present = set(np.unique(condition))
            labels = tuple(c for c in self.labels if c in present)
        return replace(self, unit=unit, condition=condition, labels=labels)

    def with_conditions(self, condition: np.ndarray) -> Units:
        """The same units with other condition labels (a relabelled design)."""
        return replace(self, condition=np.asarray(condition).astype(str))

    def unit_table(self) -> pd.DataFrame:
        """Cells per unit (rows, sorted) and condition (columns, in label order)."""
        table = pd.crosstab(pd.Series(self.unit, name=self.name), pd.Series(self.condition))
        return table.reindex(columns=list(self.labels), fill_value=0)

    def units_per_condition(self) -> dict[str, int]:
        """How many units hold each condition."""
        holds = self.unit_table() > 0
        return {str(c): int(n) for c, n in holds.sum(axis=0).items()}


def resolve_paired(
    condition: Sequence[Any] | np.ndarray,
    unit: Sequence[Any] | np.ndarray,
    paired: Pairing = "auto",
    name: str = "donor",
) -> bool:
    """Whether the conditions sit within the units (paired) or between them (unpaired).

    Parameters
    ----------
    condition, unit
        Per cell.
    paired
        ``"auto"``: paired when every unit holds every condition, unpaired when every unit
        holds one; ``True`` / ``False``: that design, checked.
    name
        The unit in words, for the messages.

    Raises
    ------
    DesignError
        A mixed design under ``"auto"`` (some units in every condition, some in one), or data
        that do not fit the pairing asked for; the message counts the units of each kind.
    """
    table = pd.crosstab(np.asarray(unit).astype(str), np.asarray(condition).astype(str)) > 0
    k = table.shape[1]
    held = table.sum(axis=1)
    every, one = held == k, held == 1

    def listing(mask: pd.Series) -> str:
        shown = [f"{u} ({', '.join(table.columns[table.loc[u]])})" for u in held.index[mask][:5]]
        more = f" and {int(mask.sum()) - 5} more" if mask.sum() > 5 else ""
        return ", ".join(shown) + more

    if paired == "auto":
        if every.all():
            return True
        if one.all():
            return False
        some = ~every & ~one
        raise DesignError(
            f"case_control.paired: auto found a mixed design: {int(every.sum())} {name}(s) hold "
            f"every condition, {int(one.sum())} hold one only ({listing(one)})"
            + (f", {int(some.sum())} hold some ({listing(some)})" if some.any() else "")
            + f". A paired analysis needs every {name} in every condition, an unpaired one each "
            f"{name} in one. Leave out the {name}s that break the design (or check the "
            f"{name} column: two {name}s under one id?)."
        )
    if paired and not every.all():
        raise DesignError(
            f"case_control.paired: true, but {int((~every).sum())} {name}(s) lack a condition: "
            f"{listing(~every)}. Leave them out, or set case_control.paired: auto."
        )
    if not paired and not one.all():
        raise DesignError(
            f"{int((~one).sum())} {name}(s) have cells in more than one condition: "
            f"{listing(~one)}. An unpaired design puts each {name} in one condition; for "
            f"{name}s sampled in every condition set case_control.paired: auto (or true); "
            f"otherwise check the {name} column (two {name}s under one id?)."
        )
    return bool(paired)


def units_of(
    obs: pd.DataFrame,
    unit_key: str,
    condition_key: str = "condition",
    paired: Pairing = "auto",
    labels: Sequence[str] | None = None,
) -> Units:
    """The :class:`Units` of a table of cells.

    Parameters
    ----------
    obs
        One row per cell.
    unit_key
        The column of the unit (``source_cell``, ``donor_id``).
    condition_key
        The column of the condition; a categorical's order gives the labels (reference first).
    paired
        See :func:`resolve_paired`.
    labels
        The conditions in order, the reference first (default: from the column).

    Raises
    ------
    DesignError
        A missing column, fewer than 2 conditions, a design that does not fit ``paired``, or
        too few units to hold any out (fewer than 2, or fewer than 2 in a condition when unpaired).
    """
    for key in (unit_key, condition_key):
        if key not in obs.columns:
            raise DesignError(
                f"obs has no '{key}' column; 02_perturb writes it (the unit and the condition "
                "of every cell) — rerun 02_perturb and the steps after it."
            )
    unit = obs[unit_key].astype(str).to_numpy()
    values = obs[condition_key]
    condition = values.astype(str).to_numpy()
    if labels is None:
        present = set(condition)
        if isinstance(values.dtype, pd.CategoricalDtype):
            labels = [str(c) for c in values.cat.categories if str(c) in present]
        else:
            labels = sorted(present)
    labels = tuple(str(c) for c in labels)
    if len(labels) < 2:
        raise DesignError(f"obs['{condition_key}'] holds one condition only: nothing to compare.")
    name = UNIT_NAMES.get(unit_key, unit_key)
    pairing = resolve_paired(condition, unit, paired, name)
    units = Units(unit, condition, labels, pairing, name)
    n_units = units.n_units
    if pairing and n_units < 2:
        raise DesignError(
            f"a paired design needs at least 2 {name}s, so that one can be held out while "
            f"another trains; the data have {n_units}."
        )
    if not pairing:
        few = {c: n for c, n in units.units_per_condition().items() if n < 2}
        if few:
            shown = ", ".join(f"'{c}' ({n} {name})" for c, n in few.items())
            raise DesignError(
                f"every condition needs at least 2 {name}s, so that one can be held out while "
                f"another trains; {shown}. Add {name}s, or leave that condition out of the file."
            )
    return units


def from_adata(adata: AnnData) -> Units:
    """The units 02_perturb recorded (``uns["design"]``: its unit column and pairing)."""
    design = dict(adata.uns.get("design", {}) or {})
    kind = str(design.get("kind", "case_control" if "case_control" in adata.uns else "synthetic"))
    unit_key = str(design.get("unit_key", UNIT_KEYS.get(kind, "source_cell")))
    paired = design.get("paired", "auto")
    return units_of(adata.obs, unit_key, paired=bool(paired) if paired != "auto" else "auto")


# --- bootstrap and per-unit scores ----------------------------------------------------------


def bootstrap_samples(
    n: int, n_boot: int, seed: int = 0, groups: Sequence[Any] | np.ndarray | None = None
) -> np.ndarray:
    """Bootstrap resamples of ``n`` cells: whole groups (units) drawn with replacement, or cells.

    Returns
    -------
    numpy.ndarray
        ``n_boot`` rows of cell positions (an object array of arrays when resampled units differ
        in size).
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.integers(0, n, size=(n_boot, n))
    uniq, inverse = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    samples = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), size=len(uniq))
        samples.append(np.concatenate([members[g] for g in pick]))
    if len({len(s) for s in samples}) > 1:
        out = np.empty(n_boot, dtype=object)
        out[:] = samples
        return out
    return np.array(samples)


def unit_scores(units: Units, proba: np.ndarray) -> pd.DataFrame:
    """Each unit's score from its cells' class probabilities (columns in ``units.labels`` order).

    Paired (every unit in every condition): how well the unit's cells are told apart by
    condition — ``accuracy``, the share of its cells whose most probable class is their own.
    Unpaired (a unit is a case or a control): the unit's **call**, the class of highest mean
    probability over its cells, and whether it is ``correct``.

    Returns
    -------
    pandas.DataFrame
        One row per unit (index: unit, sorted): ``cells``, ``p_<label>`` (mean probabilities),
        and ``accuracy`` (paired) or ``condition``, ``predicted``, ``correct`` (unpaired).
    """
    labels = list(units.labels)
    proba = np.asarray(proba, dtype=np.float64)
    frame = pd.DataFrame(proba, columns=[f"p_{c}" for c in labels])
    grouped = frame.groupby(units.unit, sort=True)
    out = grouped.mean()
    out.insert(0, "cells", grouped.size())
    if units.paired:
        right = pd.Series(np.asarray(labels)[proba.argmax(axis=1)] == units.condition)
        out["accuracy"] = right.groupby(units.unit, sort=True).mean()
    else:
        truth = pd.Series(units.condition).groupby(units.unit, sort=True).first()
        out.insert(0, "condition", truth)
        out["predicted"] = np.asarray(labels)[out[[f"p_{c}" for c in labels]].to_numpy().argmax(1)]
        out["correct"] = out["predicted"] == out["condition"]
    out.index.name = units.name
    return out


def unit_summary(
    table: pd.DataFrame, paired: bool, n_boot: int = 500, seed: int = 0
) -> dict[str, float]:
    """The units' score with its 95 % interval: ``unit_accuracy``, ``_low``, ``_high``, ``n_units``.

    Unpaired: the share of units called right, with its exact (Clopper–Pearson) interval.
    Paired: the mean of the units' accuracies (each unit counts once), with a percentile
    bootstrap interval over units (none with ``n_boot=0``).
    """
    from scipy.stats import binomtest

    n = len(table)
    low = high = value = float("nan")
    if n and paired:
        acc = table["accuracy"].to_numpy(dtype=np.float64)
        value = float(acc.mean())
        if n_boot:
            draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
            low, high = (float(q) for q in np.quantile(acc[draws].mean(axis=1), [0.025, 0.975]))
    elif n:
        k = int(table["correct"].sum())
        value = k / n
        if n_boot:
            ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
            low, high = float(ci.low), float(ci.high)
    return {
        "unit_accuracy": value,
        "unit_accuracy_low": low,
        "unit_accuracy_high": high,
        "n_units": n,
    }
