"""E-distance between a condition and normal, with its permutation test (the E-test).

The E-distance of scPerturb (Peidli et al. 2024, *Nat Methods* 21:531-540) and pertpy
(``pt.tl.Distance("edistance")``, ``pt.tl.DistanceTest``): its definition, the conventions
chosen and the permutation test of two groups of cells are in
:mod:`latentshift.readings.etest`. This module tests every condition against the reference,
pooled and per cell type, on several representations (:func:`edistance_table`).

**The null is the design's** (:func:`latentshift.design.nulls.relabel`). When the conditions sit
within units (paired: every disease copy is a copy of one normal cell; a donor's nuclei before
and after a stimulation), a copy and its source — or a donor's two samples — are exchangeable
under no shift, but different units are not (cells of different types are far apart). So the
labels are permuted **within each unit** (restricted permutations within exchangeability
blocks, Winkler et al. 2014 *NeuroImage* 92:381-397). This is exact under the null and far
more powerful than a global shuffle, which treats the pairs as independent cells: with
near-identical pairs, E_observed is much *smaller* than a random split's, so the global test is
very conservative (p near 1 under the null) and loses power. When copies are bit-identical to
their sources (the ``null`` profile, ``fold_change: 1``), E_observed is exactly 0 and every
within-pair relabelling gives the same two groups, so p = 1 exactly: valid, but not uniform —
the permutation distribution is a single point. When the conditions sit **between** units (a
donor is a case or a control), whole units are relabelled: relabelling nuclei instead would
make a donor effect look like a disease effect. With few units the relabellings are enumerated
exactly (``C(12, 6)`` = 924 for 6 against 6 donors; 2² for 2 paired donors), and the smallest
attainable p-value is set by the design, not by the number of permutations asked for.

**Unpaired synthetic variant** (``design="unpaired"``). The source cells are split at random
into two halves; the condition copies of one half are compared with the normal cells of the
other, and the labels are shuffled over all cells (pertpy's and scPerturb's scheme: every cell
its own unit). The two groups are then independent samples, so under no shift p-values are
uniform even when copies are bit-identical — at the price of half the cells per group and of
the between-cell variation the pairing cancels.

Large groups are subsampled to ``max_cells`` source cells (seeded) so memory and time stay
bounded at atlas scale (100k+ cells per condition); the E-distance's spread is a bootstrap
over units (basic bootstrap interval, see :class:`~latentshift.readings.etest.ETestResult`).
Multiple testing: Benjamini-Hochberg (:func:`scipy.stats.false_discovery_control`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control

from latentshift.design.nulls import unit_rng
from latentshift.design.units import Units
from latentshift.errors import CellTypeShiftError
from latentshift.readings.augur_draws import within_unit_pairs
from latentshift.readings.etest import check_metric, edistance_test
from latentshift.readings.shift_units import as_latent, check_obs, tested_cell_types

log = logging.getLogger(__name__)

__all__ = [
    "ALL_CELL_TYPES",
    "DESIGNS",
    "EDISTANCE_COLUMNS",
    "edistance_table",
]

DESIGNS: tuple[str, ...] = ("paired", "unpaired")
#: the ``cell_type`` of the per-condition rows (all cell types pooled)
ALL_CELL_TYPES = "all"

EDISTANCE_COLUMNS: tuple[str, ...] = (
    "representation",
    "condition",
    "scope",
    "cell_type",
    "n_normal",
    "n_condition",
    "n_perturbed",
    "n_pairs",
    "n_units_condition",
    "n_units_reference",
    "n_x",
    "n_y",
    "testable",
    "reason",
    "design",
    "metric",
    "edistance",
    "edistance_sd",
    "edistance_low",
    "edistance_high",
    "edistance_excess",
    "null_mean",
    "null_sd",
    "null_high",
    "n_permutations",
    "exact",
    "pvalue",
    "min_pvalue",
    "at_min_pvalue",
    "pvalue_adj",
    "significant",
)


def edistance_table(
    representations: Mapping[str, Any],
    obs: pd.DataFrame,
    conditions: Sequence[str] | None = None,
    *,
    units: Units | None = None,
    by_cell_type: bool = True,
    design: Literal["paired", "unpaired"] = "paired",
    n_permutations: int = 1000,
    n_bootstrap: int = 200,
    min_cells: int = 20,
    min_units: int = 2,
    max_cells: int = 2000,
    metric: str = "sqeuclidean",
    alpha: float = 0.05,
    fdr_scope: Literal["representation", "all"] = "representation",
    seed: int = 0,
    cell_type_key: str = "cell_type",
    group_key: str = "source_cell",
    perturbed_key: str = "perturbed",
) -> pd.DataFrame:
    """E-test of each condition against the reference, pooled and per cell type, on several
    representations.

    E-distance and E-test after Peidli et al. 2024 (*Nat Methods* 21:531-540; pertpy
    ``Distance("edistance")`` and ``DistanceTest``), with the conventions of the module
    docstring and the design's units and null (:mod:`latentshift.design.units`). Each (condition,
    cell type) draws its subsample and relabellings from ``seed`` and the two names only, so
    every representation is tested on the same cells and relabellings.

    Parameters
    ----------
    representations
        ``{name: Z}``, each cells x dimensions, rows aligned with ``obs``.
    obs
        Per-cell annotations (cell type, perturbed).
    conditions
        Conditions to test (default: every one but the reference).
    units
        The design; default: source cells of ``obs[group_key]``, paired, the conditions of
        ``obs["condition"]`` with ``normal`` the reference.
    by_cell_type
        Also test every cell type (besides the pooled per-condition test).
    design
        ``"paired"`` (default): the design's own null — when the conditions sit within units,
        pairs of a reference and a condition cell of one unit, labels permuted within units;
        when they sit between units, every cell, whole units relabelled. ``"unpaired"``
        (synthetic only): copies of one random half of the source cells against the normal
        cells of the other half, labels shuffled over all cells.
    n_permutations
        Relabellings per test (all of them, exactly, when the design has at most this many).
    n_bootstrap
        Bootstrap resamples (of units) for the E-distance's spread; 0 for none.
    min_cells
        Minimum cells per group for a test (pairs, cells per side, or per half); smaller
        scopes are listed with ``testable=False`` and the reason.
    min_units
        … and units on each side.
    max_cells
        At most this many cells (or pairs) per group (seeded subsample), bounding memory and
        time on atlas-scale data.
    metric
        ``"sqeuclidean"`` (default) or ``"euclidean"``.
    alpha
        Level for ``significant`` (on the BH-adjusted p-value).
    fdr_scope
        Benjamini-Hochberg over the tests of each representation (default: LDVAE and PCA are
        alternative analyses of the same hypotheses) or over ``"all"`` rows together.
    seed
        Non-negative integer seed.
    cell_type_key, group_key, perturbed_key
        Column names in ``obs``.

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`EDISTANCE_COLUMNS`: ``scope`` is ``"condition"`` (pooled over
        cell types, ``cell_type == "all"``) or ``"cell_type"``; ``n_normal``,
        ``n_condition``, ``n_perturbed`` count the cells of that scope; ``n_pairs`` the
        within-unit pairs (paired designs); ``n_units_*`` the units on each side; ``n_x``,
        ``n_y`` the cells tested (condition, reference); ``edistance`` with bootstrap ``_sd``,
        ``_low``, ``_high`` (basic 95 % interval); ``edistance_excess`` = edistance - null_mean
        (the E-distance above its noise floor, which shrinks with the number of cells: compare
        cell types of different sizes by this); the null's mean, sd and 97.5 %;
        ``n_permutations``, ``exact``, ``pvalue``, ``min_pvalue``, ``at_min_pvalue``, BH
        ``pvalue_adj`` and ``significant`` (pvalue_adj < alpha).

    Raises
    ------
    CellTypeShiftError
        On missing columns, misaligned representations, unknown conditions or options.
    """
    check_obs(obs, [cell_type_key, perturbed_key])
    check_metric(metric)
    if units is None:
        units = _default_units(obs, group_key)
    design = _checked_options(units, design, fdr_scope, min_cells, max_cells)
    reps = _checked_representations(representations, len(obs))
    conds = _tested_conditions(units, conditions)
    settings = dict(
        design=design, min_cells=min_cells, min_units=min_units, max_cells=max_cells, seed=seed
    )
    test = dict(n_permutations=n_permutations, metric=metric, n_bootstrap=n_bootstrap)
    scopes = _scopes(obs, by_cell_type, cell_type_key)
    rows = _etest_rows(reps, obs, units, conds, scopes, perturbed_key, settings, test)
    table = _with_fdr(rows, fdr_scope, alpha)
    table.attrs["params"] = _table_params(units, settings, test, alpha, fdr_scope)
    return table


def _default_units(obs: pd.DataFrame, group_key: str) -> Units:
    """The default design: source cells of ``obs[group_key]``, paired, the conditions of
    ``obs["condition"]`` (categories' order when categorical) with ``normal`` the reference."""
    check_obs(obs, ["condition", group_key])
    cond_values = obs["condition"].astype(str)
    others = [c for c in pd.unique(cond_values) if c != "normal"]
    if isinstance(obs["condition"].dtype, pd.CategoricalDtype):
        others = [str(c) for c in obs["condition"].cat.categories if str(c) in set(others)]
    return Units(
        obs[group_key].astype(str).to_numpy(),
        cond_values.to_numpy(),
        ("normal", *others),
        True,
        "source cell",
    )


def _checked_options(
    units: Units, design: str, fdr_scope: str, min_cells: int, max_cells: int
) -> str:
    """Check the design, FDR scope and cell bounds; return the design to run (``"paired"``
    when ``"unpaired"`` is asked of units that already sit in one condition each)."""
    if design not in DESIGNS:
        raise CellTypeShiftError(f"unknown design '{design}'; use one of {', '.join(DESIGNS)}.")
    if design == "unpaired" and not units.paired:
        design = "paired"  # units already sit in one condition each: the design's null is it
    if fdr_scope not in ("representation", "all"):
        raise CellTypeShiftError(f"fdr_scope must be 'representation' or 'all', got '{fdr_scope}'.")
    if min_cells < 2 or max_cells < min_cells:
        raise CellTypeShiftError(
            f"need 2 <= min_cells <= max_cells, got min_cells={min_cells}, max_cells={max_cells}."
        )
    return design


def _checked_representations(
    representations: Mapping[str, Any], n_cells: int
) -> dict[str, np.ndarray]:
    """The representations by name, each checked to be finite and ``n_cells`` rows long."""
    if not representations:
        raise CellTypeShiftError("no representation given; pass {name: Z}.")
    return {
        str(k): as_latent(Z, n_cells, f"representation '{k}'") for k, Z in representations.items()
    }


def _tested_conditions(units: Units, conditions: Sequence[str] | None) -> list[str]:
    """The conditions to test against the reference (default: every other one), checked."""
    reference = units.reference
    others = list(units.labels[1:])
    conds = others if conditions is None else [str(c) for c in conditions]
    unknown = [c for c in conds if c not in others]
    if unknown:
        raise CellTypeShiftError(
            f"condition(s) {unknown} are not conditions to test against '{reference}' "
            f"(have: {others})."
        )
    return conds


def _scopes(
    obs: pd.DataFrame, by_cell_type: bool, cell_type_key: str
) -> list[tuple[str, str, np.ndarray]]:
    """``(scope, cell type, mask)``: the pooled scope, then each cell type when asked."""
    cell_types = tested_cell_types(obs, cell_type_key)
    if ALL_CELL_TYPES in cell_types:
        log.warning(
            "a cell type is named '%s', like the pooled rows; tell them apart by 'scope'",
            ALL_CELL_TYPES,
        )
    ct_all = obs[cell_type_key].astype(str).to_numpy()
    scopes = [("condition", ALL_CELL_TYPES, np.ones(len(obs), bool))]
    if by_cell_type:
        scopes += [("cell_type", ct, ct_all == ct) for ct in cell_types]
    return scopes


def _etest_rows(
    reps: dict[str, np.ndarray],
    obs: pd.DataFrame,
    units: Units,
    conds: list[str],
    scopes: list[tuple[str, str, np.ndarray]],
    perturbed_key: str,
    settings: dict[str, Any],
    test: dict[str, Any],
) -> list[dict[str, Any]]:
    """The table's rows: one per (representation, condition, scope), untestable ones with their
    reason. ``settings`` go to :func:`_scope_test`, ``test`` (``n_permutations``, ``metric``,
    ``n_bootstrap``) to :func:`~latentshift.readings.etest.edistance_test`."""
    reference = units.reference
    design, metric, n_permutations = settings["design"], test["metric"], test["n_permutations"]
    pert_all = obs[perturbed_key].to_numpy(dtype=bool)
    rows: list[dict[str, Any]] = []
    for cond in conds:
        for scope, ct, in_scope in scopes:
            x = np.flatnonzero(in_scope & (units.condition == cond))
            y = np.flatnonzero(in_scope & (units.condition == reference))
            base = {
                "condition": cond,
                "scope": scope,
                "cell_type": ct,
                "n_normal": y.size,
                "n_condition": x.size,
                "n_perturbed": int(pert_all[x].sum()),
                "n_units_condition": np.unique(units.unit[x]).size,
                "n_units_reference": np.unique(units.unit[y]).size,
                "design": design if units.paired else "unpaired",
                "metric": metric,
            }
            test_cells = _scope_test(units, x, y, cond, scope, ct, **settings)
            base["n_pairs"] = test_cells["n_pairs"]
            if test_cells["reason"]:
                rows.extend(
                    {
                        "representation": rep,
                        **base,
                        "n_x": 0,
                        "n_y": 0,
                        "n_permutations": n_permutations,
                        "testable": False,
                        "reason": test_cells["reason"],
                    }
                    for rep in reps
                )
                continue
            x_idx, y_idx = test_cells["x"], test_cells["y"]
            for rep, Z in reps.items():
                res = edistance_test(
                    Z[x_idx],
                    Z[y_idx],
                    n_permutations=n_permutations,
                    seed=test_cells["seed"],
                    pairs=test_cells["units"],
                    paired=test_cells["paired"],
                    metric=metric,
                    n_bootstrap=test["n_bootstrap"],
                )
                out = asdict(res)
                out.pop("design")
                out.pop("metric")
                rows.append({"representation": rep, **base, **out, "testable": True, "reason": ""})
            log.info("E-test %s / %s: %d + %d cells", cond, ct, len(x_idx), len(y_idx))
    return rows


def _with_fdr(rows: list[dict[str, Any]], fdr_scope: str, alpha: float) -> pd.DataFrame:
    """The rows as the table: BH-adjusted p-values over each family (``fdr_scope``),
    ``edistance_excess``, ``at_min_pvalue``, ``significant``, in :data:`EDISTANCE_COLUMNS`."""
    table = pd.DataFrame(rows)
    table["testable"] = table["testable"].astype(bool)
    table["pvalue_adj"] = np.nan
    families = ["representation"] if fdr_scope == "representation" else []
    tested = table[table["testable"]]
    for _, part in tested.groupby(families) if families else [(None, tested)]:
        table.loc[part.index, "pvalue_adj"] = false_discovery_control(
            part["pvalue"].to_numpy(), method="bh"
        )
    table["edistance_excess"] = table["edistance"] - table["null_mean"]
    table["at_min_pvalue"] = table["testable"] & np.isclose(table["pvalue"], table["min_pvalue"])
    table["significant"] = table["testable"] & (table["pvalue_adj"] < alpha)
    return table.reindex(columns=list(EDISTANCE_COLUMNS))


def _table_params(
    units: Units, settings: dict[str, Any], test: dict[str, Any], alpha: float, fdr_scope: str
) -> dict[str, Any]:
    """The parameters :func:`edistance_table` records in ``attrs["params"]``."""
    return {
        "reference": units.reference,
        "unit": units.name,
        "paired": units.paired,
        "design": settings["design"],
        "metric": test["metric"],
        "n_permutations": test["n_permutations"],
        "n_bootstrap": test["n_bootstrap"],
        "min_cells": settings["min_cells"],
        "max_cells": settings["max_cells"],
        "alpha": alpha,
        "fdr_scope": fdr_scope,
        "seed": settings["seed"],
    }


def _scope_test(
    units: Units,
    x: np.ndarray,
    y: np.ndarray,
    cond: str,
    scope: str,
    ct: str,
    *,
    design: str,
    min_cells: int,
    min_units: int,
    max_cells: int,
    seed: int,
) -> dict[str, Any]:
    """The cells one E-test compares, their units and its seed, or why it cannot run.

    Paired designs compare within-unit pairs (at most ``max_cells`` of them); unpaired ones
    every cell of each side (at most ``max_cells`` per side); the synthetic ``unpaired``
    variant the copies of one half of the pairs with the normal cells of the other.
    """
    rng = unit_rng(seed, "edistance", cond, scope, ct)
    out: dict[str, Any] = {"n_pairs": 0, "reason": "", "paired": units.paired}
    if not x.size or not y.size:
        out["reason"] = f"no cell of {cond if not x.size else units.reference} in this scope"
        return out
    if units.paired:
        p = within_unit_pairs(y, x, units.unit, unit_rng(seed, "pairs", cond, ct))
        out["n_pairs"] = len(p)
        per_group = len(p) if design == "paired" else len(p) // 2
        n_units = p["unit"].nunique()
        if per_group < min_cells or n_units < min_units:
            what = "pairs within a unit" if design == "paired" else "pairs per half"
            out["reason"] = (
                f"fewer than {min_cells} {what} ({per_group}) or {min_units} {units.name}s "
                f"({n_units}) for {cond} against {units.reference}"
            )
            return out
        normal, copy, src = (p[c].to_numpy() for c in ("normal", "copy", "unit"))
        if design == "paired":
            keep = np.sort(rng.choice(len(p), min(len(p), max_cells), replace=False))
            out.update(x=copy[keep], y=normal[keep], units=(src[keep], src[keep]))
        else:
            take = min(len(p), 2 * max_cells)
            order = rng.permutation(len(p))[:take]
            half = take // 2
            out.update(
                x=copy[np.sort(order[:half])],
                y=normal[np.sort(order[half : 2 * half])],
                units=None,
                paired=False,
            )
    else:
        dx, dy = np.unique(units.unit[x]).size, np.unique(units.unit[y]).size
        if min(x.size, y.size) < min_cells or min(dx, dy) < min_units:
            out["reason"] = (
                f"fewer than {min_cells} cells or {min_units} {units.name}s on a side "
                f"({x.size} cells from {dx} vs {y.size} from {dy})"
            )
            return out
        xs = np.sort(rng.choice(x, min(x.size, max_cells), replace=False))
        ys = np.sort(rng.choice(y, min(y.size, max_cells), replace=False))
        out.update(x=xs, y=ys, units=(units.unit[xs], units.unit[ys]))
    out["seed"] = int(rng.integers(2**63 - 1))
    return out
