"""latentshift: does an interpretable generative model (LDVAE) of human motor-cortex cells
see a simulated disease shift, how well can it be detected, and which factors carry it?

Module map. Each numbered notebook has one module holding its logic; the modules below it
do one job each, and imports run one way (down this list, never back up):

Command line and running
    :mod:`~latentshift.cli` (``python -m latentshift``) → :mod:`~latentshift.sweep` (dose
    response) → :mod:`~latentshift.study` (points over any params keys; its page:
    :mod:`~latentshift.study_report`) → :mod:`~latentshift.runner` (papermill, resume, peak memory) →
    :mod:`~latentshift.report` (nbconvert pages, index) and :mod:`~latentshift.provenance`;
    :mod:`~latentshift.fetch` downloads a profile's data file.
The steps
    01 :mod:`~latentshift.data` (load, QC, subsample, summary), reading
    :mod:`~latentshift.simulate` (the simulated M1) or :mod:`~latentshift.h5ad` (count files),
    compared with the published M1 nuclei by :mod:`~latentshift.fidelity`;
    02 :mod:`~latentshift.perturb` (count-preserving shifts), with
    :mod:`~latentshift.genesets` (GMT files, matching) and :mod:`~latentshift.split` (the grouped
    train/test split);
    03 :mod:`~latentshift.ldvae` (scvi-tools ``LinearSCVI``), with
    :mod:`~latentshift.gene_choice` (which genes it reads), :mod:`~latentshift.nb_likelihood` (its zero-aware NB term) and
    :mod:`~latentshift.training_monitor` (progress, convergence stopping, the curves);
    04 :mod:`~latentshift.embedding` (neighbours, UMAP, Leiden, separation);
    05 :mod:`~latentshift.classify` (baselines, the comparison, its label null), with
    :mod:`~latentshift.features` (what the baselines read), :mod:`~latentshift.network` (the
    classifiers) and :mod:`~latentshift.evaluation` (bootstrap intervals); which cell types
    carry the shift: :mod:`~latentshift.celltype_shift`, running
    :mod:`~latentshift.detectability` (Augur-style AUC) and :mod:`~latentshift.edistance`
    (E-test), which share :mod:`~latentshift.shift_units` (their checked inputs); the texts of
    both in :mod:`~latentshift.readings_findings`;
    06 :mod:`~latentshift.loadings` (factor loadings, recovery of the gene sets), with
    :mod:`~latentshift.factor_shifts` (each condition's shift per factor).
The designs: one engine over units
    :mod:`~latentshift.units` (the unit that never crosses a split, and whether the conditions
    sit within it), :mod:`~latentshift.folds` (every fold, grouped by unit) and
    :mod:`~latentshift.nulls` (every label null: within units or of whole units, exact when
    small) — every reading above takes them, whatever the design;
    :mod:`~latentshift.case_control` (conditions from obs, the simulated disease donors) and
    :mod:`~latentshift.transfer` (synthetic versus real).
Shared pieces
    :mod:`~latentshift.counts` (where counts live, sums, log-normalisation, subsets),
    :mod:`~latentshift.sampling` (seeded proportional draws), :mod:`~latentshift.reference`
    (shipped real gene levels and M1 cell types; made by :mod:`~latentshift.derive_reference`),
    :mod:`~latentshift.plots`, :mod:`~latentshift.result_plots` and
    :mod:`~latentshift.shift_plots` (figures), :mod:`~latentshift.findings` (each step's
    Findings in words), :mod:`~latentshift.config` (params), :mod:`~latentshift.artifacts`
    (run folder, atomic writes, ``metrics.json``) and :mod:`~latentshift.errors` (the one
    error family: every problem a user can fix is a
    :class:`~latentshift.errors.LatentshiftError`).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("latentshift")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
