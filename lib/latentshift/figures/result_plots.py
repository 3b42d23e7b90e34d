"""Figures of the answers: the classifier (05), the dose-response sweep and the loadings (06).

One function per figure, as in :mod:`latentshift.figures.plots` (the figures of steps 01–04): each draws
with matplotlib/seaborn and returns the figure; the notebook shows it, nbconvert embeds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from latentshift.design.units import UNITS_SHOWN

if TYPE_CHECKING:
    from matplotlib.figure import Figure


# --- 05_classifier and the sweep -----------------------------------------------------------


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


def transfer_calls(by_cell_type: Any, title: str = "", called: str = "disease") -> Figure:
    """How often a classifier of the synthetic shift calls real nuclei "disease", per cell type.

    Parameters
    ----------
    by_cell_type
        :attr:`latentshift.readings.transfer.TransferResult.by_cell_type` (``condition``, ``cell_type``,
        ``targeted`` and ``<rep>_disease`` / ``<rep>_control`` call rates).
    title
        Figure title.
    called
        What a call says (``disease``; ``perturbed`` for real cells of a stimulation).

    One row of panels per disease condition, one panel per representation; the disease and the
    control nuclei's call rates side by side, the targeted types (``*``) first; exact 95 %
    intervals where the table has them (``<rep>_disease_low`` … ``_high``).
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    reps = [c[: -len("_donor_p")] for c in by_cell_type.columns if c.endswith("_donor_p")]
    diseases = list(dict.fromkeys(by_cell_type["condition"]))
    fig, axes = plt.subplots(
        len(diseases),
        len(reps),
        figsize=(6 * len(reps), 4.2 * len(diseases)),
        squeeze=False,
        sharey=True,
    )
    names = {"ldvae": "LDVAE latent", "pca": "PCA baseline"}
    for row, disease in zip(axes, diseases, strict=True):
        part = by_cell_type[by_cell_type["condition"] == disease].copy()
        part["type"] = part["cell_type"] + np.where(part["targeted"], " *", "")
        for ax, rep in zip(row, reps, strict=True):
            long = part.melt(
                id_vars=["type"],
                value_vars=[f"{rep}_disease", f"{rep}_control"],
                var_name="nuclei",
                value_name=f"called {called}",
            )
            long["nuclei"] = long["nuclei"].map(
                {f"{rep}_disease": disease, f"{rep}_control": "control"}
            )
            sns.barplot(data=long, x="type", y=f"called {called}", hue="nuclei", ax=ax)
            if f"{rep}_disease_low" in part:  # exact intervals, bars in seaborn's order
                width = 0.8 / 2
                for j, side in enumerate(("disease", "control")):
                    x = np.arange(len(part)) - 0.4 + width * (j + 0.5)
                    value = part[f"{rep}_{side}"].to_numpy()
                    err = np.vstack(
                        [
                            value - part[f"{rep}_{side}_low"].to_numpy(),
                            part[f"{rep}_{side}_high"].to_numpy() - value,
                        ]
                    )
                    ax.errorbar(x, value, yerr=err, fmt="none", color="black", lw=0.8)
            ax.set_ylim(0, 1)
            ax.set_xlabel("cell type (* where the entry puts the shift)")
            ax.set_ylabel(f"share of held-out cells called {called}")
            ax.set_title(f"{disease}: {names.get(rep, rep)}", fontsize=10)
            ax.tick_params(axis="x", rotation=60, labelsize=8)
    fig.suptitle(title or "a classifier of the synthetic shift on real held-out nuclei")
    fig.tight_layout()
    return fig


def direction_match(tables: Any, title: str = "") -> Figure:
    """Per cell type, the cosine of the synthetic displacement with the real one, beside its null.

    Parameters
    ----------
    tables
        ``{(real condition, representation): table}`` of
        :func:`latentshift.readings.real_cells.direction_match`.
    title
        Figure title.
    """
    import matplotlib.pyplot as plt

    names = {"ldvae": "LDVAE latent", "pca": "PCA baseline"}
    keys = list(tables)
    fig, axes = plt.subplots(
        1,
        len(keys),
        figsize=(5.5 * len(keys), 0.9 + 0.35 * max(len(t) for t in tables.values())),
        squeeze=False,
        sharex=True,
    )
    for ax, key in zip(axes[0], keys, strict=True):
        t = tables[key].iloc[::-1]
        y = np.arange(len(t))
        ax.barh(y, t["cosine"], color="#c44e52", label="synthetic · real")
        ax.scatter(t["null_high"], y, color="black", marker="|", s=120, label="null 97.5 %")
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(
            y, [f"{c} ({n} donors)" for c, n in zip(t["cell_type"], t["n_donors"], strict=True)]
        )
        ax.set_xlim(-1, 1)
        ax.set_xlabel("cosine of the mean displacements")
        ax.set_title(f"{key[0]}: {names.get(key[1], key[1])}", fontsize=10)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title or "does the synthetic shift point the way the real one does?")
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


# --- 06_loadings ---------------------------------------------------------------------------


def loadings_heatmap(loadings: Any, gene_sets: Any, title: str = "", labels: Any = None) -> Figure:
    """Heatmap of the disease-set genes (rows, grouped by set) × factors: their loadings.

    Parameters
    ----------
    loadings
        Genes × factors DataFrame.
    gene_sets
        ``{set or condition name: [genes]}``; genes missing from ``loadings`` are skipped.
    title
        Figure title (add :func:`data_label`).
    labels
        Optional readable gene names indexed like ``loadings``.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    blocks = [
        (name, [g for g in genes if g in loadings.index]) for name, genes in gene_sets.items()
    ]
    blocks = [(name, genes) for name, genes in blocks if genes]
    rows = [g for _, genes in blocks for g in genes]
    values = loadings.loc[rows].to_numpy(dtype=float)
    vmax = float(np.nanmax(np.abs(values))) if values.size else 1.0
    height = min(3 + 0.08 * len(rows), 14)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * loadings.shape[1] + 1.5, height))
    im = ax.imshow(
        values, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest"
    )
    ax.set_xticks(range(loadings.shape[1]), list(loadings.columns), rotation=90)
    if len(rows) <= 60:
        names = rows if labels is None else [str(labels.get(g, g)) for g in rows]
        ax.set_yticks(range(len(rows)), names, fontsize=6)
    else:
        ax.set_yticks([])
    start = 0
    for name, genes in blocks:
        ax.axhline(start - 0.5, color="black", lw=1)
        ax.text(
            -0.7,
            start + len(genes) / 2,
            f"{name} ({len(genes)})",
            ha="right",
            va="center",
            rotation=90,
            fontsize=9,
            transform=ax.transData,
        )
        start += len(genes)
    ax.set_xlabel("factor")
    fig.colorbar(im, ax=ax, label="loading", shrink=0.6)
    ax.set_title(title or "Loadings of the perturbed genes")
    fig.tight_layout()
    return fig


def factor_shift_plot(shifts: Any, best: Any = None, title: str = "") -> Figure:
    """Mean paired latent shift (disease copy − its normal cell) per factor and condition,
    with 95% intervals.

    Parameters
    ----------
    shifts
        Long table from :func:`latentshift.readings.loadings.factor_shifts` (``condition``, ``factor``,
        ``mean_shift``, ``ci_low``, ``ci_high``, ``effect_size``).
    best
        Optional ``{condition: factor}`` to mark each condition's most shifted factor.
    title
        Figure title.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    conditions = list(dict.fromkeys(shifts["condition"]))
    factors = list(dict.fromkeys(shifts["factor"]))
    x = np.arange(len(factors))
    width = 0.8 / max(len(conditions), 1)
    fig, axes = plt.subplots(2, 1, figsize=(max(6, 0.6 * len(factors) + 2), 6), sharex=True)
    for i, cond in enumerate(conditions):
        sub = shifts[shifts["condition"] == cond].set_index("factor").reindex(factors)
        pos = x - 0.4 + width * (i + 0.5)
        err = np.vstack([sub["mean_shift"] - sub["ci_low"], sub["ci_high"] - sub["mean_shift"]])
        axes[0].errorbar(
            pos, sub["mean_shift"], yerr=err, fmt="o", ms=4, capsize=2, label=cond, color=f"C{i}"
        )
        axes[1].bar(pos, sub["effect_size"], width=width, color=f"C{i}", label=cond)
        if best and cond in best:
            j = factors.index(best[cond])
            axes[1].annotate(
                "best",
                (pos[j], sub["effect_size"].iloc[j]),
                ha="center",
                va="bottom" if sub["effect_size"].iloc[j] >= 0 else "top",
                fontsize=8,
            )
    for ax in axes:
        ax.axhline(0, color="grey", lw=0.8)
    axes[0].set_ylabel("mean paired shift\n(95% interval)")
    axes[1].set_ylabel("effect size\n(mean / sd of shift)")
    axes[1].set_xticks(x, factors, rotation=90)
    axes[1].set_xlabel("factor")
    axes[0].legend(title="condition", fontsize=8)
    axes[0].set_title(title or "Latent shift per factor")
    fig.tight_layout()
    return fig


def ranked_loading_curve(panels: Any, title: str = "") -> Figure:
    """Genes ranked by an oriented score, with a gene set's genes marked (GSEA-style).

    Parameters
    ----------
    panels
        A list of ``(panel title, scores, genes)``: ``scores`` a Series (index = genes, high =
        moved in the expected direction), ``genes`` the set to mark. One panel per entry,
        arranged in rows of three.
    title
        Figure title.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(panels)
    ncol = min(3, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
    for ax, (name, scores, genes) in zip(axes.ravel(), panels, strict=False):
        ordered = scores.sort_values(ascending=False)
        rank = np.arange(1, len(ordered) + 1)
        in_set = ordered.index.isin(list(genes))
        ax.plot(rank, ordered.to_numpy(), color="black", lw=1)
        lo, hi = ax.get_ylim()
        tick = lo - 0.08 * (hi - lo)
        ax.vlines(rank[in_set], tick - 0.06 * (hi - lo), tick, color="crimson", lw=0.7)
        ax.set_ylim(tick - 0.08 * (hi - lo), hi)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("gene rank")
        ax.set_ylabel("oriented score")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.suptitle(title or "Ranked genes (set genes in red)")
    fig.tight_layout()
    return fig
