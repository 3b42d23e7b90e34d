"""Figures shared by the notebooks, one function each.

Functions draw with matplotlib/seaborn/scanpy and return the figure (or display an HTML
element); they never save files themselves — the notebook shows them, nbconvert embeds them.
"""

from __future__ import annotations

import html
from typing import Any


def is_simulated(adata: Any) -> bool:
    """Whether an AnnData comes from :func:`latentshift.data.simulate_m1`."""
    return bool(adata.uns.get("latentshift", {}).get("simulated", False))


def simulated_banner(adata: Any) -> Any:
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
    source = html.escape(str(adata.uns.get("latentshift", {}).get("source", "a local .h5ad file")))
    return HTML(f"<div style='background:#e2f0d9;padding:0.7em'>Real data: {source}</div>")


def data_label(adata: Any) -> str:
    """A short label for figure titles: ``"(simulated)"`` or ``""``."""
    return " (simulated data)" if is_simulated(adata) else ""
