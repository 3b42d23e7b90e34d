"""Figures of the LDVAE's factors: loadings heatmap, latent shift per factor, ranked gene curves.

One function per figure: each draws with matplotlib and returns the figure (it never saves
files; the notebook shows it, nbconvert embeds it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def loadings_heatmap(loadings: Any, gene_sets: Any, title: str = "", labels: Any = None) -> Figure:
    """Heatmap of the disease-set genes (rows, grouped by set) × factors: their loadings.

    Parameters
    ----------
    loadings
        Genes × factors DataFrame.
    gene_sets
        ``{set or condition name: [genes]}``; genes missing from ``loadings`` are skipped.
    title
        Figure title (add :func:`~latentshift.figures.captions.data_label`).
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
