"""What a figure says about its data and itself: the simulated-data banner and label, and alt text.

Every notebook shows :func:`simulated_banner` after loading its input and adds
:func:`data_label` to its figure titles, so no figure of simulated data is taken for real
cells; :func:`set_figure_alt_text` gives each figure a screen reader's text
(:func:`figure_alt_text`).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

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
