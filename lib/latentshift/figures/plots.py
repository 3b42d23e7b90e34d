"""Figures shared by the notebooks, one function each.

Functions draw with matplotlib/seaborn/scanpy and return the figure (or display an HTML
element); they never save files themselves — the notebook shows them, nbconvert embeds them.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from latentshift.data.counts import counts_matrix, log_normalise_genes, row_sums

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.figure import Figure


def is_simulated(adata: AnnData) -> bool:
    """Whether an AnnData comes from :func:`latentshift.data.simulate.simulate_m1`."""
    return bool(adata.uns.get("latentshift", {}).get("simulated", False))


def simulated_banner(adata: AnnData) -> Any:
    """An HTML banner saying the data are simulated (or naming the real source).

    Every notebook shows it right after loading its input, so no figure of simulated data
    is ever mistaken for real cells.
    """
    from IPython.display import HTML

    if is_simulated(adata):
        return HTML(
            "<div style='background:#fff3cd;border:2px solid #e0a800;padding:0.7em;font-weight:bold'>"
            "SIMULATED DATA — a deterministic simulated M1-like data set made by latentshift, "
            "not real cells. Figures show what the method does, not biology.</div>"
        )
    from latentshift.data.artifacts import display_path

    source = adata.uns.get("latentshift", {}).get("source")
    shown = html.escape(display_path(source) if source else "a local .h5ad file")
    return HTML(f"<div style='background:#e2f0d9;padding:0.7em'>Real data: {shown}</div>")


def data_label(adata: AnnData) -> str:
    """A short label for figure titles: ``"(simulated)"`` or ``""``."""
    return " (simulated data)" if is_simulated(adata) else ""


def figure_alt_text(fig: Figure, limit: int = 300) -> str:
    """A figure's alternative text for a screen reader: its title and its panels' titles.

    The suptitle, then each panel's title (or, for an untitled figure, the first panel's axis
    labels).
    Colour bars and empty titles are left out; the text is cut at ``limit`` characters.
    """
    title = fig.get_suptitle().strip()
    panels = []
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        text = " ".join(ax.get_title(loc).strip() for loc in ("left", "center", "right")).strip()
        if text and text != title and text not in panels:
            panels.append(text)
    parts = [title] if title else []
    if panels:
        parts.append(("Panels: " if len(panels) > 1 else "") + "; ".join(panels))
    elif not title and fig.axes:
        ax = fig.axes[0]
        labels = [f"{k} axis {v}" for k, v in (("x", ax.get_xlabel()), ("y", ax.get_ylabel())) if v]
        parts.append(", ".join(labels) if labels else "an untitled chart")
    text = "Figure: " + ". ".join(parts) if parts else "Figure"
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def set_figure_alt_text() -> bool:
    """Make every matplotlib figure a notebook shows carry :func:`figure_alt_text`.

    In a Jupyter kernel with matplotlib's inline backend, wraps IPython's PNG formatter for
    figures so that each figure's output gets ``{"image/png": {"alt": ...}}`` metadata, the key
    nbconvert's templates (and latentshift's report pages) read. Call it once, in a notebook's
    import cell; calling it again changes nothing.

    Returns
    -------
    bool
        Whether figures now carry alt text (False outside IPython or with another backend).
    """
    import matplotlib
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or "matplotlib_inline" not in matplotlib.get_backend():
        return False
    # importing the backend module registers IPython's figure formatters now, before ours,
    # rather than at the first figure (where it would replace ours)
    import matplotlib_inline.backend_inline  # noqa: F401
    from matplotlib.figure import Figure as _Figure

    formatter = shell.display_formatter.formatters["image/png"]
    current = formatter.for_type(_Figure)
    if current is None:
        return False
    if getattr(current, "adds_alt_text", False):
        return True

    def png_with_alt(fig: Figure) -> Any:
        data = current(fig)
        if data is None:
            return None
        return data, {"alt": figure_alt_text(fig)}

    png_with_alt.adds_alt_text = True  # type: ignore[attr-defined]
    formatter.for_type(_Figure, png_with_alt)
    return True


# --- 01_data --------------------------------------------------------------------------


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


# --- 03_ldvae / 04_latent_viz (latentshift.model.ldvae, latentshift.model.embedding) ----------------


def loss_curves(history: Any, title: str = "", early_stopped: bool = False) -> Figure:
    """LDVAE training and validation loss per epoch (negative ELBO; left) and its parts (right).

    Parameters
    ----------
    history
        :func:`latentshift.model.ldvae.history_frame` table (one row per epoch).
    title
        Figure title (append :func:`data_label`).
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


# --- 02_perturb ---------------------------------------------------------------------------


def realised_fold_change_plot(table: Any, title: str = "") -> Figure:
    """Realised vs requested mean fold change, one point per gene and perturbation entry.

    ``table`` comes from :func:`latentshift.perturb.shift.realised_fold_changes` (columns ``entry``,
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


def geneset_condition_heatmap(means: Any, gene_groups: Any, title: str = "") -> Figure:
    """Heatmap of mean log1p-normalised expression: genes × (cell type, condition).

    ``means`` comes from :func:`latentshift.perturb.shift.mean_expression` (rows: genes; columns:
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
