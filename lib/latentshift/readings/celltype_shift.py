"""Which cell types carry the shift: the per-cell-type analysis of 05_classifier in one call.

:func:`analyse_cell_types` runs, on the LDVAE latent and on the PCA baseline side by side, the
Augur-style per-cell-type AUC (:mod:`latentshift.readings.detectability`) and the E-test of each
shift, pooled and per cell type (:mod:`latentshift.readings.edistance`), with the settings of the
``cell_types`` params section and the design's units (:mod:`latentshift.design.units`: folds grouped
by source cell or donor, the null within units or of whole units) — one code path for every
design. :func:`cell_type_metrics` is its ``cell_types`` section of
``metrics.json``; :func:`where_the_shift_was_put` sets the ranking beside the cell types each
perturbation entry targeted, so a reader can check the method against the known answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from latentshift.design.units import Units, from_adata
from latentshift.errors import CellTypeShiftError
from latentshift.readings.detectability import celltype_auc_by_representation
from latentshift.readings.edistance import ALL_CELL_TYPES, edistance_table

if TYPE_CHECKING:
    from anndata import AnnData

#: The representations compared, and the obsm keys they live in.
REPRESENTATIONS: dict[str, str] = {"LDVAE": "X_ldvae", "PCA": "X_pca_baseline"}


@dataclass
class CellTypeShiftResult:
    """What :func:`analyse_cell_types` measured.

    Attributes
    ----------
    auc
        :func:`latentshift.readings.detectability.celltype_auc_by_representation`'s table.
    etest
        :func:`latentshift.readings.edistance.edistance_table`'s table (pooled and per cell type).
    headline
        Per representation and condition: the top cell type by AUC beside its null, and the
        pooled E-test p-value beside the smallest the permutation count allows.
    """

    auc: pd.DataFrame
    etest: pd.DataFrame
    headline: pd.DataFrame


def analyse_cell_types(
    adata: AnnData, params: Mapping[str, Any], seed: int = 0, units: Units | None = None
) -> CellTypeShiftResult:
    """Per-cell-type AUC and E-test of every condition against the reference, LDVAE and PCA.

    Parameters
    ----------
    adata
        ``latent.h5ad``: ``obsm["X_ldvae"]``, ``obsm["X_pca_baseline"]``; obs ``condition``,
        ``cell_type``, the unit column, ``perturbed``.
    params
        The resolved ``cell_types`` params section.
    seed
        Seed of every subsample, fold, relabelling and bootstrap.
    units
        The design (default: what 02 recorded, :func:`latentshift.design.units.from_adata`).
    """
    units = units if units is not None else from_adata(adata)
    reps = {name: adata.obsm[key] for name, key in REPRESENTATIONS.items() if key in adata.obsm}
    auc = celltype_auc_by_representation(
        reps,
        adata.obs,
        units=units,
        subsample_size=params["subsample_size"],
        n_subsamples=params["n_subsamples"],
        n_folds=params["n_folds"],
        n_permutations=params["n_permutations"],
        seed=seed,
    )
    etest = edistance_table(
        reps,
        adata.obs,
        units=units,
        design=params["e_design"],
        n_permutations=params["e_permutations"],
        max_cells=params["e_max_cells"],
        min_cells=params["subsample_size"],
        seed=seed,
    )
    return CellTypeShiftResult(auc=auc, etest=etest, headline=headline_table(auc, etest))


#: The columns of the most detectable cell type that the headline carries.
_TOP_COLUMNS = ("auc_mean", "auc_sd", "auc_low", "auc_high", "null_mean", "null_low", "null_high")


def detectability_headline(table: pd.DataFrame) -> pd.DataFrame:
    """The headline numbers: per (representation,) condition, the most detectable cell type.

    Parameters
    ----------
    table
        From :func:`celltype_auc` or :func:`celltype_auc_by_representation`.

    Returns
    -------
    pandas.DataFrame
        One row per (representation,) condition: ``top_cell_type``, its ``auc_mean``,
        ``auc_sd``, ``auc_low``, ``auc_high`` beside its ``null_mean``, ``null_low``,
        ``null_high``; ``top_above_null`` (its 2.5 % AUC above its 97.5 % null: on a null
        data set the top cell type is only the luckiest); ``n_tested``, ``n_untested`` and
        ``n_above_null`` (cell types whose 2.5 % AUC exceeds their 97.5 % null), and
        ``untested`` (the untested cell types).
    """
    by = ["representation", "condition"] if "representation" in table.columns else ["condition"]
    rows = []
    for key, part in table.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        tested = part[part["testable"]]
        row: dict[str, Any] = dict(zip(by, key, strict=True))
        if tested.empty:
            top = dict.fromkeys(_TOP_COLUMNS, np.nan)
            row["top_cell_type"] = None
        else:
            best = tested.loc[tested["auc_mean"].idxmax()]
            row["top_cell_type"] = best["cell_type"]
            top = {c: float(best[c]) for c in _TOP_COLUMNS}
        row.update(top)
        row["top_above_null"] = bool(
            np.isfinite(row["auc_low"]) and row["auc_low"] > row["null_high"]
        )
        row["n_tested"] = len(tested)
        row["n_untested"] = int((~part["testable"]).sum())
        row["n_above_null"] = int(tested["above_null"].sum())
        row["untested"] = ", ".join(part.loc[~part["testable"], "cell_type"])
        rows.append(row)
    return pd.DataFrame(rows)


def compare_representations(table: pd.DataFrame, value: str = "auc_mean") -> pd.DataFrame:
    """One column per representation side by side, per (condition, cell type).

    Parameters
    ----------
    table
        From :func:`celltype_auc_by_representation` (or the E-distance table of
        :func:`latentshift.readings.edistance.edistance_table`).
    value
        The column to lay side by side.

    Returns
    -------
    pandas.DataFrame
        Index (condition, cell_type); one column per representation, in the table's order.
    """
    if "representation" not in table.columns:
        raise CellTypeShiftError(
            "the table has no 'representation' column; use celltype_auc_by_representation."
        )
    reps = list(pd.unique(table["representation"]))
    wide = table.pivot_table(
        index=["condition", "cell_type"], columns="representation", values=value, sort=False
    )
    return wide.reindex(columns=reps)


def headline_table(auc: pd.DataFrame, etest: pd.DataFrame) -> pd.DataFrame:
    """One row per representation and condition: its most detectable cell type (AUC beside its
    null) and the pooled E-test of the condition (:attr:`CellTypeShiftResult.headline`)."""
    top = detectability_headline(auc)
    pooled = etest[etest["cell_type"] == ALL_CELL_TYPES].set_index(["representation", "condition"])
    rows = []
    for r in top.itertuples():
        e = pooled.loc[(r.representation, r.condition)]
        rows.append(
            {
                "representation": r.representation,
                "condition": r.condition,
                "cell_type": r.top_cell_type,
                "auc": r.auc_mean,
                "auc_low": r.auc_low,
                "auc_high": r.auc_high,
                "null": r.null_mean,
                "null_high": r.null_high,
                "above_null": bool(r.top_above_null),
                "n_tested": int(r.n_tested),
                "n_untested": int(r.n_untested),
                "e_pvalue": float(e["pvalue"]),
                "e_pvalue_adj": float(e["pvalue_adj"]),
                "e_min_pvalue": float(e["min_pvalue"]),
            }
        )
    return pd.DataFrame(rows)


def _clean(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value


def cell_type_metrics(result: CellTypeShiftResult) -> dict[str, Any]:
    """The ``cell_types`` section of ``metrics.json``.

    Returns
    -------
    dict
        ``headline`` (list of :attr:`CellTypeShiftResult.headline` rows), ``auc``
        (representation → condition → cell type → mean AUC, its 2.5/97.5 % range and null
        mean; ``None`` for untested types), ``untested`` (condition → cell types too small
        to test), ``etest`` (representation → condition → cell type or ``all`` → p-value,
        BH-adjusted p-value), and ``e_min_pvalue``.
    """
    auc: dict[str, Any] = {}
    untested: dict[str, list[str]] = {}
    for r in result.auc.itertuples():
        cell = None
        if r.testable:
            cell = {
                k: _clean(getattr(r, k)) for k in ("auc_mean", "auc_low", "auc_high", "null_mean")
            }
        elif r.representation == result.auc["representation"].iloc[0]:
            untested.setdefault(r.condition, []).append(r.cell_type)
        auc.setdefault(r.representation, {}).setdefault(r.condition, {})[r.cell_type] = cell
    etest: dict[str, Any] = {}
    for r in result.etest.itertuples():
        value = None
        if r.testable:
            value = {"pvalue": _clean(r.pvalue), "pvalue_adj": _clean(r.pvalue_adj)}
        etest.setdefault(r.representation, {}).setdefault(r.condition, {})[r.cell_type] = value
    return {
        "headline": [
            {k: _clean(v) for k, v in row.items()} for row in result.headline.to_dict("records")
        ],
        "auc": auc,
        "untested": untested,
        "etest": etest,
        "e_min_pvalue": _clean(result.etest["min_pvalue"].dropna().min()),
    }


def where_the_shift_was_put(
    result: CellTypeShiftResult, entries: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """Each perturbation entry's targets beside the cell-type ranking (LDVAE and PCA).

    Parameters
    ----------
    result
        :func:`analyse_cell_types`.
    entries
        ``uns["perturbations"]``: condition → entry (``target_cell_types``, ``penetrance``).

    Returns
    -------
    pandas.DataFrame
        One row per condition: ``targeted`` (the cell types the shift was put in, or "all"),
        ``penetrance``, and per representation the top-ranked cell type and the rank of each
        targeted type.
    """
    rows = []
    for cond, entry in entries.items():
        targets = entry.get("target_cell_types")
        targets = [str(t) for t in np.atleast_1d(targets)] if targets is not None else []
        row: dict[str, Any] = {
            "condition": cond,
            "targeted": ", ".join(targets) if targets else "all cell types",
            "penetrance": float(entry.get("penetrance", 1.0)),
        }
        for rep in result.auc["representation"].unique():
            part = result.auc[
                (result.auc["representation"] == rep) & (result.auc["condition"] == cond)
            ]
            ranked = part[part["testable"]].sort_values("rank")
            row[f"{rep}: top cell type"] = ranked["cell_type"].iloc[0] if len(ranked) else None
            ranks = dict(zip(ranked["cell_type"], ranked["rank"].astype(int), strict=True))
            row[f"{rep}: rank of the targets"] = (
                ", ".join(f"{t} {ranks.get(t, 'untested')}" for t in targets) if targets else "—"
            )
        rows.append(row)
    if not rows:  # nothing was put anywhere by us (a real case-control file without named sets)
        return pd.DataFrame(
            columns=["targeted", "penetrance"], index=pd.Index([], name="condition")
        )
    return pd.DataFrame(rows).set_index("condition")
