"""The E-distance of two groups of cells and its permutation test (the E-test).

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

Which relabellings make the null is the design's (:func:`latentshift.design.nulls.relabel`):
:mod:`latentshift.readings.edistance` explains the choice for copies, donors and the unpaired
variant, and tests every condition and cell type with :func:`edistance_test`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist

from latentshift.design.nulls import relabel
from latentshift.design.units import Units
from latentshift.errors import CellTypeShiftError

__all__ = [
    "METRICS",
    "ETestResult",
    "check_metric",
    "edistance",
    "edistance_test",
]

METRICS: tuple[str, ...] = ("sqeuclidean", "euclidean")
#: relative tolerance under which a permuted statistic counts as equal to the observed one
_TIE_TOL = 1e-10


def check_metric(metric: str) -> None:
    """Raise unless ``metric`` is one of :data:`METRICS`.

    Parameters
    ----------
    metric
        The cell-wise distance's name.

    Raises
    ------
    CellTypeShiftError
        On an unknown metric.
    """
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
    check_metric(metric)
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
    check_metric(metric)
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
