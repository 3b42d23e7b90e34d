"""Running: the command line, the notebook runner, studies and sweeps.

- :mod:`~latentshift.run.bookkeeping` — the run folder's lock and leftovers, the kernels' memory;
- :mod:`~latentshift.run.cli` — ``python -m latentshift``;
- :mod:`~latentshift.run.runner` — papermill runs the numbered notebooks of a profile;
- :mod:`~latentshift.run.study` — a designed set of points over any params keys;
- :mod:`~latentshift.run.sweep` — the dose-response sweep.
"""

__all__ = [
    "bookkeeping",
    "cli",
    "runner",
    "study",
    "sweep",
]
