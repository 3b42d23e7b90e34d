"""The readings: does a representation see the shift, where, and in which factors.

- :mod:`~latentshift.readings.classify` — step 05: the classifier, its baselines and label null,
  with :mod:`~latentshift.readings.network` (the models) and
  :mod:`~latentshift.readings.evaluation` (bootstrap intervals);
- :mod:`~latentshift.readings.celltype_shift` — which cell types carry it:
  :mod:`~latentshift.readings.detectability` (Augur-style AUC) and
  :mod:`~latentshift.readings.edistance` (E-test), sharing
  :mod:`~latentshift.readings.shift_units`;
- :mod:`~latentshift.readings.loadings`, :mod:`~latentshift.readings.factor_shifts`,
  :mod:`~latentshift.readings.latent_file` — step 06: the factors that carry it;
- :mod:`~latentshift.readings.transfer`, :mod:`~latentshift.readings.real_cells` — synthetic
  against real disease nuclei and real cells;
- :mod:`~latentshift.readings.pseudobulk`, :mod:`~latentshift.readings.composition` — the
  donor-level readings (PyDESeq2 by donor, cell-type shares);
- :mod:`~latentshift.readings.power` — how many donors a shift needs.
"""

__all__ = [
    "celltype_shift",
    "classify",
    "composition",
    "detectability",
    "edistance",
    "evaluation",
    "factor_shifts",
    "latent_file",
    "loadings",
    "network",
    "power",
    "pseudobulk",
    "real_cells",
    "shift_units",
    "transfer",
]
