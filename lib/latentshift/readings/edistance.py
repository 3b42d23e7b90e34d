"""E-distance between a condition and normal, with its permutation test (the E-test).

The E-distance of scPerturb (Peidli et al. 2024, *Nat Methods* 21:531-540) and pertpy
(``pt.tl.Distance("edistance")``, ``pt.tl.DistanceTest``) between cell groups X and Y is

    E(X, Y) = 2 * delta_XY - sigma_X - sigma_Y,
    delta_XY = 1/(n m) sum_{i, j} d(x_i, y_j),
    sigma_X  = 1/n^2  sum_{i, i'} d(x_i, x_i')   (all ordered pairs, i = i' included),

a two-sample energy statistic (Szekely & Rizzo 2004/2013).

Conventions chosen (checked against the published code)
------------------------------------------------------
* **d is the squared Euclidean distance** by default (``metric="sqeuclidean"``): scPerturb's
  ``edist``/``etest`` default ``dist='sqeuclidean'``, as did earlier releases of pertpy's
  ``Edistance``. Current pertpy has switched its cell-wise metric to ``"euclidean"``
  (the energy distance proper, which tests equality of whole distributions);
  ``metric="euclidean"`` gives it.
* **Within-group means include i = i'** (a V-statistic, divide by n^2): pertpy's
  ``pairwise_distances(X, X).mean()`` and the permutation part of scPerturb's ``etest`` do
  this. (scPerturb's ``edist`` divides the within sums by n^2 - n instead;
  ``unbiased=True`` of :func:`edistance` gives that variant, for comparison only.)
* With d squared Euclidean and the V-statistic the E-distance has the closed form

      E(X, Y) = 2 * || mean(X) - mean(Y) ||^2

  (the within-group spreads cancel the between-group spread exactly), so it is computed in
  O((n + m) d) without any pairwise matrix, is >= 0, symmetric, translation invariant, and
  measures a shift of the mean only. The unbiased variant is
  ``2 ||mean(X) - mean(Y)||^2 - 2 tr S_X / n - 2 tr S_Y / m`` (S with ddof 1), which can be
  negative. Both are checked against the pairwise definition in the tests.

The permutation test (the E-test)
---------------------------------
p = (1 + #{permutations with E >= E_observed}) / (1 + n_permutations) (Phipson & Smyth
2010), so the smallest attainable p-value is ``1 / (n_permutations + 1)``. (pertpy's
``DistanceTest`` uses max(1, #{E > E_obs}) / n_permutations, scPerturb's first ``etest``
#{E > E_obs} / runs, which can be 0.) Ties (within 1e-10 of the data's scale) count as
``>=``: conservative.

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
over units (basic bootstrap interval, see :class:`ETestResult`). Multiple testing:
Benjamini-Hochberg (:func:`scipy.stats.false_discovery_control`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist
from scipy.stats import false_discovery_control

from latentshift.design.nulls import relabel, unit_rng
from latentshift.design.units import Units
from latentshift.errors import CellTypeShiftError
from latentshift.readings.detectability import within_unit_pairs
from latentshift.readings.shift_units import as_latent, check_obs, tested_cell_types

log = logging.getLogger(__name__)

__all__ = [
    "ALL_CELL_TYPES",
    "DESIGNS",
    "EDISTANCE_COLUMNS",
    "METRICS",
    "ETestResult",
    "edistance",
    "edistance_table",
    "edistance_test",
]

METRICS: tuple[str, ...] = ("sqeuclidean", "euclidean")
DESIGNS: tuple[str, ...] = ("paired", "unpaired")
#: the ``cell_type`` of the per-condition rows (all cell types pooled)
ALL_CELL_TYPES = "all"
#: relative tolerance under which a permuted statistic counts as equal to the observed one
_TIE_TOL = 1e-10

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


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise CellTypeShiftError(f"unknown metric '{metric}'; use one of {', '.join(METRICS)}.")


def _as_points(X: Any, name: str) -> np.ndarray:
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise CellTypeShiftError(
            f"{name} must be a non-empty 2-d array (cells x dimensions), got shape {arr.shape}."
        )
    if not np.isfinite(arr).all():
        raise CellTypeShiftError(f"{name} holds NaN or infinite values.")
    return arr


def edistance(X: Any, Y: Any, *, metric: str = "sqeuclidean", unbiased: bool = False) -> float:
    """E-distance between two groups of cells (Peidli et al. 2024, *Nat Methods* 21:531-540).

    ``E = 2 delta_XY - sigma_X - sigma_Y`` with ``delta_XY`` the mean distance over all
    (x, y) pairs and ``sigma_X`` the mean over all ordered (x, x') pairs *including*
    x = x' (pertpy's ``Distance("edistance")`` convention). For the default squared
    Euclidean distance this equals ``2 ||mean(X) - mean(Y)||^2`` and is computed that way.

    Parameters
    ----------
    X, Y
        Cells x dimensions (a 1-d array is read as one dimension). Same number of columns.
    metric
        ``"sqeuclidean"`` (scPerturb's default) or ``"euclidean"`` (the energy distance
        proper, current pertpy default; needs the n x m pairwise matrix: subsample first).
    unbiased
        Within-group means over i != i' (divide by n(n-1)), as scPerturb's ``edist`` does;
        needs at least two cells per group. The estimate can then be negative.

    Returns
    -------
    float

    Examples
    --------
    >>> edistance([[0.0], [2.0]], [[3.0], [5.0]])  # 2 * (1 - 4)**2
    18.0
    """
    _check_metric(metric)
    X, Y = _as_points(X, "X"), _as_points(Y, "Y")
    if X.shape[1] != Y.shape[1]:
        raise CellTypeShiftError(
            f"X and Y have different numbers of columns ({X.shape[1]} and {Y.shape[1]})."
        )
    n, m = len(X), len(Y)
    if unbiased and min(n, m) < 2:
        raise CellTypeShiftError("unbiased=True needs at least two cells per group.")
    if metric == "sqeuclidean":
        center = np.vstack([X, Y]).mean(axis=0)
        X, Y = X - center, Y - center
        diff = X.mean(axis=0) - Y.mean(axis=0)
        e = 2.0 * float(diff @ diff)
        if unbiased:
            e -= (
                2.0 * float(X.var(axis=0, ddof=1).sum()) / n
                + 2.0 * float(Y.var(axis=0, ddof=1).sum()) / m
            )
        return e
    # scipy's cdist subtracts coordinates (exact for identical points), unlike the dot-product
    # expansion of sklearn's euclidean_distances, whose rounding the square root magnifies
    sxx = float(cdist(X, X).sum())
    syy = float(cdist(Y, Y).sum())
    sxy = float(cdist(X, Y).sum())
    if unbiased:
        return 2 * sxy / (n * m) - sxx / (n * (n - 1)) - syy / (m * (m - 1))
    return 2 * sxy / (n * m) - sxx / n**2 - syy / m**2


class _EStat:
    """E-distance of weighted groups of the same pooled cells (V-statistic)."""

    def __init__(self, Z: np.ndarray, metric: str) -> None:
        self.metric = metric
        Z = Z - Z.mean(axis=0)
        if metric == "sqeuclidean":
            self.Z = Z
            self.scale = float((Z**2).sum(axis=1).mean()) or 1.0
        else:
            self.P = cdist(Z, Z)
            self.scale = float(self.P.mean()) or 1.0
        self.n = Z.shape[0]

    def __call__(self, wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
        """E for each row of the weight matrices (B x cells; 0/1 for a permutation)."""
        sx = wx.sum(axis=1)
        sy = wy.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.metric == "sqeuclidean":
                mx = (wx @ self.Z) / sx[:, None]
                my = (wy @ self.Z) / sy[:, None]
                return 2.0 * ((mx - my) ** 2).sum(axis=1)
            ax = wx @ self.P
            ay = wy @ self.P
            sxx = (ax * wx).sum(axis=1) / sx**2
            syy = (ay * wy).sum(axis=1) / sy**2
            sxy = (ax * wy).sum(axis=1) / (sx * sy)
            return 2.0 * sxy - sxx - syy

    def batch(self) -> int:
        return max(1, int(2e7 // max(self.n, 1)))


@dataclass(frozen=True)
class ETestResult:
    """Result of :func:`edistance_test`.

    Attributes
    ----------
    edistance
        The observed E-distance.
    pvalue
        Exact (every relabelling enumerated): the share of relabellings at least as extreme,
        the observed one included; sampled: (1 + #{null >= observed}) / (1 + n_permutations).
    min_pvalue
        The smallest p-value the design and the permutation count allow.
    n_permutations
        Relabellings scored.
    exact
        Whether they are every distinct relabelling of the design.
    null_mean, null_sd, null_high
        Mean, standard deviation and 97.5 % percentile of the permutation null.
    edistance_sd, edistance_low, edistance_high
        Bootstrap standard deviation and basic bootstrap 95 % interval (``2 E - q_97.5``,
        ``2 E - q_2.5`` of the bootstrap copies; Davison & Hinkley 1997, section 5.2), which
        undoes the upward bias of the V-statistic and can reach below 0 when there is no
        shift. NaN without bootstrap.
    n_x, n_y
        Cells per group.
    design
        ``"paired"`` (labels permuted within units) or ``"unpaired"`` (units relabelled).
    metric
        The cell-wise distance.
    """

    edistance: float
    pvalue: float
    min_pvalue: float
    n_permutations: int
    exact: bool
    null_mean: float
    null_sd: float
    null_high: float
    edistance_sd: float
    edistance_low: float
    edistance_high: float
    n_x: int
    n_y: int
    design: str
    metric: str


def _bootstrap_weights(
    is_x: np.ndarray, codes: np.ndarray | None, paired: bool, n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap weights: units resampled (within each group when unpaired), or cells."""
    n = is_x.size
    if codes is not None and paired:
        k = int(codes.max()) + 1
        counts = rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot)
        w = counts[:, codes].astype(np.float64)
        return w * is_x, w * ~is_x
    w = np.zeros((n_boot, n))
    for mask in (is_x, ~is_x):
        idx = np.flatnonzero(mask)
        if codes is None:
            counts = rng.multinomial(idx.size, np.full(idx.size, 1.0 / idx.size), size=n_boot)
            w[:, idx] = counts
        else:
            sub, names = pd.factorize(codes[idx])
            counts = rng.multinomial(len(names), np.full(len(names), 1.0 / len(names)), size=n_boot)
            w[:, idx] = counts[:, sub]
    return w * is_x, w * ~is_x


def edistance_test(
    X: Any,
    Y: Any,
    *,
    n_permutations: int = 1000,
    seed: int | np.random.Generator = 0,
    pairs: tuple[Any, Any] | None = None,
    paired: bool = True,
    metric: str = "sqeuclidean",
    n_bootstrap: int = 0,
) -> ETestResult:
    """Permutation test of the E-distance (the E-test of Peidli et al. 2024, pertpy ``DistanceTest``).

    Parameters
    ----------
    X, Y
        Cells x dimensions of the two groups (e.g. condition copies and normal cells).
    n_permutations
        Random relabellings; when the design has at most this many distinct ones, every one
        is used instead (an exact test).
    seed
        Seed or generator.
    pairs
        ``(units_x, units_y)``: the unit (source cell, donor) of each row of X and of Y. The
        null is then the design's (:func:`latentshift.design.nulls.relabel`): labels permuted within
        units when ``paired``, whole units relabelled when not; the bootstrap resamples units.
        ``None``: every cell its own unit, labels shuffled over all cells, bootstrap within
        each group.
    paired
        Whether every unit holds cells of both groups (with ``pairs``).
    metric
        ``"sqeuclidean"`` (default) or ``"euclidean"``; see :func:`edistance`.
    n_bootstrap
        Bootstrap resamples for the E-distance's spread (0: none).

    Returns
    -------
    ETestResult

    Notes
    -----
    Cost: ``O(n_permutations (n + m) d)`` for sqeuclidean; ``O((n + m)^2)`` memory and
    ``O(n_permutations (n + m)^2)`` time for euclidean: subsample large groups first.
    """
    _check_metric(metric)
    X, Y = _as_points(X, "X"), _as_points(Y, "Y")
    if X.shape[1] != Y.shape[1]:
        raise CellTypeShiftError(
            f"X and Y have different numbers of columns ({X.shape[1]} and {Y.shape[1]})."
        )
    if n_permutations < 1:
        raise CellTypeShiftError(f"n_permutations must be >= 1, got {n_permutations}.")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n, m = len(X), len(Y)
    is_x = np.concatenate([np.ones(n, bool), np.zeros(m, bool)])
    if pairs is None:
        codes, unit, paired = None, np.arange(n + m).astype(str), False
    else:
        bx, by = (np.asarray(b) for b in pairs)
        if bx.shape != (n,) or by.shape != (m,):
            raise CellTypeShiftError("pairs must give one unit per row of X and one per row of Y.")
        unit = np.concatenate([bx.astype(str), by.astype(str)])
        codes = pd.factorize(pd.Series(unit))[0]
    design = Units(unit, np.where(is_x, "x", "y"), ("y", "x"), bool(paired), "unit")
    relabellings = relabel(design, n_permutations, rng)
    stat = _EStat(np.vstack([X, Y]), metric)
    observed = float(stat(is_x[None, :].astype(np.float64), (~is_x)[None, :].astype(np.float64))[0])
    null = np.empty(len(relabellings))
    step = stat.batch()
    for start in range(0, len(relabellings), step):
        perm = (relabellings.codes[start : start + step] == 1).astype(np.float64)
        null[start : start + len(perm)] = stat(perm, 1.0 - perm)
    tol = _TIE_TOL * stat.scale
    boot_sd = boot_low = boot_high = np.nan
    if n_bootstrap > 0:
        values = []
        for start in range(0, n_bootstrap, step):
            b = min(step, n_bootstrap - start)
            wx, wy = _bootstrap_weights(is_x, codes, bool(paired), b, rng)
            values.append(stat(wx, wy))
        boot = np.concatenate(values)
        boot = boot[np.isfinite(boot)]
        if boot.size:
            boot_sd = float(boot.std(ddof=1)) if boot.size > 1 else 0.0
            # basic (reverse-percentile) interval: the V-statistic is biased upwards by about
            # the null mean, and its bootstrap copies once more; 2E - q corrects that shift
            q_low, q_high = np.percentile(boot, [2.5, 97.5])
            boot_low, boot_high = 2 * observed - float(q_high), 2 * observed - float(q_low)
    return ETestResult(
        edistance=observed,
        pvalue=float(relabellings.pvalue(observed, null, tol)),
        min_pvalue=relabellings.min_pvalue,
        n_permutations=len(relabellings),
        exact=relabellings.exact,
        null_mean=float(null.mean()),
        null_sd=float(null.std(ddof=1)) if len(null) > 1 else 0.0,
        null_high=float(np.percentile(null, 97.5)),
        edistance_sd=boot_sd,
        edistance_low=boot_low,
        edistance_high=boot_high,
        n_x=n,
        n_y=m,
        design="paired" if paired else "unpaired",
        metric=metric,
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
    _check_metric(metric)
    if units is None:
        check_obs(obs, ["condition", group_key])
        cond_values = obs["condition"].astype(str)
        others = [c for c in pd.unique(cond_values) if c != "normal"]
        if isinstance(obs["condition"].dtype, pd.CategoricalDtype):
            others = [str(c) for c in obs["condition"].cat.categories if str(c) in set(others)]
        units = Units(
            obs[group_key].astype(str).to_numpy(),
            cond_values.to_numpy(),
            ("normal", *others),
            True,
            "source cell",
        )
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
    if not representations:
        raise CellTypeShiftError("no representation given; pass {name: Z}.")
    reps = {
        str(k): as_latent(Z, len(obs), f"representation '{k}'") for k, Z in representations.items()
    }
    reference = units.reference
    others = list(units.labels[1:])
    conds = others if conditions is None else [str(c) for c in conditions]
    unknown = [c for c in conds if c not in others]
    if unknown:
        raise CellTypeShiftError(
            f"condition(s) {unknown} are not conditions to test against '{reference}' "
            f"(have: {others})."
        )
    cell_types = tested_cell_types(obs, cell_type_key)
    if ALL_CELL_TYPES in cell_types:
        log.warning(
            "a cell type is named '%s', like the pooled rows; tell them apart by 'scope'",
            ALL_CELL_TYPES,
        )
    ct_all = obs[cell_type_key].astype(str).to_numpy()
    pert_all = obs[perturbed_key].to_numpy(dtype=bool)
    scopes = [("condition", ALL_CELL_TYPES, np.ones(len(obs), bool))]
    if by_cell_type:
        scopes += [("cell_type", ct, ct_all == ct) for ct in cell_types]
    settings = dict(
        design=design, min_cells=min_cells, min_units=min_units, max_cells=max_cells, seed=seed
    )
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
            test = _scope_test(units, x, y, cond, scope, ct, **settings)
            base["n_pairs"] = test["n_pairs"]
            if test["reason"]:
                rows.extend(
                    {
                        "representation": rep,
                        **base,
                        "n_x": 0,
                        "n_y": 0,
                        "n_permutations": n_permutations,
                        "testable": False,
                        "reason": test["reason"],
                    }
                    for rep in reps
                )
                continue
            x_idx, y_idx = test["x"], test["y"]
            for rep, Z in reps.items():
                res = edistance_test(
                    Z[x_idx],
                    Z[y_idx],
                    n_permutations=n_permutations,
                    seed=test["seed"],
                    pairs=test["units"],
                    paired=test["paired"],
                    metric=metric,
                    n_bootstrap=n_bootstrap,
                )
                out = asdict(res)
                out.pop("design")
                out.pop("metric")
                rows.append({"representation": rep, **base, **out, "testable": True, "reason": ""})
            log.info("E-test %s / %s: %d + %d cells", cond, ct, len(x_idx), len(y_idx))

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
    table = table.reindex(columns=list(EDISTANCE_COLUMNS))
    table.attrs["params"] = {
        "reference": reference,
        "unit": units.name,
        "paired": units.paired,
        "design": design,
        "metric": metric,
        "n_permutations": n_permutations,
        "n_bootstrap": n_bootstrap,
        "min_cells": min_cells,
        "max_cells": max_cells,
        "alpha": alpha,
        "fdr_scope": fdr_scope,
        "seed": seed,
    }
    return table


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
