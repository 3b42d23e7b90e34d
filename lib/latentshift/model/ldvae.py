"""The LDVAE (scvi-tools :class:`~scvi.model.LinearSCVI`): gene choice, training, latent, save.

The model is scvi-tools' own; this module only decides *which* cells and genes it sees and
checks what comes out:

- which genes it reads: :mod:`latentshift.model.gene_choice`;
- what training hands scvi-tools (the checks, the optimizer, the validation split, the
  library-size prior): :mod:`latentshift.model.ldvae_setup`;
- :func:`train_ldvae` — fits on the training split (``obs["split"] == "train"``) with
  scvi-tools' own validation split inside those cells for early stopping on the validation
  ELBO; stops with :class:`LDVAEDivergedError` when a loss turns NaN or infinite;
- :func:`latent_representation`, :func:`heldout_scores` — posterior means for all cells and
  per-cell held-out ELBO / reconstruction error;
- :func:`save_model`, :func:`load_model` — scvi-tools save/load, written atomically.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from latentshift.data.counts import one_index_dtype
from latentshift.errors import DataError, LDVAEDivergedError, MissingArtifactError
from latentshift.model.gene_choice import train_mask
from latentshift.model.ldvae_setup import (
    check_accelerator,
    check_batch_key,
    check_counts,
    epoch_batches,
    fused_adam,
    library_prior_over,
    training_view,
    validation_split,
)
from latentshift.model.training_monitor import (
    DIVERGED_FIX,
    check_finite_history,
    convergence_stopping,
    epoch_logger,
    history_frame,
    interactive,
    latent_snapshots,
)

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

#: Keys of the ``ldvae`` params section that :func:`train_ldvae` takes.
TRAIN_KEYS: tuple[str, ...] = (
    "n_latent",
    "n_hidden",
    "n_layers",
    "dropout_rate",
    "gene_likelihood",
    "dispersion",
    "max_epochs",
    "lr",
    "batch_size",
    "early_stopping_patience",
    "early_stopping_min_delta",
    "kl_warmup_epochs",
    "accelerator",
    "devices",
    "strategy",
    "likelihood_impl",
    "batch_key",
    "use_observed_lib_size",
    "snapshot_every",
)


@dataclass
class LDVAEFit:
    """What :func:`train_ldvae` returns.

    Attributes
    ----------
    model
        The trained :class:`scvi.model.LinearSCVI` (its ``adata`` holds the training cells).
    history
        One row per epoch: ``elbo_train``, ``elbo_validation``, ``reconstruction_loss_*``,
        ``kl_local_*`` ... as logged by scvi-tools (losses: lower is better).
    epochs_run
        Epochs trained.
    early_stopped
        Whether early stopping on the validation ELBO ended training before ``max_epochs``.
    stop_reason
        scvi-tools' early-stopping message, or ``""``.
    train_seconds
        Wall time of ``model.train``.
    n_train, n_validation
        Cells in scvi-tools' training and validation parts of the training split.
    params
        The resolved ``ldvae`` params the model was trained with.
    snapshots
        ``{epoch: (latent, loadings)}`` every ``snapshot_every`` epochs (latent of every cell
        of the ``adata`` given to :func:`train_ldvae`, loadings genes × factors).
    unsettled_validation_epochs
        Leading epochs whose validation loss was not finite (eval-mode batch norm not yet
        settled; see :func:`latentshift.model.training_monitor.check_finite_history`); empty almost always.
    """

    model: Any
    history: pd.DataFrame
    epochs_run: int
    early_stopped: bool
    stop_reason: str = ""
    train_seconds: float = 0.0
    n_train: int = 0
    n_validation: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    unsettled_validation_epochs: list[int] = field(default_factory=list)
    snapshots: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


# --- training --------------------------------------------------------------------------


def _is_nan_error(exc: BaseException) -> bool:
    text = str(exc)
    return "invalid values" in text or ("nan" in text.lower() and "constraint" in text)


def train_ldvae(
    adata: AnnData,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    layer: str = "counts",
    split_key: str = "split",
    train_value: str = "train",
    validation_size: float = 0.1,
    group_key: str | None = "source_cell",
    progress_bar: bool | None = None,
    log_every: int | None = None,
    callbacks: Sequence[Any] | None = None,
) -> LDVAEFit:
    """Fit a :class:`scvi.model.LinearSCVI` on the training cells of ``adata``.

    Parameters
    ----------
    adata
        Cells × genes (already restricted to the chosen genes), integer counts in
        ``layers[layer]``, ``obs[split_key]``. Not modified. Or a backed AnnData from
        :func:`latentshift.data.ondisk.open_counts` (counts in ``X``, read from disk minibatch by
        minibatch; scvi-tools' ``_scvi_*`` columns are added to its obs in memory).
    params
        The ``ldvae`` params section (keys of :data:`TRAIN_KEYS`; others are ignored);
        missing keys take :data:`latentshift.config.DEFAULTS`.
    seed
        ``scvi.settings.seed`` (weights, scvi's validation split, minibatch order).
    layer
        Counts layer registered with ``setup_anndata`` (``None``: ``X``; always ``X`` for a
        backed AnnData).
    split_key, train_value
        Only cells with ``obs[split_key] == train_value`` are used for fitting.
    validation_size
        Fraction of the training cells scvi-tools holds out for the validation ELBO (early
        stopping and the validation curve).
    group_key
        obs column grouping cells that must fall on the same side of the validation split
        (default ``source_cell``: a normal cell and its disease copies). Without it a copy in
        the validation part has its near-twin in the training part, and the validation ELBO
        flatters the model. Ignored when the column is absent.
    progress_bar
        scvi-tools' progress bar; ``None``: on in JupyterLab or a terminal, off in headless
        runs (papermill), which get a log line per tenth of the epochs instead.
    log_every
        Epochs between log lines (default: a tenth of ``max_epochs``).
    callbacks
        Extra Lightning callbacks passed to ``model.train``.

    Returns
    -------
    LDVAEFit

    Raises
    ------
    LDVAEDivergedError
        A training or validation loss became NaN or infinite.
    AcceleratorError
        ``accelerator``/``devices`` ask for GPUs this machine does not have.
    """
    import scvi

    from latentshift import config

    cfg = config.section(
        "ldvae", {k: v for k, v in (params or {}).items() if k in config.DEFAULTS["ldvae"]}
    )
    check_accelerator(cfg)
    mask = train_mask(adata, split_key, train_value)
    check_counts(adata, layer)
    batch_key = check_batch_key(adata.obs.loc[mask], cfg.get("batch_key"))
    # scvi-tools registers a light AnnData over the cells' own counts (no copy): the model reads
    # only the training split's rows (scvi-tools' external_indexing below), and its library-size
    # prior is computed over those rows as well. A backed AnnData (latentshift.data.ondisk) is
    # registered itself: scvi-tools reads each minibatch from its file.
    if adata.isbacked:
        layer = None
        cells = adata
    else:
        cells = training_view(adata, layer, batch_key)
    scvi.settings.seed = seed
    # a batch covariate (scvi-tools' batch_key) enters the linear decoder as one coefficient per
    # gene and batch, so the latent factors need not spend themselves on donor differences
    scvi.model.LinearSCVI.setup_anndata(cells, layer=layer, batch_key=batch_key)
    model = _build_model(cells, cfg, mask)
    if progress_bar is None:
        progress_bar = interactive()
    cbs, snapshots = _callbacks(model, adata, cfg, progress_bar, log_every, callbacks)
    plan_kwargs: dict[str, Any] = {"lr": cfg["lr"], **fused_adam(cfg["lr"])}
    if cfg.get("kl_warmup_epochs") is not None:
        plan_kwargs["n_epochs_kl_warmup"] = cfg["kl_warmup_epochs"]
    rows = np.flatnonzero(mask)
    groups = adata.obs[group_key].to_numpy()[rows] if group_key and group_key in adata.obs else None
    fit_rows, val_rows = validation_split(
        rows, groups, validation_size, seed, max_cells=cfg.get("validation_cells")
    )
    limit = epoch_batches(len(fit_rows), cfg["batch_size"], cfg.get("epoch_cells"))
    log.info(
        "LDVAE: %d training cells (of %d; %d for validation), %d genes, n_latent %d, up to %d "
        "epochs%s%s",
        len(rows),
        adata.n_obs,
        len(val_rows),
        adata.n_vars,
        cfg["n_latent"],
        cfg["max_epochs"],
        f" of {limit * cfg['batch_size']} cells" if limit else "",
        f", batch covariate obs['{batch_key}']" if batch_key else "",
    )
    seconds = _train(model, cfg, (fit_rows, val_rows, mask), plan_kwargs, progress_bar, cbs, limit)
    return _fit_result(model, cfg, len(rows), seconds, snapshots)


def _build_model(cells: AnnData, cfg: Mapping[str, Any], mask: np.ndarray) -> Any:
    """The untrained LinearSCVI over the registered ``cells``, its library-size prior over the
    training rows (``mask``)."""
    from latentshift.model import nb_likelihood

    # scvi-tools' LinearSCVI; only its reconstruction term's implementation is chosen here
    # (ldvae.likelihood_impl: the same model, see latentshift.model.nb_likelihood)
    with library_prior_over(np.flatnonzero(mask)):
        model = nb_likelihood.make_linear_scvi(
            cells,
            likelihood_impl=cfg["likelihood_impl"],
            n_hidden=cfg["n_hidden"],
            n_latent=cfg["n_latent"],
            n_layers=cfg["n_layers"],
            dropout_rate=cfg["dropout_rate"],
            dispersion=cfg["dispersion"],
            gene_likelihood=cfg["gene_likelihood"],
            use_observed_lib_size=cfg["use_observed_lib_size"],
        )
    return model


def _callbacks(
    model: Any,
    adata: AnnData,
    cfg: Mapping[str, Any],
    progress_bar: bool,
    log_every: int | None,
    callbacks: Sequence[Any] | None,
) -> tuple[list[Any], Any]:
    """The Lightning callbacks of a fit (the caller's, then the epoch log lines when headless,
    the latent snapshots and convergence stopping as configured) and the snapshot callback,
    or ``None``."""
    cbs = list(callbacks or [])
    if not progress_bar:
        cbs.append(epoch_logger(cfg["max_epochs"], log_every))
    snapshots = None
    if cfg.get("snapshot_every"):
        snapshots = latent_snapshots(
            int(cfg["snapshot_every"]), _snapshot_capture(model, adata, cfg["batch_size"])
        )
        cbs.append(snapshots)
    patience = cfg["early_stopping_patience"]
    if patience is not None:
        # no stop while the KL weight still ramps up: early validation values are not comparable
        cbs.append(
            convergence_stopping(
                patience, cfg["early_stopping_min_delta"], cfg.get("kl_warmup_epochs") or 0
            )
        )
    return cbs, snapshots


def _train(
    model: Any,
    cfg: Mapping[str, Any],
    split: tuple[np.ndarray, np.ndarray, np.ndarray],
    plan_kwargs: dict[str, Any],
    progress_bar: bool,
    cbs: list[Any],
    limit: int | None,
) -> float:
    """``model.train`` on the fit and validation rows of ``split`` (``mask``: the training
    split); a NaN refused by torch becomes :class:`LDVAEDivergedError`. Returns the seconds."""
    fit_rows, val_rows, mask = split
    extra: dict[str, Any] = {"limit_train_batches": limit} if limit else {}
    start = time.perf_counter()
    try:
        model.train(
            max_epochs=cfg["max_epochs"],
            accelerator=cfg["accelerator"],
            devices=cfg["devices"],
            strategy=cfg["strategy"],
            datasplitter_kwargs={"external_indexing": [fit_rows, val_rows, np.flatnonzero(~mask)]},
            batch_size=cfg["batch_size"],
            early_stopping=False,  # ours: convergence_stopping (scvi-tools' own, plus a relative delta)
            check_val_every_n_epoch=1,
            plan_kwargs=plan_kwargs,
            enable_progress_bar=progress_bar,
            callbacks=cbs,
            **extra,
        )
    except ValueError as exc:  # torch distributions refuse NaN parameters
        if _is_nan_error(exc):
            raise LDVAEDivergedError(
                f"LDVAE training diverged: the encoder produced NaN ({str(exc)[:160]}...). "
                "The model was not saved. " + DIVERGED_FIX
            ) from exc
        raise
    return time.perf_counter() - start


def _fit_result(
    model: Any, cfg: Mapping[str, Any], n_rows: int, seconds: float, snapshots: Any
) -> LDVAEFit:
    """The :class:`LDVAEFit` of a trained model (``n_rows`` training-split cells), checked:
    a loss that stopped training for not being finite raises :class:`LDVAEDivergedError`."""
    unsettled = check_finite_history(model.history)
    history = history_frame(model.history)
    es = getattr(model.trainer, "early_stopping_callback", None)
    reason = str(getattr(es, "early_stopping_reason", "") or "") if es is not None else ""
    epochs_run = int(len(history)) if len(history) else int(model.trainer.current_epoch)
    early = bool(
        es is not None and getattr(es, "stopped_epoch", 0) > 0 and epochs_run < cfg["max_epochs"]
    )
    if "not finite" in reason:
        raise LDVAEDivergedError(
            f"LDVAE training diverged: {reason}. The model was not saved. " + DIVERGED_FIX
        )
    n_val = int(len(model.validation_indices)) if model.validation_indices is not None else 0
    log.info(
        "LDVAE trained %d epochs in %.1f s%s",
        epochs_run,
        seconds,
        " (early stopping)" if early else "",
    )
    return LDVAEFit(
        model=model,
        history=history,
        epochs_run=epochs_run,
        early_stopped=early,
        stop_reason=reason,
        train_seconds=seconds,
        n_train=n_rows - n_val,
        n_validation=n_val,
        params=dict(cfg),
        unsettled_validation_epochs=unsettled,
        snapshots={
            e: (z, snapshots.loadings[e]) for e, z in snapshots.latents.items() if e <= epochs_run
        }
        if snapshots is not None
        else {},
    )


def _snapshot_capture(model: Any, adata: AnnData, batch_size: int) -> Any:
    """``capture()`` for :func:`latentshift.model.training_monitor.latent_snapshots`: the latent of
    every cell of ``adata`` and the loadings, from scvi-tools' own methods, mid-training."""

    def capture() -> tuple[np.ndarray, np.ndarray]:
        trained = model.is_trained_
        model.is_trained_ = True  # scvi-tools refuses a latent before training ends
        try:
            with registered(model, adata) as view:
                z = model.get_latent_representation(view, batch_size=max(batch_size, 1024))
            w = model.get_loadings().to_numpy(dtype=np.float32)
        finally:
            model.is_trained_ = trained
        return np.asarray(z, dtype=np.float32), w

    return capture


def store_snapshots(adata: AnnData, fit: LDVAEFit) -> list[int]:
    """Put :attr:`LDVAEFit.snapshots` into ``adata`` the AnnData way.

    ``obsm["X_ldvae_epoch<N>"]`` (latent), ``varm["loadings_epoch<N>"]`` (loadings) and
    ``uns["ldvae_snapshots"]`` (``epochs``, ``final_epoch``: the epoch of ``obsm["X_ldvae"]``).

    Returns
    -------
    list of int
        The snapshot epochs, in order.
    """
    epochs = sorted(e for e in fit.snapshots if e < fit.epochs_run)
    for e in epochs:
        z, w = fit.snapshots[e]
        adata.obsm[f"X_ldvae_epoch{e}"] = z
        adata.varm[f"loadings_epoch{e}"] = w
    adata.uns["ldvae_snapshots"] = {"epochs": epochs, "final_epoch": int(fit.epochs_run)}
    return epochs


# --- outputs ---------------------------------------------------------------------------


def _registered_view(model: Any, adata: AnnData) -> Any:
    """A light AnnData sharing ``adata``'s counts, for scvi-tools to register.

    scvi-tools adds ``_scvi_*`` columns to whatever AnnData it is given; this keeps them off
    the caller's object (and out of the files it writes). No matrix is copied.
    """
    import anndata as ad

    layer = model.adata_manager.data_registry["X"].attr_key
    if list(adata.var_names) != list(model.adata.var_names):
        raise DataError(
            f"the cells have {adata.n_vars} genes but the LDVAE was trained on "
            f"{model.adata.n_vars} (or in another order); restrict them to the model's genes "
            "(model.adata.var_names) first."
        )
    layers = {layer: one_index_dtype(adata.layers[layer])} if layer else {}
    x = None if layer else one_index_dtype(adata.X)
    obs = pd.DataFrame(index=adata.obs_names)
    batch_key = model.adata_manager.registry.get("setup_args", {}).get("batch_key")
    if batch_key:  # the model's batch covariate travels with the cells
        if batch_key not in adata.obs:
            raise DataError(
                f"the LDVAE was trained with the batch covariate obs['{batch_key}'], which these "
                "cells lack; give cells that carry it (as 02_perturb writes them)."
            )
        obs[batch_key] = adata.obs[batch_key].to_numpy()
    return ad.AnnData(
        X=x,
        obs=obs,
        var=pd.DataFrame(index=adata.var_names),
        layers=layers,
    )


@contextlib.contextmanager
def registered(model: Any, adata: AnnData) -> Iterator[AnnData]:
    """:func:`_registered_view` of ``adata`` for the duration of the block, then let go.

    scvi-tools keeps an AnnDataManager, and with it the AnnData, for every AnnData a model is
    handed; for a view of some cells that AnnData holds a copy of their counts, kept as long as
    the model lives (at atlas size, gigabytes). The view's manager is dropped from the model's
    store when the block ends. (scvi-tools' ``deregister_manager`` cannot do it: it looks the
    AnnData up among those set up with ``setup_anndata``, and a view scvi-tools transferred the
    setup to is not among them; ``tests/test_ldvae.py`` checks that the store is left as found.)
    """
    from scvi.data._constants import _SCVI_UUID_KEY

    view = _registered_view(model, adata)
    try:
        # scvi-tools announces each transfer of its setup with an INFO line on stdout; it would
        # land in the notebook's page once per call
        with quiet_scvi():
            yield view
    finally:
        uuid = view.uns.get(_SCVI_UUID_KEY)
        if uuid is not None and uuid != model.adata_manager.adata_uuid:
            model._per_instance_manager_store.get(model.id, {}).pop(uuid, None)


def latent_representation(
    model: Any, adata: AnnData, *, batch_size: int | None = None
) -> np.ndarray:
    """Posterior means (cells × ``n_latent``) for every cell of ``adata``.

    ``adata`` must have the model's genes in the same order; it is registered with the
    model's setup (scvi-tools transfers it) — the model never trains on it.

    Raises
    ------
    LDVAEDivergedError
        The latent holds NaN or infinite values.
    """
    with registered(model, adata) as view:
        z = model.get_latent_representation(view, batch_size=batch_size)
    z = np.asarray(z, dtype=np.float32)
    if not np.isfinite(z).all():
        raise LDVAEDivergedError(
            f"the LDVAE latent holds NaN or infinite values for {int((~np.isfinite(z)).any(axis=1).sum())} "
            "cells: training diverged. The model was not saved. " + DIVERGED_FIX
        )
    return z


def heldout_scores(model: Any, adata: AnnData, *, batch_size: int | None = None) -> pd.DataFrame:
    """Per-cell held-out scores of ``adata`` (e.g. the test split).

    Returns
    -------
    pandas.DataFrame
        Index ``obs_names``; ``elbo``: negative ELBO (reconstruction NLL + local KL), the
        quantity scvi-tools logs as ``elbo_validation`` (lower is better);
        ``reconstruction_error``: the negative log-likelihood of the counts (lower is better).
    """
    with registered(model, adata) as view:
        elbo = model.get_elbo(view, batch_size=batch_size, return_mean=False)
        rec = model.get_reconstruction_error(view, batch_size=batch_size, return_mean=False)
    neg_elbo = -np.asarray(elbo.cpu())
    rec_total = sum(np.asarray(v.cpu()) for v in rec.values())
    return pd.DataFrame(
        {
            "elbo": neg_elbo.astype(float),
            "reconstruction_error": np.asarray(rec_total, dtype=float),
        },
        index=adata.obs_names,
    )


def ldvae_metrics(fit: LDVAEFit, scores: pd.DataFrame, n_genes: int, n_test: int) -> dict[str, Any]:
    """The ``ldvae`` section of ``metrics.json`` (deterministic: the wall time goes to
    ``timings.json`` through :func:`latentshift.data.artifacts.update_timings`)."""
    last = fit.history.iloc[-1] if len(fit.history) else pd.Series(dtype=float)
    return {
        "test_elbo": float(scores["elbo"].mean()),
        "test_reconstruction_error": float(scores["reconstruction_error"].mean()),
        "final_elbo_train": float(last.get("elbo_train", np.nan)),
        "final_elbo_validation": float(last.get("elbo_validation", np.nan)),
        "epochs_run": fit.epochs_run,
        "max_epochs": fit.params.get("max_epochs"),
        "early_stopped": fit.early_stopped,
        "n_genes_used": n_genes,
        "n_latent": fit.params.get("n_latent"),
        "batch_key": fit.params.get("batch_key"),
        "use_observed_lib_size": fit.params.get("use_observed_lib_size"),
        "n_train_cells": fit.n_train,
        "n_validation_cells": fit.n_validation,
        "n_test_cells": n_test,
        "unsettled_validation_epochs": list(fit.unsettled_validation_epochs),
    }


def save_model(model: Any, path: str | Path) -> Path:
    """Save with scvi-tools' own ``model.save`` (no AnnData), atomically into ``path``."""
    from latentshift.data import artifacts

    path = Path(path)
    with artifacts.atomic_path(path, suffix="") as tmp:
        model.save(str(tmp), save_anndata=False, overwrite=True)
    log.info("saved LDVAE to %s", path)
    return path


@contextlib.contextmanager
def quiet_scvi() -> Iterator[None]:
    """scvi-tools' own INFO lines (printed to stdout with rich, e.g. "File … already
    downloaded" on every load) kept out of notebook outputs; warnings still show."""
    import scvi

    before = scvi.settings.verbosity
    scvi.settings.verbosity = logging.WARNING
    try:
        yield
    finally:
        scvi.settings.verbosity = before


def load_model(path: str | Path, adata: AnnData, likelihood_impl: str = "zero_aware") -> Any:
    """Load a model saved by :func:`save_model`; ``adata`` must have the model's genes.

    ``likelihood_impl`` picks the reconstruction term's implementation for the loaded model
    (:mod:`latentshift.model.nb_likelihood`; the same numbers either way).
    """
    import scvi

    from latentshift.model import nb_likelihood

    path = Path(path)
    if not (path / "model.pt").is_file():
        raise MissingArtifactError(
            f"{path} holds no saved LDVAE (model.pt): it is written by notebook 03_ldvae. Run it first."
        )
    with quiet_scvi():
        model = scvi.model.LinearSCVI.load(str(path), adata=adata)
    return nb_likelihood.use_likelihood_impl(model, likelihood_impl)
