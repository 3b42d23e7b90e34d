"""Where a case–control difference sits — cell types and latent factors — with the donor as the unit.

The synthetic design's per-cell-type measures (:mod:`latentshift.detectability`,
:mod:`latentshift.edistance`) pair every copy with its source cell and permute labels within
those pairs. A case–control data set has no pairs: its nuclei are nested in donors, and the
donor is the unit of replication. So here

- the **per-cell-type AUC** (Augur's design, Skinnider et al. 2021) draws ``subsample_size``
  nuclei per condition of a cell type, cross-validates with folds **grouped by donor** (a
  held-out donor's nuclei are never trained on), and its null relabels **donors**: the
  conditions are dealt anew among the cell type's donors, keeping how many donors each has;
- the **E-test** (Peidli et al. 2024) compares a condition's nuclei with the controls' and
  takes its null from the same donor relabellings. Relabelling nuclei instead would make a
  donor effect look like a disease effect (nuclei of one donor resemble each other), so the
  null would be degenerate and every p-value tiny. With few donors the relabellings are
  enumerated exactly (``C(n, k)`` of them: 924 for 6 against 6 donors), and the smallest
  attainable p-value follows from that count, not from the number of permutations asked for;
- the **factor shifts** that 06 turns into gene-set recovery are donor-averaged: each donor's
  mean latent counts once (:func:`donor_factor_shifts`).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from latentshift.celltype_shift import REPRESENTATIONS, CellTypeShiftResult, headline_table
from latentshift.detectability import (
    AUC_COLUMNS,
    Draw,
    auc_summary,
    cv_auc,
    rank_cell_types,
)
from latentshift.edistance import _TIE_TOL, ALL_CELL_TYPES, EDISTANCE_COLUMNS, _EStat
from latentshift.errors import CellTypeShiftError
from latentshift.shift_units import as_latent, tested_cell_types, unit_rng

log = logging.getLogger(__name__)


def donor_labellings(
    n_donors: int, n_x: int, n_permutations: int, rng: np.random.Generator | int = 0
) -> tuple[np.ndarray, bool]:
    """Relabellings of donors: which ``n_x`` of ``n_donors`` donors carry the condition.

    Parameters
    ----------
    n_donors
        Donors in the comparison.
    n_x
        Donors labelled with the condition (the rest are controls).
    n_permutations
        Random relabellings to draw when there are more than this many distinct ones.
    rng
        Generator or seed.

    Returns
    -------
    labellings : numpy.ndarray
        Boolean, relabellings × donors, ``n_x`` True per row.
    exact : bool
        True when every distinct relabelling is listed (``C(n_donors, n_x) <= n_permutations``);
        the observed labelling is then one of them.
    """
    if not 0 < n_x < n_donors:
        raise CellTypeShiftError(
            f"a donor relabelling needs donors on both sides (n_x={n_x} of {n_donors})."
        )
    if math.comb(n_donors, n_x) <= n_permutations:
        out = np.zeros((math.comb(n_donors, n_x), n_donors), dtype=bool)
        for i, chosen in enumerate(itertools.combinations(range(n_donors), n_x)):
            out[i, list(chosen)] = True
        return out, True
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    base = np.zeros(n_donors, dtype=bool)
    base[:n_x] = True
    return np.array([rng.permutation(base) for _ in range(n_permutations)]), False


def donor_edistance_test(
    Z: np.ndarray,
    is_x: np.ndarray,
    donors: Sequence[Any] | np.ndarray,
    n_permutations: int = 1000,
    seed: int | np.random.Generator = 0,
    metric: str = "sqeuclidean",
) -> dict[str, Any]:
    """E-test of two groups of nuclei with the null from donor relabellings.

    Parameters
    ----------
    Z
        Nuclei × dimensions.
    is_x
        True for the condition's nuclei, False for the controls'. Each donor is on one side.
    donors
        Donor per nucleus.
    n_permutations
        Random relabellings when the exact enumeration would be longer.
    seed
        Seed or generator.
    metric
        ``"sqeuclidean"`` or ``"euclidean"``.

    Returns
    -------
    dict
        ``edistance``, ``pvalue`` (exact: the share of relabellings at least as extreme,
        the observed one included; random: ``(1 + #) / (1 + n)``), ``min_pvalue``,
        ``n_permutations`` (relabellings used), ``exact``, ``null_mean``, ``null_sd``,
        ``null_high``, ``n_x``, ``n_y``, ``n_donors_x``, ``n_donors_y``.
    """
    is_x = np.asarray(is_x, dtype=bool)
    codes, names = pd.factorize(pd.Series(np.asarray(donors)).astype(str))
    side = pd.Series(is_x).groupby(codes).agg(["min", "max"])
    if (side["min"] != side["max"]).any():
        raise CellTypeShiftError("a donor has nuclei on both sides of the comparison.")
    donor_is_x = side["max"].to_numpy(dtype=bool)
    n_dx = int(donor_is_x.sum())
    labellings, exact = donor_labellings(len(names), n_dx, n_permutations, seed)
    stat = _EStat(np.asarray(Z, dtype=np.float64), metric)
    observed = float(stat(is_x[None, :].astype(float), (~is_x)[None, :].astype(float))[0])
    null = np.empty(len(labellings))
    step = stat.batch()
    for start in range(0, len(labellings), step):
        cells = labellings[start : start + step][:, codes].astype(np.float64)
        null[start : start + step] = stat(cells, 1.0 - cells)
    ties = int((null >= observed - _TIE_TOL * stat.scale).sum())
    n = len(labellings)
    mirrored = 2 if 2 * n_dx == len(names) else 1  # swapping the sides gives the same E
    return {
        "edistance": observed,
        "pvalue": ties / n if exact else (1 + ties) / (1 + n),
        "min_pvalue": mirrored / n if exact else 1 / (1 + n),
        "n_permutations": n,
        "exact": exact,
        "null_mean": float(null.mean()),
        "null_sd": float(null.std(ddof=1)) if n > 1 else 0.0,
        "null_high": float(np.percentile(null, 97.5)),
        "n_x": int(is_x.sum()),
        "n_y": int((~is_x).sum()),
        "n_donors_x": n_dx,
        "n_donors_y": len(names) - n_dx,
    }


def _relabel(donors: np.ndarray, is_x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The nuclei's labels after dealing the conditions anew among their donors."""
    codes, _ = pd.factorize(pd.Series(donors))
    donor_is_x = pd.Series(is_x).groupby(codes).max().to_numpy(dtype=bool)
    return rng.permutation(donor_is_x)[codes]


def _donor_draws(
    x: np.ndarray,
    y: np.ndarray,
    donors: np.ndarray,
    size: int,
    n_draws: int,
    n_folds: int,
    rng: np.random.Generator,
) -> list[Draw]:
    """Subsamples of ``size`` nuclei of ``x`` and of ``y`` with folds grouped by donor."""
    from sklearn.model_selection import StratifiedGroupKFold

    draws = []
    for _ in range(n_draws):
        cells = np.concatenate(
            [
                np.sort(rng.choice(x, size, replace=False)),
                np.sort(rng.choice(y, size, replace=False)),
            ]
        )
        labels = np.concatenate([np.ones(size, bool), np.zeros(size, bool)])
        groups = donors[cells]
        seed = int(rng.integers(2**31 - 1))
        k = min(n_folds, len(set(groups[labels])), len(set(groups[~labels])))
        cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        folds = list(cv.split(np.zeros(cells.size), labels, groups))
        draws.append(Draw(cells, labels, groups, folds, seed, False))
    return draws


def celltype_auc_by_donor(
    representations: Mapping[str, Any],
    obs: pd.DataFrame,
    reference: str = "normal",
    *,
    subsample_size: int = 20,
    n_subsamples: int = 20,
    n_folds: int = 3,
    n_permutations: int = 20,
    min_donors: int = 2,
    seed: int = 0,
    condition_key: str = "condition",
    cell_type_key: str = "cell_type",
    donor_key: str = "donor_id",
) -> pd.DataFrame:
    """Augur-style per-cell-type AUC of each condition against the controls, donors kept apart.

    Parameters
    ----------
    representations
        ``{name: Z}``, rows aligned with ``obs``.
    obs
        ``condition``, ``cell_type`` and ``donor_id`` per nucleus.
    reference
        The controls' condition.
    subsample_size, n_subsamples, n_folds, n_permutations
        As in :func:`latentshift.detectability.celltype_auc_by_representation`; folds are
        grouped by donor (at most as many as the donors of the smaller side).
    min_donors
        A cell type is tested when each side has this many donors and ``subsample_size``
        nuclei.
    seed
        Seed.
    condition_key, cell_type_key, donor_key
        Column names in ``obs``.

    Returns
    -------
    pandas.DataFrame
        The columns of the synthetic design's table (``n_source_cells``: the nuclei of the
        smaller side) plus ``n_donors_condition`` and ``n_donors_reference``; the null
        relabels donors.
    """
    reps = {
        str(k): as_latent(Z, len(obs), f"representation '{k}'") for k, Z in representations.items()
    }
    cond_all = obs[condition_key].astype(str).to_numpy()
    ct_all = obs[cell_type_key].astype(str).to_numpy()
    donors = obs[donor_key].astype(str).to_numpy()
    conds = [c for c in pd.unique(cond_all) if c != reference]
    if isinstance(obs[condition_key].dtype, pd.CategoricalDtype):
        conds = [str(c) for c in obs[condition_key].cat.categories if str(c) in set(conds)]
    rows: list[dict[str, Any]] = []
    for cond in conds:
        for ct in tested_cell_types(obs, cell_type_key):
            x = np.flatnonzero((ct_all == ct) & (cond_all == cond))
            y = np.flatnonzero((ct_all == ct) & (cond_all == reference))
            dx, dy = len(set(donors[x])), len(set(donors[y]))
            base = {
                "condition": cond,
                "cell_type": ct,
                "n_cells": x.size + y.size,
                "n_normal": y.size,
                "n_condition": x.size,
                "n_perturbed": x.size,
                "n_source_cells": min(x.size, y.size),
                "n_donors_condition": dx,
                "n_donors_reference": dy,
            }
            if min(x.size, y.size) < subsample_size or min(dx, dy) < min_donors:
                reason = (
                    f"fewer than {subsample_size} nuclei or {min_donors} donors on a side "
                    f"({x.size} nuclei from {dx} donor(s) vs {y.size} from {dy})"
                )
                rows.extend(
                    {"representation": r, **base, "testable": False, "reason": reason} for r in reps
                )
                continue
            rng = unit_rng(seed, cond, ct)
            observed = _donor_draws(x, y, donors, subsample_size, n_subsamples, n_folds, rng)
            both = np.concatenate([x, y])
            null = []
            for _ in range(n_permutations):
                relabelled = _relabel(donors[both], np.arange(both.size) < x.size, rng)
                nx, ny = both[relabelled], both[~relabelled]
                if min(nx.size, ny.size) < subsample_size:
                    continue
                null.extend(_donor_draws(nx, ny, donors, subsample_size, 1, n_folds, rng))
            for rep, Z in reps.items():
                with threadpool_limits(limits=1):
                    aucs = np.array([cv_auc(Z, d) for d in observed])
                    nulls = np.array([cv_auc(Z, d) for d in null])
                rows.append(
                    {
                        "representation": rep,
                        **base,
                        "testable": True,
                        "reason": "",
                        **auc_summary(aucs, nulls),
                    }
                )
            log.info("AUC by donor %s / %s: %d vs %d nuclei", cond, ct, x.size, y.size)
    columns = ["representation", *AUC_COLUMNS[:-1], "n_donors_condition", "n_donors_reference"]
    table = rank_cell_types(pd.DataFrame(rows, columns=columns))
    table = table.sort_values(
        ["representation", "condition", "rank", "cell_type"], na_position="last", kind="stable"
    ).reset_index(drop=True)
    table.attrs["params"] = {
        "design": "case_control (folds and null by donor)",
        "subsample_size": subsample_size,
        "n_subsamples": n_subsamples,
        "n_folds": n_folds,
        "n_permutations": n_permutations,
        "seed": seed,
    }
    return table


def edistance_table_by_donor(
    representations: Mapping[str, Any],
    obs: pd.DataFrame,
    reference: str = "normal",
    *,
    n_permutations: int = 1000,
    min_cells: int = 20,
    min_donors: int = 2,
    max_cells: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    condition_key: str = "condition",
    cell_type_key: str = "cell_type",
    donor_key: str = "donor_id",
) -> pd.DataFrame:
    """E-test of each condition against the controls, pooled and per cell type, by donor.

    Each test subsamples at most ``max_cells`` nuclei per side (seeded), takes its null from
    donor relabellings (:func:`donor_edistance_test`), and its p-values are adjusted by
    Benjamini–Hochberg within each representation.

    Returns
    -------
    pandas.DataFrame
        The synthetic E-test table's columns (``design`` = ``"donor"``, ``n_pairs`` = 0) plus
        ``n_donors_condition``, ``n_donors_reference`` and ``exact``.
    """
    from scipy.stats import false_discovery_control

    reps = {
        str(k): as_latent(Z, len(obs), f"representation '{k}'") for k, Z in representations.items()
    }
    cond_all = obs[condition_key].astype(str).to_numpy()
    ct_all = obs[cell_type_key].astype(str).to_numpy()
    donors = obs[donor_key].astype(str).to_numpy()
    conds = [c for c in pd.unique(cond_all) if c != reference]
    scopes = [(ALL_CELL_TYPES, "condition")] + [
        (ct, "cell_type") for ct in tested_cell_types(obs, cell_type_key)
    ]
    rows = []
    for cond in conds:
        for ct, scope in scopes:
            in_ct = np.ones(len(obs), bool) if ct == ALL_CELL_TYPES else ct_all == ct
            x = np.flatnonzero(in_ct & (cond_all == cond))
            y = np.flatnonzero(in_ct & (cond_all == reference))
            dx, dy = len(set(donors[x])), len(set(donors[y]))
            base = {
                "condition": cond,
                "scope": scope,
                "cell_type": ct,
                "n_normal": y.size,
                "n_condition": x.size,
                "n_perturbed": x.size,
                "n_pairs": 0,
                "design": "donor",
                "metric": "sqeuclidean",
                "n_donors_condition": dx,
                "n_donors_reference": dy,
            }
            if min(x.size, y.size) < min_cells or min(dx, dy) < min_donors:
                reason = f"fewer than {min_cells} nuclei or {min_donors} donors on a side"
                rows.extend(
                    {"representation": r, **base, "testable": False, "reason": reason} for r in reps
                )
                continue
            rng = unit_rng(seed, cond, ct)
            x = np.sort(rng.choice(x, min(x.size, max_cells), replace=False))
            y = np.sort(rng.choice(y, min(y.size, max_cells), replace=False))
            cells = np.concatenate([x, y])
            is_x = np.arange(cells.size) < x.size
            test_seed = int(rng.integers(2**31 - 1))
            for rep, Z in reps.items():
                res = donor_edistance_test(
                    Z[cells], is_x, donors[cells], n_permutations, np.random.default_rng(test_seed)
                )
                rows.append(
                    {
                        "representation": rep,
                        **base,
                        "testable": True,
                        "reason": "",
                        "n_x": res["n_x"],
                        "n_y": res["n_y"],
                        "edistance": res["edistance"],
                        "edistance_excess": res["edistance"] - res["null_mean"],
                        "null_mean": res["null_mean"],
                        "null_sd": res["null_sd"],
                        "null_high": res["null_high"],
                        "n_permutations": res["n_permutations"],
                        "pvalue": res["pvalue"],
                        "min_pvalue": res["min_pvalue"],
                        "at_min_pvalue": bool(res["pvalue"] <= res["min_pvalue"] + 1e-12),
                        "exact": res["exact"],
                    }
                )
    columns = [*EDISTANCE_COLUMNS, "n_donors_condition", "n_donors_reference", "exact"]
    table = pd.DataFrame(rows).reindex(columns=columns)
    table["testable"] = table["testable"].astype(bool)
    table["pvalue_adj"] = np.nan
    for rep in reps:
        mask = (table["representation"] == rep) & table["testable"]
        if mask.any():
            table.loc[mask, "pvalue_adj"] = false_discovery_control(
                table.loc[mask, "pvalue"].to_numpy(dtype=float)
            )
    table["significant"] = table["pvalue_adj"] < alpha
    return table


def analyse_cell_types_by_donor(
    adata: Any, params: Mapping[str, Any], reference: str = "normal", seed: int = 0
) -> CellTypeShiftResult:
    """The case–control counterpart of :func:`latentshift.celltype_shift.analyse_cell_types`.

    Parameters
    ----------
    adata
        ``latent.h5ad`` of a case–control run (obs ``condition``, ``cell_type``, ``donor_id``).
    params
        The resolved ``cell_types`` params section.
    reference
        The controls' condition.
    seed
        Seed.
    """
    reps = {name: adata.obsm[key] for name, key in REPRESENTATIONS.items() if key in adata.obsm}
    auc = celltype_auc_by_donor(
        reps,
        adata.obs,
        reference,
        subsample_size=params["subsample_size"],
        n_subsamples=params["n_subsamples"],
        n_folds=params["n_folds"],
        n_permutations=params["n_permutations"],
        seed=seed,
    )
    etest = edistance_table_by_donor(
        reps,
        adata.obs,
        reference,
        n_permutations=params["e_permutations"],
        min_cells=params["subsample_size"],
        max_cells=params["e_max_cells"],
        seed=seed,
    )
    return CellTypeShiftResult(auc=auc, etest=etest, headline=headline_table(auc, etest))


def donor_factor_shifts(
    latent: np.ndarray,
    obs: pd.DataFrame,
    conditions: Sequence[str],
    factor_names: Sequence[str] | None = None,
    reference: str = "normal",
    donor_key: str = "donor_id",
) -> pd.DataFrame:
    """Each condition's shift on every factor, donor-averaged (the case–control counterpart of
    :func:`latentshift.loadings.factor_shifts`, which pairs copies with their source cells).

    Each donor counts once: its nuclei's mean latent. The shift of a factor is the mean of the
    condition's donor means minus the mean of the controls' donor means; its spread comes from
    the donors (Welch's standard error), so a donor with many nuclei does not weigh more.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`latentshift.loadings.factor_shifts`: ``condition``, ``factor``,
        ``n_pairs`` (here: donors of the condition), ``mean_shift``, ``sd_shift`` (pooled sd of
        the donor means), ``ci_low``/``ci_high`` (95 % Welch normal interval), ``effect_size``
        (mean shift / pooled sd: Cohen's d over donors), ``cohens_d`` (the same), ``rank``
        (1 = largest ``|effect_size|``), plus ``n_donors_reference``.
    """
    latent = np.asarray(latent, dtype=np.float64)
    k = latent.shape[1]
    names = list(factor_names) if factor_names is not None else [f"Z_{i}" for i in range(k)]
    means = (
        pd.DataFrame(latent, columns=names)
        .groupby(obs[donor_key].astype(str).to_numpy(), sort=True)
        .mean()
    )
    cond_of = obs.groupby(obs[donor_key].astype(str).to_numpy(), sort=True)["condition"].first()
    cond_of = cond_of.astype(str).loc[means.index]
    ref = means[cond_of.to_numpy() == reference]
    frames = []
    for condition in conditions:
        x = means[cond_of.to_numpy() == condition]
        if len(x) < 2 or len(ref) < 2:
            raise CellTypeShiftError(
                f"donor-averaged shifts need 2 donors per side; '{condition}' has {len(x)}, "
                f"'{reference}' {len(ref)}."
            )
        diff = x.mean() - ref.mean()
        se = np.sqrt(x.var(ddof=1) / len(x) + ref.var(ddof=1) / len(ref))
        pooled = np.sqrt(
            ((len(x) - 1) * x.var(ddof=1) + (len(ref) - 1) * ref.var(ddof=1))
            / (len(x) + len(ref) - 2)
        )
        effect = np.where(pooled > 0, diff / pooled.where(pooled > 0, 1.0), 0.0)
        frame = pd.DataFrame(
            {
                "condition": condition,
                "factor": names,
                "n_pairs": len(x),
                "n_donors_reference": len(ref),
                "mean_shift": diff.to_numpy(),
                "sd_shift": pooled.to_numpy(),
                "ci_low": (diff - 1.96 * se).to_numpy(),
                "ci_high": (diff + 1.96 * se).to_numpy(),
                "effect_size": effect,
                "cohens_d": effect,
            }
        )
        frame["rank"] = frame["effect_size"].abs().rank(ascending=False, method="first").astype(int)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def shift_function(
    design: str, cells: str = "test", reference: str = "normal"
) -> Callable[..., pd.DataFrame]:
    """How 06 measures each condition's shift on each factor, by design.

    Returns
    -------
    callable
        ``shifts_of(latent, obs, conditions, factor_names) -> DataFrame``: the paired
        :func:`latentshift.loadings.factor_shifts` on ``cells`` (synthetic) or the
        donor-averaged :func:`donor_factor_shifts` (case_control).
    """
    from latentshift.loadings import factor_shifts

    if design == "case_control":
        return lambda Z, obs, conds, names: donor_factor_shifts(Z, obs, conds, names, reference)
    return lambda Z, obs, conds, names: factor_shifts(Z, obs, conds, names, cells=cells)
