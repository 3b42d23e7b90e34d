"""Disease-state classifier on the latent space, with baselines, controls and uncertainty.

The original study trained a small feed-forward network on the LDVAE latent space and
reported 91% accuracy at telling normal from perturbed cells. This module repeats that
measurement and puts every number beside a baseline, a control and a 95% bootstrap interval:

- :func:`train_mlp` — a small torch network (Adam, cross-entropy, early stopping on a
  validation slice of the *training* split, grouped by source cell so copies of one cell never
  sit on both sides), inputs standardised with training statistics, seeded and deterministic
  on CPU.
- :func:`train_logreg` — scikit-learn logistic regression (standardised inputs).
- :func:`bootstrap_ci` / :func:`evaluate` — metrics with percentile intervals over test cells.
- :func:`disease_gene_features` — log-normalised expression of the disease-set genes only
  (library size from the full sparse row sums; only the selected gene columns are densified).
- :func:`classify_conditions` — the whole comparison the notebook ``05_classifier`` shows;
  :func:`summary_metrics` turns it into the ``classifier`` section of ``metrics.json``.

Keys of the ``classifier`` section of ``metrics.json`` (written by ``05_classifier``)
-------------------------------------------------------------------------------------------
``labels``, ``n_classes``, ``n_train``, ``n_test``, ``n_features``, ``latent_key``
    The classes (``"normal"`` first, then the perturbation entries), the split sizes and the
    input dimension of the main classifier.
``hidden_layers``, ``epochs_trained``, ``best_epoch``
    The network and where early stopping kept it.
``accuracy``, ``accuracy_low``, ``accuracy_high``
``balanced_accuracy``, ``balanced_accuracy_low``, ``balanced_accuracy_high``
``macro_f1``, ``macro_f1_low``, ``macro_f1_high``
    The MLP on the LDVAE latent, on the test split, with 95% percentile bootstrap intervals
    over test cells.
``per_class``
    ``{label: {precision, precision_low, precision_high, recall, recall_low, recall_high, support}}``.
``confusion_counts``, ``confusion_normalized``
    Confusion matrix (rows: true class, columns: predicted, in ``labels`` order); counts and
    row-normalised.
``baseline_accuracy``, ``baseline_accuracy_low``, ``baseline_accuracy_high``,
``baseline_balanced_accuracy``, ``baseline_macro_f1``
    ``{model: value}`` for every model of the baseline table: ``mlp_ldvae`` (the classifier
    above), ``logreg_ldvae``, ``mlp_pca``, ``logreg_disease_genes`` and ``majority``.
``permutation_accuracy``, ``permutation_accuracy_low``, ``permutation_accuracy_high``,
``permutation_accuracy_sd``, ``permutation_p_value``, ``n_permutations``
    The same network trained on shuffled training labels, ``n_permutations`` times: mean
    accuracy (must sit at chance), 2.5/97.5 percentiles and standard deviation of the
    permuted accuracies, and the permutation p-value of the real accuracy.
``chance_uniform``, ``chance_majority``
    ``1 / n_classes`` and the test accuracy of always predicting the training majority class.
``untouched``
    ``{n_untouched, untouched_accuracy, untouched_predicted_normal, n_perturbed_copies,
    perturbed_copies_accuracy}``: disease copies the perturbation left unchanged
    (``perturbed == False``) versus those it changed; ``None`` where there are no such cells.
``split_grouped``, ``n_leaked_source_cells``
    Whether the split was grouped by source cell, and how many source cells have copies in
    both train and test (0 when grouped).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from latentshift.counts import counts_matrix, row_sums
from latentshift.errors import ClassifierError

log = logging.getLogger(__name__)

#: Metric names :func:`bootstrap_ci` computes from the confusion matrix (fast path).
METRIC_NAMES: tuple[str, ...] = ("accuracy", "balanced_accuracy", "macro_f1")

#: Rows of the baseline table, in display order.
BASELINE_MODELS: tuple[str, ...] = ("mlp_ldvae", "logreg_ldvae", "mlp_pca", "logreg_disease_genes", "majority")

BASELINE_DESCRIPTIONS: dict[str, str] = {
    "mlp_ldvae": "MLP on the LDVAE latent (the classifier)",
    "logreg_ldvae": "logistic regression on the LDVAE latent",
    "mlp_pca": "same MLP on PCA of log-normalised counts",
    "logreg_disease_genes": "logistic regression on disease-set genes (knows where to look)",
    "majority": "majority class (chance)",
}



# --- the network -------------------------------------------------------------------------


def grouped_validation_split(
    groups: Sequence[Any] | np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into fit and validation indices so that no group is on both sides.

    Parameters
    ----------
    groups
        One group label per row (the source cell: copies of one cell form a group).
    fraction
        Target fraction of rows in the validation slice (whole groups are moved, so the
        actual fraction is close to, not exactly, this).
    seed
        Seed of the group shuffle.

    Returns
    -------
    fit_idx, val_idx
        Sorted integer indices.
    """
    groups = np.asarray(groups)
    uniq, inverse = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    sizes = np.bincount(inverse, minlength=len(uniq))
    cum = np.cumsum(sizes[order])
    n_val_groups = int(np.searchsorted(cum, fraction * len(groups)) + 1)
    n_val_groups = min(max(n_val_groups, 1), len(uniq) - 1)
    val_groups = np.zeros(len(uniq), dtype=bool)
    val_groups[order[:n_val_groups]] = True
    is_val = val_groups[inverse]
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


@dataclass
class MLPClassifier:
    """A fitted feed-forward classifier (see :func:`train_mlp`).

    Attributes
    ----------
    classes_
        Class labels in output order.
    mean_, scale_
        Standardisation (training statistics).
    network
        The torch module (logits out).
    history
        Per-epoch ``train_loss``, ``val_loss``, ``val_accuracy``.
    best_epoch
        The epoch (1-based) whose weights were kept.
    """

    classes_: np.ndarray
    mean_: np.ndarray
    scale_: np.ndarray
    network: Any
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    best_epoch: int = 0

    def _logits(self, X: np.ndarray) -> Any:
        import torch

        Z = (np.asarray(X, dtype=np.float32) - self.mean_) / self.scale_
        self.network.eval()
        with torch.no_grad():
            return self.network(torch.from_numpy(Z.astype(np.float32)))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, columns in :attr:`classes_` order."""
        import torch

        return torch.softmax(self._logits(X), dim=1).numpy().astype(np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most probable class of each row."""
        return self.classes_[self._logits(X).argmax(dim=1).numpy()]

    @property
    def n_parameters(self) -> int:
        """Number of trainable parameters of the network."""
        return int(sum(p.numel() for p in self.network.parameters()))


def _build_network(n_in: int, hidden_layers: Sequence[int], n_out: int) -> Any:
    from torch import nn

    layers: list[Any] = []
    width = n_in
    for h in hidden_layers:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        width = int(h)
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def _standardiser(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale < 1e-12] = 1.0
    return mean.astype(np.float32), scale.astype(np.float32)


def train_mlp(
    X_train: np.ndarray,
    y_train: Sequence[Any] | np.ndarray,
    groups: Sequence[Any] | np.ndarray | None = None,
    hidden_layers: Sequence[int] = (32,),
    max_epochs: int = 300,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    validation_fraction: float = 0.15,
    patience: int = 20,
    batch_size: int = 256,
    seed: int = 0,
    classes: Sequence[Any] | None = None,
) -> MLPClassifier:
    """Train a small feed-forward network with early stopping.

    Inputs are standardised with the training rows' mean and standard deviation. A
    validation slice of the training rows (whole groups, see :func:`grouped_validation_split`)
    decides when to stop: training ends after ``patience`` epochs without a lower validation
    loss and the best epoch's weights are kept. Weight initialisation and batch order come
    from ``seed`` alone (the global torch RNG is left as it was), so a run on CPU is
    repeatable.

    Parameters
    ----------
    X_train
        Features of the training cells, ``(n_cells, n_features)``.
    y_train
        Class label of each cell.
    groups
        Group of each cell (the source cell); ``None`` treats every cell as its own group.
    hidden_layers
        Widths of the hidden layers (ReLU); ``[7]`` for a 36-d input is the original study's
        network (252 hidden weights); ``[]`` is multinomial logistic regression.
    max_epochs, lr, weight_decay, patience, batch_size
        Adam training settings.
    validation_fraction
        Share of training cells held out for early stopping.
    seed
        Seed of the initialisation, the validation slice and the batch order.
    classes
        Class order of the outputs (default: sorted unique labels); must cover ``y_train``.

    Returns
    -------
    MLPClassifier
        The fitted model with ``predict`` and ``predict_proba``.
    """
    import torch

    X = np.asarray(X_train, dtype=np.float32)
    y = np.asarray(y_train)
    if X.ndim != 2 or len(X) != len(y):
        raise ClassifierError(
            f"X_train must be 2-d with one row per label; got shape {X.shape} for {len(y)} labels."
        )
    if not np.isfinite(X).all():
        raise ClassifierError("X_train holds NaN or infinite values; check the latent representation upstream.")
    classes_arr = np.asarray(classes if classes is not None else np.unique(y))
    index = {c: i for i, c in enumerate(classes_arr.tolist())}
    missing = sorted({str(v) for v in np.unique(y)} - {str(c) for c in index})
    if missing:
        raise ClassifierError(f"training labels {missing} are not among classes {list(classes_arr)}; pass all classes.")
    if len(np.unique(y)) < 2:
        raise ClassifierError("the training labels hold a single class; a classifier needs at least two.")
    target = np.array([index[v] for v in y.tolist()], dtype=np.int64)
    groups_arr = np.arange(len(y)) if groups is None else np.asarray(groups)
    fit_idx, val_idx = grouped_validation_split(groups_arr, validation_fraction, seed)

    mean, scale = _standardiser(X)
    Z = torch.from_numpy((X - mean) / scale)
    t = torch.from_numpy(target)
    Zf, tf, Zv, tv = Z[fit_idx], t[fit_idx], Z[val_idx], t[val_idx]

    threads = torch.get_num_threads()
    # a network this small runs fastest on one thread: more only wait on each other
    torch.set_num_threads(1)
    try:
        net, history, best_epoch = _fit(
            X.shape[1], len(classes_arr), hidden_layers, Zf, tf, Zv, tv,
            max_epochs, lr, weight_decay, patience, batch_size, seed,
        )
    finally:
        torch.set_num_threads(threads)
    return MLPClassifier(classes_arr, mean, scale, net, history, best_epoch)


def _fit(
    n_in: int, n_out: int, hidden_layers: Sequence[int], Zf: Any, tf: Any, Zv: Any, tv: Any,
    max_epochs: int, lr: float, weight_decay: float, patience: int, batch_size: int, seed: int,
) -> tuple[Any, pd.DataFrame, int]:
    """The training loop of :func:`train_mlp` (inputs already standardised tensors)."""
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _build_network(n_in, hidden_layers, n_out)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    best_loss, best_epoch, best_state = np.inf, 0, None
    rows = []
    for epoch in range(1, max_epochs + 1):
        net.train()
        order = torch.randperm(len(tf), generator=gen)
        total = 0.0
        for start in range(0, len(order), batch_size):
            b = order[start : start + batch_size]
            opt.zero_grad()
            loss = loss_fn(net(Zf[b]), tf[b])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        net.eval()
        with torch.no_grad():
            logits = net(Zv)
            val_loss = float(loss_fn(logits, tv))
            val_acc = float((logits.argmax(1) == tv).float().mean())
        rows.append({"epoch": epoch, "train_loss": total / len(tf), "val_loss": val_loss, "val_accuracy": val_acc})
        if val_loss < best_loss - 1e-6:
            best_loss, best_epoch = val_loss, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif epoch - best_epoch >= patience:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    log.info("MLP %s: %d epochs, best %d (val loss %.3f)", list(hidden_layers), len(rows), best_epoch, best_loss)
    return net, pd.DataFrame(rows), best_epoch


def train_logreg(X_train: np.ndarray, y_train: Sequence[Any] | np.ndarray, seed: int = 0) -> Any:
    """Logistic regression (multinomial, L2, C=1) on standardised inputs.

    Parameters
    ----------
    X_train, y_train
        Training features and labels.
    seed
        Seed passed to the solver.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Fitted ``StandardScaler`` → ``LogisticRegression``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    return model.fit(np.asarray(X_train, dtype=np.float64), np.asarray(y_train))


def train_majority(X_train: np.ndarray, y_train: Sequence[Any] | np.ndarray) -> Any:
    """``DummyClassifier(strategy="most_frequent")`` — the chance baseline."""
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(strategy="most_frequent").fit(np.asarray(X_train), np.asarray(y_train))


# --- metrics -------------------------------------------------------------------------------


def _encode(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[Any] | None) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if labels is None:
        labels = list(np.unique(np.concatenate([y_true, y_pred])))
    labels = list(labels)
    index = {lab: i for i, lab in enumerate(labels)}
    try:
        t = np.array([index[v] for v in y_true.tolist()], dtype=np.int64)
        p = np.array([index[v] for v in y_pred.tolist()], dtype=np.int64)
    except KeyError as exc:
        raise ClassifierError(f"label {exc.args[0]!r} is not among labels {labels}; pass every class in labels.") from None
    return t, p, labels


def _confusions(t: np.ndarray, p: np.ndarray, k: int, samples: np.ndarray | None = None) -> np.ndarray:
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


def _resamples(n: int, n_boot: int, seed: int, groups: np.ndarray | None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.integers(0, n, size=(n_boot, n))
    uniq, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    samples = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), size=len(uniq))
        samples.append(np.concatenate([members[g] for g in pick]))
    # groups can differ in size, so resamples can differ in length: pad by object array
    return np.array(samples, dtype=object) if len({len(s) for s in samples}) > 1 else np.array(samples)


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
        raise ClassifierError(f"y_true and y_pred must be non-empty and equally long (got {len(y_true)} and {len(y_pred)}).")
    samples = _resamples(len(y_true), n_boot, seed, None if groups is None else np.asarray(groups))
    if isinstance(metric, str):
        if metric not in METRIC_NAMES:
            raise ClassifierError(f"unknown metric {metric!r}; use one of {', '.join(METRIC_NAMES)} or a callable.")
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
) -> dict[str, Any]:
    """Every test metric with its bootstrap interval, and the confusion matrix.

    Point estimates come from scikit-learn; the intervals from the same ``n_boot`` resamples
    of test cells for every metric.

    Parameters
    ----------
    y_true, y_pred
        True and predicted labels of the test cells.
    labels
        All classes, in display order (``"normal"`` first).
    n_boot, seed, level
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
    boot = metrics_from_confusion(_confusions(t, p, k, _resamples(len(t), n_boot, seed, None)))
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
        "untouched_predicted_normal": float((y_pred[untouched] == normal_label).mean()) if untouched.any() else None,
        "n_perturbed_copies": int(touched.sum()),
        "perturbed_copies_accuracy": acc(touched),
    }


def permutation_control(
    X_train: np.ndarray,
    y_train: np.ndarray,
    groups: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    labels: Sequence[Any],
    n_permutations: int = 10,
    seed: int = 0,
    observed: float | None = None,
    **mlp_kw: Any,
) -> dict[str, Any]:
    """The label-permutation control: the same network trained on shuffled training labels.

    One shuffled-label network is a random function of inputs that carry class information,
    so its test accuracy scatters around chance (by several points with a few hundred test
    cells). The control therefore repeats the shuffle ``n_permutations`` times (shuffle and
    initialisation seeded ``seed + i``) and reports the mean and the spread.

    Parameters
    ----------
    X_train, y_train, groups
        Training features, labels and source cells (as for :func:`train_mlp`).
    X_test, y_test
        Test features and labels.
    labels
        All classes.
    n_permutations
        Shuffled-label refits.
    seed
        Base seed.
    observed
        The real classifier's accuracy, for the permutation p-value.
    **mlp_kw
        Network settings passed to :func:`train_mlp`.

    Returns
    -------
    dict
        ``accuracy`` (mean), ``accuracy_low``/``accuracy_high`` (2.5/97.5 percentiles of the
        permuted accuracies), ``accuracy_sd``, ``accuracies``, ``n_permutations`` and
        ``p_value`` (``(1 + #permuted >= observed) / (1 + n)``; ``None`` without ``observed``).
    """
    y_test = np.asarray(y_test)
    accs = []
    for i in range(n_permutations):
        shuffled = np.random.default_rng(seed + i).permutation(np.asarray(y_train))
        model = train_mlp(X_train, shuffled, groups=groups, seed=seed + i, classes=labels, **mlp_kw)
        accs.append(float((model.predict(X_test) == y_test).mean()))
    arr = np.asarray(accs)
    lo, hi = _percentile(arr, 0.95)
    return {
        "accuracy": float(arr.mean()),
        "accuracy_low": float(lo),
        "accuracy_high": float(hi),
        "accuracy_sd": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
        "accuracies": accs,
        "n_permutations": int(n_permutations),
        "p_value": None if observed is None else float((1 + (arr >= observed).sum()) / (1 + len(arr))),
    }


# --- features and the split ---------------------------------------------------------------


def disease_gene_features(
    adata: Any,
    genes: Sequence[str],
    layer: str = "counts",
    target_sum: float = 1e4,
) -> np.ndarray:
    """Log-normalised expression of a few genes: ``log1p(counts / library_size * target_sum)``.

    The library size is each cell's total over *all* genes (sparse row sums), so a shift
    that moves every selected gene the same way stays visible. Only the selected gene
    columns are densified.

    Parameters
    ----------
    adata
        Cells with integer counts in ``layers[layer]`` (or ``X`` when the layer is absent).
    genes
        var_names to keep (e.g. the union of ``uns["perturbation_genes"]``).
    layer
        The counts layer.
    target_sum
        Counts per cell after normalisation.

    Returns
    -------
    numpy.ndarray
        ``(n_cells, n_genes)`` float array.
    """
    counts = counts_matrix(adata, layer)
    missing = [g for g in genes if g not in adata.var_names]
    if missing:
        raise ClassifierError(
            f"{len(missing)} disease-set genes are not in var_names (e.g. {missing[:3]}); "
            "pass the var_names recorded in uns['perturbation_genes']."
        )
    if not len(genes):
        raise ClassifierError("no disease-set genes given; uns['perturbation_genes'] is empty — check 02_perturb's output.")
    idx = adata.var_names.get_indexer(list(genes))
    lib = row_sums(counts).astype(np.float64)
    lib[lib == 0] = 1.0
    sub = counts[:, idx]
    sub = sub.toarray() if sp.issparse(sub) else np.asarray(sub)
    return np.log1p(sub.astype(np.float64) * (target_sum / lib)[:, None])


def perturbation_gene_list(adata: Any) -> list[str]:
    """The union of ``uns["perturbation_genes"]`` in first-seen order."""
    genes: list[str] = []
    seen: set[str] = set()
    for names in (adata.uns.get("perturbation_genes") or {}).values():
        for g in list(np.atleast_1d(names)):
            if str(g) not in seen:
                seen.add(str(g))
                genes.append(str(g))
    return genes


def pca_features(adata: Any, n_comps: int, train_mask: np.ndarray, seed: int = 0, layer: str = "counts") -> np.ndarray:
    """PCA of log-normalised counts fit on training cells (fallback when ``obsm["X_pca_baseline"]`` is absent).

    The same baseline 03_ldvae stores (:func:`latentshift.embedding.pca_of_counts`).
    """
    from latentshift.embedding import pca_of_counts

    counts = counts_matrix(adata, layer)
    return pca_of_counts(counts, train_mask, min(n_comps, counts.shape[1] - 1), seed)[0]


def split_report(obs: pd.DataFrame, declared_grouped: bool | None = None) -> dict[str, Any]:
    """Whether the split is grouped by source cell, and how many source cells leak across it.

    Parameters
    ----------
    obs
        Cells with ``split`` ("train"/"test") and ``source_cell``.
    declared_grouped
        The ``split.grouped`` setting the split was made with, if known.

    Returns
    -------
    dict
        ``split_grouped`` (declared, or inferred as "no leaks" when unknown) and
        ``n_leaked_source_cells`` (source cells with copies in both train and test).
    """
    for col in ("split", "source_cell"):
        if col not in obs:
            raise ClassifierError(f"obs has no '{col}' column; it is written by 02_perturb — rerun that step.")
    split = obs["split"].astype(str)
    src = obs["source_cell"].astype(str)
    leaked = set(src[split == "train"]) & set(src[split == "test"])
    grouped = declared_grouped if declared_grouped is not None else not leaked
    if declared_grouped and leaked:
        log.warning("the split is declared grouped but %d source cells are on both sides", len(leaked))
    return {"split_grouped": bool(grouped), "n_leaked_source_cells": len(leaked)}


# --- the whole comparison -------------------------------------------------------------------


@dataclass
class ClassificationResult:
    """Everything :func:`classify_conditions` measured.

    Attributes
    ----------
    labels
        Classes in display order.
    model
        The MLP on the LDVAE latent.
    main
        :func:`evaluate` output of that MLP on the test split.
    baselines
        The baseline table (one row per model, index in :data:`BASELINE_MODELS`).
    permutation
        :func:`permutation_control` output (networks trained on shuffled labels).
    untouched
        :func:`untouched_report` of the MLP.
    split
        :func:`split_report`.
    chance
        ``chance_uniform`` and ``chance_majority``.
    predictions
        Test cells' obs with ``predicted`` and ``p_<class>`` columns.
    n_train
        Training cells.
    latent_key
        The obsm key classified.
    """

    labels: list[str]
    model: MLPClassifier
    main: dict[str, Any]
    baselines: pd.DataFrame
    permutation: dict[str, Any]
    untouched: dict[str, Any]
    split: dict[str, Any]
    chance: dict[str, float]
    predictions: pd.DataFrame
    n_train: int
    latent_key: str
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)


def _labels_of(obs: pd.DataFrame) -> list[str]:
    cond = obs["condition"]
    if isinstance(cond.dtype, pd.CategoricalDtype):
        labels = [str(c) for c in cond.cat.categories]
    else:
        labels = sorted(map(str, cond.unique()))
        if "normal" in labels:
            labels = ["normal"] + [c for c in labels if c != "normal"]
    return labels


def classify_conditions(
    adata: Any,
    classifier: Mapping[str, Any],
    seed: int = 0,
    latent_key: str = "X_ldvae",
    pca_key: str = "X_pca_baseline",
    declared_grouped: bool | None = None,
    baselines: bool = True,
) -> ClassificationResult:
    """Train the condition classifier on the latent and every baseline and control.

    Parameters
    ----------
    adata
        ``latent.h5ad``: obs ``condition``, ``split``, ``source_cell``, ``perturbed``;
        ``obsm[latent_key]``; for the baselines ``obsm[pca_key]`` (computed here when absent),
        ``layers["counts"]`` and ``uns["perturbation_genes"]``.
    classifier
        The resolved ``classifier`` params section (``hidden_layers``, ``max_epochs``, ``lr``,
        ``weight_decay``, ``validation_fraction``, ``patience``, ``n_bootstrap``).
    seed
        Seed of every random step (networks, label shuffle, bootstrap).
    latent_key, pca_key
        obsm keys of the latent and of the PCA baseline.
    declared_grouped
        ``split.grouped`` as configured (reported beside the measured leak count).
    baselines
        Also train the baselines (``False``: the MLP, permutation control and majority only).

    Returns
    -------
    ClassificationResult
    """
    obs = adata.obs
    for col in ("condition", "split", "source_cell"):
        if col not in obs:
            raise ClassifierError(f"obs has no '{col}' column; it is written by 02_perturb — rerun 02_perturb and 03_ldvae.")
    if latent_key not in adata.obsm:
        raise ClassifierError(f"obsm['{latent_key}'] is missing; it is written by 03_ldvae — rerun that step.")
    split = obs["split"].astype(str).to_numpy()
    train, test = split == "train", split == "test"
    if not train.any() or not test.any():
        raise ClassifierError(
            f"the split has {train.sum()} train and {test.sum()} test cells; both are needed "
            "(check split.train_fraction)."
        )
    labels = _labels_of(obs)
    y = obs["condition"].astype(str).to_numpy()
    groups = obs["source_cell"].astype(str).to_numpy()
    n_boot = int(classifier.get("n_bootstrap", 500))
    mlp_kw = {
        k: classifier[k]
        for k in ("hidden_layers", "max_epochs", "lr", "weight_decay", "validation_fraction", "patience")
        if k in classifier
    }

    def mlp(X: np.ndarray, y_fit: np.ndarray) -> MLPClassifier:
        return train_mlp(X[train], y_fit, groups=groups[train], seed=seed, classes=labels, **mlp_kw)

    Xl = np.asarray(adata.obsm[latent_key], dtype=np.float64)
    model = mlp(Xl, y[train])
    pred = model.predict(Xl[test])
    evals: dict[str, dict[str, Any]] = {"mlp_ldvae": evaluate(y[test], pred, labels, n_boot, seed)}

    majority = train_majority(Xl[train], y[train])
    evals["majority"] = evaluate(y[test], majority.predict(Xl[test]), labels, n_boot, seed)
    if baselines:
        evals["logreg_ldvae"] = evaluate(y[test], train_logreg(Xl[train], y[train], seed).predict(Xl[test]), labels, n_boot, seed)
        if pca_key in adata.obsm:
            Xp = np.asarray(adata.obsm[pca_key], dtype=np.float64)
        else:
            log.warning("obsm['%s'] is missing; computing a PCA baseline here (fit on training cells)", pca_key)
            Xp = pca_features(adata, Xl.shape[1], train, seed)
        evals["mlp_pca"] = evaluate(y[test], mlp(Xp, y[train]).predict(Xp[test]), labels, n_boot, seed)
        genes = perturbation_gene_list(adata)
        if genes:
            Xg = disease_gene_features(adata, genes)
            evals["logreg_disease_genes"] = evaluate(
                y[test], train_logreg(Xg[train], y[train], seed).predict(Xg[test]), labels, n_boot, seed
            )
        else:
            log.warning("uns['perturbation_genes'] is empty: no disease-gene baseline")

    permutation = permutation_control(
        Xl[train], y[train], groups[train], Xl[test], y[test], labels,
        n_permutations=int(classifier.get("n_permutations", 10)), seed=seed,
        observed=evals["mlp_ldvae"]["accuracy"], **mlp_kw,
    )

    dims = {"mlp_ldvae": Xl.shape[1], "logreg_ldvae": Xl.shape[1], "majority": 0}
    if "mlp_pca" in evals:
        dims["mlp_pca"] = Xp.shape[1]
    if "logreg_disease_genes" in evals:
        dims["logreg_disease_genes"] = Xg.shape[1]
    table = pd.DataFrame(
        [
            {
                "model": name,
                "description": BASELINE_DESCRIPTIONS[name],
                "n_features": dims[name],
                **{key: evals[name][key] for m in METRIC_NAMES for key in (m, f"{m}_low", f"{m}_high")},
            }
            for name in BASELINE_MODELS
            if name in evals
        ]
    ).set_index("model")

    perturbed = obs["perturbed"].to_numpy(dtype=bool) if "perturbed" in obs else (y != "normal")
    predictions = obs.loc[test, [c for c in ("condition", "source_cell", "perturbed", "cell_type") if c in obs]].copy()
    predictions["predicted"] = pd.Categorical(pred, categories=labels)
    proba = model.predict_proba(Xl[test])
    for i, lab in enumerate(labels):
        predictions[f"p_{lab}"] = proba[:, i]

    return ClassificationResult(
        labels=labels,
        model=model,
        main=evals["mlp_ldvae"],
        baselines=table,
        permutation=permutation,
        untouched=untouched_report(y[test], pred, perturbed[test]),
        split=split_report(obs, declared_grouped),
        chance={"chance_uniform": 1.0 / len(labels), "chance_majority": evals["majority"]["accuracy"]},
        predictions=predictions,
        n_train=int(train.sum()),
        latent_key=latent_key,
        evaluations=evals,
    )


def summary_metrics(result: ClassificationResult) -> dict[str, Any]:
    """The ``classifier`` section of ``metrics.json`` (keys listed in the module docstring)."""
    main = result.main
    out: dict[str, Any] = {
        "labels": result.labels,
        "n_classes": len(result.labels),
        "n_train": result.n_train,
        "n_test": main["n"],
        "n_features": int(result.model.mean_.shape[0]),
        "latent_key": result.latent_key,
        "hidden_layers": [int(m.out_features) for m in list(result.model.network)[:-1] if hasattr(m, "out_features")],
        "epochs_trained": int(len(result.model.history)),
        "best_epoch": int(result.model.best_epoch),
    }
    for m in METRIC_NAMES:
        for key in (m, f"{m}_low", f"{m}_high"):
            out[key] = main[key]
    out["per_class"] = main["per_class"]
    out["confusion_counts"] = main["confusion_counts"]
    out["confusion_normalized"] = main["confusion_normalized"]
    table = result.baselines
    out["baseline_accuracy"] = table["accuracy"].to_dict()
    out["baseline_accuracy_low"] = table["accuracy_low"].to_dict()
    out["baseline_accuracy_high"] = table["accuracy_high"].to_dict()
    out["baseline_balanced_accuracy"] = table["balanced_accuracy"].to_dict()
    out["baseline_macro_f1"] = table["macro_f1"].to_dict()
    for key in ("accuracy", "accuracy_low", "accuracy_high", "accuracy_sd", "p_value"):
        out[f"permutation_{key}"] = result.permutation[key]
    out["n_permutations"] = result.permutation["n_permutations"]
    out.update(result.chance)
    out["untouched"] = result.untouched
    out.update(result.split)
    return out


#: Keys :func:`summary_metrics` always writes (the documented ``classifier`` section).
SUMMARY_KEYS: tuple[str, ...] = (
    "labels", "n_classes", "n_train", "n_test", "n_features", "latent_key", "hidden_layers",
    "epochs_trained", "best_epoch",
    "accuracy", "accuracy_low", "accuracy_high",
    "balanced_accuracy", "balanced_accuracy_low", "balanced_accuracy_high",
    "macro_f1", "macro_f1_low", "macro_f1_high",
    "per_class", "confusion_counts", "confusion_normalized",
    "baseline_accuracy", "baseline_accuracy_low", "baseline_accuracy_high",
    "baseline_balanced_accuracy", "baseline_macro_f1",
    "permutation_accuracy", "permutation_accuracy_low", "permutation_accuracy_high",
    "permutation_accuracy_sd", "permutation_p_value", "n_permutations",
    "chance_uniform", "chance_majority", "untouched", "split_grouped", "n_leaked_source_cells",
)


# --- tables for the notebook -------------------------------------------------------------


def metric_table(evaluation: Mapping[str, Any]) -> pd.DataFrame:
    """Headline metrics of one :func:`evaluate` output: rows metrics, columns value/low/high."""
    return pd.DataFrame(
        {m: {"value": evaluation[m], "low (2.5%)": evaluation[f"{m}_low"], "high (97.5%)": evaluation[f"{m}_high"]} for m in METRIC_NAMES}
    ).T


def per_class_table(evaluation: Mapping[str, Any]) -> pd.DataFrame:
    """Per-class precision and recall with intervals and support (rows: classes)."""
    return pd.DataFrame(evaluation["per_class"]).T


def controls_table(result: ClassificationResult) -> pd.DataFrame:
    """The controls in one table: label permutation, chance levels, the split check."""
    p = result.permutation
    rows = {
        f"label permutation (mean accuracy of {p['n_permutations']})": (p["accuracy"], p["accuracy_low"], p["accuracy_high"], "at chance"),
        "permutation p-value of the classifier": (p["p_value"], None, None, "small"),
        "chance: 1 / n_classes": (result.chance["chance_uniform"], None, None, ""),
        "chance: majority class": (result.chance["chance_majority"], None, None, ""),
        "split grouped by source cell": (result.split["split_grouped"], None, None, "True"),
        "source cells in both train and test": (result.split["n_leaked_source_cells"], None, None, "0 when grouped"),
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=["value", "low (2.5%)", "high (97.5%)", "expected"])
