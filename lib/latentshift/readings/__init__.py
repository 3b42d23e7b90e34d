"""The readings: does a representation see the shift, where, and in which factors.

- :mod:`~latentshift.readings.classify` — step 05: the classifier, its baselines and label null,
  with :mod:`~latentshift.readings.network` (the models) and
  :mod:`~latentshift.readings.evaluation` (bootstrap intervals);
- :mod:`~latentshift.readings.classify_summary` — the classifier's ``metrics.json`` section and
  the tables of its page;
- :mod:`~latentshift.readings.celltype_shift` — which cell types carry it:
  :mod:`~latentshift.readings.detectability` (Augur-style AUC) and
  :mod:`~latentshift.readings.edistance` (E-test), sharing
  :mod:`~latentshift.readings.shift_units`;
- :mod:`~latentshift.readings.augur_draws` — the AUC's draws: within-unit pairs, equal-sized
  subsamples with folds grouped by unit, the cross-validated AUC of one draw;
- :mod:`~latentshift.readings.etest` — the E-distance of two groups of cells and its
  permutation test;
- :mod:`~latentshift.readings.loadings`, :mod:`~latentshift.readings.factor_shifts`,
  :mod:`~latentshift.readings.latent_file` — step 06: the factors that carry it;
- :mod:`~latentshift.readings.transfer`, :mod:`~latentshift.readings.real_cells` — synthetic
  against real disease nuclei and real cells;
- :mod:`~latentshift.readings.pseudobulk`, :mod:`~latentshift.readings.set_tests`,
  :mod:`~latentshift.readings.composition` — the donor-level readings (PyDESeq2 by donor, the
  named sets' tests on it, cell-type shares);
- :mod:`~latentshift.readings.power` — how many donors a shift needs;
  :mod:`~latentshift.readings.gene_calibration` — how the gene-level p-values behave with few.
"""

__all__ = [
    "augur_draws",
    "celltype_shift",
    "classify",
    "classify_summary",
    "composition",
    "detectability",
    "edistance",
    "etest",
    "evaluation",
    "factor_shifts",
    "gene_calibration",
    "latent_file",
    "loadings",
    "network",
    "power",
    "pseudobulk",
    "real_cells",
    "set_tests",
    "shift_units",
    "transfer",
]
