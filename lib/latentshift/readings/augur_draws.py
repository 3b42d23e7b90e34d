"""Augur-style draws of one cell type: within-unit pairs, equal-sized subsamples with folds
grouped by unit, and the cross-validated AUC of one draw.

The building blocks of :func:`latentshift.readings.detectability.celltype_auc_by_representation`
(whose module docstring describes the design and how it differs from Augur, Skinnider et al.
2021, *Nat Biotechnol* 39:30-34); :func:`within_unit_pairs` also pairs the cells of the E-test
(:mod:`latentshift.readings.edistance`).

- :func:`auc_score` — the AUC by the Mann-Whitney rank formula;
- :func:`within_unit_pairs` — a reference and a condition cell of one unit;
- :class:`Draw`, :func:`draw_subsamples` — equal-sized subsamples and their grouped folds;
- :func:`cv_auc` — the mean per-fold AUC of one draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from latentshift.design.folds import group_kfold
from latentshift.errors import CellTypeShiftError

__all__ = [
    "Draw",
    "auc_score",
    "cv_auc",
    "draw_subsamples",
    "within_unit_pairs",
]


def auc_score(y_true: Any, score: Any) -> float:
    """Area under the ROC curve by the Mann-Whitney rank formula.

    ``AUC = (R_1 - n_1 (n_1 + 1) / 2) / (n_1 n_0)`` where ``R_1`` is the sum of the
    (average, for ties) ranks of the positives' scores: the probability that a random
    positive scores above a random negative, ties counting one half. Equals
    :func:`sklearn.metrics.roc_auc_score` and is ~20 times faster on small folds.

    Parameters
    ----------
    y_true
        Boolean (or 0/1) labels; True is the positive class.
    score
        Real-valued scores, higher meaning more positive.

    Returns
    -------
    float
        The AUC in [0, 1].
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise CellTypeShiftError(
            f"y_true and score must be 1-d and equally long, got {y.shape} and {s.shape}."
        )
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        raise CellTypeShiftError("the AUC needs both classes among y_true.")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


@dataclass(frozen=True)
class Draw:
    """One equal-sized subsample, its labels and its folds.

    Attributes
    ----------
    cells
        Row positions into the representation: ``k`` reference-side cells, then ``k``
        condition-side cells (for pairs, the i-th of each side form pair i).
    labels
        True where a cell is labelled as the condition (in a null draw, as relabelled).
    groups
        The unit of each cell (codes in order of first appearance), for grouped folds.
    folds
        ``(train, test)`` positions into ``cells`` (:func:`latentshift.design.folds.group_kfold`);
        empty when the draw holds fewer than 2 units of a condition.
    seed
        A seed derived from the draw, for a classifier that needs one.
    permuted
        Whether the labels are a relabelling (a null draw).
    """

    cells: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]
    seed: int
    permuted: bool


def within_unit_pairs(
    reference: np.ndarray, condition: np.ndarray, unit: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """Pairs of a reference cell and a condition cell of the same unit.

    A unit with one cell on each side (a source cell and its copy) gives that pair; a unit with
    several (a donor's nuclei before and after a stimulation) gives ``min(n_reference,
    n_condition)`` pairs of its cells matched at random.

    Parameters
    ----------
    reference, condition
        Row positions of the reference cells and of the condition cells.
    unit
        The unit of every row (indexed by those positions).
    rng
        Generator for the matching (used only where a unit has several cells on a side).

    Returns
    -------
    pandas.DataFrame
        ``unit``, ``normal``, ``copy`` (row positions), sorted by the reference cell's position.
    """
    ref = pd.DataFrame({"unit": unit[reference], "normal": reference})
    cond = pd.DataFrame({"unit": unit[condition], "copy": condition})
    if ref["unit"].duplicated().any() or cond["unit"].duplicated().any():
        ref = ref.iloc[rng.permutation(len(ref))]
        cond = cond.iloc[rng.permutation(len(cond))]
    ref["k"] = ref.groupby("unit").cumcount()
    cond["k"] = cond.groupby("unit").cumcount()
    pairs = ref.merge(cond, on=["unit", "k"], how="inner").drop(columns="k")
    return pairs.sort_values("normal", kind="stable").reset_index(drop=True)


def _fold(draw_cells: np.ndarray, labels: np.ndarray, unit: np.ndarray, n_folds: int, seed: int):
    groups = pd.factorize(unit[draw_cells])[0]
    k = min(n_folds, *(np.unique(groups[labels == v]).size for v in (False, True)))
    return groups, (group_kfold(labels, groups, k, seed) if k >= 2 else [])


def draw_subsamples(
    unit: np.ndarray,
    is_condition: np.ndarray,
    *,
    pairs: pd.DataFrame | None,
    pool: np.ndarray,
    subsample_size: int,
    n_draws: int,
    n_folds: int = 3,
    permuted: bool = False,
    rng: np.random.Generator | int = 0,
) -> list[Draw]:
    """Equal-sized subsamples of a cell type's cells with folds grouped by unit (Augur's design).

    Parameters
    ----------
    unit
        The unit of every row.
    is_condition
        The (possibly relabelled) label of every row: True for the condition.
    pairs
        Paired designs: :func:`within_unit_pairs`; a draw takes ``subsample_size`` pairs and
        puts each pair's cells on the sides their labels give. ``None``: unpaired — a draw
        takes ``subsample_size`` cells of each side of ``pool``.
    pool
        Unpaired designs: the rows that may be drawn.
    subsample_size
        Cells per condition in each subsample.
    n_draws
        Number of subsamples.
    n_folds
        Cross-validation folds per subsample (at most the units of a side in the draw).
    permuted
        Whether ``is_condition`` is a relabelling (recorded on the draws).
    rng
        Generator or seed.

    Returns
    -------
    list of Draw
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    k = int(subsample_size)
    if k < n_folds:
        raise CellTypeShiftError(f"subsample_size ({k}) must be at least n_folds ({n_folds}).")
    draws = []
    for _ in range(n_draws):
        if pairs is not None:
            if k > len(pairs):
                raise CellTypeShiftError(
                    f"subsample_size {k} exceeds the {len(pairs)} pairs available."
                )
            pick = np.sort(rng.choice(len(pairs), size=k, replace=False))
            a, b = pairs["normal"].to_numpy()[pick], pairs["copy"].to_numpy()[pick]
            swap = is_condition[
                a
            ]  # a relabelling may put a pair's reference cell on the other side
            cells = np.concatenate([np.where(swap, b, a), np.where(swap, a, b)])
        else:
            x, y = pool[is_condition[pool]], pool[~is_condition[pool]]
            cells = np.concatenate(
                [np.sort(rng.choice(y, k, replace=False)), np.sort(rng.choice(x, k, replace=False))]
            )
        labels = np.concatenate([np.zeros(k, bool), np.ones(k, bool)])
        seed = int(rng.integers(2**31 - 1))
        groups, folds = _fold(cells, labels, unit, n_folds, seed)
        draws.append(Draw(cells, labels, groups, folds, seed, permuted))
    return draws


def _classifier(name: str, seed: int) -> Any:
    if name == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=1.0, max_iter=500)
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=50, random_state=seed, n_jobs=1)


def cv_auc(Z: np.ndarray, draw: Draw, classifier: str = "logistic") -> float:
    """The cross-validated AUC of one draw: the mean of its per-fold AUCs (as Augur does).

    Parameters
    ----------
    Z
        Cells x dimensions representation (all cells; the draw indexes into it).
    draw
        From :func:`draw_subsamples`.
    classifier
        ``"logistic"`` (standardised features, L2, C=1) or ``"random_forest"`` (50 trees).

    Returns
    -------
    float
        Mean AUC over the folds with both classes in their test part.
    """
    X = Z[draw.cells]
    y = draw.labels
    aucs = []
    for train, test in draw.folds:
        if y[test].all() or not y[test].any() or y[train].all() or not y[train].any():
            continue
        xtr = X[train]
        mu = xtr.mean(axis=0)
        sd = xtr.std(axis=0)
        sd[sd == 0] = 1.0
        model = _classifier(classifier, draw.seed).fit((xtr - mu) / sd, y[train])
        xte = (X[test] - mu) / sd
        score = (
            model.decision_function(xte)
            if classifier == "logistic"
            else model.predict_proba(xte)[:, 1]
        )
        aucs.append(auc_score(y[test], score))
    return float(np.mean(aucs)) if aucs else float("nan")
