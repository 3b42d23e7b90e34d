"""Figures of the per-cell-type readings: Augur-style AUC, the E-test, pseudobulk volcanoes and composition.

Each function takes a table from :mod:`latentshift.readings.detectability` or
:mod:`latentshift.readings.edistance`, draws with matplotlib and returns the Figure (it never saves
files; the notebook shows it and nbconvert embeds it). Panels are laid out as conditions
(rows) x representations (columns), so the LDVAE latent and the PCA baseline sit side by side
with the same cell-type order. Cell types that could not be tested are listed in each panel,
greyed and marked "not tested", never dropped.

References: Augur (Skinnider et al. 2021, *Nat Biotechnol* 39:30-34) for the AUC ranking;
the E-distance and E-test of scPerturb (Peidli et al. 2024, *Nat Methods* 21:531-540).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from latentshift.errors import CellTypeShiftError

__all__ = [
    "plot_celltype_auc",
    "plot_composition",
    "plot_edistance",
    "plot_pvalue_uniformity",
    "plot_volcanoes",
    "significance_mark",
]

_UNTESTED = "#9a9a9a"


def significance_mark(p_adj: float) -> str:
    """Stars for an adjusted p-value: ``***`` < 0.001, ``**`` < 0.01, ``*`` < 0.05, else ``ns``.

    Parameters
    ----------
    p_adj
        The adjusted p-value (NaN gives ``""``).

    Returns
    -------
    str
    """
    if p_adj is None or not np.isfinite(p_adj):
        return ""
    if p_adj < 0.001:
        return "***"
    if p_adj < 0.01:
        return "**"
    if p_adj < 0.05:
        return "*"
    return "ns"


def _with_representation(table: pd.DataFrame) -> pd.DataFrame:
    if "representation" not in table.columns:
        table = table.assign(representation="")
    return table


def _select(
    table: pd.DataFrame, conditions: Sequence[str] | None, representations: Sequence[str] | None
) -> tuple[list[str], list[str]]:
    conds = (
        list(pd.unique(table["condition"])) if conditions is None else [str(c) for c in conditions]
    )
    reps = (
        list(pd.unique(table["representation"]))
        if representations is None
        else [str(r) for r in representations]
    )
    missing = [c for c in conds if c not in set(table["condition"])] + [
        r for r in reps if r not in set(table["representation"])
    ]
    if missing:
        raise CellTypeShiftError(
            f"{missing} not in the table; pick among its conditions and representations."
        )
    if not conds or not reps:
        raise CellTypeShiftError("the table is empty; nothing to plot.")
    return conds, reps


def _order(part: pd.DataFrame, value: str) -> list[str]:
    """Cell types: testable ones by decreasing value, then the untested (alphabetically)."""
    tested = part[part["testable"]].sort_values(value, ascending=False, kind="stable")
    untested = sorted(part.loc[~part["testable"], "cell_type"])
    return list(tested["cell_type"]) + [c for c in untested if c not in set(tested["cell_type"])]


def plot_celltype_auc(
    table: pd.DataFrame,
    *,
    conditions: Sequence[str] | None = None,
    representations: Sequence[str] | None = None,
    order_by: str | None = None,
    title: str = "",
) -> Any:
    """Ranked per-cell-type AUC with its spread and the permutation null band.

    One panel per (condition, representation). Each testable cell type shows its mean AUC
    (dot) with the 2.5-97.5 % range over subsamples (bar) over a grey band spanning the
    null's 2.5-97.5 % range (tick at the null mean); a filled dot means the AUC's 2.5 %
    exceeds the null's 97.5 %. Untested cell types are listed at the bottom, greyed.

    Parameters
    ----------
    table
        From :func:`latentshift.readings.detectability.celltype_auc_by_representation` (or
        :func:`~latentshift.readings.detectability.celltype_auc`).
    conditions, representations
        Subsets and order (default: all, in the table's order).
    order_by
        Representation whose ranking orders the cell types of every panel in a row (default:
        the first), so LDVAE and PCA rows align.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    table = _with_representation(table)
    conds, reps = _select(table, conditions, representations)
    order_by = reps[0] if order_by is None else str(order_by)
    n_types = table["cell_type"].nunique()
    fig, axes = plt.subplots(
        len(conds),
        len(reps),
        figsize=(3.6 * len(reps) + 1.6, 0.28 * n_types * len(conds) + 1.2 * len(conds) + 0.6),
        squeeze=False,
        sharex=True,
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, cond in enumerate(conds):
        ref = table[(table["condition"] == cond) & (table["representation"] == order_by)]
        order = _order(ref, "auc_mean")
        y = {ct: k for k, ct in enumerate(order)}
        for j, rep in enumerate(reps):
            ax = axes[i, j]
            part = table[(table["condition"] == cond) & (table["representation"] == rep)].set_index(
                "cell_type"
            )
            color = colors[j % len(colors)]
            for ct in order:
                if ct not in part.index:
                    continue
                row = part.loc[ct]
                yy = y[ct]
                if not row["testable"]:
                    ax.text(
                        0.5, yy, "not tested", ha="center", va="center", fontsize=7, color=_UNTESTED
                    )
                    continue
                ax.fill_betweenx(
                    [yy - 0.35, yy + 0.35], row["null_low"], row["null_high"], color="0.85", lw=0
                )
                ax.plot([row["null_mean"]] * 2, [yy - 0.35, yy + 0.35], color="0.55", lw=1)
                ax.plot([row["auc_low"], row["auc_high"]], [yy, yy], color=color, lw=1.6)
                ax.plot(
                    row["auc_mean"],
                    yy,
                    "o",
                    color=color,
                    mfc=color if row["above_null"] else "white",
                    ms=5,
                )
            ax.axvline(0.5, color="0.3", lw=0.8, ls="--")
            ax.set_yticks(range(len(order)))
            labels = []
            for ct in order:
                n = part.loc[ct, "n_source_cells"] if ct in part.index else 0
                labels.append(f"{ct} ({int(n)})")
            ax.set_yticklabels(labels, fontsize=7)
            for tick, ct in zip(ax.get_yticklabels(), order, strict=True):
                if ct in part.index and not part.loc[ct, "testable"]:
                    tick.set_color(_UNTESTED)
            ax.set_ylim(len(order) - 0.5, -0.5)
            ax.set_title(f"{cond}: {rep}" if rep else cond, fontsize=9)
            if i == len(conds) - 1:
                ax.set_xlabel("cross-validated AUC (grey: permutation null)", fontsize=8)
    lo = np.nanmin(np.r_[table[["auc_low", "null_low"]].to_numpy(dtype=float).ravel(), 0.4])
    axes[0, 0].set_xlim(max(0.0, min(0.4, lo - 0.03)), 1.01)
    fig.suptitle(
        title or "Per-cell-type detectability (Augur-style AUC; label: source cells)", fontsize=10
    )
    fig.tight_layout()
    return fig


def plot_edistance(
    table: pd.DataFrame,
    *,
    conditions: Sequence[str] | None = None,
    representations: Sequence[str] | None = None,
    value: str = "edistance",
    order_by: str | None = None,
    log_scale: bool = False,
    title: str = "",
) -> Any:
    """E-distance of each condition against normal, pooled and per cell type, with significance.

    One panel per (condition, representation) (scales differ between representations, so
    x axes are not shared). The pooled row (``all``) is on top, then the cell types by
    decreasing value of ``order_by``. Bars: the E-distance with its basic bootstrap 95 %
    interval; a grey tick marks the permutation null's 97.5 %; the text gives the
    Benjamini-Hochberg adjusted significance (``***`` < 0.001, ``**`` < 0.01, ``*`` < 0.05,
    ``ns``) and ``min`` when the p-value is the smallest the permutation count allows.

    Parameters
    ----------
    table
        From :func:`latentshift.readings.edistance.edistance_table`.
    conditions, representations
        Subsets and order (default: all).
    value
        ``"edistance"`` (default) or ``"edistance_excess"`` (above the null mean).
    order_by
        Representation whose ranking orders every panel of a row (default: the first).
    log_scale
        Log x axis (only for ``value="edistance"``; values <= 0 are clipped).
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if value not in ("edistance", "edistance_excess"):
        raise CellTypeShiftError(f"value must be 'edistance' or 'edistance_excess', got '{value}'.")
    table = _with_representation(table)
    conds, reps = _select(table, conditions, representations)
    order_by = reps[0] if order_by is None else str(order_by)
    n_rows = table[["scope", "cell_type"]].drop_duplicates().shape[0]
    fig, axes = plt.subplots(
        len(conds),
        len(reps),
        figsize=(3.8 * len(reps) + 1.6, 0.28 * n_rows * len(conds) + 1.2 * len(conds) + 0.6),
        squeeze=False,
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, cond in enumerate(conds):
        ref = table[(table["condition"] == cond) & (table["representation"] == order_by)]
        pooled = ref[ref["scope"] == "condition"]
        per_type = ref[ref["scope"] == "cell_type"]
        keys = [("condition", ct) for ct in pooled["cell_type"]]
        keys += [("cell_type", ct) for ct in _order(per_type, value)]
        for j, rep in enumerate(reps):
            ax = axes[i, j]
            part = table[(table["condition"] == cond) & (table["representation"] == rep)]
            part = part.set_index(["scope", "cell_type"])
            color = colors[j % len(colors)]
            top = _edistance_top(part[part["testable"]], value)
            for yy, key in enumerate(keys):
                if key not in part.index:
                    continue
                _draw_edistance_row(ax, yy, key, part.loc[key], value, top, color, log_scale)
            _label_edistance_rows(ax, part, keys)
            ax.set_ylim(len(keys) - 0.5, -0.5)
            if log_scale:
                ax.set_xscale("log")
            ax.axvline(0, color="0.3", lw=0.6)
            ax.set_title(f"{cond}: {rep}" if rep else cond, fontsize=9)
            label = "E-distance" if value == "edistance" else "E-distance above null mean"
            ax.set_xlabel(f"{label} (grey tick: null 97.5 %)", fontsize=8)
    fig.suptitle(
        title or "E-test against normal (label: source-cell pairs; BH-adjusted)", fontsize=10
    )
    fig.tight_layout()
    return fig


def _edistance_top(tested: pd.DataFrame, value: str) -> float:
    """The largest value a panel of :func:`plot_edistance` draws (its tested rows' values, null
    97.5 % and bootstrap high; 1 when none is positive)."""
    top = float(
        np.nanmax(
            np.r_[
                tested[value].to_numpy(dtype=float),
                tested["null_high"].to_numpy(dtype=float),
                0,
            ]
        )
    )
    if value == "edistance":
        top = float(np.nanmax(np.r_[top, tested["edistance_high"].to_numpy(dtype=float)]))
    return top if top > 0 else 1.0


def _draw_edistance_row(
    ax: Any,
    yy: int,
    key: tuple[str, str],
    row: pd.Series,
    value: str,
    top: float,
    color: Any,
    log_scale: bool,
) -> None:
    """One row of a :func:`plot_edistance` panel: the bar, its bootstrap interval, the null's
    tick and the significance mark (or ``not tested``)."""
    if not row["testable"]:
        ax.text(0, yy, " not tested", ha="left", va="center", fontsize=7, color=_UNTESTED)
        return
    v = float(row[value])
    shown = max(v, top * 1e-4) if log_scale else v
    ax.barh(yy, shown, color=color, alpha=0.75 if key[0] == "cell_type" else 1.0, height=0.7)
    if value == "edistance" and np.isfinite(row["edistance_low"]):
        low = (
            max(float(row["edistance_low"]), top * 1e-4)
            if log_scale
            else float(row["edistance_low"])
        )
        ax.plot([low, float(row["edistance_high"])], [yy, yy], color="black", lw=1)
    null = (
        float(row["null_high"])
        if value == "edistance"
        else float(row["null_high"] - row["null_mean"])
    )
    if not log_scale or null > 0:
        ax.plot([null, null], [yy - 0.4, yy + 0.4], color="0.45", lw=1.5)
    mark = significance_mark(float(row["pvalue_adj"]))
    if bool(row["at_min_pvalue"]):
        mark += " min"
    ax.text(
        1.0,
        yy,
        mark,
        transform=ax.get_yaxis_transform(),
        ha="left",
        va="center",
        fontsize=7,
    )


def _label_edistance_rows(ax: Any, part: pd.DataFrame, keys: list[tuple[str, str]]) -> None:
    """A :func:`plot_edistance` panel's row labels with their pair counts (pooled row in bold,
    untested ones greyed)."""
    ax.set_yticks(range(len(keys)))
    labels = []
    for key in keys:
        n = int(part.loc[key, "n_pairs"]) if key in part.index else 0
        name = f"all cell types ({n})" if key[0] == "condition" else f"{key[1]} ({n})"
        labels.append(name)
    ax.set_yticklabels(labels, fontsize=7)
    for tick, key in zip(ax.get_yticklabels(), keys, strict=True):
        if key in part.index and not part.loc[key, "testable"]:
            tick.set_color(_UNTESTED)
        if key[0] == "condition":
            tick.set_fontweight("bold")


def plot_pvalue_uniformity(
    table: pd.DataFrame,
    *,
    column: str = "pvalue",
    title: str = "",
) -> Any:
    """QQ plot of the tested p-values against the uniform distribution, per representation.

    Under the null every point should lie on the diagonal (a permutation p-value is
    uniform on its grid ``k / (n_permutations + 1)``); the dotted line marks the smallest
    attainable p-value. Works for the E-test table (``pvalue``) and the AUC table
    (``column="auc_pvalue"``).

    Parameters
    ----------
    table
        From :func:`latentshift.readings.edistance.edistance_table` or the AUC table.
    column
        The p-value column.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if column not in table.columns:
        raise CellTypeShiftError(f"the table has no column '{column}'.")
    table = _with_representation(table)
    tested = table[table["testable"]]
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    for rep, part in tested.groupby("representation", sort=False):
        p = np.sort(part[column].to_numpy(dtype=float))
        p = p[np.isfinite(p)]
        if p.size == 0:
            continue
        expected = (np.arange(1, p.size + 1) - 0.5) / p.size
        ax.plot(
            -np.log10(expected), -np.log10(p), "o", ms=4, label=f"{rep or 'p'} ({p.size} tests)"
        )
    lim = ax.get_xlim()[1] if tested.size else 1
    ax.plot([0, lim], [0, lim], color="0.3", lw=0.8, ls="--")
    if "min_pvalue" in tested.columns and tested.size:
        ax.axhline(-np.log10(float(tested["min_pvalue"].min())), color="0.5", lw=0.8, ls=":")
    ax.set_xlabel("expected -log10 p (uniform)")
    ax.set_ylabel(f"observed -log10 {column}")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title or "p-values against the uniform", fontsize=10)
    fig.tight_layout()
    return fig


def plot_volcanoes(
    tables: Mapping[tuple[str, str], pd.DataFrame],
    sets: Mapping[str, Sequence[str]],
    title: str = "",
    max_panels: int = 12,
) -> Any:
    """A volcano per (condition, cell type) of the pseudobulk DE (:func:`latentshift.readings.pseudobulk.by_cell_type`),
    the named set's genes in red.

    Parameters
    ----------
    tables
        ``(condition, cell type)`` → PyDESeq2 table (``log2FoldChange``, ``pvalue``, ``padj``).
    sets
        Condition → its set's genes.
    title
        Figure title.
    max_panels
        At most this many panels (the first in order).
    """
    import matplotlib.pyplot as plt

    keys = list(tables)[:max_panels]
    cols = min(4, max(1, len(keys)))
    rows = max(1, int(np.ceil(len(keys) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.ravel()[len(keys) :]:
        ax.axis("off")
    for ax, key in zip(axes.ravel(), keys, strict=False):
        t = tables[key]
        y = -np.log10(t["pvalue"].astype(float).clip(lower=1e-300))
        in_set = t.index.isin(list(sets.get(key[0], [])))
        ax.scatter(t["log2FoldChange"][~in_set], y[~in_set], s=4, color="grey", alpha=0.5)
        ax.scatter(t["log2FoldChange"][in_set], y[in_set], s=8, color="#c44e52", label="named set")
        sig = t["padj"].astype(float) < 0.05
        ax.set_title(f"{key[1]} ({int(sig.sum())} genes at FDR 0.05)", fontsize=9)
        ax.set_xlabel(f"log2 fold change, {key[0]}", fontsize=8)
        ax.set_ylabel("−log10 p", fontsize=8)
        ax.axvline(0, color="black", lw=0.5)
    if keys:
        axes.ravel()[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(title or "pseudobulk differential expression by donor (PyDESeq2)")
    fig.tight_layout()
    return fig


def plot_composition(
    table: pd.DataFrame, tests: Mapping[str, pd.DataFrame] | None = None, title: str = ""
) -> Any:
    """Each donor's share of every cell type (a dot per donor, log scale), side by side by
    condition, the condition's mean as a bar; a star over types whose share changes at
    adjusted p < 0.05.

    Parameters
    ----------
    table
        :func:`latentshift.readings.composition.proportions` (``unit``, ``condition``, a count column
        per cell type).
    tests
        Condition → :func:`latentshift.readings.composition.composition_test` (for the stars).
    title
        Figure title.
    """
    import matplotlib.pyplot as plt

    types = [c for c in table.columns if c not in ("unit", "condition")]
    share = table[types].div(table[types].sum(axis=1), axis=0)
    conditions = list(dict.fromkeys(table["condition"].astype(str)))
    order = share.mean().sort_values(ascending=False).index.tolist()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(types) + 2), 4.0))
    width = 0.8 / max(len(conditions), 1)
    rng = np.random.default_rng(0)
    colors = plt.get_cmap("tab10")(np.arange(len(conditions)))
    floor = 0.5 / float(table[types].sum(axis=1).max())  # an absent type: half a nucleus
    for k, cond in enumerate(conditions):
        rows = (table["condition"].astype(str) == cond).to_numpy()
        for j, name in enumerate(order):
            x = j - 0.4 + width * (k + 0.5)
            y = share.loc[rows, name].clip(lower=floor).to_numpy()
            ax.scatter(
                x + rng.uniform(-width / 4, width / 4, y.size),
                y,
                s=10,
                color=colors[k],
                label=cond if j == 0 else None,
                zorder=3,
            )
            ax.hlines(y.mean(), x - width / 2.5, x + width / 2.5, color=colors[k], lw=2)
    for test in (tests or {}).values():
        hits = set(test.loc[test["pvalue_adj"] < 0.05, "cell_type"].astype(str))
        for j, name in enumerate(order):
            if name in hits:
                ax.annotate(
                    "*", (j, 1.0), xycoords=("data", "axes fraction"), ha="center", va="top"
                )
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(order)), order, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("share of the donor's nuclei")
    ax.legend(fontsize=8, title="condition", title_fontsize=8)
    fig.suptitle(title or "cell-type composition per donor, by condition (* adjusted p < 0.05)")
    fig.tight_layout()
    return fig
