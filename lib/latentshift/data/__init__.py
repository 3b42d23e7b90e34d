"""Cells and run files: where the counts come from and where every step's files go.

- :mod:`~latentshift.data.load` — step 01: load (simulated or a local ``.h5ad``), QC, subsample;
- :mod:`~latentshift.data.simulate` — the simulated M1 (real genes at real levels);
- :mod:`~latentshift.data.simulate_counts` — a planned simulation's counts, drawn chunk by chunk;
- :mod:`~latentshift.data.simulate_h5ad` — the simulated M1 written to ``.h5ad`` chunk by chunk;
- :mod:`~latentshift.data.h5ad`, :mod:`~latentshift.data.h5ad_annotations`,
  :mod:`~latentshift.data.ondisk` — count files read with h5py (counts, then the annotations),
  and counts left on disk for training;
- :mod:`~latentshift.data.fetch` — download a profile's file (resumable, checksummed);
- :mod:`~latentshift.data.datasets` — the real cells shipped with the project;
- :mod:`~latentshift.data.reference`, :mod:`~latentshift.data.derive_reference` — shipped real
  gene levels and M1 cell types, and how they are derived;
- :mod:`~latentshift.data.fidelity` — how the data compare with the published M1 nuclei;
- :mod:`~latentshift.data.counts`, :mod:`~latentshift.data.sampling` — count-matrix helpers,
  seeded proportional draws;
- :mod:`~latentshift.data.artifacts` — the run folder: atomic writes, ``metrics.json``.
"""

__all__ = [
    "artifacts",
    "counts",
    "datasets",
    "derive_reference",
    "fetch",
    "fidelity",
    "h5ad",
    "h5ad_annotations",
    "load",
    "ondisk",
    "reference",
    "sampling",
    "simulate",
    "simulate_counts",
    "simulate_h5ad",
]
