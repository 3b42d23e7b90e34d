"""The designs: one engine over units — who is compared with whom, and what never crosses a split.

- :mod:`~latentshift.design.units` — the unit (a source cell, a donor) and whether the
  conditions sit within it;
- :mod:`~latentshift.design.folds` — every fold, grouped by unit;
- :mod:`~latentshift.design.nulls` — every label null: within units or of whole units, exact
  when small;
- :mod:`~latentshift.design.split` — the train/test split of the perturbed cells.
"""

__all__ = [
    "folds",
    "nulls",
    "split",
    "units",
]
