"""Figures of the counts: depth per cell, composition, markers, mean-variance, library size.

One function per figure: each draws with matplotlib/seaborn/scanpy and returns the figure (it
never saves files; the notebook shows it, nbconvert embeds it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from latentshift.data.counts import counts_matrix, log_normalise_genes, row_sums
from latentshift.figures.captions import data_label

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.figure import Figure


def qc_distributions(adata: AnnData, groupby: str = "cell_type") -> Figure:
    """Total counts and detected genes per cell, one box per group (log scale).

    Uses ``obs["total_counts"]`` / ``obs["n_genes"]`` when present (set by
    :func:`latentshift.data.load.qc_filter`), else computes them from the sparse counts.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp
    import seaborn as sns

    counts = sp.csr_matrix(counts_matrix(adata))
    frame = pd.DataFrame(
        {
            groupby: adata.obs[groupby].astype(str).to_numpy(),
            "total counts per cell": row_sums(counts),
            "genes detected per cell": np.diff(counts.indptr),
        }
    )
    order = list(adata.obs[groupby].cat.categories) if hasattr(adata.obs[groupby], "cat") else None
    if order is not None:
        order = [o for o in order if o in set(frame[groupby])]
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.32 * frame[groupby].nunique() + 1.8), sharey=True)
    for ax, col in zip(axes, ["total counts per cell", "genes detected per cell"], strict=True):
        sns.boxplot(
            data=frame,
            x=col,
            y=groupby,
            order=order,
            ax=ax,
            color="#9ecae1",
            fliersize=1,
            linewidth=0.8,
        )
        ax.set_xscale("log")
        ax.set_ylabel("" if ax is axes[1] else groupby)
    fig.suptitle(f"Counts and genes per cell by {groupby}{data_label(adata)}")
    fig.tight_layout()
    return fig


def cell_type_composition(adata: AnnData, groupby: str = "cell_type") -> Figure:
    """Horizontal bar chart of the number (and share) of cells per group."""
    import matplotlib.pyplot as plt

    counts = adata.obs[groupby].value_counts(sort=False)
    counts = counts[counts > 0]
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(counts) + 1.5))
    ax.barh(counts.index.astype(str), counts.to_numpy(), color="#4c72b0")
    ax.invert_yaxis()
    total = counts.sum()
    for i, v in enumerate(counts.to_numpy()):
        ax.text(v, i, f" {v} ({100 * v / total:.1f}%)", va="center", fontsize=8)
    ax.set_xlabel("cells")
    ax.set_xlim(0, counts.max() * 1.3)
    ax.set_title(f"Cell-type composition, {total} cells{data_label(adata)}")
    fig.tight_layout()
    return fig


def marker_dotplot(adata: AnnData, markers: Any, groupby: str = "cell_type") -> Figure:
    """Scanpy dot plot of marker genes per group, on log1p(counts per 10k).

    ``markers`` maps group → gene symbols; each gene is shown once (under its first group).
    Symbols are matched to ``var_names`` or, for Ensembl-ID data, to ``var["feature_name"]``;
    markers not in the data are left out.
    """
    import anndata as ad
    import numpy as np
    import scanpy as sc
    import scipy.sparse as sp

    symbols = adata.var["feature_name"].astype(str) if "feature_name" in adata.var else None
    lookup = (
        {str(s).upper(): v for v, s in zip(adata.var_names, symbols, strict=True)}
        if symbols is not None
        else {}
    )
    names = {str(v).upper(): v for v in adata.var_names}
    seen: set[str] = set()
    groups: dict[str, list[str]] = {}
    cols: list[Any] = []
    for group, genes in markers.items():
        for g in genes:
            key = str(g).upper()
            var = names.get(key, lookup.get(key))
            if var is None or key in seen:
                continue
            seen.add(key)
            groups.setdefault(group, []).append(key)
            cols.append(var)
    idx = [adata.var_names.get_loc(v) for v in cols]
    sub = sp.csr_matrix(log_normalise_genes(counts_matrix(adata), idx).astype(np.float32))
    view = ad.AnnData(X=sub, obs=adata.obs[[groupby]].copy())
    view.var_names = [str(k).upper() for g in groups.values() for k in g]
    dp = sc.pl.dotplot(
        view,
        groups,
        groupby=groupby,
        return_fig=True,
        show=False,
        title=f"Marker genes by {groupby}{data_label(adata)}",
        standard_scale="var",
    )
    dp.make_figure()
    return dp.fig


def mean_variance(trend: Any, title: str = "") -> Figure:
    """Per-gene variance against mean within one cell type (log-log), with the Poisson line and
    the negative-binomial line at the median fitted θ (:func:`latentshift.data.fidelity.dispersion_trend`)."""
    import matplotlib.pyplot as plt
    import numpy as np

    mean, var = np.asarray(trend["mean"]), np.asarray(trend["variance"])
    ok = (mean > 0) & (var > 0)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.scatter(mean[ok], var[ok], s=3, alpha=0.3, color="#3182bd", label="genes", rasterized=True)
    grid = np.logspace(np.log10(mean[ok].min()), np.log10(mean[ok].max()), 100)
    theta = trend["theta_median"]
    ax.plot(grid, grid, color="0.4", lw=1, ls="--", label="Poisson: variance = mean")
    ax.plot(
        grid,
        grid + grid**2 / theta,
        color="#e6550d",
        lw=1.5,
        label=f"negative binomial, θ = {theta:.2f} (median fit)",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"mean count per nucleus ({trend['cell_type']}, {trend['n_cells']} cells)")
    ax.set_ylabel("variance")
    ax.set_title(title or "Mean–variance relation within one cell type")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def library_size_by_condition(adata: AnnData, layer: str | None = "counts") -> Figure:
    """Box plot of total counts per cell, one box per condition (log scale)."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    counts = counts_matrix(adata, layer)
    frame = pd.DataFrame(
        {
            "condition": adata.obs["condition"].to_numpy(),
            "total counts per cell": row_sums(counts),
        }
    )
    cond = adata.obs["condition"]
    order = [str(c) for c in (cond.cat.categories if hasattr(cond, "cat") else pd.unique(cond))]
    order = [c for c in order if c in set(frame["condition"].astype(str))]
    frame["condition"] = frame["condition"].astype(str)
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(order) + 1.8))
    sns.boxplot(
        data=frame,
        x="total counts per cell",
        y="condition",
        order=order,
        ax=ax,
        color="#9ecae1",
        fliersize=1,
        linewidth=0.8,
    )
    medians = frame.groupby("condition")["total counts per cell"].median()
    for i, name in enumerate(order):
        ax.text(medians[name], i - 0.42, f"median {medians[name]:,.0f}", fontsize=8, ha="center")
    ax.set_xscale("log")
    ax.set_title(f"Library size per condition{data_label(adata)}")
    fig.tight_layout()
    return fig
