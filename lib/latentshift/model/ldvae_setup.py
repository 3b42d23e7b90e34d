"""What :func:`latentshift.model.ldvae.train_ldvae` hands scvi-tools, and the checks before it.

- :func:`check_accelerator` — a request for GPUs this machine lacks, refused with the fix;
- :func:`fused_adam` — scvi-tools' own Adam, computed by torch's fused kernel;
- :func:`check_counts`, :func:`check_batch_key`, :func:`training_view` — the counts and batch
  covariate checked, and the light AnnData scvi-tools registers over them;
- :func:`validation_split`, :func:`epoch_batches` — which training cells validate, and how many
  minibatches an epoch holds;
- :func:`library_prior`, :func:`library_prior_over` — scvi-tools' library-size prior over the
  training rows only, in bounded memory.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from latentshift.data.counts import one_index_dtype
from latentshift.errors import AcceleratorError, DataError

if TYPE_CHECKING:
    from anndata import AnnData

# the LDVAE's log lines, under the name of the module that trains it
log = logging.getLogger("latentshift.model.ldvae")


def check_accelerator(params: Mapping[str, Any]) -> None:
    """Refuse, with the fix, a request for GPUs that torch cannot see.

    ``accelerator: auto`` never fails (Lightning takes the GPU when there is one, else the
    CPU). ``gpu``/``cuda`` need a CUDA build of torch and a visible GPU; ``devices`` given as a
    number or a list must not ask for more GPUs than there are.

    Parameters
    ----------
    params
        The ``ldvae`` params section (``accelerator``, ``devices``).

    Raises
    ------
    AcceleratorError
        With the problem and what to change.
    """
    import torch

    accelerator = str(params.get("accelerator", "auto"))
    devices = params.get("devices", "auto")
    if accelerator not in {"gpu", "cuda"}:
        return
    n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n_gpus == 0:
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise AcceleratorError(
            f"ldvae.accelerator is '{accelerator}', but torch sees no GPU on this machine "
            f"(torch {torch.__version__}, {build}). Set ldvae.accelerator to 'auto' (the GPU when "
            "there is one, else the CPU) or 'cpu'; on a GPU machine, install a CUDA build of torch "
            "as docs/performance.md's GPU section shows."
        )
    wanted = len(devices) if isinstance(devices, list) else devices
    if isinstance(wanted, int) and wanted > n_gpus:
        raise AcceleratorError(
            f"ldvae.devices asks for {wanted} GPUs, but this machine has {n_gpus}. "
            f"Set ldvae.devices to at most {n_gpus}, or to 'auto'."
        )


def fused_adam(lr: float) -> dict[str, Any]:
    """scvi-tools' training-plan arguments for its own Adam, computed by torch's fused kernel.

    scvi-tools' ``TrainingPlan`` builds ``torch.optim.Adam(params, lr, eps, weight_decay)``
    with its defaults for ``eps`` and ``weight_decay``; this hands it, through its
    ``optimizer="Custom"`` hook, the same optimizer with the same settings (read from
    ``TrainingPlan``'s signature) and ``fused=True``: the same update rule, one kernel per
    step instead of a loop over the parameters. On 2 CPU cores at 29,496 genes the update
    takes 2.8 ms instead of 10–25 ms (``torch.optim.Adam`` on CPU defaults to the loop).

    Parameters
    ----------
    lr
        Learning rate (``ldvae.lr``).

    Returns
    -------
    dict
        ``optimizer`` and ``optimizer_creator`` for ``plan_kwargs``.
    """
    import inspect
    from functools import partial

    import torch
    from scvi.train import TrainingPlan

    defaults = inspect.signature(TrainingPlan.__init__).parameters
    creator = partial(
        torch.optim.Adam,
        lr=lr,
        eps=defaults["eps"].default,
        weight_decay=defaults["weight_decay"].default,
        fused=True,
    )
    return {"optimizer": "Custom", "optimizer_creator": creator}


def validation_split(
    rows: np.ndarray,
    groups: Any,
    fraction: float,
    seed: int,
    max_cells: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The training rows split into scvi-tools' training and validation parts (seeded).

    Whole groups (a normal cell and its disease copies) fall on one side, so the validation
    ELBO is not flattered by near-twins. ``fraction`` of the groups go to validation, but never
    more than ``max_cells`` cells: at atlas size a fixed-size validation subset keeps each
    check cheap against a training epoch.

    Parameters
    ----------
    rows
        Positions of the training cells.
    groups
        Group label per entry of ``rows``, or ``None`` (every cell its own group).
    fraction
        Share of the groups held out for validation.
    seed
        Seeds the choice.
    max_cells
        Upper bound on the validation cells (``None``: no bound).

    Returns
    -------
    fit, validation
        Sorted positions (subsets of ``rows``), disjoint, together all of ``rows``.
    """
    rows = np.asarray(rows)
    codes = (
        np.arange(len(rows)) if groups is None else pd.factorize(pd.Series(groups).astype(str))[0]
    )
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    sizes = np.bincount(codes, minlength=n_groups)
    rng = np.random.default_rng([seed, 11])
    n_val = max(1, int(round(fraction * n_groups)))
    chosen = rng.choice(n_groups, n_val, replace=False)
    if max_cells is not None:
        # the first chosen groups whose cells fit under max_cells (at least one group)
        fits = int(np.searchsorted(np.cumsum(sizes[chosen]), max_cells, side="right"))
        chosen = chosen[: max(1, fits)]
    is_val = np.zeros(n_groups, dtype=bool)
    is_val[chosen] = True
    in_val = is_val[codes]
    return np.sort(rows[~in_val]), np.sort(rows[in_val])


def epoch_batches(n_fit: int, batch_size: int, epoch_cells: int | None) -> int | None:
    """Minibatches per epoch when ``ldvae.epoch_cells`` caps an epoch (Lightning's
    ``limit_train_batches``), or ``None`` for a full pass over the ``n_fit`` training cells."""
    if epoch_cells is None or epoch_cells >= n_fit:
        return None
    return max(1, int(np.ceil(epoch_cells / batch_size)))


def library_prior(
    counts: Any, batches: np.ndarray, n_batch: int, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """scvi-tools' library-size prior (``_init_library_size``) over ``rows``, in bounded memory.

    Per batch: the mean and variance of the log total counts of its cells (a cell with no
    counts contributes 0, as in scvi-tools). scvi-tools computes it over every cell of the
    AnnData it is given with a copy of the counts and an int64 sum (at 240k cells several GB);
    here only the training rows are read, block by block (:func:`latentshift.data.counts.row_sums`).
    ``tests/test_ldvae.py`` checks the result against scvi-tools' own function.

    Returns
    -------
    means, variances
        Arrays of shape ``(1, n_batch)``; a batch with no cells among ``rows`` gets 0 and 1.
    """
    from latentshift.data.counts import row_sums

    rows = np.asarray(rows)
    means, variances = np.zeros(n_batch), np.ones(n_batch)
    batch_of = np.asarray(batches).ravel().astype(np.int64)[rows]
    totals = np.zeros(len(rows), dtype=np.float64)
    step = 10_000
    for lo in range(0, len(rows), step):
        totals[lo : lo + step] = row_sums(counts[rows[lo : lo + step]])
    with np.errstate(divide="ignore"):
        log_totals = np.where(totals > 0, np.log(np.where(totals > 0, totals, 1.0)), 0.0)
    for b in np.unique(batch_of):
        values = log_totals[batch_of == b]
        means[b] = np.float32(np.mean(values))
        variances[b] = np.float32(np.var(values))
    return means.reshape(1, -1), variances.reshape(1, -1)


@contextlib.contextmanager
def library_prior_over(rows: np.ndarray) -> Iterator[None]:
    """Within the block, a :class:`scvi.model.LinearSCVI` being built takes its library-size
    prior from :func:`library_prior` over ``rows`` instead of scvi-tools' whole-AnnData copy."""
    from scvi import REGISTRY_KEYS
    from scvi.model import _linear_scvi

    original = _linear_scvi._init_library_size

    def over_rows(adata_manager: Any, n_batch: int) -> tuple[np.ndarray, np.ndarray]:
        counts = adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY)
        batches = adata_manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)
        return library_prior(counts, batches, n_batch, rows)

    _linear_scvi._init_library_size = over_rows
    try:
        yield
    finally:
        _linear_scvi._init_library_size = original


def training_view(adata: AnnData, layer: str | None, batch_key: str | None) -> AnnData:
    """A light AnnData over ``adata``'s counts (the same matrix object) for scvi-tools to
    register: scvi-tools' ``_scvi_*`` columns stay off the caller's obs, and no counts are copied.

    Parameters
    ----------
    adata
        The cells (in memory).
    layer
        The counts layer (``None``: ``X``).
    batch_key
        The batch covariate column carried over to the view's obs, or ``None``.
    """
    import anndata as ad

    obs = pd.DataFrame(index=adata.obs_names)
    if batch_key:
        obs[batch_key] = adata.obs[batch_key].to_numpy()
    if layer is None:
        return ad.AnnData(
            X=one_index_dtype(adata.X), obs=obs, var=pd.DataFrame(index=adata.var_names)
        )
    return ad.AnnData(
        obs=obs,
        var=pd.DataFrame(index=adata.var_names),
        layers={layer: one_index_dtype(adata.layers[layer])},
    )


def check_batch_key(obs: pd.DataFrame, batch_key: str | None) -> str | None:
    """The batch covariate column, checked: present, and more than one batch among the cells.

    Parameters
    ----------
    obs
        obs of the training cells.
    batch_key
        ``ldvae.batch_key`` (``None`` or empty: no batch covariate).

    Returns
    -------
    str or None
        The column, or ``None``.

    Raises
    ------
    DataError
        ``batch_key`` is not an obs column.
    """
    if not batch_key:
        return None
    if batch_key not in obs:
        raise DataError(
            f"ldvae.batch_key is '{batch_key}', but the cells have no such obs column (obs "
            f"columns: {', '.join(map(str, obs.columns))}). Set ldvae.batch_key to one of "
            "them (e.g. donor_id), or to null for no batch covariate."
        )
    if obs[batch_key].nunique() < 2:
        log.warning(
            "ldvae.batch_key '%s' has a single value among the training cells: no batch effect to model",
            batch_key,
        )
    return str(batch_key)


def check_counts(adata: AnnData, layer: str | None) -> None:
    """Refuse counts the LDVAE cannot read: a missing layer, NaN, infinite or negative values.

    Parameters
    ----------
    adata
        The cells; a backed AnnData must hold its counts as a CSR matrix in ``X``.
    layer
        The counts layer (``None``: ``X``).

    Raises
    ------
    DataError
        With the problem and what to run.
    """
    if adata.isbacked:  # values were checked block by block when the file was opened
        from anndata.abc import CSRDataset

        if not isinstance(adata.X, CSRDataset):
            raise DataError(
                f"the backed AnnData's X ({type(adata.X).__name__}) is not a CSR matrix of "
                "counts; open the file with latentshift.data.ondisk.open_counts."
            )
        return
    if layer is None:
        x = adata.X
    elif layer not in adata.layers:
        raise DataError(
            f"layers['{layer}'] is missing: the LDVAE reads raw integer counts from it. "
            "Run 01_data/02_perturb, which write layers['counts']."
        )
    else:
        x = adata.layers[layer]
    where = "X" if layer is None else f"layers['{layer}']"
    data = x.data if hasattr(x, "data") and not isinstance(x, np.ndarray) else np.asarray(x)
    if data.size and (not np.isfinite(data).all() or (data < 0).any()):
        raise DataError(
            f"{where} holds NaN, infinite or negative values; the LDVAE needs raw "
            "integer counts. Rebuild the data with 01_data and 02_perturb."
        )
