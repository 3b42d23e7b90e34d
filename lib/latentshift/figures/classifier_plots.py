"""Figures of the classifier's accuracy: confusion, baselines, units, dose response, studies.

One function per figure: each draws with matplotlib/seaborn and returns the figure (it never
saves files; the notebook shows it, nbconvert embeds it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from latentshift.design.units import UNITS_SHOWN

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def confusion_heatmaps(counts: Any, normalized: Any, labels: Any, title: str = "") -> Figure:
    """Confusion matrix as two heatmaps: counts and row-normalised (rows: true class).

    Parameters
    ----------
    counts, normalized
        ``(k, k)`` matrices (e.g. ``confusion_counts`` and ``confusion_normalized`` of
        :func:`latentshift.readings.classify.evaluate`).
    labels
        Class names in matrix order.
    title
        Figure title.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns

    labels = [str(lab) for lab in labels]
    size = 2.4 + 0.9 * len(labels)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1.5, size))
    sns.heatmap(
        np.asarray(counts),
        annot=True,
        fmt="d",
        cmap="Blues",
        cbar=False,
        xticklabels=labels,
        yticklabels=labels,
        ax=axes[0],
    )
    sns.heatmap(
        np.asarray(normalized),
        annot=True,
        fmt=".2f",
        cmap="Blues",
        vmin=0,
        vmax=1,
        xticklabels=labels,
        yticklabels=labels,
        ax=axes[1],
    )
    axes[0].set_title("counts")
    axes[1].set_title("row-normalised (recall on the diagonal)")
    for ax in axes:
        ax.set_xlabel("predicted")
        ax.set_ylabel("true condition")
    fig.suptitle(title or "confusion matrix (test cells)")
    fig.tight_layout()
    return fig


def accuracy_comparison(table: Any, chance: float, extra: Any = None, title: str = "") -> Figure:
    """Horizontal bars of accuracy with 95% intervals, one per model, and a chance line.

    Parameters
    ----------
    table
        DataFrame indexed by model with ``accuracy``, ``accuracy_low``, ``accuracy_high``
        (the baseline table of :func:`latentshift.readings.classify.classify_conditions`).
    chance
        The chance level drawn as a dashed line.
    extra
        Optional further rows in the same format (e.g. the label-permutation control).
    title
        Figure title.
    """
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = table[["accuracy", "accuracy_low", "accuracy_high"]]
    if extra is not None:
        frame = pd.concat([frame, extra[["accuracy", "accuracy_low", "accuracy_high"]]])
    frame = frame.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(frame) + 1.4))
    y = range(len(frame))
    # a percentile interval can sit a rounding error (or, for a degenerate null, wholly) off its point
    err = [
        (frame["accuracy"] - frame["accuracy_low"]).clip(lower=0),
        (frame["accuracy_high"] - frame["accuracy"]).clip(lower=0),
    ]
    ax.barh(list(y), frame["accuracy"], xerr=err, color="#4c72b0", alpha=0.85, capsize=3)
    ax.axvline(chance, color="grey", ls="--", lw=1, label=f"chance ({chance:.2f})")
    ax.set_yticks(list(y), [str(i) for i in frame.index])
    ax.set_xlim(0, 1)
    ax.set_xlabel("test accuracy (95% bootstrap interval)")
    ax.legend(loc="lower right")
    ax.set_title(title or "classifier and baselines")
    fig.tight_layout()
    return fig


def dose_response(
    table: Any, chance: float, threshold: float | None = None, title: str = ""
) -> Figure:
    """Accuracy against fold-change level for the LDVAE latent and the PCA baseline.

    Parameters
    ----------
    table
        DataFrame with ``level`` and, per model prefix ``ldvae``/``pca``, the columns
        ``<prefix>_accuracy``, ``<prefix>_low``, ``<prefix>_high`` (see
        :func:`latentshift.run.sweep.collect`).
    chance
        The chance level (dashed line).
    threshold
        The detection threshold to mark, if any.
    title
        Figure title.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {
        "ldvae": ("LDVAE latent (MLP)", "#c44e52", "o"),
        "pca": ("PCA baseline (MLP)", "#4c72b0", "s"),
    }
    for prefix, (label, color, marker) in styles.items():
        if f"{prefix}_accuracy" not in table or table[f"{prefix}_accuracy"].isna().all():
            continue
        t = table.dropna(subset=[f"{prefix}_accuracy"])
        ax.plot(t["level"], t[f"{prefix}_accuracy"], marker=marker, color=color, label=label)
        ax.fill_between(t["level"], t[f"{prefix}_low"], t[f"{prefix}_high"], color=color, alpha=0.2)
    ax.axhline(chance, color="grey", ls="--", lw=1, label=f"chance ({chance:.2f})")
    if threshold is not None:
        ax.axvline(
            threshold, color="black", ls=":", lw=1, label=f"detection threshold ({threshold:g}×)"
        )
    ax.set_xscale("log")
    levels = list(table["level"])
    ax.set_xticks(levels, [f"{lv:g}" for lv in levels])
    ax.minorticks_off()
    ax.set_xlabel("fold change (ALS-like sets down by 1/level, HD-like sets up by level)")
    ax.set_ylabel("test accuracy (95% interval)")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper left")
    ax.set_title(title or "dose response: accuracy against fold change")
    fig.tight_layout()
    return fig


def unit_scores(
    table: Any, labels: Any, paired: bool, unit: str = "donor", title: str = ""
) -> Figure:
    """Each held-out unit's score: its accuracy (paired) or its call (unpaired).

    Parameters
    ----------
    table
        :func:`latentshift.design.units.unit_scores` (``p_<condition>``; ``accuracy`` when paired,
        ``condition`` when unpaired).
    labels
        The conditions, the reference first.
    paired
        Whether every unit holds every condition.
    unit
        The unit in words.
    title
        Figure title.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    labels = list(labels)
    frame = table.reset_index()
    if paired:
        fig, ax = plt.subplots(figsize=(max(4.5, 0.35 * min(len(frame), UNITS_SHOWN) + 2), 3.8))
        chance = 1 / len(labels)
        if len(frame) <= UNITS_SHOWN:
            ax.bar(frame.iloc[:, 0].astype(str), frame["accuracy"], color="#4c72b0")
            ax.axhline(chance, color="grey", ls="--", lw=1)
            ax.set_xlabel(f"held-out {unit}")
            ax.tick_params(axis="x", rotation=90 if len(frame) > 8 else 0)
            ax.set_ylabel(f"accuracy on the {unit}'s cells")
        else:
            ax.hist(frame["accuracy"], bins=min(30, len(frame)), color="#4c72b0")
            ax.axvline(chance, color="grey", ls="--", lw=1)
            ax.set_xlabel(f"accuracy on a held-out {unit}'s cells")
            ax.set_ylabel(f"{unit}s")
        ax.set_title(
            f"how well each held-out {unit}'s cells are told apart (dashed: chance)", fontsize=10
        )
        fig.suptitle(title or f"each {unit} scored by models that never saw it")
        fig.tight_layout()
        return fig
    diseases = labels[1:]
    fig, axes = plt.subplots(
        1, len(diseases), figsize=(4.5 * len(diseases) + 1.5, 4.2), squeeze=False
    )
    for ax, disease in zip(axes[0], diseases, strict=True):
        sns.stripplot(
            data=frame,
            x="condition",
            y=f"p_{disease}",
            hue="condition",
            order=labels,
            hue_order=labels,
            size=9,
            jitter=0.15,
            ax=ax,
            legend=False,
        )
        ax.axhline(1 / len(labels), color="grey", ls="--", lw=1, label="chance")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"the {unit}'s true condition")
        ax.set_ylabel(f"mean P({disease}) over the {unit}'s cells")
        ax.set_title(f"held-out {unit}s: {disease}", fontsize=10)
    fig.suptitle(title or f"each {unit} scored by models that never saw it")
    fig.tight_layout()
    return fig


def study_points(table: Any, chance: float, title: str = "") -> Figure:
    """Accuracy per study point: the network on the LDVAE latent with its 95% interval, beside
    the PCA network, the disease-gene regression, the label permutation and the point's null.

    Parameters
    ----------
    table
        ``study.csv`` (:func:`latentshift.run.study.collect`).
    chance
        The chance level (dashed line).
    title
        Figure title.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(table)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * max(n, 1)))
    y = np.arange(n)[::-1]
    acc = table["accuracy"].astype(float).to_numpy()
    err = np.vstack(
        [
            acc - table["accuracy_low"].astype(float).to_numpy(),
            table["accuracy_high"].astype(float).to_numpy() - acc,
        ]
    )
    ax.errorbar(acc, y, xerr=err, fmt="o", color="#c44e52", capsize=3, label="LDVAE latent (MLP)")
    marks = {
        "pca_accuracy": ("PCA (MLP)", "#4c72b0", "s"),
        "disease_genes_accuracy": ("disease genes (logreg)", "#55a868", "^"),
        "permutation_accuracy": ("label permutation", "grey", "x"),
        "null_accuracy": ("null run", "black", "|"),
    }
    for col, (label, color, marker) in marks.items():
        if col in table and table[col].notna().any():
            ax.scatter(
                table[col].astype(float), y, color=color, marker=marker, label=label, zorder=3
            )
    ax.axvline(chance, color="grey", ls="--", lw=1, label=f"chance ({chance:.2f})")
    names = [
        f"{p} (ORACLE)" if str(o).lower() == "true" else str(p)
        for p, o in zip(table["point"], table.get("oracle", [None] * n), strict=True)
    ]
    ax.set_yticks(y, names)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("test accuracy (95% interval)")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    ax.set_title(title or "accuracy per study point")
    fig.tight_layout()
    return fig
