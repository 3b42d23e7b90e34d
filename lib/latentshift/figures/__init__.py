"""Figures: each function draws one figure from a table and returns it (it never saves).

- :mod:`~latentshift.figures.captions` — the simulated-data banner and label, figures' alt text;
- :mod:`~latentshift.figures.classifier_plots` — accuracy: confusion, baselines, units, sweeps;
- :mod:`~latentshift.figures.data_plots` — the counts: depth, composition, markers, mean-variance;
- :mod:`~latentshift.figures.embedding_plots` — the latent spaces: UMAPs, copies, separation;
- :mod:`~latentshift.figures.loading_plots` — the factors: loadings, shift per factor, ranked genes;
- :mod:`~latentshift.figures.perturb_plots` — the perturbed genes: fold changes, gene-set means;
- :mod:`~latentshift.figures.shift_plots` — per cell type: AUC, E-test, volcanoes, composition;
- :mod:`~latentshift.figures.training_plots` — against training epoch: losses, accuracy, recovery;
- :mod:`~latentshift.figures.transfer_plots` — the synthetic shift on real cells: calls, direction.
"""

__all__ = [
    "captions",
    "classifier_plots",
    "data_plots",
    "embedding_plots",
    "loading_plots",
    "perturb_plots",
    "shift_plots",
    "training_plots",
    "transfer_plots",
]
