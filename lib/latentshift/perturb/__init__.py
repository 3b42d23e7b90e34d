"""Making the conditions: gene sets, count-preserving shifts and case–control donors.

- :mod:`~latentshift.perturb.genesets` — GMT files and matching a set's genes;
- :mod:`~latentshift.perturb.shift` — step 02: copies of the cells with their sets shifted;
- :mod:`~latentshift.perturb.shift_checks` — step 02's checks: realised fold changes, library
  sizes, mean expression and the ``perturb`` metrics;
- :mod:`~latentshift.perturb.case_control` — conditions from an obs column, simulated disease
  donors, fake groups of real donors.
"""

__all__ = [
    "case_control",
    "genesets",
    "shift",
    "shift_checks",
]
