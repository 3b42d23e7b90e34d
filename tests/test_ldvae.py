"""Tests of latentshift.model.ldvae: LinearSCVI training on the training split, genes, guard, save/load."""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from latentshift import errors
from latentshift.data import artifacts
from latentshift.model import features, gene_choice, ldvae, ldvae_setup, training_monitor
from latentshift.perturb import shift as perturb

FAST = {
    "n_latent": 3,
    "n_hidden": 16,
    "max_epochs": 3,
    "batch_size": 64,
    "early_stopping_patience": None,
}


def perturbed_like(
    n_source: int = 120,
    n_genes: int = 80,
    n_types: int = 3,
    n_disease: int = 8,
    train_fraction: float = 0.7,
    seed: int = 0,
) -> ad.AnnData:
    """A small AnnData following the perturbed.h5ad contract (normal + ALS/HD copies)."""
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(n_genes)]
    base = rng.gamma(0.8, 1.0, n_genes)
    type_fc = np.exp(
        rng.normal(0, 1.0, (n_types, n_genes)) * (rng.random((n_types, n_genes)) < 0.2)
    )
    types = rng.integers(0, n_types, n_source)
    size = rng.lognormal(0, 0.3, n_source)
    is_test = rng.random(n_source) > train_fraction
    conditions = ["normal", "ALS", "HD"]
    blocks, frames = [], []
    for cond in conditions:
        fc = np.ones(n_genes)
        if cond == "ALS":
            fc[:n_disease] = 0.3
        if cond == "HD":
            fc[n_disease : 2 * n_disease] = 3.0
        mu = size[:, None] * base[None, :] * type_fc[types] * fc[None, :]
        counts = rng.poisson(rng.gamma(5.0, mu / 5.0))
        blocks.append(sp.csr_matrix(counts.astype(np.int32)))
        frames.append(
            pd.DataFrame(
                {
                    "condition": cond,
                    "source_cell": [f"c{i}" for i in range(n_source)],
                    "perturbed": cond != "normal",
                    "cell_type": [f"type{t}" for t in types],
                    "split": np.where(is_test, "test", "train"),
                },
                index=[f"c{i}-{cond}" for i in range(n_source)],
            )
        )
    x = sp.vstack(blocks).tocsr()
    obs = pd.concat(frames)
    obs["condition"] = pd.Categorical(obs["condition"], categories=conditions)
    obs["cell_type"] = obs["cell_type"].astype("category")
    adata = ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=genes))
    adata.layers["counts"] = x.copy()
    adata.uns["perturbation_genes"] = {
        "ALS": genes[:n_disease],
        "HD": genes[n_disease : 2 * n_disease],
    }
    adata.uns["latentshift"] = {"simulated": True, "source": "test fixture"}
    return adata


@pytest.fixture(scope="module")
def adata() -> ad.AnnData:
    return perturbed_like()


@pytest.fixture(scope="module")
def fit(adata):
    return ldvae.train_ldvae(adata, FAST, seed=0, progress_bar=False)


def test_fixture_follows_contract(adata):
    assert sp.issparse(adata.layers["counts"]) and adata.layers["counts"].dtype.kind == "i"
    assert list(adata.obs["condition"].cat.categories) == ["normal", "ALS", "HD"]
    assert set(adata.obs["split"]) == {"train", "test"}
    # copies of one source cell share a split
    assert adata.obs.groupby("source_cell", observed=True)["split"].nunique().max() == 1


def test_trains_on_training_cells_only(adata, fit):
    train = np.flatnonzero(adata.obs["split"] == "train")
    seen = np.concatenate([fit.model.train_indices, fit.model.validation_indices])
    assert sorted(seen) == list(train)  # every training cell, and only those
    assert sorted(fit.model.test_indices) == list(np.flatnonzero(adata.obs["split"] == "test"))
    assert fit.n_train + fit.n_validation == len(train)
    assert fit.n_validation > 0
    assert fit.epochs_run == 3 and not fit.early_stopped
    # scvi-tools registered a light AnnData over the same counts: no copy, no _scvi_ columns
    assert fit.model.adata.layers["counts"] is adata.layers["counts"]
    assert not [c for c in adata.obs.columns if c.startswith("_scvi")]


def test_validation_split_keeps_copies_together(adata, fit):
    source = adata.obs["source_cell"].to_numpy()
    val = set(source[fit.model.validation_indices])
    fitted = set(source[fit.model.train_indices])
    assert val and not (val & fitted)


def test_library_prior_is_scvi_tools_own_over_the_training_rows(adata):
    """The bounded-memory prior equals scvi-tools' _init_library_size on the training cells."""
    import scvi
    from scvi.model._utils import _init_library_size

    train = adata[adata.obs["split"] == "train"].copy()
    train.obs["donor"] = np.where(np.arange(train.n_obs) % 3 == 0, "a", "b")
    scvi.model.LinearSCVI.setup_anndata(train, layer="counts", batch_key="donor")
    manager = scvi.model.LinearSCVI(train, n_latent=2).adata_manager
    expected = _init_library_size(manager, 2)
    rows = np.flatnonzero(adata.obs["split"] == "train")
    batches = np.zeros(adata.n_obs, dtype=int)
    batches[rows] = (train.obs["donor"] == "b").to_numpy().astype(int)
    got = ldvae_setup.library_prior(adata.layers["counts"], batches, 2, rows)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)


def test_the_model_takes_its_library_prior_from_the_training_cells(adata, fit):
    rows = np.flatnonzero(adata.obs["split"] == "train")
    means, variances = ldvae_setup.library_prior(
        adata.layers["counts"], np.zeros(adata.n_obs), 1, rows
    )
    np.testing.assert_allclose(fit.model.module.library_log_means.numpy(), means, rtol=1e-6)
    np.testing.assert_allclose(fit.model.module.library_log_vars.numpy(), variances, rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 300),
    size=st.integers(1, 4),
    frac=st.floats(0.05, 0.5),
    cap=st.one_of(st.none(), st.integers(1, 200)),
    seed=st.integers(0, 1000),
)
def test_validation_split_is_grouped_and_bounded(n, size, frac, cap, seed):
    groups = np.repeat(np.arange(n), size)
    rows = np.arange(len(groups)) * 2 + 1  # positions among other cells
    fit_rows, val_rows = ldvae_setup.validation_split(rows, groups, frac, seed, max_cells=cap)
    assert sorted(np.concatenate([fit_rows, val_rows])) == list(rows)
    assert len(val_rows) >= size  # at least one group
    if cap is not None:
        assert len(val_rows) <= max(cap, size)
    by_row = dict(zip(rows, groups, strict=True))
    assert not {by_row[r] for r in fit_rows} & {by_row[r] for r in val_rows}


def test_epoch_cells_caps_the_minibatches_of_an_epoch(adata):
    assert ldvae_setup.epoch_batches(1000, 64, None) is None
    assert ldvae_setup.epoch_batches(1000, 64, 5000) is None  # more than a pass: a pass
    assert ldvae_setup.epoch_batches(1000, 64, 130) == 3
    n_fit = int((adata.obs["split"] == "train").sum() * 0.9)
    capped = ldvae.train_ldvae(
        adata, {**FAST, "max_epochs": 2, "epoch_cells": 64}, seed=0, progress_bar=False
    )
    assert capped.model.trainer.num_training_batches == 1 < n_fit / 64
    assert capped.epochs_run == 2


def test_latent_shape_finite(adata, fit):
    z = ldvae.latent_representation(fit.model, adata)
    assert z.shape == (adata.n_obs, 3)
    assert np.isfinite(z).all()
    # the caller's AnnData keeps its counts untouched
    assert adata.layers["counts"].dtype.kind == "i"


def test_history_has_curves(fit):
    h = fit.history
    assert list(h.index) == [0, 1, 2]
    for col in (
        "elbo_train",
        "elbo_validation",
        "reconstruction_loss_train",
        "kl_local_validation",
    ):
        assert col in h and np.isfinite(h[col]).all()


def test_heldout_scores_and_metrics(adata, fit):
    test = adata[adata.obs["split"] == "test"].copy()
    scores = ldvae.heldout_scores(fit.model, test)
    assert list(scores.index) == list(test.obs_names)
    assert np.isfinite(scores.to_numpy()).all()
    # negative ELBO = reconstruction NLL + KL >= reconstruction NLL (up to sampling noise)
    assert scores["elbo"].mean() > 0
    metrics = ldvae.ldvae_metrics(fit, scores, n_genes=adata.n_vars, n_test=test.n_obs)
    assert metrics["epochs_run"] == 3 and metrics["n_latent"] == 3
    assert metrics["test_elbo"] == pytest.approx(scores["elbo"].mean())
    assert isinstance(training_monitor.describe_curves(fit.history, fit.early_stopped, 3), str)


def test_save_reload_same_latent(adata, fit, tmp_path):
    path = ldvae.save_model(fit.model, tmp_path / "model")
    assert (path / "model.pt").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    z1 = ldvae.latent_representation(fit.model, adata)
    reloaded = ldvae.load_model(path, adata.copy())
    z2 = ldvae.latent_representation(reloaded, adata.copy())
    np.testing.assert_allclose(z1, z2, rtol=1e-5, atol=1e-5)


def test_load_missing_model_says_which_notebook(tmp_path, adata):
    with pytest.raises(FileNotFoundError, match="03_ldvae"):
        ldvae.load_model(tmp_path / "nope", adata)


def test_hvg_keeps_every_disease_gene_when_told(adata):
    disease = perturb.perturbed_genes(adata)
    genes = gene_choice.select_genes(adata, 20, keep=disease)
    assert len(disease) == 16
    assert set(disease) <= set(genes)
    assert 20 <= len(genes) <= 20 + len(disease)
    assert genes == [g for g in adata.var_names if g in set(genes)]  # data order
    assert gene_choice.select_genes(adata, None) == list(adata.var_names)


def test_label_blind_choice_keeps_a_set_gene_only_if_it_is_variable(adata):
    import scanpy as sc

    disease = perturb.perturbed_genes(adata)
    blind = {"n_top_genes": 20, "keep_perturbed_genes": False, "hvg_cells": "all"}
    genes = gene_choice.model_genes(adata, blind)
    assert len(genes) == 20  # nothing forced in
    train = adata[(adata.obs["split"] == "train").to_numpy()]
    hvg = sc.pp.highly_variable_genes(
        train, n_top_genes=20, flavor="seurat_v3", layer="counts", inplace=False
    )
    variable = set(train.var_names[hvg["highly_variable"].to_numpy()])
    assert set(genes) == variable
    for g in disease:
        assert (g in genes) == (g in variable)
    # the oracle forces every set gene in, whatever its variability
    oracle = gene_choice.model_genes(adata, {**blind, "keep_perturbed_genes": True})
    assert set(oracle) == variable | set(disease)


def test_hvg_max_cells_ranks_on_a_seeded_draw_of_the_training_cells(adata):
    train = np.flatnonzero(adata.obs["split"] == "train")
    assert gene_choice.select_genes(adata, 20, max_cells=len(train)) == gene_choice.select_genes(
        adata, 20
    )
    few = gene_choice.select_genes(adata, 20, max_cells=60, seed=3)
    assert few == gene_choice.select_genes(adata, 20, max_cells=60, seed=3)
    drawn = np.random.default_rng([3, 29]).choice(train, 60, replace=False)
    sub = adata[np.sort(drawn)].copy()
    assert few == gene_choice.select_genes(sub, 20)  # the ranking of exactly those cells


def test_hvg_cells_normal_ranks_on_the_normal_training_cells_only(adata):
    blind = {"n_top_genes": 20, "keep_perturbed_genes": False}
    on_normal = gene_choice.model_genes(adata, {**blind, "hvg_cells": "normal"})
    normal = adata[(adata.obs["condition"] == "normal").to_numpy()].copy()
    assert on_normal == gene_choice.select_genes(normal, 20, hvg_cells="all")
    with pytest.raises(gene_choice.DataError, match="'all' or 'normal'"):
        gene_choice.select_genes(adata, 20, hvg_cells="copies")


def test_pearson_residual_hvgs_are_scanpys(adata):
    import scanpy as sc

    blind = {"n_top_genes": 20, "keep_perturbed_genes": False, "hvg_cells": "all"}
    genes = gene_choice.model_genes(adata, {**blind, "hvg_flavor": "pearson_residuals"})
    train = adata[(adata.obs["split"] == "train").to_numpy()]
    hvg = sc.experimental.pp.highly_variable_genes(
        train, n_top_genes=20, layer="counts", inplace=False
    )
    assert genes == list(train.var_names[hvg["highly_variable"].to_numpy()])
    with pytest.raises(ldvae.DataError, match="pearson_residuals"):
        gene_choice.select_genes(adata, 20, flavor="cell_ranger")


def test_genes_in_model_counts_each_set():
    got = gene_choice.genes_in_model(["a", "b", "c"], {"ALS": ["a", "x"], "HD": ["b", "c", "d"]})
    assert got == {"ALS": {"in_model": 1, "shifted": 2}, "HD": {"in_model": 2, "shifted": 3}}


def test_hvg_uses_training_cells_only(adata):
    # making test cells wildly variable in some genes must not change the choice
    changed = adata.copy()
    counts = changed.layers["counts"].tolil()
    test_rows = np.flatnonzero(changed.obs["split"] == "test")
    rng = np.random.default_rng(1)
    for j in range(60, 70):
        counts[test_rows, j] = rng.integers(0, 500, (len(test_rows), 1))
    changed.layers["counts"] = counts.tocsr()
    assert gene_choice.select_genes(changed, 20, keep=[]) == gene_choice.select_genes(
        adata, 20, keep=[]
    )


def test_divergence_guard_fires_and_saves_nothing(adata, tmp_path, caplog):
    out = tmp_path / "run"
    with pytest.raises(ldvae.LDVAEDivergedError, match="lr") as info:
        fit = ldvae.train_ldvae(adata, {**FAST, "lr": 1e6}, seed=0, progress_bar=False)
        # if training itself survived, the latent check must catch it before saving
        ldvae.latent_representation(fit.model, adata)
        ldvae.save_model(fit.model, out / "model")
    assert isinstance(info.value, ValueError)
    assert "not saved" in str(info.value)
    assert not (out / "model").exists()


def test_divergence_guard_on_injected_nan_history():
    history = {"elbo_validation": pd.DataFrame({"elbo_validation": [10.0, np.nan]}, index=[0, 1])}
    with pytest.raises(ldvae.LDVAEDivergedError, match="epoch 1"):
        training_monitor.check_finite_history(history)
    assert (
        training_monitor.check_finite_history(
            {"elbo_train": pd.DataFrame({"elbo_train": [3.0, 2.0]})}
        )
        == []
    )


def test_an_unsettled_first_validation_is_not_divergence():
    # eval-mode batch norm can overflow on the first validation pass only: finite afterwards
    first = {"elbo_validation": pd.DataFrame({"elbo_validation": [np.inf, 12.0, 11.0]})}
    assert training_monitor.check_finite_history(first) == [0]
    # not finite again later: divergence
    later = {"elbo_validation": pd.DataFrame({"elbo_validation": [np.nan, 12.0, np.inf]})}
    with pytest.raises(ldvae.LDVAEDivergedError, match="epoch 0"):
        training_monitor.check_finite_history(later)
    # a training loss that is not finite is always divergence
    train = {"elbo_train": pd.DataFrame({"elbo_train": [np.nan, 2.0]})}
    with pytest.raises(ldvae.LDVAEDivergedError):
        training_monitor.check_finite_history(train)


def test_headless_logs_epoch_groups(adata, caplog):
    with caplog.at_level(logging.INFO, logger="latentshift.model.ldvae"):
        ldvae.train_ldvae(adata, {**FAST, "max_epochs": 4}, seed=0, progress_bar=False, log_every=2)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("LDVAE epoch")]
    assert lines[0].startswith("LDVAE epoch 2/4") and "elbo_validation" in lines[0]
    assert lines[-1].startswith("LDVAE epoch 4/4")


def test_rejects_non_counts(adata):
    bad = adata.copy()
    bad.layers["counts"] = bad.layers["counts"].astype(np.float32)
    bad.layers["counts"].data[0] = -1.0
    with pytest.raises(ValueError, match="counts"):
        ldvae.train_ldvae(bad, FAST, seed=0, progress_bar=False)
    nosplit = adata.copy()
    del nosplit.obs["split"]
    with pytest.raises(ValueError, match="02_perturb"):
        ldvae.train_ldvae(nosplit, FAST, seed=0, progress_bar=False)


def test_seeded_training_is_reproducible(adata):
    a = ldvae.train_ldvae(adata, {**FAST, "max_epochs": 1}, seed=3, progress_bar=False)
    b = ldvae.train_ldvae(adata, {**FAST, "max_epochs": 1}, seed=3, progress_bar=False)
    np.testing.assert_allclose(
        ldvae.latent_representation(a.model, adata),
        ldvae.latent_representation(b.model, adata),
        atol=1e-5,
    )


def test_written_through_atomic_path(tmp_path, fit):
    # a failing save leaves no model folder behind
    class Broken:
        def save(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        ldvae.save_model(Broken(), tmp_path / "model")
    assert not (tmp_path / "model").exists()
    assert artifacts  # the module writes through latentshift.data.artifacts


def test_accelerator_devices_and_strategy_reach_the_trainer(adata, monkeypatch):
    import scvi.train
    from lightning.pytorch.accelerators import CPUAccelerator
    from lightning.pytorch.strategies import SingleDeviceStrategy

    seen: dict = {}
    original = scvi.train.Trainer.__init__

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(scvi.train.Trainer, "__init__", spy)
    params = {
        **FAST,
        "max_epochs": 1,
        "accelerator": "cpu",
        "devices": 1,
        "strategy": "single_device",
    }
    fit = ldvae.train_ldvae(adata, params, seed=0, progress_bar=False)
    assert (
        seen["accelerator"] == "cpu"
        and seen["devices"] == 1
        and seen["strategy"] == "single_device"
    )
    trainer = fit.model.trainer
    assert isinstance(trainer.accelerator, CPUAccelerator) and trainer.num_devices == 1
    assert isinstance(trainer.strategy, SingleDeviceStrategy)


def test_asking_for_a_gpu_without_one_names_the_fix(adata, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for accelerator in ("gpu", "cuda"):
        with pytest.raises(
            errors.AcceleratorError, match=r"torch sees no GPU.*Set ldvae.accelerator to 'auto'"
        ):
            ldvae_setup.check_accelerator({"accelerator": accelerator, "devices": "auto"})
    with pytest.raises(errors.AcceleratorError, match="no GPU"):  # refused before any training
        ldvae.train_ldvae(adata, {**FAST, "accelerator": "gpu"}, seed=0, progress_bar=False)
    ldvae_setup.check_accelerator(
        {"accelerator": "auto", "devices": "auto"}
    )  # auto falls back to the CPU
    ldvae_setup.check_accelerator({"accelerator": "cpu", "devices": 2})
    # more GPUs than the machine has
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(errors.AcceleratorError, match=r"asks for 2 GPUs, but this machine has 1"):
        ldvae_setup.check_accelerator({"accelerator": "gpu", "devices": [0, 1]})
    ldvae_setup.check_accelerator({"accelerator": "gpu", "devices": 1})


def test_genes_chosen_before_the_copies_are_the_genes_chosen_after():
    from latentshift.data import simulate
    from latentshift.design import split as splitting

    cells = simulate.simulate_m1(400, 600, seed=2)
    cells.obs_names = cells.obs_names.astype(str)
    entries = [
        {"name": "ALS", "geneset": "S", "direction": "down", "fold_change": 0.5},
    ]
    genes_by_set = {"S": list(cells.var_names[[5, 50, 500]])}
    split_cfg = {"train_fraction": 0.7, "grouped": True}
    # after the copies (the default path)
    pert = perturb.make_perturbed(cells, entries, genes_by_set, seed=0)
    pert.obs["split"] = splitting.assign_split(pert, 0.7, grouped=True, seed=0)
    oracle = {"n_top_genes": 100, "keep_perturbed_genes": True, "hvg_cells": "normal"}
    after = gene_choice.model_genes(pert, oracle)
    assert set(genes_by_set["S"]) <= set(after)
    # before the copies (atlas memory): the same genes, and 03 does not choose again
    early = gene_choice.keep_model_genes(cells, genes_by_set["S"], oracle, split_cfg, seed=0)
    assert list(early.var_names) == after
    pert2 = perturb.make_perturbed(early, entries, genes_by_set, seed=0)
    pert2.obs["split"] = splitting.assign_split(pert2, 0.7, grouped=True, seed=0)
    assert (pert2.obs["split"].to_numpy() == pert.obs["split"].to_numpy()).all()
    assert gene_choice.select_genes(pert2, 100) == list(pert2.var_names)
    with pytest.raises(ldvae.DataError, match="split.grouped"):
        gene_choice.keep_model_genes(cells, [], oracle, {**split_cfg, "grouped": False}, seed=0)
    with pytest.raises(ldvae.DataError, match="hvg_cells"):
        gene_choice.keep_model_genes(cells, [], {**oracle, "hvg_cells": "all"}, split_cfg, seed=0)
    # label-blind before the copies: the same genes as after, ranked on the normal cells
    blind = {**oracle, "keep_perturbed_genes": False}
    early_blind = gene_choice.keep_model_genes(cells, genes_by_set["S"], blind, split_cfg, seed=0)
    assert list(early_blind.var_names) == gene_choice.model_genes(pert, blind)


# --- batch covariate (ldvae.batch_key) -------------------------------------------------


def _with_donors(adata: ad.AnnData) -> ad.AnnData:
    """The fixture with a donor per source cell (copies share their source cell's donor)."""
    out = adata.copy()
    source = out.obs["source_cell"].str[1:].astype(int).to_numpy()
    out.obs["donor_id"] = pd.Categorical(np.where(source % 2 == 0, "donor1", "donor2"))
    return out


def test_batch_key_registers_donors_and_keeps_latent_and_loadings_shapes(adata):
    cells = _with_donors(adata)
    fit = ldvae.train_ldvae(cells, {**FAST, "batch_key": "donor_id"}, seed=0, progress_bar=False)
    assert fit.model.summary_stats.n_batch == 2
    assert fit.model.adata_manager.registry["setup_args"]["batch_key"] == "donor_id"
    z = ldvae.latent_representation(fit.model, cells)  # every cell, test cells included
    assert z.shape == (cells.n_obs, 3) and np.isfinite(z).all()
    assert "_scvi_batch" not in cells.obs  # the caller's cells are not registered
    # the loadings are the latent factors' alone (scvi-tools drops the batch coefficients)
    assert fit.model.get_loadings().shape == (cells.n_vars, 3)
    test = cells[cells.obs["split"] == "test"].copy()
    scores = ldvae.heldout_scores(fit.model, test)
    metrics = ldvae.ldvae_metrics(fit, scores, n_genes=cells.n_vars, n_test=test.n_obs)
    assert metrics["batch_key"] == "donor_id"
    # cells without the column cannot be scored by a model that needs it
    with pytest.raises(errors.DataError, match="batch covariate obs\\['donor_id'\\]"):
        ldvae.latent_representation(fit.model, adata)


def test_batch_key_not_in_obs_names_the_columns(adata):
    with pytest.raises(errors.DataError, match="ldvae.batch_key is 'donor'.*obs columns"):
        ldvae.train_ldvae(adata, {**FAST, "batch_key": "donor"}, seed=0, progress_bar=False)


def test_without_batch_key_no_batch_is_registered(fit):
    assert fit.model.summary_stats.n_batch == 1
    assert fit.params["batch_key"] is None


def test_observed_library_size_reaches_the_module(adata, fit):
    assert fit.model.module.use_observed_lib_size is False  # LinearSCVI's own default
    observed = ldvae.train_ldvae(
        adata, {**FAST, "use_observed_lib_size": True}, seed=0, progress_bar=False
    )
    assert observed.model.module.use_observed_lib_size is True
    test = adata[adata.obs["split"] == "test"].copy()
    scores = ldvae.heldout_scores(observed.model, test)
    metrics = ldvae.ldvae_metrics(observed, scores, n_genes=adata.n_vars, n_test=test.n_obs)
    assert metrics["use_observed_lib_size"] is True
    z = ldvae.latent_representation(observed.model, adata)
    assert z.shape == (adata.n_obs, 3) and np.isfinite(z).all()


# --- the disease-gene baseline does not move with the gene choice (issue 23, 6) ----------


def test_disease_gene_baseline_is_the_same_whatever_genes_the_ldvae_reads(adata):

    blind = {"n_top_genes": 20, "keep_perturbed_genes": False, "hvg_cells": "all"}
    few, choice_few = gene_choice.cells_for_model(adata, blind)
    every, choice_all = gene_choice.cells_for_model(adata, {**blind, "n_top_genes": None})
    assert few.n_vars == 20 and every.n_vars == adata.n_vars
    # some shifted genes are not in the 20-gene model, yet the baseline reads all 16 of them
    assert choice_few["set_genes"]["ALS"]["in_model"] + choice_few["set_genes"]["HD"][
        "in_model"
    ] < len(perturb.perturbed_genes(adata))
    x_few = features.disease_gene_baseline_features(few)
    x_all = features.disease_gene_baseline_features(every)
    assert x_few.shape == (adata.n_obs, 16)
    np.testing.assert_array_equal(x_few, x_all)
    # ... and they are the features over every gene (each cell's total over all its genes)
    full = features.disease_gene_features(adata, perturb.perturbed_genes(adata))
    np.testing.assert_allclose(x_all, full, rtol=1e-6)
    # the gene choice is recorded, the oracle named
    assert choice_few["oracle"] is False and choice_all["n_genes_used"] == adata.n_vars
    oracle = gene_choice.cells_for_model(adata, {**blind, "keep_perturbed_genes": True})[1]
    assert oracle["oracle"] is True
    assert oracle["set_genes"]["ALS"] == {"in_model": 8, "shifted": 8}
    table = gene_choice.gene_choice_table(oracle)
    assert "oracle" in table.columns.name and table.loc["model", "in the model"] == 20 + sum(
        g not in set(gene_choice.model_genes(adata, blind)) for g in perturb.perturbed_genes(adata)
    )


# --- snapshots of the latent during training (issue 23, 3) -----------------------------


def test_snapshots_keep_the_latent_every_few_epochs_without_changing_training(adata):
    from latentshift.readings import classify

    plain = ldvae.train_ldvae(adata, {**FAST, "max_epochs": 4}, seed=0, progress_bar=False)
    snap = ldvae.train_ldvae(
        adata, {**FAST, "max_epochs": 4, "snapshot_every": 2}, seed=0, progress_bar=False
    )
    assert sorted(snap.snapshots) == [2, 4] and plain.snapshots == {}
    z2, w2 = snap.snapshots[2]
    assert z2.shape == (adata.n_obs, 3) and w2.shape == (adata.n_vars, 3)
    # the last snapshot is the trained model's own latent (eval mode, as after training) ...
    np.testing.assert_allclose(
        snap.snapshots[4][0], ldvae.latent_representation(snap.model, adata), atol=1e-5
    )
    # ... and taking snapshots leaves training as it was (no batch-norm update, same weights)
    np.testing.assert_allclose(
        ldvae.latent_representation(plain.model, adata),
        ldvae.latent_representation(snap.model, adata),
        atol=1e-5,
    )
    assert not np.allclose(z2, snap.snapshots[4][0])  # the latent moved between epochs
    cells = adata.copy()
    cells.obsm["X_ldvae"] = ldvae.latent_representation(snap.model, adata)
    assert ldvae.store_snapshots(cells, snap) == [2]  # epoch 4 is the final latent itself
    assert cells.uns["ldvae_snapshots"] == {"epochs": [2], "final_epoch": 4}
    assert cells.varm["loadings_epoch2"].shape == (adata.n_vars, 3)
    table = classify.accuracy_by_epoch(
        cells, {"hidden_layers": [8], "max_epochs": 30}, seed=0, n_bootstrap=20
    )
    assert list(table["epoch"]) == [2, 4] and list(table["final"]) == [False, True]
    assert ((table["accuracy_low"] <= table["accuracy"]) & (table["accuracy"] <= 1)).all()
    cells.uns.pop("ldvae_snapshots")
    assert classify.accuracy_by_epoch(cells, {}, seed=0).empty


def test_scoring_lets_go_of_the_cells_it_was_given(adata, fit):
    """scvi-tools keeps every AnnData a model is handed; latent and held-out scoring hand it a
    view and deregister it afterwards, so a test split's counts are not kept alive."""
    before = set(fit.model._per_instance_manager_store[fit.model.id])
    test = adata[adata.obs["split"] == "test"]
    ldvae.heldout_scores(fit.model, test)
    ldvae.latent_representation(fit.model, adata)
    assert set(fit.model._per_instance_manager_store[fit.model.id]) == before


def test_fused_adam_is_scvi_tools_adam_with_the_fused_kernel():
    """The optimizer handed to scvi-tools has its own Adam's settings, only fused."""
    import torch
    from scvi.train import TrainingPlan

    kwargs = ldvae_setup.fused_adam(3e-3)
    assert kwargs["optimizer"] == "Custom"
    w = torch.nn.Parameter(torch.ones(3))
    ours = kwargs["optimizer_creator"]([w])
    plan = TrainingPlan.__new__(TrainingPlan)
    plan.lr, plan.eps, plan.weight_decay = 3e-3, 0.01, 1e-6
    theirs = plan._optimizer_creator_fn(torch.optim.Adam)([torch.nn.Parameter(torch.ones(3))])
    assert type(ours) is type(theirs) is torch.optim.Adam
    a, b = ours.param_groups[0], theirs.param_groups[0]
    assert a["fused"] is True and not b["fused"]
    for key in ("lr", "eps", "weight_decay", "betas", "amsgrad"):
        assert a[key] == b[key], key
    # one step of each from the same point lands at the same place (to rounding)
    for opt in (ours, theirs):
        p = opt.param_groups[0]["params"][0]
        p.grad = torch.tensor([0.5, -1.0, 2.0])
        opt.step()
    torch.testing.assert_close(
        ours.param_groups[0]["params"][0], theirs.param_groups[0]["params"][0]
    )
