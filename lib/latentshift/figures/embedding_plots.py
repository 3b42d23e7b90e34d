"""Figures of the latent spaces: UMAP grids, disease copies beside their normal cells, separation.

One function per figure: each draws with matplotlib/seaborn/scanpy and returns the figure (it
never saves files; the notebook shows it, nbconvert embeds it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.figure import Figure


def embedding_grid(
    adata: AnnData,
    names: Any,
    colors: Any = ("condition", "cell_type", "leiden", "split"),
    title: str = "",
) -> Figure:
    """UMAPs, one row per embedding, one column per obs colouring.

    Parameters
    ----------
    adata
        Cells with ``obsm["X_umap_<name>"]`` and ``obs["leiden_<name>"]`` per embedding
        (see :func:`latentshift.model.embedding.embed`).
    names
        ``{name: row label}``, e.g. ``{"ldvae": "LDVAE latent", "pca": "PCA baseline"}``.
    colors
        obs columns; ``"leiden"`` means each row's own ``leiden_<name>``.
    """
    import matplotlib.pyplot as plt
    import scanpy as sc

    names = dict(names)
    colors = list(colors)
    fig, axes = plt.subplots(
        len(names), len(colors), figsize=(4.2 * len(colors), 3.9 * len(names)), squeeze=False
    )
    size = max(2.0, min(30.0, 60000 / max(adata.n_obs, 1)))
    for r, (name, label) in enumerate(names.items()):
        for c, color in enumerate(colors):
            key = f"leiden_{name}" if color == "leiden" else color
            ax = axes[r, c]
            sc.pl.embedding(
                adata,
                basis=f"X_umap_{name}",
                color=key,
                ax=ax,
                show=False,
                size=size,
                legend_loc="on data" if color == "leiden" else "right margin",
                legend_fontsize=7,
                frameon=False,
                title=f"{label}: {key}",
            )
    fig.suptitle(title or "UMAP of the latent spaces")
    fig.tight_layout()
    return fig


def copies_vs_normal(
    adata: AnnData,
    basis: str,
    condition_key: str = "condition",
    cell_type_key: str = "cell_type",
    source_key: str = "source_cell",
    normal: str = "normal",
    n_links: int = 40,
    seed: int = 0,
    title: str = "",
) -> Figure:
    """Per cell type: its normal cells and their disease copies on an embedding.

    Each panel zooms on one cell type: normal cells in grey, copies coloured by condition,
    and thin lines from ``n_links`` random normal cells to their own copies.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    xy = np.asarray(adata.obsm[basis])[:, :2]
    obs = adata.obs
    cond = obs[condition_key].astype(str).to_numpy()
    ctype = obs[cell_type_key].astype(str).to_numpy()
    source = obs[source_key].astype(str).to_numpy()
    types = sorted(set(ctype))
    conditions = [
        c for c in obs[condition_key].astype("category").cat.categories.astype(str) if c != normal
    ]
    palette = plt.get_cmap("tab10")
    ncol = min(4, len(types))
    nrow = int(np.ceil(len(types) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.4 * nrow), squeeze=False)
    rng = np.random.default_rng(seed)
    for ax, t in zip(axes.ravel(), types, strict=False):
        inside = ctype == t
        normal_idx = np.flatnonzero(inside & (cond == normal))
        ax.scatter(*xy[~inside].T, s=1, c="#eeeeee", rasterized=True)
        ax.scatter(*xy[normal_idx].T, s=4, c="#888888", label=normal, rasterized=True)
        where = {s: i for s, i in zip(source[normal_idx], normal_idx, strict=True)}
        links = (
            rng.choice(normal_idx, min(n_links, len(normal_idx)), replace=False)
            if len(normal_idx)
            else []
        )
        chosen = {source[i] for i in links}
        for k, c in enumerate(conditions):
            idx = np.flatnonzero(inside & (cond == c))
            color = palette((k + 1) % 10)
            ax.scatter(*xy[idx].T, s=4, color=color, label=c, alpha=0.7, rasterized=True)
            for i in idx:
                if source[i] in chosen and source[i] in where:
                    j = where[source[i]]
                    ax.plot(
                        [xy[j, 0], xy[i, 0]], [xy[j, 1], xy[i, 1]], color=color, lw=0.5, alpha=0.6
                    )
        if inside.any():
            lo, hi = xy[inside].min(axis=0), xy[inside].max(axis=0)
            pad = 0.15 * (hi - lo) + 1e-6
            ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
            ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_title(t, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[len(types) :]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False, markerscale=3)
    fig.suptitle(title or "disease copies relative to their normal cells")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def separation_bars(table: Any, metric: str = "silhouette", title: str = "") -> Figure:
    """Bars of a per-cell-type separation score, one group per cell type, LDVAE vs PCA side by side.

    Parameters
    ----------
    table
        :func:`latentshift.model.embedding.side_by_side` output (columns ``cell_type``, ``condition``,
        ``embedding`` and ``metric``).
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    conditions = list(dict.fromkeys(table["condition"]))
    fig, axes = plt.subplots(
        1, len(conditions), figsize=(5.5 * len(conditions), 3.6), squeeze=False, sharey=True
    )
    for ax, c in zip(axes.ravel(), conditions, strict=True):
        sns.barplot(
            data=table[table["condition"] == c], x="cell_type", y=metric, hue="embedding", ax=ax
        )
        ax.set_title(f"{c} copies vs normal cells")
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=45)
        for lab in ax.get_xticklabels():
            lab.set_horizontalalignment("right")
        ax.axhline(0, color="black", lw=0.6)
    axes.ravel()[0].set_ylabel(metric.replace("_", " "))
    fig.suptitle(title or f"separation of conditions within each cell type ({metric})")
    fig.tight_layout()
    return fig
