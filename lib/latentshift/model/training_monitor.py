"""Watching the LDVAE train: progress lines, convergence stopping, the finite check, the
per-epoch history table and what the loss curves say.

Used by :func:`latentshift.model.ldvae.train_ldvae`; kept apart from it so the model code reads as
"set up, train, check" and the monitoring reads on its own.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from latentshift.errors import LDVAEDivergedError

log = logging.getLogger("latentshift.model.ldvae")

DIVERGED_FIX = (
    "Lower ldvae.lr (e.g. divide it by 10), use a smaller ldvae.n_hidden or fewer "
    "ldvae.n_latent dimensions, and check that layers['counts'] holds raw integer counts "
    "(no NaN, no negative or normalised values)."
)


def interactive() -> bool:
    """Whether a human watches: a JupyterLab kernel (not papermill) or a terminal."""
    if os.environ.get("LATENTSHIFT_PROGRESS"):
        return os.environ["LATENTSHIFT_PROGRESS"] not in {"0", "false", "no"}
    return bool(os.environ.get("JPY_SESSION_NAME")) or sys.stderr.isatty()


def epoch_logger(max_epochs: int, every: int | None) -> Any:
    """A Lightning callback logging one line per group of epochs (headless runs)."""
    from lightning.pytorch.callbacks import Callback

    step = every or max(1, math.ceil(max_epochs / 10))

    class EpochLog(Callback):
        def _emit(self, trainer: Any, epoch: int) -> None:
            m = trainer.callback_metrics
            parts = [f"epoch {epoch}/{max_epochs}"]
            for key in ("elbo_train", "elbo_validation"):
                if key in m:
                    parts.append(f"{key} {float(m[key]):.2f}")
            log.info("LDVAE %s", ", ".join(parts))

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            done = trainer.current_epoch  # epochs finished; their metrics are complete now
            if done and done % step == 0:
                self._emit(trainer, done)

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            self._emit(trainer, trainer.current_epoch)

    return EpochLog()


def convergence_stopping(patience: int, min_delta: float = 0.0, warmup_epochs: int = 0) -> Any:
    """Early stopping on the validation ELBO: stop after ``patience`` epochs without a
    *relative* improvement larger than ``min_delta``.

    scvi-tools' own ``LoudEarlyStopping`` (the callback ``model.train(early_stopping=True)``
    adds) with two changes: ``min_delta`` is a fraction of the best value so far, so one
    setting means the same at 1,000 and at 30,000 genes (``0.001``: an epoch must improve the
    validation ELBO by 0.1 % to count), and the reason for stopping is logged instead of
    printed into the notebook. No check during the first ``warmup_epochs`` (the KL warm-up).

    Parameters
    ----------
    patience
        Epochs without improvement before stopping.
    min_delta
        Smallest relative improvement that counts (0: any improvement).
    warmup_epochs
        Epochs at the start that are never checked.
    """
    from scvi.train._callbacks import LoudEarlyStopping

    class ConvergenceStopping(LoudEarlyStopping):
        def _evaluate_stopping_criteria(self, current: Any) -> tuple[bool, str]:
            best = float(self.best_score)
            if min_delta > 0 and math.isfinite(best):
                self.min_delta = -min_delta * abs(best)  # Lightning's sign for mode "min"
            return super()._evaluate_stopping_criteria(current)

        def teardown(self, trainer: Any, pl_module: Any, stage: str | None = None) -> None:
            if self.early_stopping_reason:
                log.info("LDVAE early stopping: %s", self.early_stopping_reason.strip())

    return ConvergenceStopping(
        monitor="elbo_validation",
        min_delta=0.0,
        patience=patience,
        mode="min",
        warmup_epochs=warmup_epochs,
    )


def latent_snapshots(every: int, capture: Callable[[], tuple[np.ndarray, np.ndarray]]) -> Any:
    """A Lightning callback keeping the latent and the loadings every ``every`` epochs.

    It answers *when* in training the shift is encoded, from one training run rather than
    several: at the end of epochs ``every``, ``2 * every``, ... it puts the module in eval mode
    (no dropout, batch-norm statistics frozen, as after training), calls ``capture`` and puts
    the module back in training mode.

    Parameters
    ----------
    every
        Epochs between snapshots.
    capture
        Returns ``(latent, loadings)`` of the model as it stands (cells × factors,
        genes × factors).

    Returns
    -------
    lightning.pytorch.callbacks.Callback
        With ``latents`` and ``loadings``: ``{epoch: array}``.
    """
    from lightning.pytorch.callbacks import Callback

    class LatentSnapshots(Callback):
        def __init__(self) -> None:
            self.latents: dict[int, np.ndarray] = {}
            self.loadings: dict[int, np.ndarray] = {}

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            epoch = int(trainer.current_epoch) + 1
            if epoch % every:
                return
            import torch

            was_training = pl_module.training
            # the snapshot must not change training: eval mode (dropout off, batch-norm
            # statistics frozen) and torch's random generator put back as it was
            torch_state = torch.get_rng_state()
            pl_module.eval()
            try:
                self.latents[epoch], self.loadings[epoch] = capture()
            finally:
                pl_module.train(was_training)
                torch.set_rng_state(torch_state)
            log.info("LDVAE snapshot of the latent at epoch %d", epoch)

    return LatentSnapshots()


def history_frame(history: Mapping[str, pd.DataFrame] | None) -> pd.DataFrame:
    """scvi-tools' ``model.history`` (one frame per metric) as one table, one row per epoch.

    Keeps the per-epoch metrics (``*_train``, ``*_validation``, ``train_loss_epoch``,
    ``validation_loss``); drops per-step ones.
    """
    if not history:
        return pd.DataFrame(index=pd.Index([], name="epoch"))
    cols = []
    for key, frame in history.items():
        if key.endswith(("_train", "_validation")) or key in {
            "train_loss_epoch",
            "validation_loss",
        }:
            cols.append(frame[key].astype(float).rename(key))
    table = pd.concat(cols, axis=1) if cols else pd.DataFrame()
    table.index = table.index.astype(int)
    table.index.name = "epoch"
    order = sorted(table.columns, key=lambda c: (not c.startswith("elbo"), c))
    return table.sort_index()[order]


def check_finite_history(history: Mapping[str, pd.DataFrame] | None) -> list[int]:
    """Raise :class:`LDVAEDivergedError` when a logged per-epoch loss is NaN or infinite.

    One pattern is not divergence: a *validation* loss that is not finite in the first
    epoch(s) only and finite ever after. scvi-tools validates in eval mode, where batch norm
    uses running statistics (momentum 0.01) that lag far behind the activations during the
    first handful of steps — with deep counts the first validation pass can overflow. Those
    epochs are returned (and logged) instead.

    Returns
    -------
    list of int
        The leading epochs whose validation loss was not finite.
    """
    warmup: set[int] = set()
    for key, frame in (history or {}).items():
        if not key.startswith(
            ("elbo", "reconstruction_loss", "kl_local", "train_loss", "validation_loss")
        ):
            continue
        values = pd.to_numeric(frame[key], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if not bad.any():
            continue
        validation = key.endswith("_validation") or key == "validation_loss"
        if validation and (~bad).any():
            first_good = int(np.argmax(~bad))
            if not bad[first_good:].any():
                warmup.update(int(e) for e in frame.index[:first_good])
                continue
        first = frame.index[np.argmax(bad)]
        raise LDVAEDivergedError(
            f"LDVAE training diverged: {key} became NaN or infinite (first at epoch {first}). "
            "The model was not saved. " + DIVERGED_FIX
        )
    if warmup:
        log.warning(
            "the validation loss was not finite in epoch(s) %s only (eval-mode batch norm not "
            "yet settled), finite afterwards; training went on",
            sorted(warmup),
        )
    return sorted(warmup)


def describe_curves(history: pd.DataFrame, early_stopped: bool, max_epochs: int) -> str:
    """One or two sentences on what the loss curves say (converged, overfitting, stopped)."""
    if len(history) < 2 or "elbo_validation" not in history:
        return "Too few epochs to judge the curves."
    tr = history["elbo_train"].to_numpy(dtype=float)
    va = history["elbo_validation"].to_numpy(dtype=float)
    n = len(va)
    best = int(np.nanargmin(va))
    tail = max(2, n // 5)
    last, before = (
        np.nanmean(va[-tail:]),
        np.nanmean(va[-2 * tail : -tail]) if n >= 2 * tail else va[0],
    )
    falling = (before - last) / abs(before) if before else 0.0
    gap = (np.nanmean(va[-tail:]) - np.nanmean(tr[-tail:])) / abs(np.nanmean(tr[-tail:]))
    parts = []
    if early_stopped:
        parts.append(
            f"Early stopping ended training after {n} of {max_epochs} epochs: the validation "
            f"ELBO last improved at epoch {history.index[best]}."
        )
    elif falling > 0.005 and best >= n - tail:
        parts.append(
            f"The validation loss was still falling at the end ({100 * falling:.1f}% between the "
            "last two fifths of training): more epochs (ldvae.max_epochs) would help."
        )
    else:
        parts.append(
            f"The validation loss levelled off (best at epoch {history.index[best]} of {n})."
        )
    if best < n - tail and last > va[best] * 1.01 and tr[-1] < tr[best]:
        parts.append(
            "Validation loss rose after its best epoch while training loss kept falling: overfitting."
        )
    elif gap > 0.05:
        parts.append(
            f"Validation loss sits {100 * gap:.1f}% above training loss at the end: some overfitting."
        )
    else:
        parts.append(
            f"Training and validation losses stay close ({100 * gap:+.1f}%): no clear overfitting."
        )
    return " ".join(parts)
