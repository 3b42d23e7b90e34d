"""Curves against training epoch: LDVAE losses, classifier training, accuracy and recovery.

The accuracy and the gene-set recovery are read along the LDVAE's snapshots.

One function per figure: each draws with matplotlib and returns the figure (it never saves
files; the notebook shows it, nbconvert embeds it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def loss_curves(history: Any, title: str = "", early_stopped: bool = False) -> Figure:
    """LDVAE training and validation loss per epoch (negative ELBO; left) and its parts (right).

    Parameters
    ----------
    history
        :func:`latentshift.model.ldvae.history_frame` table (one row per epoch).
    title
        Figure title (append :func:`~latentshift.figures.captions.data_label`).
    early_stopped
        Mark the best validation epoch as where early stopping kept its patience from.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    ax = axes[0]
    for col, color, label in (
        ("elbo_train", "#1f77b4", "training"),
        ("elbo_validation", "#d62728", "validation"),
    ):
        if col in history:
            ax.plot(history.index, history[col], color=color, label=label, lw=1.8)
    if "elbo_validation" in history and len(history):
        best = history["elbo_validation"].idxmin()
        ax.axvline(best, color="grey", ls=":", lw=1)
        ax.annotate(
            "best validation" + (" (early stop)" if early_stopped else ""),
            (best, history["elbo_validation"].min()),
            textcoords="offset points",
            xytext=(4, 12),
            fontsize=8,
            color="grey",
        )
        lo = np.nanmin(history[["elbo_train", "elbo_validation"]].to_numpy(dtype=float))
        hi = np.nanpercentile(history[["elbo_train", "elbo_validation"]].to_numpy(dtype=float), 90)
        ax.set_ylim(lo - 0.05 * abs(lo), hi + 0.1 * (hi - lo))
    ax.set_xlabel("epoch")
    ax.set_ylabel("negative ELBO per cell (lower is better)")
    ax.set_title("training vs validation loss")
    ax.legend(frameon=False)
    ax = axes[1]
    for col, style in (
        ("reconstruction_loss_train", "-"),
        ("reconstruction_loss_validation", "--"),
    ):
        if col in history:
            ax.plot(
                history.index, history[col], ls=style, color="#2ca02c", label=col.replace("_", " ")
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel("reconstruction loss")
    ax2 = ax.twinx()
    for col, style in (("kl_local_train", "-"), ("kl_local_validation", "--")):
        if col in history:
            ax2.plot(
                history.index, history[col], ls=style, color="#9467bd", label=col.replace("_", " ")
            )
    ax2.set_ylabel("KL divergence", color="#9467bd")
    if len(history) > 3:
        rec = history.filter(like="reconstruction_loss").to_numpy(dtype=float)
        kl = history.filter(like="kl_local").to_numpy(dtype=float)
        ax.set_ylim(np.nanmin(rec) * 0.98, np.nanpercentile(rec, 90) * 1.02)
        ax2.set_ylim(0, np.nanpercentile(kl, 90) * 1.2)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, frameon=False, fontsize=8)
    ax.set_title("reconstruction and KL terms")
    fig.suptitle(title or "LDVAE training")
    fig.tight_layout()
    return fig


def classifier_history(history: Any, best_epoch: int | None = None, title: str = "") -> Figure:
    """Classifier training: cross-entropy (training and validation slice) and validation accuracy per epoch.

    Parameters
    ----------
    history
        ``MLPClassifier.history`` (columns ``epoch``, ``train_loss``, ``val_loss``, ``val_accuracy``).
    best_epoch
        The epoch early stopping kept (marked).
    title
        Figure title.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    axes[0].plot(history["epoch"], history["train_loss"], label="training", color="#1f77b4")
    axes[0].plot(history["epoch"], history["val_loss"], label="validation slice", color="#d62728")
    axes[0].set_ylabel("cross-entropy")
    axes[1].plot(history["epoch"], history["val_accuracy"], color="#d62728")
    axes[1].set_ylabel("validation accuracy")
    for ax in axes:
        ax.set_xlabel("epoch")
        if best_epoch:
            ax.axvline(best_epoch, color="grey", ls=":", lw=1, label=f"kept (epoch {best_epoch})")
    axes[0].legend()
    fig.suptitle(title or "classifier training")
    fig.tight_layout()
    return fig


def accuracy_by_epoch(table: Any, chance: float, title: str = "") -> Figure:
    """Test accuracy of the network against the LDVAE's training epoch (one training run).

    Parameters
    ----------
    table
        From :func:`latentshift.readings.classify.accuracy_by_epoch` (``epoch``, ``accuracy``,
        ``accuracy_low``, ``accuracy_high``, ``final``).
    chance
        The chance level (dashed line).
    title
        Figure title.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(
        table["epoch"], table["accuracy"], marker="o", color="#c44e52", label="MLP on the latent"
    )
    ax.fill_between(
        table["epoch"].astype(float),
        table["accuracy_low"].astype(float),
        table["accuracy_high"].astype(float),
        color="#c44e52",
        alpha=0.2,
        label="95% interval",
    )
    final = table[table["final"].astype(bool)]
    if len(final):
        ax.axvline(
            float(final["epoch"].iloc[0]), color="black", ls=":", lw=1, label="training ended"
        )
    ax.axhline(chance, color="grey", ls="--", lw=1, label=f"chance ({chance:.2f})")
    _epoch_axes(
        ax,
        len(table),
        "test accuracy (95% interval)",
        title or "when is the shift encoded: accuracy against training epoch",
    )
    fig.tight_layout()
    return fig


def _epoch_axes(ax: Any, n_points: int, ylabel: str, title: str) -> None:
    """The axes of a curve against the LDVAE's training epoch (05 and 06 draw one each)."""
    if not n_points:
        ax.text(
            0.5,
            0.5,
            "no snapshots kept (ldvae.snapshot_every)",
            ha="center",
            transform=ax.transAxes,
        )
    ax.set_xlabel("LDVAE training epoch")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right")
    ax.set_title(title)


def recovery_by_epoch(table: Any, title: str = "") -> Figure:
    """Projected gene-set recovery AUROC against the LDVAE's training epoch, one line per set
    (:func:`latentshift.readings.loadings.recovery_by_epoch`); 0.5 is chance."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for col in [c for c in table.columns if c != "epoch"]:
        ax.plot(table["epoch"], table[col].astype(float), marker="o", label=f"{col} set")
    ax.axhline(0.5, color="grey", ls="--", lw=1, label="chance (0.5)")
    _epoch_axes(
        ax,
        len(table),
        "recovery AUROC (LDVAE projected)",
        title or "gene-set recovery against training epoch",
    )
    fig.tight_layout()
    return fig
