"""Evaluating a classifier: metrics with bootstrap intervals, and accuracy on the copies a
perturbation left untouched.

Metrics come from confusion matrices of resampled test cells or units (:func:`bootstrap_ci`,
:func:`evaluate`; the resamples from :func:`latentshift.design.units.bootstrap_samples`), so every
number carries its 95% percentile interval. The label null is the units engine's
(:func:`latentshift.readings.classify.label_null`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from latentshift.design.units import bootstrap_samples
from latentshift.errors import ClassifierError

#: Metric names :func:`bootstrap_ci` computes from the confusion matrix (fast path).
METRIC_NAMES: tuple[str, ...] = ("accuracy", "balanced_accuracy", "macro_f1")


def _encode(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[Any] | None
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if labels is None:
        labels = list(np.unique(np.concatenate([y_true, y_pred])))
    labels = list(labels)
    index = {lab: i for i, lab in enumerate(labels)}
    try:
        t = np.array([index[v] for v in y_true.tolist()], dtype=np.int64)
        p = np.array([index[v] for v in y_pred.tolist()], dtype=np.int64)
    except KeyError as exc:
        raise ClassifierError(
            f"label {exc.args[0]!r} is not among labels {labels}; pass every class in labels."
        ) from None
    return t, p, labels


def _confusions(
    t: np.ndarray, p: np.ndarray, k: int, samples: np.ndarray | None = None
) -> np.ndarray:
    """Confusion matrices ``(n_samples, k, k)`` of resamples (rows of ``samples`` index cells)."""
    codes = t * k + p
    if samples is None:
        return np.bincount(codes, minlength=k * k).reshape(1, k, k)
    out = np.empty((len(samples), k * k), dtype=np.int64)
    for i, s in enumerate(samples):
        out[i] = np.bincount(codes[s], minlength=k * k)
    return out.reshape(len(samples), k, k)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


def metrics_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy, macro F1 and per-class precision/recall from confusion matrices.

    Matches scikit-learn: balanced accuracy averages recall over classes present in the true
    labels; macro F1 averages over all labels, counting 0 where a class has neither true nor
    predicted cells (``zero_division=0``).

    Parameters
    ----------
    cm
        ``(k, k)`` or ``(n, k, k)`` counts, rows true, columns predicted.
    """
    cm = np.asarray(cm, dtype=np.float64)
    single = cm.ndim == 2
    if single:
        cm = cm[None]
    diag = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(axis=2)
    predicted = cm.sum(axis=1)
    n = cm.sum(axis=(1, 2))
    recall = _safe_div(diag, support)
    precision = _safe_div(diag, predicted)
    f1 = _safe_div(2 * diag, support + predicted)
    present = support > 0
    out = {
        "accuracy": _safe_div(diag.sum(axis=1), n),
        "balanced_accuracy": _safe_div((recall * present).sum(axis=1), present.sum(axis=1)),
        "macro_f1": f1.mean(axis=1),
        "precision": precision,
        "recall": recall,
    }
    if single:
        out = {k: v[0] for k, v in out.items()}
    return out


def _percentile(values: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1 - level) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha], axis=0)
    return lo, hi


def bootstrap_ci(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    metric: str | Callable[[np.ndarray, np.ndarray], float] = "accuracy",
    n_boot: int = 500,
    seed: int = 0,
    level: float = 0.95,
    groups: Sequence[Any] | np.ndarray | None = None,
    labels: Sequence[Any] | None = None,
) -> tuple[float, float, float]:
    """A metric with its percentile bootstrap interval over test cells.

    Parameters
    ----------
    y_true, y_pred
        True and predicted labels of the test cells.
    metric
        ``"accuracy"``, ``"balanced_accuracy"``, ``"macro_f1"`` (computed from resampled
        confusion matrices; fast), or a callable ``metric(y_true, y_pred) -> float``.
    n_boot
        Number of bootstrap resamples.
    seed
        Seed of the resampling.
    level
        Interval coverage (0.95: the 2.5th and 97.5th percentiles).
    groups
        Resample whole groups (e.g. source cells) instead of cells; ``None``: cells.
    labels
        All class labels (for the named metrics; default: those seen).

    Returns
    -------
    point, low, high
        The metric on all cells and the interval bounds.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) != len(y_pred) or len(y_true) == 0:
        raise ClassifierError(
            f"y_true and y_pred must be non-empty and equally long (got {len(y_true)} and {len(y_pred)})."
        )
    samples = bootstrap_samples(len(y_true), n_boot, seed, groups)
    if isinstance(metric, str):
        if metric not in METRIC_NAMES:
            raise ClassifierError(
                f"unknown metric {metric!r}; use one of {', '.join(METRIC_NAMES)} or a callable."
            )
        t, p, labels = _encode(y_true, y_pred, labels)
        k = len(labels)
        point = float(metrics_from_confusion(_confusions(t, p, k)[0])[metric])
        values = metrics_from_confusion(_confusions(t, p, k, samples))[metric]
    else:
        point = float(metric(y_true, y_pred))
        values = np.array([metric(y_true[s], y_pred[s]) for s in samples], dtype=np.float64)
    lo, hi = _percentile(values, level)
    return point, float(lo), float(hi)


def evaluate(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    labels: Sequence[Any],
    n_boot: int = 500,
    seed: int = 0,
    level: float = 0.95,
    groups: Sequence[Any] | np.ndarray | None = None,
) -> dict[str, Any]:
    """Every test metric with its bootstrap interval, and the confusion matrix.

    Point estimates come from scikit-learn; the intervals from the same ``n_boot`` resamples
    for every metric: of whole units when ``groups`` gives each cell's unit (a cell and its
    copies, a donor's nuclei), else of cells.

    Parameters
    ----------
    y_true, y_pred
        True and predicted labels of the test cells.
    labels
        All classes, in display order (``"normal"`` first).
    n_boot, seed, level, groups
        Bootstrap settings (see :func:`bootstrap_ci`).

    Returns
    -------
    dict
        ``n``, ``accuracy``/``_low``/``_high``, the same for ``balanced_accuracy`` and
        ``macro_f1``, ``per_class`` (precision and recall with intervals, support),
        ``labels``, ``confusion_counts`` and ``confusion_normalized`` (rows: true class).
    """
    from sklearn import metrics as skm

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    t, p, labels = _encode(y_true, y_pred, labels)
    k = len(labels)
    boot = metrics_from_confusion(
        _confusions(t, p, k, bootstrap_samples(len(t), n_boot, seed, groups))
    )
    point = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y_true, y_pred),
        "macro_f1": skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
    }
    out: dict[str, Any] = {"n": int(len(t))}
    for name, value in point.items():
        lo, hi = _percentile(boot[name], level)
        out[name], out[f"{name}_low"], out[f"{name}_high"] = float(value), float(lo), float(hi)
    precision, recall, _, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    p_lo, p_hi = _percentile(boot["precision"], level)
    r_lo, r_hi = _percentile(boot["recall"], level)
    out["per_class"] = {
        str(lab): {
            "precision": float(precision[i]),
            "precision_low": float(p_lo[i]),
            "precision_high": float(p_hi[i]),
            "recall": float(recall[i]),
            "recall_low": float(r_lo[i]),
            "recall_high": float(r_hi[i]),
            "support": int(support[i]),
        }
        for i, lab in enumerate(labels)
    }
    cm = skm.confusion_matrix(y_true, y_pred, labels=labels)
    rows = cm.sum(axis=1, keepdims=True)
    out["labels"] = [str(lab) for lab in labels]
    out["confusion_counts"] = cm.astype(int).tolist()
    out["confusion_normalized"] = np.where(rows > 0, cm / np.maximum(rows, 1), 0.0).tolist()
    return out


def untouched_report(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    perturbed: Sequence[bool] | np.ndarray,
    normal_label: str = "normal",
) -> dict[str, Any]:
    """Accuracy on disease copies the perturbation changed versus those it left untouched.

    A copy with ``perturbed == False`` (penetrance below 1, or a cell type outside the
    entry's targets) carries no shift: no classifier can be expected to find it, and most
    should call it normal.

    Parameters
    ----------
    y_true, y_pred
        True and predicted labels of the test cells.
    perturbed
        ``obs["perturbed"]`` of the test cells.
    normal_label
        The label of the unperturbed class.

    Returns
    -------
    dict
        ``n_untouched``, ``untouched_accuracy``, ``untouched_predicted_normal`` (share called
        normal), ``n_perturbed_copies``, ``perturbed_copies_accuracy``; accuracies are ``None``
        where there are no cells.
    """
    y_true, y_pred = np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str)
    perturbed = np.asarray(perturbed, dtype=bool)
    copy = y_true != normal_label
    untouched = copy & ~perturbed
    touched = copy & perturbed

    def acc(mask: np.ndarray) -> float | None:
        return float((y_true[mask] == y_pred[mask]).mean()) if mask.any() else None

    return {
        "n_untouched": int(untouched.sum()),
        "untouched_accuracy": acc(untouched),
        "untouched_predicted_normal": float((y_pred[untouched] == normal_label).mean())
        if untouched.any()
        else None,
        "n_perturbed_copies": int(touched.sum()),
        "perturbed_copies_accuracy": acc(touched),
    }
