"""Figures of the synthetic shift on real cells: the classifier's calls and the direction match.

One function per figure: each draws with matplotlib/seaborn and returns the figure (it never
saves files; the notebook shows it, nbconvert embeds it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
