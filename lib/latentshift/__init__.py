"""latentshift: does an interpretable generative model (LDVAE) of human motor-cortex cells
see a simulated disease shift, how well can it be detected, and which factors carry it?

Modules mirror the numbered notebooks: :mod:`latentshift.data` (01), :mod:`latentshift.perturb`
and :mod:`latentshift.genesets` (02), :mod:`latentshift.ldvae` (03),
:mod:`latentshift.embedding` (04), :mod:`latentshift.classify` (05),
:mod:`latentshift.loadings` (06). :mod:`latentshift.pipeline` runs them with papermill.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("latentshift")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
