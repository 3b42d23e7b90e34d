"""Records: what made a run, the committed results, and the docs' numbers made from them.

- :mod:`~latentshift.record.provenance` — packages, commit, data checksum, machine;
- :mod:`~latentshift.record.results` — recorded results and their reproduction check;
- :mod:`~latentshift.record.readme` — the README's and docs' generated tables and numbers.
"""

__all__ = [
    "provenance",
    "readme",
    "results",
]
