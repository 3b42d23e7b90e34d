"""Figures of the perturbation's genes: requested vs realised fold change, gene-set expression.

One function per figure: each draws with matplotlib and returns the figure (it never saves
files; the notebook shows it, nbconvert embeds it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def realised_fold_change_plot(table: Any, title: str = "") -> Figure:
    """Realised vs requested mean fold change, one point per gene and perturbation entry.

    ``table`` comes from :func:`latentshift.perturb.shift_checks.realised_fold_changes` (columns ``entry``,
    ``requested``, ``realised``, ``mean_normal``). Left: realised against requested on log
    axes, with the identity line. Right: a strip of realised/requested per entry (1 = exact).
    """
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import FuncFormatter

    frame = table.dropna(subset=["realised"])
    frame = frame[(frame["realised"] > 0) & (frame["requested"] > 0)]
    entries = list(dict.fromkeys(frame["entry"]))
    colors = plt.get_cmap("tab10")
    if frame.empty:  # e.g. the null control: fold change 1.0 touches no cell
        fig, ax = plt.subplots(figsize=(7, 2))
        ax.axis("off")
        ax.text(
            0.5,
            0.5,
            "No gene was changed by any perturbation entry\n(null control: every fold change is 1.0).",
            ha="center",
            va="center",
        )
        fig.suptitle(title or "Requested vs realised fold change per gene")
        return fig
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.1, 1]})
    ax = axes[0]
    for i, entry in enumerate(entries):
        sub = frame[frame["entry"] == entry]
        ax.scatter(
            sub["requested"],
            sub["realised"],
            s=12 + 30 * np.sqrt(sub["mean_normal"].clip(0, 4)),
            alpha=0.7,
            color=colors(i),
            label=f"{entry} ({len(sub)} genes)",
        )
    lo = min(frame["requested"].min(), frame["realised"].min()) * 0.8
    hi = max(frame["requested"].max(), frame["realised"].max()) * 1.25
    ax.plot([lo, hi], [lo, hi], color="grey", ls="--", lw=1, label="realised = requested")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plain)
    ax.tick_params(which="minor", labelsize=7)
    ax.set_xlabel("requested fold change")
    ax.set_ylabel("realised mean fold change (touched cells / their sources)")
    ax.legend(fontsize=8)
    ax = axes[1]
    rng = np.random.default_rng(0)
    for i, entry in enumerate(entries):
        ratio = (
            frame.loc[frame["entry"] == entry, "realised"]
            / frame.loc[frame["entry"] == entry, "requested"]
        ).to_numpy()
        ax.scatter(
            i + rng.uniform(-0.15, 0.15, ratio.size), ratio, s=12, alpha=0.7, color=colors(i)
        )
        ax.hlines(np.median(ratio), i - 0.3, i + 0.3, color="black", lw=2)
    ax.axhline(1.0, color="grey", ls="--", lw=1)
    ax.set_xticks(range(len(entries)), entries)
    ax.set_ylabel("realised / requested (bar: median)")
    fig.suptitle(title or "Requested vs realised fold change per gene")
    fig.tight_layout()
    return fig


def geneset_condition_heatmap(means: Any, gene_groups: Any, title: str = "") -> Figure:
    """Heatmap of mean log1p-normalised expression: genes × (cell type, condition).

    ``means`` comes from :func:`latentshift.perturb.shift_checks.mean_expression` (rows: genes; columns:
    a (cell_type, condition) MultiIndex). ``gene_groups`` maps a label (e.g. the entry name)
    to its genes; the rows are grouped and labelled by it.
    """
    import matplotlib.pyplot as plt

    rows, labels, bounds = [], [], []
    for label, genes in gene_groups.items():
        genes = [g for g in genes if g in means.index and g not in rows]
        rows.extend(genes)
        labels.append((label, len(rows) - len(genes) / 2))
        bounds.append(len(rows))
    data = means.loc[rows]
    values = data.to_numpy()
    fig_h = min(0.12 * len(rows) + 2.5, 16)
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * data.shape[1] + 3), fig_h))
    im = ax.imshow(values, aspect="auto", cmap="viridis", interpolation="nearest")
    cols = [f"{ct} · {cond}" for ct, cond in data.columns]
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7)
    if len(rows) <= 60:
        ax.set_yticks(range(len(rows)), rows, fontsize=6)
    else:
        ax.set_yticks([])
    for b in bounds[:-1]:
        ax.axhline(b - 0.5, color="white", lw=1.5)
    # separate cell types with vertical lines
    cell_types = [ct for ct, _ in data.columns]
    for j in range(1, len(cell_types)):
        if cell_types[j] != cell_types[j - 1]:
            ax.axvline(j - 0.5, color="white", lw=1)
    for label, y in labels:
        ax.text(
            -0.02,
            1 - y / max(len(rows), 1),
            label,
            transform=ax.transAxes,
            ha="right",
            va="center",
            rotation=90,
            fontsize=9,
            fontweight="bold",
        )
    fig.colorbar(im, ax=ax, label="mean log1p(counts per 10k)", shrink=0.6)
    ax.set_title(title or "Gene-set genes across cell types and conditions")
    fig.tight_layout()
    return fig
