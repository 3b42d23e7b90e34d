"""A zero-aware negative-binomial reconstruction term for scvi-tools' LDVAE (same model, less work).

scvi-tools scores counts ``x`` under NB(mean ``mu``, inverse dispersion ``theta``) with
:func:`scvi.distributions._negative_binomial.log_nb_positive`, evaluated densely on every
cell × gene entry of a minibatch::

    theta * (log(theta + eps) - log(theta + mu + eps))
    + x * (log(mu + eps) - log(theta + mu + eps))
    + lgamma(x + theta) - lgamma(theta) - lgamma(x + 1)

and the LDVAE's loss sums it over genes per cell. Where ``x == 0`` the last four terms vanish
exactly (``0 * finite``, ``lgamma(theta) - lgamma(theta)``, ``lgamma(1) = 0``), leaving only
``theta * (log(theta + eps) - log(theta + mu + eps))`` — which must be kept: dropping it (the
first version of scvi-tools PR #1045, issue #1038) changes the model. On motor-cortex neurons
about 79% of the entries are zero, so :func:`log_nb_positive_zero_aware` computes

* on every entry: ``log(theta + mu + eps)`` and ``theta * (log(theta + eps) - that)``;
* at the nonzero entries only: the ``x`` term, ``lgamma(x + theta)``, ``lgamma(x + 1)`` and
  ``lgamma(theta)`` (once per gene when ``theta`` is per gene, then gathered);

then one sum over genes per cell. A nonzero entry is computed term for term in
``log_nb_positive``'s order (the same floating-point value); a zero entry is the theta term
itself, where the dense form adds and subtracts ``lgamma(theta)`` (rounding of that size is all
that differs). The gradient is written out (a :class:`torch.autograd.Function`,
:class:`latentshift.model.nb_autograd.ZeroAwareNBSum`) with the per-entry terms autograd derives from the dense form, digamma again only at the nonzeros and
the per-gene ``theta`` gradient accumulated per entry before the sum over cells, as autograd
does; the ``mu`` gradient comes out bitwise equal on the batches tested. Tolerances are pinned
in ``tests/test_nb_likelihood.py``. The same torch code runs on CPU and CUDA (on a GPU the dense
term is already cheap: there the zero-aware one is no faster, see
``benchmarks/bench_likelihood.py``).

Only the reconstruction term changes. :class:`ZeroAwareLDVAE` is scvi-tools' own
:class:`~scvi.module.LDVAE` with one method overridden: :meth:`ZeroAwareLDVAE.loss` hands
scvi-tools' ``VAE.loss`` a stand-in for the NB distribution whose ``log_prob(x).sum(-1)`` is the
zero-aware per-cell sum; the KL terms, their warm-up weighting, the ``LossOutput`` and hence
every logged metric (``elbo_train``, ``reconstruction_loss_train``, ...) stay scvi-tools'. Only
``gene_likelihood="nb"`` takes the zero-aware term; ``"zinb"`` and ``"poisson"`` fall back to
the dense path unchanged. The module holds no extra state, so a model trained with it saves
with ``model.save`` and loads with ``scvi.model.LinearSCVI.load`` as a plain LinearSCVI.

Public API
----------
:func:`log_nb_positive_zero_aware`
    The per-cell NB log-likelihood, equal to ``log_nb_positive(x, mu, theta, eps).sum(-1)``.
:func:`make_linear_scvi`
    ``scvi.model.LinearSCVI(adata, **kwargs)`` with the chosen reconstruction implementation.
:func:`use_likelihood_impl`, :func:`likelihood_impl_of`
    Switch an existing (e.g. loaded) model between ``"dense"`` and ``"zero_aware"``; ask which.
:func:`check_module_contract`
    Verify that the installed scvi-tools still computes the reconstruction term the way the
    override assumes (raises :class:`LikelihoodContractError` otherwise).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import math
import re
import textwrap
from typing import TYPE_CHECKING, Any

import torch
from scvi.module import LDVAE

from latentshift.errors import LikelihoodContractError, ParamsError
from latentshift.model.nb_autograd import ZeroAwareNBSum, dense_nb_sum

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = [
    "DEFAULT_LIKELIHOOD_IMPL",
    "LIKELIHOOD_IMPLS",
    "LikelihoodContractError",
    "ZeroAwareLDVAE",
    "check_module_contract",
    "likelihood_impl_of",
    "log_nb_positive_zero_aware",
    "make_linear_scvi",
    "scvi_source_fingerprints",
    "use_likelihood_impl",
    "validate_likelihood_impl",
]

log = logging.getLogger(__name__)

#: The values of ``ldvae.likelihood_impl``.
LIKELIHOOD_IMPLS: tuple[str, ...] = ("dense", "zero_aware")
#: The default: the zero-aware term (same model, faster; equivalence pinned by the tests).
DEFAULT_LIKELIHOOD_IMPL = "zero_aware"

#: The scvi-tools line whose reconstruction term :class:`ZeroAwareLDVAE` replaces.
RECONSTRUCTION_LINE = "reconst_loss = -generative_outputs[MODULE_KEYS.PX_KEY].log_prob(x).sum(-1)"

#: sha256 of the scvi-tools sources the override relies on, as verified against scvi-tools
#: 1.4.2 (``tests/test_nb_likelihood.py`` compares them: an upgrade that edits any of them
#: fails that test until the equivalence tests are re-run and these pins updated).
PINNED_SOURCES: dict[str, str] = {
    "scvi.module._vae.VAE.loss": (
        "da949e20b68cb8e4094fe38872476c1c6e10fdd056fec582e97129b75d81633b"
    ),
    "scvi.module._vae.VAE.generative": (
        "303654893239b3633c01774b8dfd73c6d39527f7017ebcdc9f201aad9f499f31"
    ),
    "scvi.distributions._negative_binomial.log_nb_positive": (
        "b12edba5aac3b0a6e878715e0a7d9fc51b6cf69c542e8178523f8d75f7383f70"
    ),
    "scvi.distributions._negative_binomial.NegativeBinomial.log_prob": (
        "478628f4f94895840539c96006c18c47c47da9f8becf4e25b9cbfb9336507b37"
    ),
    "scvi.distributions._negative_binomial.NegativeBinomial.__init__": (
        "08dbb212d5c6ef7fe259494fd1a505f6d0d80e9b8f635d9e09be73fea4f82a8a"
    ),
}

_LOSS_PARAMETERS = ("self", "tensors", "inference_outputs", "generative_outputs", "kl_weight")


# --- the likelihood ---------------------------------------------------------------------


def log_nb_positive_zero_aware(
    x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """Per-cell NB log-likelihood, computing only what zero counts need.

    Equal, up to rounding order, to scvi-tools'
    ``log_nb_positive(x, mu, theta, eps).sum(-1)`` — including its ``eps`` handling — with
    gradients flowing to ``mu`` and ``theta``. Zero entries cost one ``log`` and a few
    arithmetic operations; ``lgamma``/``digamma`` run only at the nonzero entries (and
    ``lgamma(theta)`` once per gene when ``theta`` is per gene).

    Parameters
    ----------
    x
        Counts, shape ``(..., genes)``, dense, same dtype and device as ``mu``; no gradient.
    mu
        NB means (``>= 0``), same shape as ``x``.
    theta
        NB inverse dispersions (``> 0``), broadcastable to ``mu``: ``(genes,)`` or a stride-0
        expansion of it (per-gene dispersion), or a full ``(..., genes)`` tensor.
    eps
        scvi-tools' numerical-stability constant (``NegativeBinomial`` uses ``1e-8``).

    Returns
    -------
    torch.Tensor
        Shape ``x.shape[:-1]``: the log-likelihood summed over genes.

    Notes
    -----
    Inputs the fast path does not cover — ``x`` of another shape than ``mu`` (e.g. several
    posterior samples against one batch), mixed dtypes or devices, ``x`` requiring a gradient,
    empty batches — go to the dense formula, so the result is always defined. At ``theta == 0``
    exactly (an underflowed ``exp``) the dense form gives NaN at every zero count
    (``lgamma(0) - lgamma(0)``) where this one gives the limit 0; scvi-tools' ``theta`` is
    ``exp`` of a parameter and positive.
    """
    if (
        x.shape != mu.shape
        or mu.dim() == 0
        or mu.numel() == 0
        or not mu.dtype.is_floating_point
        or not (x.dtype == mu.dtype == theta.dtype)
        or not (x.device == mu.device == theta.device)
        or x.requires_grad
        or torch.broadcast_shapes(theta.shape, mu.shape) != mu.shape
    ):
        return dense_nb_sum(x, mu, theta, eps)
    lead, g = mu.shape[:-1], mu.shape[-1]
    n = math.prod(lead)
    x2 = x.reshape(n, g).contiguous()
    mu2 = mu.reshape(n, g).contiguous()
    theta2 = theta.expand(mu.shape).reshape(n, g)  # a view (stride 0) for per-gene theta
    out = ZeroAwareNBSum.apply(x2, mu2, theta2, float(eps))
    return out.reshape(lead)


# --- the module -------------------------------------------------------------------------


class _PerCellNBLogProb:
    """Stand-in for scvi-tools' ``NegativeBinomial`` inside ``VAE.loss`` only.

    ``log_prob(x)`` returns the zero-aware per-cell sum with a trailing axis of length 1, so
    scvi-tools' ``log_prob(x).sum(-1)`` yields exactly that sum. Any other use of the
    distribution inside ``loss`` raises ``AttributeError`` (a loud failure rather than a silent
    change), and :func:`check_module_contract` rules it out beforehand.
    """

    __slots__ = ("_px",)

    def __init__(self, px: Any) -> None:
        self._px = px

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        px = self._px
        return log_nb_positive_zero_aware(value, px.mu, px.theta, eps=px._eps).unsqueeze(-1)


class ZeroAwareLDVAE(LDVAE):
    """scvi-tools' :class:`~scvi.module.LDVAE` with the zero-aware NB reconstruction term.

    Same constructor, parameters, state dict and generative model as ``LDVAE``; the only
    difference is :meth:`loss`, where the NB log-likelihood is summed over genes with
    :func:`log_nb_positive_zero_aware` instead of the dense ``log_nb_positive``. For
    ``gene_likelihood`` ``"zinb"`` or ``"poisson"`` (or a distribution that is not scvi-tools'
    ``NegativeBinomial``) the dense path runs unchanged.
    """

    def loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict[str, Any],
        generative_outputs: dict[str, Any],
        kl_weight: torch.Tensor | float = 1.0,
    ) -> Any:
        """scvi-tools' ``VAE.loss`` with the NB reconstruction term computed zero-aware.

        The distribution under ``generative_outputs["px"]`` is replaced, for this call only,
        by a stand-in whose ``log_prob(x).sum(-1)`` is :func:`log_nb_positive_zero_aware`;
        everything else (KL terms, warm-up weight, ``LossOutput``) is scvi-tools' code.

        Parameters
        ----------
        tensors, inference_outputs, generative_outputs, kl_weight
            As scvi-tools' ``VAE.loss``.

        Returns
        -------
        scvi.module.base.LossOutput
            ``reconstruction_loss`` per cell, ``kl_local`` as scvi-tools computes them.
        """
        from scvi.distributions import NegativeBinomial
        from scvi.module._constants import MODULE_KEYS

        px = generative_outputs.get(MODULE_KEYS.PX_KEY)
        if self.gene_likelihood != "nb" or type(px) is not NegativeBinomial:
            return super().loss(tensors, inference_outputs, generative_outputs, kl_weight)
        swapped = dict(generative_outputs)
        swapped[MODULE_KEYS.PX_KEY] = _PerCellNBLogProb(px)
        return super().loss(tensors, inference_outputs, swapped, kl_weight)


# --- the model --------------------------------------------------------------------------


def validate_likelihood_impl(likelihood_impl: str) -> str:
    """Check a value of ``ldvae.likelihood_impl``.

    Parameters
    ----------
    likelihood_impl
        ``"dense"`` or ``"zero_aware"``.

    Returns
    -------
    str
        The value.

    Raises
    ------
    latentshift.errors.ParamsError
        Any other value.
    """
    if likelihood_impl not in LIKELIHOOD_IMPLS:
        raise ParamsError(
            f"ldvae.likelihood_impl is {likelihood_impl!r}; use one of "
            f"{', '.join(repr(v) for v in LIKELIHOOD_IMPLS)} ('zero_aware' is the same model, "
            "faster; 'dense' is scvi-tools' own computation)."
        )
    return likelihood_impl


def _module_of(model_or_module: Any) -> Any:
    return getattr(model_or_module, "module", model_or_module)


def likelihood_impl_of(model_or_module: Any) -> str:
    """``"zero_aware"`` or ``"dense"``: which reconstruction term a LinearSCVI (or module) uses.

    Parameters
    ----------
    model_or_module
        A :class:`scvi.model.LinearSCVI` or its ``module``.

    Returns
    -------
    str
    """
    return "zero_aware" if isinstance(_module_of(model_or_module), ZeroAwareLDVAE) else "dense"


def use_likelihood_impl(
    model_or_module: Any, likelihood_impl: str = DEFAULT_LIKELIHOOD_IMPL
) -> Any:
    """Switch a LinearSCVI's module between scvi-tools' dense and the zero-aware NB term.

    The module object stays the same (weights, device, train/eval mode, optimizer references);
    only its class changes between ``scvi.module.LDVAE`` and :class:`ZeroAwareLDVAE`, which
    differ in the ``loss`` method alone. Use it on a model from ``LinearSCVI.load`` to score
    with the zero-aware term. A module whose ``gene_likelihood`` is not ``"nb"`` is left dense
    (logged).

    Parameters
    ----------
    model_or_module
        A :class:`scvi.model.LinearSCVI` or its ``module``.
    likelihood_impl
        ``"zero_aware"`` or ``"dense"``.

    Returns
    -------
    The same object, for chaining.

    Raises
    ------
    latentshift.errors.ParamsError
        Unknown ``likelihood_impl``.
    LikelihoodContractError
        ``"zero_aware"`` asked for, but the module is not scvi-tools' ``LDVAE`` or the
        installed scvi-tools breaks the contract (:func:`check_module_contract`).
    """
    validate_likelihood_impl(likelihood_impl)
    module = _module_of(model_or_module)
    if type(module) not in (LDVAE, ZeroAwareLDVAE):
        raise LikelihoodContractError(
            f"the model's module is a {type(module).__module__}.{type(module).__name__}, not "
            "scvi-tools' LDVAE: the zero-aware likelihood only replaces LDVAE's reconstruction "
            "term. Set ldvae.likelihood_impl to 'dense'."
        )
    if likelihood_impl == "dense":
        module.__class__ = LDVAE
        return model_or_module
    if module.gene_likelihood != "nb":
        log.info(
            "gene_likelihood is %r: the zero-aware term covers 'nb' only; keeping the dense one",
            module.gene_likelihood,
        )
        module.__class__ = LDVAE
        return model_or_module
    check_module_contract()
    module.__class__ = ZeroAwareLDVAE
    return model_or_module


def make_linear_scvi(
    adata: AnnData, likelihood_impl: str = DEFAULT_LIKELIHOOD_IMPL, **model_kwargs: Any
) -> Any:
    """``scvi.model.LinearSCVI(adata, **model_kwargs)`` with the chosen reconstruction term.

    The model is a plain :class:`scvi.model.LinearSCVI` built by scvi-tools (same weights, same
    random-number use for a given ``scvi.settings.seed``); with ``"zero_aware"`` its module is
    then switched to :class:`ZeroAwareLDVAE` (see :func:`use_likelihood_impl`). Training,
    ``model.save`` / ``LinearSCVI.load``, ``get_loadings``, ``get_latent_representation``,
    ``get_elbo`` and ``get_reconstruction_error`` are scvi-tools' own. A saved model loads as a
    plain LinearSCVI with the dense term; call :func:`use_likelihood_impl` on it to switch back.

    Parameters
    ----------
    adata
        AnnData registered with ``scvi.model.LinearSCVI.setup_anndata``.
    likelihood_impl
        ``"zero_aware"`` (default) or ``"dense"``. Only ``gene_likelihood="nb"`` uses the
        zero-aware term; ``"zinb"`` and ``"poisson"`` stay dense.
    **model_kwargs
        Passed to :class:`scvi.model.LinearSCVI` (``n_hidden``, ``n_latent``, ``n_layers``,
        ``dropout_rate``, ``dispersion``, ``gene_likelihood``, ...).

    Returns
    -------
    scvi.model.LinearSCVI
    """
    import scvi

    validate_likelihood_impl(likelihood_impl)
    model = scvi.model.LinearSCVI(adata, **model_kwargs)
    return use_likelihood_impl(model, likelihood_impl)


# --- the contract with scvi-tools -------------------------------------------------------


def _source_objects() -> dict[str, Any]:
    from scvi.distributions import _negative_binomial as nb
    from scvi.module import _vae

    return {
        "scvi.module._vae.VAE.loss": _vae.VAE.loss,
        "scvi.module._vae.VAE.generative": _vae.VAE.generative,
        "scvi.distributions._negative_binomial.log_nb_positive": nb.log_nb_positive,
        "scvi.distributions._negative_binomial.NegativeBinomial.log_prob": nb.NegativeBinomial.log_prob,
        "scvi.distributions._negative_binomial.NegativeBinomial.__init__": nb.NegativeBinomial.__init__,
    }


def _source(obj: Any) -> str:
    return textwrap.dedent(inspect.getsource(inspect.unwrap(obj)))


def scvi_source_fingerprints() -> dict[str, str]:
    """sha256 of each scvi-tools source :data:`PINNED_SOURCES` names, as installed now.

    Returns
    -------
    dict[str, str]
        Qualified name to hex digest (``"unavailable"`` where the source cannot be read).
    """
    out = {}
    for name, obj in _source_objects().items():
        try:
            out[name] = hashlib.sha256(_source(obj).encode()).hexdigest()
        except (OSError, TypeError):
            out[name] = "unavailable"
    return out


@functools.cache
def _structural_problems() -> tuple[str, ...]:
    """What is wrong with the installed scvi-tools for the override (empty: nothing)."""
    import scvi
    from scvi.distributions import NegativeBinomial
    from scvi.distributions._negative_binomial import log_nb_positive
    from scvi.module import VAE

    problems: list[str] = []
    if not issubclass(LDVAE, VAE) or LDVAE.loss is not VAE.loss:
        problems.append("scvi.module.LDVAE no longer inherits VAE.loss unchanged")
    params = tuple(inspect.signature(inspect.unwrap(VAE.loss)).parameters)
    if params != _LOSS_PARAMETERS:
        problems.append(f"VAE.loss takes {params}, expected {_LOSS_PARAMETERS}")
    try:
        src = _source(VAE.loss)
    except (OSError, TypeError):
        src = None
    if src is not None:
        if src.count(RECONSTRUCTION_LINE) != 1:
            problems.append(f"VAE.loss no longer contains `{RECONSTRUCTION_LINE}`")
        uses = len(re.findall(r"MODULE_KEYS\.PX_KEY|\[\s*[\"']px[\"']\s*\]", src))
        if uses != 1:
            problems.append(f"VAE.loss reads the distribution px {uses} times, expected once")
    # behaviour: NegativeBinomial.log_prob is log_nb_positive with eps 1e-8, elementwise
    gen = torch.Generator().manual_seed(0)
    mu = torch.rand(3, 5, generator=gen, dtype=torch.float64) * 4
    theta = torch.rand(5, generator=gen, dtype=torch.float64) + 0.5
    x = torch.tensor([[0, 1, 0, 3, 0], [2, 0, 0, 0, 7], [0, 0, 1, 0, 0]], dtype=torch.float64)
    px = NegativeBinomial(mu=mu, theta=theta)
    if getattr(px, "_eps", None) != 1e-8:
        problems.append(f"NegativeBinomial._eps is {getattr(px, '_eps', None)!r}, expected 1e-8")
    else:
        dense = px.log_prob(x)
        ref = log_nb_positive(x, mu, theta.expand_as(mu), 1e-8)
        ours = log_nb_positive_zero_aware(x, px.mu, px.theta, px._eps)
        if dense.shape != x.shape or not torch.allclose(dense, ref, rtol=1e-12, atol=0):
            problems.append("NegativeBinomial.log_prob is no longer log_nb_positive(eps=1e-8)")
        elif not torch.allclose(ours, dense.sum(-1), rtol=1e-12, atol=0):
            problems.append("the zero-aware sum differs from NegativeBinomial.log_prob(x).sum(-1)")
    if problems:
        log.debug("scvi-tools %s: %s", scvi.__version__, problems)
    return tuple(problems)


def check_module_contract(strict_sources: bool = False) -> None:
    """Refuse an scvi-tools whose reconstruction term is not what :class:`ZeroAwareLDVAE` replaces.

    Checks that ``LDVAE`` inherits ``VAE.loss`` with the signature
    ``(self, tensors, inference_outputs, generative_outputs, kl_weight)``, that the loss reads
    the distribution once, in :data:`RECONSTRUCTION_LINE`, and that
    ``NegativeBinomial.log_prob`` is ``log_nb_positive`` with ``eps = 1e-8`` (a small numeric
    check against :func:`log_nb_positive_zero_aware`). With ``strict_sources`` the sources
    must also match :data:`PINNED_SOURCES` byte for byte (the tests use this; at run time a
    cosmetic edit in scvi-tools need not stop a pipeline).

    Parameters
    ----------
    strict_sources
        Also compare the sources' sha256 with :data:`PINNED_SOURCES`.

    Raises
    ------
    LikelihoodContractError
        With what changed and the fix (``ldvae.likelihood_impl: dense``).
    """
    import scvi

    problems = list(_structural_problems())
    if strict_sources:
        now = scvi_source_fingerprints()
        problems += [
            f"the source of {name} changed (sha256 {now[name][:12]}..., pinned {pin[:12]}...)"
            for name, pin in PINNED_SOURCES.items()
            if now.get(name) != pin
        ]
    if problems:
        raise LikelihoodContractError(
            f"scvi-tools {scvi.__version__} does not match what the zero-aware NB likelihood "
            f"was verified against (scvi-tools 1.4.2): {'; '.join(problems)}. Set "
            "ldvae.likelihood_impl to 'dense' (scvi-tools' own computation), or install "
            "scvi-tools 1.4.2; a developer re-runs tests/test_nb_likelihood.py and updates "
            "latentshift.model.nb_likelihood.PINNED_SOURCES once the equivalence holds."
        )
