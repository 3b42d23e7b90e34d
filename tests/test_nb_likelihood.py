"""The zero-aware NB likelihood equals scvi-tools' dense one; the LDVAE using it is the same model.

Tolerances (issue: zero-aware likelihood). Values: per-cell sums within 1e-6 relative of
scvi-tools' ``log_nb_positive(...).sum(-1)``. Gradients with respect to ``mu`` and ``theta``:
1e-3 (float32) and 1e-8 (float64) relative *to the magnitude of the terms summed* — the
gradient of a per-gene ``theta`` adds, over cells, terms like ``log(theta) - log(theta + mu)``
and ``1 - theta / (theta + mu)`` that cancel, so a correctly reordered sum can differ from the
dense one by more than 1e-3 of a near-zero result; that error stays a tiny fraction of the
summed magnitudes, while a changed model (e.g. the theta term dropped at zeros, the bug of the
first version of scvi-tools PR #1045) is off by order one on that scale. In float32 at extreme
``theta`` (1e6) scvi-tools' own dense value carries rounding of the size of ``lgamma(theta)``
per entry (it adds and subtracts it at every zero); there the value check is likewise relative
to the summed magnitudes, and float64 is held to 1e-6 plainly.
"""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scvi.distributions._negative_binomial import log_nb_positive

from latentshift.errors import LatentshiftError, ParamsError
from latentshift.model import nb_likelihood as nbl

EPS = 1e-8
RTOL_VALUE = 1e-6
RTOL_GRAD = {torch.float32: 1e-3, torch.float64: 1e-8}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# --- helpers ----------------------------------------------------------------------------


def dense_sum(x, mu, theta, eps=EPS):
    """What scvi-tools' LDVAE computes: NegativeBinomial broadcasts theta, log_prob, sum."""
    return log_nb_positive(x, mu, theta.expand_as(mu), eps).sum(-1)


def value_and_grads(fn, x, mu, theta, weights):
    """``fn``'s per-cell values and the gradients of ``weights · values`` (distinct per cell)."""
    mu = mu.detach().clone().requires_grad_(True)
    theta = theta.detach().clone().requires_grad_(True)
    out = fn(x, mu, theta)
    out.backward(weights)
    return out.detach(), mu.grad, theta.grad


def magnitudes(x, mu, theta, weights, eps=EPS):
    """Float64 sums of the absolute values of the terms scvi-tools' dense form adds up.

    For each per-cell value: every log and lgamma term of ``log_nb_positive`` (times its
    factor) at every entry; for each gradient: every term autograd derives from them. A
    reordered sum differs from the dense one by rounding of this size, not of the result's.
    """
    x, mu, w = x.double(), mu.double(), weights.double().abs()
    th = theta.double().expand_as(mu)
    s = th + mu + eps
    log_s, log_t, log_m = torch.log(s).abs(), torch.log(th + eps).abs(), torch.log(mu + eps).abs()
    lg = torch.lgamma(x + th).abs() + torch.lgamma(th).abs() + torch.lgamma(x + 1).abs()
    value = (th * (log_t + log_s) + x.abs() * (log_m + log_s) + lg).sum(-1)
    w = w.reshape(w.shape + (1,))
    g_mu = w * (x.abs() / (mu + eps) + (th + x.abs()) / s)
    dg = torch.digamma(x + th).abs() + torch.digamma(th).abs()
    g_theta = w * (log_t + log_s + th / (th + eps) + (th + x.abs()) / s + dg)
    return value, g_mu, g_theta.sum_to_size(theta.shape)


def assert_rel(actual, expected, rtol, scale=None, what=""):
    """``|actual - expected| <= rtol * max(|expected|, scale)`` elementwise (scale: magnitudes)."""
    actual, expected = actual.double().cpu(), expected.double().cpu()
    bound = expected.abs() if scale is None else torch.maximum(expected.abs(), scale.double().cpu())
    err = (actual - expected).abs()
    worst = (err / bound.clamp_min(1e-300)).max().item() if err.numel() else 0.0
    assert torch.isfinite(actual).all() == torch.isfinite(expected).all(), what
    assert worst <= rtol, f"{what}: worst relative error {worst:.3g} > {rtol:g}"


def check_equivalent(x, mu, theta, *, plain_values=True, seed=0):
    """Zero-aware vs scvi-tools' dense sum: values and gradients, at the module's tolerances."""
    gen = torch.Generator().manual_seed(seed)
    weights = (torch.rand(mu.shape[:-1], generator=gen, dtype=torch.float64) + 0.5).to(mu)
    ours = value_and_grads(nbl.log_nb_positive_zero_aware, x, mu, theta, weights)
    ref = value_and_grads(dense_sum, x, mu, theta, weights)
    v_scale, gm_scale, gt_scale = magnitudes(x, mu, theta, weights)
    rtol_g = RTOL_GRAD[mu.dtype]
    if plain_values:
        assert_rel(ours[0], ref[0], RTOL_VALUE, what="value")
    else:
        assert_rel(ours[0], ref[0], RTOL_VALUE, scale=v_scale, what="value (vs magnitudes)")
    assert_rel(ours[1], ref[1], rtol_g, scale=gm_scale, what="grad mu")
    assert_rel(ours[2], ref[2], rtol_g, scale=gt_scale, what="grad theta")
    return ours, ref


def nb_counts(mu, theta, rng):
    """NB draws with mean ``mu`` and inverse dispersion ``theta`` (numpy arrays)."""
    lam = rng.gamma(np.broadcast_to(theta, mu.shape), mu / theta)
    return rng.poisson(np.minimum(lam, 1e9)).astype(np.float64)


def realistic(n=64, g=2000, seed=0, dtype=torch.float32, device="cpu"):
    """~80% zeros, a few counts in the thousands, per-gene theta, mu near the data."""
    rng = np.random.default_rng(seed)
    means = np.exp(rng.normal(-2.2, 2.0, g))
    means[:3] = [300.0, 1500.0, 4000.0]  # a few very highly expressed genes
    lib = np.exp(rng.normal(0.0, 0.3, n))
    theta = np.exp(rng.normal(0.5, 0.7, g))
    mu_true = lib[:, None] * means[None, :]
    x = nb_counts(mu_true, theta, rng)
    mu = mu_true * np.exp(rng.normal(0, 0.3, (n, g)))  # a model's mean is not the truth
    t = lambda a: torch.tensor(a, dtype=dtype, device=device)  # noqa: E731
    return t(x), t(mu), t(theta)


# --- the likelihood ---------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_batches(seed, dtype, device):
    rng = np.random.default_rng(seed)
    n, g = 17, 53
    mu = rng.uniform(0.01, 20, (n, g))
    theta = np.exp(rng.normal(0, 1, g))
    x = nb_counts(mu, theta, rng)
    t = lambda a: torch.tensor(a, dtype=dtype, device=device)  # noqa: E731
    check_equivalent(t(x), t(mu), t(theta), seed=seed)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_realistic_batch(dtype, device):
    x, mu, theta = realistic(dtype=dtype, device=device)
    zeros = (x == 0).double().mean().item()
    assert 0.7 < zeros < 0.9 and x.max() >= 1000  # the regime the issue describes
    check_equivalent(x, mu, theta)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("theta_value", [1e-4, 1e6])
def test_extreme_theta(theta_value, dtype):
    rng = np.random.default_rng(3)
    n, g = 16, 40
    mu = np.exp(rng.normal(0, 1.5, (n, g)))
    theta = np.full(g, theta_value)
    theta[::5] = 1.0  # mixed with ordinary genes
    x = nb_counts(mu, theta, rng)
    x[0, :5] = [0, 1, 50, 3000, 0]
    t = lambda a: torch.tensor(a, dtype=dtype)  # noqa: E731
    # float32 at theta 1e6: scvi-tools' own value is rounding-limited (module docstring)
    check_equivalent(t(x), t(mu), t(theta), plain_values=dtype == torch.float64 or theta_value < 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", ["tiny", "huge"])
def test_extreme_mu(scale, dtype):
    rng = np.random.default_rng(4)
    n, g = 12, 30
    theta = np.exp(rng.normal(0, 1, g))
    if scale == "tiny":
        mu = 10.0 ** rng.uniform(-12, -4, (n, g))
        mu[0, :3] = 0.0  # exactly zero means: eps keeps the logs finite
        x = (rng.random((n, g)) < 0.05).astype(np.float64)  # the odd count where mu ~ 0
    else:
        mu = 10.0 ** rng.uniform(3, 6, (n, g))
        x = nb_counts(mu, theta, rng)
        x[0, :3] = 0.0
    t = lambda a: torch.tensor(a, dtype=dtype)  # noqa: E731
    # float32 with mu ~ 1e-8: theta + mu rounds to theta, the values are rounding-limited
    check_equivalent(t(x), t(mu), t(theta), plain_values=dtype == torch.float64 or scale == "huge")


def test_zero_counts_keep_the_theta_term():
    """All-zero cells: log-likelihood sum(theta * (log(theta+eps) - log(theta+mu+eps))), not 0
    (the first version of scvi-tools PR #1045 dropped it)."""
    mu = torch.tensor([[0.5, 2.0, 7.0]], dtype=torch.float64)
    theta = torch.tensor([0.3, 1.0, 4.0], dtype=torch.float64)
    x = torch.zeros_like(mu)
    expected = (theta * (torch.log(theta + EPS) - torch.log(theta + mu + EPS))).sum(-1)
    got = nbl.log_nb_positive_zero_aware(x, mu, theta)
    assert got.item() < -0.5
    torch.testing.assert_close(got, expected, rtol=1e-14, atol=0)
    torch.testing.assert_close(got, dense_sum(x, mu, theta), rtol=1e-14, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_theta_shapes_and_leading_dims(dtype):
    x, mu, theta_g = realistic(n=12, g=50, dtype=dtype)
    rng = np.random.default_rng(5)
    per_cell = torch.tensor(np.exp(rng.normal(0, 1, mu.shape)), dtype=dtype)  # gene-cell
    per_batch = theta_g[None, :] * torch.tensor([1.0, 2.0, 0.5], dtype=dtype).repeat(4)[:, None]
    for theta in (theta_g, theta_g[None, :], per_cell, per_batch):
        check_equivalent(x, mu, theta)
    # leading sample axis with x of the same shape
    x3, mu3 = torch.stack([x, x]), torch.stack([mu, mu * 1.5])
    check_equivalent(x3, mu3, theta_g)
    # several posterior samples against one batch: the dense fallback, same values
    got = nbl.log_nb_positive_zero_aware(x, mu3, theta_g)
    torch.testing.assert_close(got, dense_sum(x, mu3, theta_g), rtol=0, atol=0)


def test_no_gradient_needed_and_inference_mode():
    x, mu, theta = realistic(n=8, g=30, dtype=torch.float64)
    with torch.inference_mode():
        got = nbl.log_nb_positive_zero_aware(x, mu, theta)
    torch.testing.assert_close(got, dense_sum(x, mu, theta), rtol=1e-12, atol=0)
    mu.requires_grad_(True)  # theta without a gradient
    out = nbl.log_nb_positive_zero_aware(x, mu, theta)
    (grad_mu,) = torch.autograd.grad(out.sum(), mu)
    mu_d = mu.detach().clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(dense_sum(x, mu_d, theta).sum(), mu_d)
    torch.testing.assert_close(grad_mu, ref, rtol=1e-12, atol=0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 6),
    g=st.integers(1, 12),
    zero_frac=st.floats(0.0, 1.0),
    log_mu=st.floats(-8.0, 8.0),
    log_theta=st.floats(-4.0, 5.0),
    per_cell_theta=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_equivalence(n, g, zero_frac, log_mu, log_theta, per_cell_theta, seed):
    rng = np.random.default_rng(seed)
    mu = np.exp(log_mu + rng.normal(0, 1.5, (n, g)))
    theta = np.exp(log_theta + rng.normal(0, 1.0, (n, g) if per_cell_theta else g))
    x = nb_counts(mu, theta, rng)
    x[rng.random((n, g)) < zero_frac] = 0.0
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    check_equivalent(t(x), t(mu), t(theta), seed=seed % 1000)


# --- the module and the model -----------------------------------------------------------


def small_adata(n=90, g=40, seed=0):
    rng = np.random.default_rng(seed)
    means = np.exp(rng.normal(-0.5, 1.5, g))
    types = rng.integers(0, 3, n)
    fc = np.exp(rng.normal(0, 1, (3, g)))
    mu = np.exp(rng.normal(0, 0.3, n))[:, None] * means * fc[types]
    x = nb_counts(mu, np.full(g, 2.0), rng).astype(np.float32)
    adata = ad.AnnData(
        X=x,
        obs=pd.DataFrame(
            {"t": [f"t{i}" for i in types], "batch": np.where(np.arange(n) % 2, "b1", "b0")},
            index=[f"c{i}" for i in range(n)],
        ),
        var=pd.DataFrame(index=[f"g{i}" for i in range(g)]),
    )
    adata.layers["counts"] = x.copy()
    return adata


MODEL_KW = {"n_latent": 3, "n_hidden": 16}


def build(adata, impl, seed=0, batch_key=None, **kw):
    import scvi

    scvi.settings.seed = seed
    scvi.model.LinearSCVI.setup_anndata(adata, layer="counts", batch_key=batch_key)
    return nbl.make_linear_scvi(adata, likelihood_impl=impl, **{**MODEL_KW, **kw})


@pytest.fixture(scope="module")
def adata():
    return small_adata()


def test_make_linear_scvi_same_weights_and_class(adata):
    from scvi.model import LinearSCVI
    from scvi.module import LDVAE

    dense, zero = build(adata.copy(), "dense"), build(adata.copy(), "zero_aware")
    assert type(dense) is LinearSCVI and type(zero) is LinearSCVI
    assert type(dense.module) is LDVAE and type(zero.module) is nbl.ZeroAwareLDVAE
    assert nbl.likelihood_impl_of(zero) == "zero_aware" and nbl.likelihood_impl_of(dense) == "dense"
    sd_d, sd_z = dense.module.state_dict(), zero.module.state_dict()
    assert sd_d.keys() == sd_z.keys()
    assert all(torch.equal(sd_d[k], sd_z[k]) for k in sd_d)


@pytest.mark.parametrize("dispersion", ["gene", "gene-batch"])
def test_module_loss_equal_to_dense(adata, dispersion):
    """Same weights, same inference and generative outputs: same LossOutput and gradients
    (``gene-batch``: theta differs between the two batches, the full-theta path)."""
    from scvi import REGISTRY_KEYS
    from scvi.module import LDVAE

    batch_key = "batch" if dispersion == "gene-batch" else None
    model = build(adata.copy(), "zero_aware", batch_key=batch_key, dispersion=dispersion)
    module = model.module
    module.train()
    x = torch.tensor(adata.layers["counts"][:32])
    batch = (adata.obs["batch"].to_numpy()[:32] == "b1") if batch_key else np.zeros(32, bool)
    tensors = {
        REGISTRY_KEYS.X_KEY: x,
        REGISTRY_KEYS.BATCH_KEY: torch.tensor(batch, dtype=torch.long)[:, None],
        REGISTRY_KEYS.LABELS_KEY: torch.zeros(32, 1, dtype=torch.long),
    }
    torch.manual_seed(0)
    inf = module.inference(**module._get_inference_input(tensors))
    gen = module.generative(**module._get_generative_input(tensors, inf))
    outs = {}
    for name, loss_fn in (("dense", LDVAE.loss), ("zero", nbl.ZeroAwareLDVAE.loss)):
        lo = loss_fn(module, tensors, inf, gen, kl_weight=0.37)
        grads = torch.autograd.grad(
            lo.loss, list(module.parameters()), retain_graph=True, allow_unused=True
        )
        outs[name] = (lo, grads)
    (d, gd), (z, gz) = outs["dense"], outs["zero"]
    assert z.reconstruction_loss.keys() == d.reconstruction_loss.keys()
    rec_d, rec_z = (
        d.reconstruction_loss["reconstruction_loss"],
        z.reconstruction_loss["reconstruction_loss"],
    )
    assert rec_z.shape == rec_d.shape == (32,)
    assert_rel(rec_z, rec_d, RTOL_VALUE, what="reconstruction_loss per cell")
    assert_rel(z.loss, d.loss, RTOL_VALUE, what="loss")
    assert z.kl_local.keys() == d.kl_local.keys()
    for k in d.kl_local:
        assert torch.equal(z.kl_local[k], d.kl_local[k])
    for a, b in zip(gz, gd, strict=True):
        if b is None:
            assert a is None
            continue
        rel = ((a - b).norm() / b.norm().clamp_min(1e-30)).item()
        assert rel <= 1e-3, f"parameter gradient differs by {rel:.3g} (normwise)"


def test_training_and_metrics_match_dense(adata, tmp_path, monkeypatch):
    """Two epochs from the same seed give the same history, weights and scvi-tools metrics; the
    saved model loads as a plain LinearSCVI and can be switched back."""
    import scvi
    from scvi.module import LDVAE

    calls = []
    original = nbl.log_nb_positive_zero_aware

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(nbl, "log_nb_positive_zero_aware", counting)
    fits = {}
    for impl in ("dense", "zero_aware"):
        a = adata.copy()
        model = build(a, impl)
        n_calls = len(calls)
        model.train(
            max_epochs=2,
            batch_size=32,
            enable_progress_bar=False,
            train_size=0.8,
            check_val_every_n_epoch=1,
            log_every_n_steps=1,
        )
        # dense: never called; zero-aware: every training and validation batch goes through it
        assert (len(calls) > n_calls + 4) == (impl == "zero_aware"), (impl, len(calls) - n_calls)
        fits[impl] = (model, a)
    (md, ad_d), (mz, ad_z) = fits["dense"], fits["zero_aware"]
    for key in ("elbo_train", "reconstruction_loss_train", "kl_local_train", "elbo_validation"):
        hd, hz = md.history[key].to_numpy(float), mz.history[key].to_numpy(float)
        np.testing.assert_allclose(hz, hd, rtol=1e-5, err_msg=key)
    for (k, pd_), pz in zip(
        md.module.state_dict().items(), mz.module.state_dict().values(), strict=True
    ):
        if pd_.dtype.is_floating_point:
            torch.testing.assert_close(pz, pd_, rtol=1e-3, atol=1e-5, msg=k)

    # same weights, both implementations: the scvi-tools outputs agree
    mz.module.load_state_dict(md.module.state_dict())

    def metrics(model, a):
        torch.manual_seed(1)
        elbo = model.get_elbo(a, return_mean=False)
        torch.manual_seed(1)
        rec = model.get_reconstruction_error(a, return_mean=False)["reconstruction_loss"]
        return elbo, rec, model.get_latent_representation(a), model.get_loadings().to_numpy()

    m_d, m_z = metrics(md, ad_d), metrics(mz, ad_z)
    assert_rel(torch.as_tensor(m_z[0]), torch.as_tensor(m_d[0]), RTOL_VALUE, what="get_elbo")
    assert_rel(
        torch.as_tensor(m_z[1]), torch.as_tensor(m_d[1]), RTOL_VALUE, what="reconstruction error"
    )
    np.testing.assert_array_equal(m_z[2], m_d[2])
    np.testing.assert_array_equal(m_z[3], m_d[3])

    # save with scvi-tools, load as a plain LinearSCVI
    path = tmp_path / "model"
    mz.save(str(path), save_anndata=False)
    loaded = scvi.model.LinearSCVI.load(str(path), adata=ad_z)
    assert type(loaded) is scvi.model.LinearSCVI and type(loaded.module) is LDVAE
    assert nbl.likelihood_impl_of(loaded) == "dense"
    for k, v in mz.module.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[k].cpu(), v.cpu()), k
    np.testing.assert_array_equal(loaded.get_loadings().to_numpy(), m_z[3])
    nbl.use_likelihood_impl(loaded, "zero_aware")
    assert type(loaded.module) is nbl.ZeroAwareLDVAE
    m_l = metrics(loaded, ad_z)
    assert_rel(torch.as_tensor(m_l[0]), torch.as_tensor(m_d[0]), RTOL_VALUE, what="loaded get_elbo")
    np.testing.assert_array_equal(m_l[2], m_d[2])
    nbl.use_likelihood_impl(loaded, "dense")
    assert type(loaded.module) is LDVAE


@pytest.mark.parametrize("likelihood", ["zinb", "poisson"])
def test_other_likelihoods_stay_dense(adata, likelihood, caplog):
    from scvi.module import LDVAE

    with caplog.at_level(logging.INFO, logger="latentshift.model.nb_likelihood"):
        model = build(adata.copy(), "zero_aware", gene_likelihood=likelihood)
    assert type(model.module) is LDVAE
    assert "keeping the dense one" in caplog.text
    # the zero-aware module itself also falls back to the dense loss for them
    model.module.__class__ = nbl.ZeroAwareLDVAE
    from scvi import REGISTRY_KEYS

    x = torch.tensor(adata.layers["counts"][:16])
    tensors = {
        REGISTRY_KEYS.X_KEY: x,
        REGISTRY_KEYS.BATCH_KEY: torch.zeros(16, 1, dtype=torch.long),
        REGISTRY_KEYS.LABELS_KEY: torch.zeros(16, 1, dtype=torch.long),
    }
    module = model.module
    inf = module.inference(**module._get_inference_input(tensors))
    gen = module.generative(**module._get_generative_input(tensors, inf))
    a = LDVAE.loss(module, tensors, inf, gen).reconstruction_loss["reconstruction_loss"]
    b = module.loss(tensors, inf, gen).reconstruction_loss["reconstruction_loss"]
    assert torch.equal(a, b)


def test_bad_impl_and_foreign_module(adata):
    with pytest.raises(ParamsError, match="likelihood_impl"):
        nbl.validate_likelihood_impl("sparse")
    with pytest.raises(LatentshiftError):
        build(adata.copy(), "fast")
    with pytest.raises(nbl.LikelihoodContractError, match="not scvi-tools' LDVAE"):
        nbl.use_likelihood_impl(torch.nn.Linear(2, 2), "zero_aware")


# --- the contract with scvi-tools -------------------------------------------------------


def test_scvi_contract_pinned():
    """Fails when an scvi-tools upgrade edits what the override relies on: VAE.loss (its
    signature, the reconstruction line), VAE.generative, NegativeBinomial and log_nb_positive.
    Re-run this file against the new version, then update nb_likelihood.PINNED_SOURCES."""
    nbl.check_module_contract(strict_sources=True)
    assert nbl.scvi_source_fingerprints() == nbl.PINNED_SOURCES


def test_contract_reports_a_changed_source(monkeypatch):
    changed = dict(nbl.PINNED_SOURCES)
    changed["scvi.module._vae.VAE.loss"] = "f" * 64
    monkeypatch.setattr(nbl, "PINNED_SOURCES", changed)
    with pytest.raises(nbl.LikelihoodContractError, match=r"VAE\.loss changed.*likelihood_impl"):
        nbl.check_module_contract(strict_sources=True)
    nbl.check_module_contract()  # structure and behaviour still fine


def test_override_is_only_the_loss():
    """ZeroAwareLDVAE changes LDVAE in one method, with VAE.loss's signature, and the stand-in
    distribution offers nothing but log_prob (any other use inside the loss fails loudly)."""
    import inspect

    from scvi.module import LDVAE, VAE

    own = {k for k in vars(nbl.ZeroAwareLDVAE) if not k.startswith("__")}
    assert own == {"loss"}
    assert LDVAE.loss is VAE.loss
    assert list(inspect.signature(nbl.ZeroAwareLDVAE.loss).parameters) == list(
        inspect.signature(inspect.unwrap(VAE.loss)).parameters
    )
    proxy = nbl._PerCellNBLogProb(object())
    with pytest.raises(AttributeError):
        _ = proxy.mean
