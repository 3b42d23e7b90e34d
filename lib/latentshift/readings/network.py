"""The classifiers: a small torch feed-forward network, logistic regression, the majority class.

:func:`train_mlp` trains the network the original study used on the latent space (Adam,
cross-entropy, early stopping on a validation slice of the training cells chosen by whole
source cells, :func:`grouped_validation_split`), with inputs standardised by training statistics,
seeded and deterministic on CPU; :class:`MLPClassifier` is the fitted model. :func:`train_logreg`
and :func:`train_majority` are the scikit-learn baselines. Their evaluation lives in
:mod:`latentshift.readings.evaluation`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from latentshift.errors import ClassifierError

log = logging.getLogger(__name__)


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
        raise ClassifierError(
            "X_train holds NaN or infinite values; check the latent representation upstream."
        )
    classes_arr = np.asarray(classes if classes is not None else np.unique(y))
    index = {c: i for i, c in enumerate(classes_arr.tolist())}
    missing = sorted({str(v) for v in np.unique(y)} - {str(c) for c in index})
    if missing:
        raise ClassifierError(
            f"training labels {missing} are not among classes {list(classes_arr)}; pass all classes."
        )
    if len(np.unique(y)) < 2:
        raise ClassifierError(
            "the training labels hold a single class; a classifier needs at least two."
        )
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
            X.shape[1],
            len(classes_arr),
            hidden_layers,
            Zf,
            tf,
            Zv,
            tv,
            max_epochs,
            lr,
            weight_decay,
            patience,
            batch_size,
            seed,
        )
    finally:
        torch.set_num_threads(threads)
    return MLPClassifier(classes_arr, mean, scale, net, history, best_epoch)


def _fit(
    n_in: int,
    n_out: int,
    hidden_layers: Sequence[int],
    Zf: Any,
    tf: Any,
    Zv: Any,
    tv: Any,
    max_epochs: int,
    lr: float,
    weight_decay: float,
    patience: int,
    batch_size: int,
    seed: int,
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
        rows.append(
            {
                "epoch": epoch,
                "train_loss": total / len(tf),
                "val_loss": val_loss,
                "val_accuracy": val_acc,
            }
        )
        if val_loss < best_loss - 1e-6:
            best_loss, best_epoch = val_loss, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif epoch - best_epoch >= patience:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    log.info(
        "MLP %s: %d epochs, best %d (val loss %.3f)",
        list(hidden_layers),
        len(rows),
        best_epoch,
        best_loss,
    )
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
