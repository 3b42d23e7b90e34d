"""The LDVAE's NB reconstruction term: scvi-tools' dense form vs the zero-aware one, side by side.

Both variants compute the same model (``latentshift.model.nb_likelihood``; equivalence pinned by
``tests/test_nb_likelihood.py``). Measured in one run, on the same simulated counts:

* **likelihood alone** — one minibatch of 256 cells × 30,000 genes at about 21% nonzero
  (neuron-like: log-normal gene means, about 23k UMIs per cell, some counts in the thousands);
  the NB log-likelihood summed per cell and its backward pass to ``mu`` and ``theta``, as the
  LDVAE's loss calls it: scvi-tools' ``NegativeBinomial(mu, theta).log_prob(x).sum(-1)`` vs
  :func:`latentshift.model.nb_likelihood.log_nb_positive_zero_aware`. Several interleaved repeats;
  the median (and the fastest) of each. Target: zero-aware at least 2× faster.
* **per-epoch training time** — :class:`scvi.model.LinearSCVI` (n_latent 36, n_hidden 128,
  batch 256, scvi-tools' training loop, no validation) built by
  :func:`latentshift.model.nb_likelihood.make_linear_scvi` with ``likelihood_impl`` ``"dense"`` and
  ``"zero_aware"``, same cells, same seed, one after the other; a callback times each epoch.
  Target at 15,000 cells × 30,000 genes: zero-aware at least 1.5× faster per epoch (median
  epoch). ``--cells/--genes/--epochs`` run it smaller (targets then reported, not judged).

The epoch timing trains on the project's calibrated simulated M1 (:func:`latentshift.data.simulate.
simulate_m1`: real genes at real levels, M1 depth); the likelihood-alone batch is drawn with
numpy (NB, log-normal gene means at the same density). The machine (torch threads, CUDA) is recorded; with a GPU both parts run on CUDA too.
Results are printed and written to ``reports/bench/likelihood.json``.

Run: ``python -m benchmarks likelihood`` or
``python -m benchmarks.bench_likelihood --cells 3000 --epochs 2``.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 256
N_LATENT = 36
N_HIDDEN = 128
TARGET_LIKELIHOOD = 2.0
TARGET_EPOCH = 1.5
FULL_SIZE = (15000, 30000)
QUICK = {"cells": 600, "genes": 2000, "epochs": 2, "repeats": 3}

log = logging.getLogger("bench_likelihood")


# --- data -------------------------------------------------------------------------------


def gene_parameters(n_genes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Neuron-like gene means (log-normal; ~21% nonzero, ~23k UMIs per cell at 30k genes)
    and per-gene inverse dispersions."""
    rng = np.random.default_rng([seed, 1])
    means = np.exp(rng.normal(-2.25, 1.95, n_genes))
    theta = np.exp(rng.normal(0.5, 0.5, n_genes))
    return means, theta


def simulate_counts(n_cells: int, n_genes: int, seed: int, chunk: int = 1000) -> Any:
    """NB counts (cells × genes, CSR int32), drawn chunk by chunk to keep memory low."""
    import scipy.sparse as sp

    means, theta = gene_parameters(n_genes, seed)
    rng = np.random.default_rng([seed, 2])
    blocks = []
    for start in range(0, n_cells, chunk):
        n = min(chunk, n_cells - start)
        lib = np.exp(rng.normal(0.0, 0.3, n))[:, None]
        lam = rng.gamma(theta[None, :], (lib * means[None, :]) / theta[None, :])
        blocks.append(sp.csr_matrix(rng.poisson(lam).astype(np.int32)))
    return sp.vstack(blocks, format="csr")


def minibatch(n_genes: int, seed: int, dtype: Any, device: str) -> tuple[Any, Any, Any]:
    """One 256-cell batch: counts, a model-like ``mu`` (the truth with noise), per-gene theta."""
    import torch

    means, theta = gene_parameters(n_genes, seed)
    rng = np.random.default_rng([seed, 3])
    lib = np.exp(rng.normal(0.0, 0.3, BATCH))[:, None]
    mu_true = lib * means[None, :]
    x = rng.poisson(rng.gamma(theta[None, :], mu_true / theta[None, :]))
    mu = mu_true * np.exp(rng.normal(0.0, 0.3, mu_true.shape))
    as_t = lambda a: torch.tensor(a, dtype=dtype, device=device)  # noqa: E731
    return as_t(x), as_t(mu), as_t(theta)


# --- (a) the likelihood alone -----------------------------------------------------------


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def likelihood_alone(n_genes: int, repeats: int, seed: int, device: str) -> dict[str, Any]:
    """Forward and forward+backward times of both variants on one batch (interleaved)."""
    import torch
    from scvi.distributions import NegativeBinomial

    from latentshift.model import nb_likelihood as nbl

    x, mu0, theta0 = minibatch(n_genes, seed, torch.float32, device)

    def dense(mu: Any, theta: Any) -> Any:  # what VAE.loss does for gene_likelihood="nb"
        return NegativeBinomial(mu=mu, theta=theta).log_prob(x).sum(-1)

    def zero_aware(mu: Any, theta: Any) -> Any:  # what ZeroAwareLDVAE.loss hands VAE.loss
        px = NegativeBinomial(mu=mu, theta=theta)
        return nbl._PerCellNBLogProb(px).log_prob(x).sum(-1)

    variants = {"dense": dense, "zero_aware": zero_aware}
    times: dict[str, dict[str, list[float]]] = {k: {"forward": [], "total": []} for k in variants}
    outputs = {}
    for rep in range(repeats + 1):  # the first round warms up and is not counted
        for name, fn in variants.items():
            mu = mu0.clone().requires_grad_(True)
            log_theta = torch.log(theta0).requires_grad_(True)  # like px_r -> exp
            _sync(device)
            t0 = time.perf_counter()
            out = fn(mu, torch.exp(log_theta))
            _sync(device)
            t1 = time.perf_counter()
            (-out).mean().backward()
            _sync(device)
            t2 = time.perf_counter()
            if rep:
                times[name]["forward"].append(t1 - t0)
                times[name]["total"].append(t2 - t0)
            outputs[name] = (out.detach().double(), mu.grad.double(), log_theta.grad.double())
    d, z = outputs["dense"], outputs["zero_aware"]
    res: dict[str, Any] = {
        "device": device,
        "batch": [BATCH, n_genes],
        "nonzero_fraction": round(float((x != 0).double().mean()), 4),
        "umis_per_cell": round(float(x.sum(1).double().mean()), 1),
        "max_count": int(x.max()),
        "repeats": repeats,
        "max_rel_diff_value": float(((z[0] - d[0]).abs() / d[0].abs()).max()),
        "rel_diff_grad_mu": float((z[1] - d[1]).norm() / d[1].norm()),
        "rel_diff_grad_log_theta": float((z[2] - d[2]).norm() / d[2].norm()),
    }
    for name, t in times.items():
        res[name] = {
            "forward_ms_median": round(1e3 * statistics.median(t["forward"]), 2),
            "forward_backward_ms_median": round(1e3 * statistics.median(t["total"]), 2),
            "forward_backward_ms_min": round(1e3 * min(t["total"]), 2),
            "forward_backward_ms_all": [round(1e3 * v, 1) for v in t["total"]],
        }
    res["speedup_forward_backward"] = round(
        res["dense"]["forward_backward_ms_median"]
        / res["zero_aware"]["forward_backward_ms_median"],
        2,
    )
    res["speedup_forward"] = round(
        res["dense"]["forward_ms_median"] / res["zero_aware"]["forward_ms_median"], 2
    )
    return res


# --- (b) per-epoch training -------------------------------------------------------------


def epoch_timer() -> Any:
    """A Lightning callback recording the wall time of every training epoch."""
    from lightning.pytorch.callbacks import Callback

    class _EpochTimer(Callback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self._start = 0.0

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self._start = time.perf_counter()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            self.seconds.append(time.perf_counter() - self._start)

    return _EpochTimer()


def train_epochs(adata: Any, impl: str, epochs: int, seed: int, accelerator: str) -> dict[str, Any]:
    """Train LinearSCVI ``epochs`` epochs with one likelihood implementation; epoch times."""
    import scvi

    from latentshift.model import nb_likelihood as nbl

    scvi.settings.seed = seed
    model = nbl.make_linear_scvi(
        adata, likelihood_impl=impl, n_latent=N_LATENT, n_hidden=N_HIDDEN, gene_likelihood="nb"
    )
    timer = epoch_timer()
    start = time.perf_counter()
    model.train(
        max_epochs=epochs,
        batch_size=BATCH,
        train_size=1.0,
        accelerator=accelerator,
        devices=1,
        enable_progress_bar=False,
        early_stopping=False,
        callbacks=[timer],
    )
    wall = time.perf_counter() - start
    hist = model.history
    return {
        "likelihood_impl": nbl.likelihood_impl_of(model),
        "epoch_seconds": [round(s, 2) for s in timer.seconds],
        "median_epoch_seconds": round(statistics.median(timer.seconds), 2),
        "train_wall_seconds": round(wall, 2),
        "elbo_train": [float(v) for v in hist["elbo_train"].to_numpy().ravel()],
        "reconstruction_loss_train": [
            round(float(v), 4) for v in hist["reconstruction_loss_train"].to_numpy().ravel()
        ],
    }


def simulated_adata(
    n_cells: int, n_genes: int, seed: int, cache: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """The simulated cells as an AnnData registered with ``LinearSCVI.setup_anndata``
    (``cache``: an ``.npz`` file reused when it exists, written otherwise)."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp
    import scvi

    t0 = time.perf_counter()
    path = Path(cache) if cache else None
    if path is not None and path.is_file():
        counts = sp.load_npz(path).tocsr()
        if counts.shape != (n_cells, n_genes):
            raise SystemExit(f"{path} holds {counts.shape}, not {(n_cells, n_genes)}")
    else:
        from latentshift.data.simulate import simulate_m1

        # the project's calibrated simulator: real genes, M1 depth (~21 % nonzero for neurons)
        counts = simulate_m1(n_cells, n_genes, seed=seed).layers["counts"].astype(np.float32)
        if path is not None:
            sp.save_npz(path, counts, compressed=False)
    stats = {
        "n_cells": n_cells,
        "n_genes": n_genes,
        "nonzero_fraction": round(counts.nnz / (n_cells * n_genes), 4),
        "umis_per_cell": round(float(counts.sum()) / n_cells, 1),
        "max_count": int(counts.max()),
        "simulate_seconds": round(time.perf_counter() - t0, 1),
    }
    adata = ad.AnnData(
        X=counts,
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n_cells)]),
        var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]),
    )
    adata.layers["counts"] = adata.X
    scvi.model.LinearSCVI.setup_anndata(adata, layer="counts")
    return adata, stats


def training(
    adata: Any, stats: dict[str, Any], epochs: int, seed: int, accelerator: str
) -> dict[str, Any]:
    """Dense then zero-aware, same cells and seed; per-epoch times side by side."""
    runs = {
        impl: train_epochs(adata, impl, epochs, seed, accelerator)
        for impl in ("dense", "zero_aware")
    }
    d, z = runs["dense"], runs["zero_aware"]
    return {
        "accelerator": accelerator,
        **stats,
        "epochs": epochs,
        "batch_size": BATCH,
        "n_latent": N_LATENT,
        "n_hidden": N_HIDDEN,
        "runs": runs,
        "speedup_median_epoch": round(d["median_epoch_seconds"] / z["median_epoch_seconds"], 2),
        "max_rel_diff_elbo_train": float(
            np.max(np.abs(np.array(z["elbo_train"]) - d["elbo_train"]) / np.abs(d["elbo_train"]))
        ),
    }


# --- main -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import os

    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_cores": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
        "cpu": platform.processor() or platform.machine(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import scvi

        info["scvi_tools"] = scvi.__version__
    except ImportError:  # pragma: no cover
        pass
    return info


def compare(results: dict[str, Any], full_size: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for device, lik in results.get("likelihood", {}).items():
        out[f"likelihood_speedup_{device}"] = lik["speedup_forward_backward"]
        out[f"likelihood_max_rel_diff_{device}"] = lik["max_rel_diff_value"]
        out[f"likelihood_target_met_{device}"] = (
            lik["speedup_forward_backward"] >= TARGET_LIKELIHOOD
        )
    for device, tr in results.get("training", {}).items():
        out[f"epoch_speedup_{device}"] = tr["speedup_median_epoch"]
        out[f"epoch_size_{device}"] = f"{tr['n_cells']} x {tr['n_genes']}, {tr['epochs']} epochs"
        out[f"epoch_target_met_{device}"] = (
            tr["speedup_median_epoch"] >= TARGET_EPOCH if full_size else None
        )
    out["targets"] = (
        f"likelihood + backward >= {TARGET_LIKELIHOOD}x; per epoch >= {TARGET_EPOCH}x at "
        f"{FULL_SIZE[0]} x {FULL_SIZE[1]} (judged on CPU at that size only)"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_likelihood", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--cells", type=int, default=FULL_SIZE[0])
    parser.add_argument("--genes", type=int, default=FULL_SIZE[1])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7, help="likelihood repeats per variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--data-cache", default=None, help=".npz of the simulated counts (reused)")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-likelihood", action="store_true")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, only checks the code runs"
    )
    parser.add_argument(
        "--out", default=None, help="JSON file (default reports/bench/likelihood.json)"
    )
    args, unknown = parser.parse_known_args(argv if argv is not None else sys.argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric", "scvi"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if unknown:
        log.info("ignoring options meant for other benchmarks: %s", " ".join(unknown))
    if args.quick:
        args.cells, args.genes, args.epochs, args.repeats = (
            QUICK["cells"], QUICK["genes"], QUICK["epochs"], QUICK["repeats"],
        )  # fmt: skip

    import torch

    from latentshift.data import artifacts

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] if args.device == "cpu" else []
    if args.device in ("auto", "cuda") and torch.cuda.is_available():
        devices.append("cuda")
    if args.device == "auto":
        devices.insert(0, "cpu")
    if not devices:
        print("no CUDA device: nothing to run for --device cuda")
        return 1
    info = machine()
    print(f"NB likelihood, dense vs zero-aware — torch threads {info['torch_threads']}, "
          f"CUDA {info['cuda']}", flush=True)  # fmt: skip
    results: dict[str, Any] = {"likelihood": {}, "training": {}}
    if not args.skip_likelihood:
        for device in devices:
            lik = likelihood_alone(args.genes, args.repeats, args.seed, device)
            results["likelihood"][device] = lik
            print(
                f"  likelihood+backward, {device}, {BATCH} x {args.genes} "
                f"({100 * lik['nonzero_fraction']:.1f}% nonzero), median of {args.repeats}: dense "
                f"{lik['dense']['forward_backward_ms_median']:.1f} ms, zero-aware "
                f"{lik['zero_aware']['forward_backward_ms_median']:.1f} ms -> "
                f"{lik['speedup_forward_backward']:.2f}x (forward alone "
                f"{lik['speedup_forward']:.2f}x); max rel. diff {lik['max_rel_diff_value']:.1e}",
                flush=True,
            )
    if not args.skip_training:
        adata, stats = simulated_adata(args.cells, args.genes, args.seed, args.data_cache)
        print(
            f"  simulated {args.cells} x {args.genes} in {stats['simulate_seconds']} s: "
            f"{100 * stats['nonzero_fraction']:.1f}% nonzero, {stats['umis_per_cell']:.0f} UMIs "
            f"per cell, max count {stats['max_count']}",
            flush=True,
        )
        for device in devices:
            accelerator = "gpu" if device == "cuda" else "cpu"
            tr = training(adata, stats, args.epochs, args.seed, accelerator)
            results["training"][device] = tr
            print(
                f"  training, {device}, {args.cells} x {args.genes}, {args.epochs} epochs: median epoch "
                f"dense {tr['runs']['dense']['median_epoch_seconds']:.1f} s "
                f"{tr['runs']['dense']['epoch_seconds']}, zero-aware "
                f"{tr['runs']['zero_aware']['median_epoch_seconds']:.1f} s "
                f"{tr['runs']['zero_aware']['epoch_seconds']} -> {tr['speedup_median_epoch']:.2f}x; "
                f"elbo_train max rel. diff {tr['max_rel_diff_elbo_train']:.1e}",
                flush=True,
            )
    full = (args.cells, args.genes) == FULL_SIZE and not args.quick
    report = {
        "benchmark": "NB likelihood: dense vs zero-aware (LDVAE reconstruction term)",
        "quick": bool(args.quick),
        "machine": info,
        "settings": {k: getattr(args, k) for k in ("cells", "genes", "epochs", "repeats", "seed")},
        "results": results,
        "comparison": compare(results, full),
    }
    out = (
        Path(args.out)
        if args.out
        else artifacts.project_root() / "reports" / "bench" / "likelihood.json"
    )
    artifacts.write_json(report, out)
    print(f"  written: {out}", flush=True)
    cmp_ = report["comparison"]
    missed = [k for k, v in cmp_.items() if k.endswith("target_met_cpu") and v is False]
    return 1 if missed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
