"""Figures: each function draws one figure from a table and returns it (it never saves).

- :mod:`~latentshift.figures.plots` — the data, the latent, training curves;
- :mod:`~latentshift.figures.result_plots` — the answers: classifier, sweeps, loadings;
- :mod:`~latentshift.figures.shift_plots` — per cell type: AUC, E-test, volcanoes, composition.
"""

__all__ = [
    "plots",
    "result_plots",
    "shift_plots",
]
