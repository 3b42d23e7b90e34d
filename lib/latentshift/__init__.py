"""latentshift: does an interpretable generative model (LDVAE) of human motor-cortex cells
see a disease shift, how well can it be detected, and which factors carry it?

The package is cut by role; each subpackage's docstring lists its modules. Imports run one
way, down this list, never back up (the architecture test holds it):

- :mod:`latentshift.run` — the command line, the notebook runner, studies and sweeps;
- :mod:`latentshift.record` — provenance, recorded results, the docs' generated numbers;
- :mod:`latentshift.report` — Findings in words, the HTML pages;
- :mod:`latentshift.figures` — one function per figure;
- :mod:`latentshift.readings` — classifier, per-cell-type AUC and E-test, loadings,
  synthetic against real, pseudobulk, composition, power;
- :mod:`latentshift.model` — the LDVAE, its gene choice, PCA and embeddings;
- :mod:`latentshift.perturb` — gene sets, count-preserving shifts, case–control donors;
- :mod:`latentshift.design` — the units engine: units, folds, label nulls, the split;
- :mod:`latentshift.data` — cells in (simulated, ``.h5ad``), run files out.

Beside them, :mod:`latentshift.config` (params: defaults, validation) and
:mod:`latentshift.errors` (the one error family: every problem a user can fix is a
:class:`~latentshift.errors.LatentshiftError`).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("latentshift")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
