"""The project's errors: one base class for every problem a user can fix.

Every error raised because of user input — a params file, a data file, a gene-set file, a
missing upstream step, hardware asked for but absent — derives from :class:`LatentshiftError`
and carries a message that names the problem and the fix. The command line
(:mod:`latentshift.run.cli`) catches only this base class and prints the message; anything else
is a bug and keeps its traceback.

The base derives from :class:`ValueError`, so code that caught the earlier per-module
``ValueError`` subclasses keeps working.
"""

from __future__ import annotations

__all__ = [
    "AcceleratorError",
    "CellTypeShiftError",
    "ClassifierError",
    "DataError",
    "DesignError",
    "DownloadError",
    "GeneSetError",
    "LDVAEDivergedError",
    "LatentshiftError",
    "LikelihoodContractError",
    "LoadingsError",
    "MissingArtifactError",
    "ParamsError",
    "PerturbError",
    "PipelineError",
    "SweepError",
]


class LatentshiftError(ValueError):
    """A problem the user can fix; the message says what was wrong and how to fix it."""


class ParamsError(LatentshiftError):
    """A profile's parameters are invalid. The message names the key and the fix."""


class DataError(LatentshiftError):
    """A data problem a user can fix: missing file, no integer counts, missing column."""


class DownloadError(LatentshiftError):
    """A download failed or its checksum did not match."""


class GeneSetError(LatentshiftError):
    """A gene-set (GMT) problem: unreadable file, unknown set, a set matching no gene."""


class PerturbError(LatentshiftError):
    """The perturbation or the split cannot be made as asked."""


class LDVAEDivergedError(LatentshiftError):
    """LDVAE training produced a NaN or infinite loss (or latent); the model was not saved."""


class AcceleratorError(LatentshiftError):
    """The ``ldvae`` params ask for hardware this machine does not have."""


class LikelihoodContractError(LatentshiftError):
    """The installed scvi-tools no longer computes the reconstruction term as the zero-aware
    override assumes; the message says what changed and how to carry on."""


class ClassifierError(LatentshiftError):
    """The inputs cannot be classified as given; the message names the problem and the fix."""


class LoadingsError(LatentshiftError):
    """The loadings or the shifts cannot be computed from the inputs given."""


class MissingArtifactError(LatentshiftError, FileNotFoundError):
    """A step's input is missing: the step that writes it has not run (or failed)."""


class CellTypeShiftError(LatentshiftError):
    """Inputs to a per-cell-type shift analysis that cannot be used; the message says why."""


class PipelineError(LatentshiftError):
    """The pipeline cannot start or a notebook failed; the message says which and why."""


class SweepError(LatentshiftError):
    """The sweep cannot run as asked; the message names the problem and the fix."""


class DesignError(LatentshiftError):
    """The data do not fit the design asked for (its units, pairing or folds); the message
    counts what does not fit and says how to fix it."""
